import os

os.environ.setdefault("OGCLIP_MODE", "offline")
os.environ.setdefault("MPLBACKEND", "Agg")
