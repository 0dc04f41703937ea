"""ogclip_utils — the helper package behind the Object-Guided CLIP notebooks.

One module per idea, in layers that import only downward (README, "Layout"; the
``import-linter`` contract in ``pyproject.toml``): foundations (``paths``, ``checks``,
``metrics``, ``arrays``), world and weights (``data``, ``vocabulary``, ``weights``, ``env``), models
(``clip``, ``tiny_shapes``, ``segmenters``, ``detectors``, ``models``), stages (``dense``,
``pamr``, ``prompts``, ``refine``, ``grounding``, ``og_clip``, ``tiny_clip``, ``training``,
``edit``),
examples (``lessons``), figures (``viz``), chains (``pipeline``, ``datasets``), measuring (``evaluation``,
``benchmark``), showing (``widgets``, ``explain``) and entry points (``cli``, ``perf``,
``nbtools``). Import what you need: ``from ogclip_utils import data, models, dense``.
Importing the package itself is cheap (torch is imported by the modules that need it).
"""
__version__ = "0.1.0"
