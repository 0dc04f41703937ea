import os

os.environ.setdefault("OGCLIP_MODE", "offline")
