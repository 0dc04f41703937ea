"""Where things live: the repository folders, the one download cache, safe file names.

- :data:`REPO_ROOT` and its folders (``data/``, ``checkpoints/``, ``notebooks/``), found from
  this file, so nothing depends on the working directory (``../`` breaks in Colab).
- :func:`outputs_dir`: ``outputs/<name>/`` in the repository, for files a notebook writes.
- :func:`cache_dir`: ``$OGCLIP_CACHE`` (default ``~/.cache/ogclip``) and its sub-folders —
  the single place every download and every cached text embedding goes.
- :func:`safe_name`: the one sanitiser for user strings (class names, sample ids) that become
  file names.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

#: Repository root (the folder holding ``ogclip_utils/``, ``checkpoints/``, ``data/``).
REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "data"
CHECKPOINT_DIR = REPO_ROOT / "checkpoints"
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
OUTPUT_DIR = REPO_ROOT / "outputs"
#: The course's repository: the one address Colab clones (the notebooks' setup cell and badges
#: carry it too; ``tests/test_notebook_setup.py`` checks they agree).
REPO_URL = "https://github.com/ogclip/object-guided-clip"


def cache_dir(kind: str = "") -> Path:
    """Cache folder for downloads and text embeddings (created if missing).

    ``$OGCLIP_CACHE`` if set, else ``~/.cache/ogclip``. ``kind`` names a sub-folder
    (``"checkpoints"``, ``"text"``, ``"datasets"``…).
    """
    root = Path(os.environ.get("OGCLIP_CACHE", Path.home() / ".cache" / "ogclip")).expanduser()
    path = root / kind if kind else root
    path.mkdir(parents=True, exist_ok=True)
    return path


def dataset_dir(name: str) -> Path:
    """Where a real dataset lives in the project's one cache: ``$OGCLIP_CACHE/datasets/<name>/``
    (``name`` sanitised for a path; the folder itself is not created)."""
    return cache_dir("datasets") / safe_name(name, max_len=80, keep_dots=True, default="dataset")


def safe_name(name: object, max_len: int = 40, keep_dots: bool = False, default: str = "item") -> str:
    """A file-name-safe version of ``name``: ASCII letters, digits, ``-`` and ``_`` (and ``.``
    with ``keep_dots``, never leading), no path separators, at most ``max_len`` characters,
    never empty (``default``). ``"../etc/passwd"`` → ``"etc_passwd"``."""
    allowed = r"[^A-Za-z0-9_.-]+" if keep_dots else r"[^A-Za-z0-9_-]+"
    s = re.sub(allowed, "_", str(name)).strip("._-")[:max_len].rstrip(".")
    return s or default


def outputs_dir(name: str) -> Path:
    """``<repository>/outputs/<name>/`` (created; ``name`` sanitised): where notebooks write files."""
    path = OUTPUT_DIR / safe_name(name, max_len=60, keep_dots=False, default="outputs")
    path.mkdir(parents=True, exist_ok=True)
    return path
