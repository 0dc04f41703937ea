"""ogclip_utils — the small helper package behind the Object-Guided CLIP notebooks.

Modules (one idea each): env, data, models, grounding, dense, prompts, refine, og_clip,
metrics, viz, widgets, edit, pipeline, explain, benchmark, cli. Import what you need:
``from ogclip_utils import data, models, dense``. Importing the package is cheap (torch is
imported by the modules that need it).
"""
__version__ = "0.1.0"
