"""The run mode and the runtime: offline/real/auto, device choice, Colab detection, seeding.

Only this module (the mode) and :mod:`ogclip_utils.models` (which models the mode means)
know about the outside world; everything else receives tensors, arrays and model objects.
"""
from __future__ import annotations

import os
import platform
import random
import sys
from dataclasses import dataclass
import numpy as np

from . import weights
from .paths import REPO_ROOT, cache_dir  # noqa: F401  (kept here for old call sites: env.REPO_ROOT, env.cache_dir)

MODES = ("offline", "real", "auto")


def in_colab() -> bool:
    """True inside Google Colab (the ``google.colab`` module is importable there)."""
    return "google.colab" in sys.modules


def get_device(preferred: str | None = None) -> "torch.device":  # noqa: F821
    """Pick a torch device: ``preferred`` if given, else cuda → mps → cpu.

    For MPS the CPU fallback for unsupported operators is switched on
    (``PYTORCH_ENABLE_MPS_FALLBACK=1``) so SAM2 and open_clip run end to end on a Mac.
    """
    import torch

    if preferred not in (None, "", "auto"):
        try:
            dev = torch.device(preferred)
        except RuntimeError as exc:
            raise ValueError(
                f"device={preferred!r} is not a torch device; use 'cpu', 'cuda', 'cuda:0' or 'mps'"
            ) from exc
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device='cuda' was asked for but torch sees no CUDA GPU; use device='cpu'")
        if dev.type == "mps" and not _mps_available():
            raise ValueError("device='mps' was asked for but MPS is not available; use device='cpu'")
        if dev.type == "mps":
            os.environ.setdefault("PYTORCH_ENABLE_MPS_FALLBACK", "1")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        os.environ.setdefault("PYTORCH_ENABLE_MPS_FALLBACK", "1")
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    import torch

    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def seed_everything(seed: int = 0) -> np.random.Generator:
    """Seed Python, NumPy and torch; return a fresh ``numpy.random.Generator`` for explicit use."""
    import torch

    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    torch.manual_seed(int(seed))
    return np.random.default_rng(int(seed))


def cpu_flags() -> frozenset:
    """The CPU feature flags Linux lists in ``/proc/cpuinfo`` (``avx2``, ``avx512_bf16``,
    ``amx_bf16``, …); empty where that file does not exist (macOS, Windows)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def smoke() -> bool:
    """True when ``OGCLIP_SMOKE=1`` (the real-mode smoke run of ``make test``): lessons shrink
    their loops to a few samples, so every cell runs in seconds and nothing is measured."""
    return os.environ.get("OGCLIP_SMOKE", "") not in ("", "0")


def get_mode(mode: str | None = None) -> str:
    """Resolve the run mode.

    ``mode`` (or ``$OGCLIP_MODE`` when ``mode`` is None) is ``offline``, ``real`` or ``auto``.
    ``auto`` means *real in Google Colab (a GPU and a network: the course's real setting) or
    where the official weights are already on disk, else offline*; choosing never downloads
    anything (:func:`mode_reason` says why a mode was chosen). Returns ``"offline"`` or ``"real"``.
    """
    raw = mode if mode is not None else os.environ.get("OGCLIP_MODE", "auto")
    value = str(raw).strip().lower()
    if value not in MODES:
        raise ValueError(
            f"mode {raw!r} is not one of {MODES}; set OGCLIP_MODE=offline (shapes world, runs anywhere) "
            "or OGCLIP_MODE=real (official CLIP/SAM2 weights, downloaded by `make checkpoints`)"
        )
    if value == "auto":
        return "real" if in_colab() or weights.real_weights_available() else "offline"
    return value


def mode_reason(mode: str | None = None) -> str:
    """Why :func:`get_mode` chose what it did, in words (printed by the notebooks' setup cell)."""
    raw = str(mode if mode is not None else os.environ.get("OGCLIP_MODE", "auto")).strip().lower()
    got = get_mode(mode)
    if raw != "auto":
        return f"{got} (OGCLIP_MODE={raw})"
    if in_colab():
        return "real (auto: running in Google Colab; set OGCLIP_MODE=offline before the setup cell for the shapes world)"
    if got == "real":
        return "real (auto: the official CLIP weights are in the cache)"
    return "offline (auto: no official weights in the cache; `python -m ogclip_utils checkpoints` fetches them)"


@dataclass
class EnvInfo:
    mode: str
    device: str
    python: str
    torch: str
    open_clip: str
    colab: bool

    def __str__(self) -> str:
        return (
            f"mode={self.mode} device={self.device} python={self.python} torch={self.torch} "
            f"open_clip={self.open_clip} colab={self.colab}"
        )


def describe(mode: str | None = None, device: str | None = None) -> EnvInfo:
    """Collect mode, device and versions (what the first cell of every notebook prints)."""
    import open_clip
    import torch

    return EnvInfo(
        mode=get_mode(mode),
        device=str(get_device(device)),
        python=platform.python_version(),
        torch=torch.__version__.split("+")[0],
        open_clip=getattr(open_clip, "__version__", "?"),
        colab=in_colab(),
    )
