"""The mode → model map: which CLIP and which segmenter a run gets, loaded one way for every model.

- ``load_clip("tiny-shapes")``: the project's own small open_clip ``CLIP`` trained on the
  shapes world (committed in ``checkpoints/``, architecture in :mod:`ogclip_utils.tiny_shapes`);
  ``load_clip("ViT-B-16", pretrained="openai")``: the official weights (downloaded by
  :func:`ogclip_utils.weights.download`); ``pretrained=None`` builds any open_clip
  architecture at random init (how real-mode code is tested without weights).
- ``load_segmenter("classical")`` / ``load_segmenter("sam2.1-hiera-tiny")``: promptable
  segmenters with SAM2ImagePredictor's interface (:mod:`ogclip_utils.segmenters`).
- :data:`MODE_DEFAULTS` / :func:`mode_defaults` / :func:`default_models`: what each mode
  means, written once. Only this module and :mod:`ogclip_utils.env` know about the mode.

Checkpoints are loaded safely: safetensors, or ``torch.load(..., weights_only=True)``.
Older names (``models.download``, ``models.ClipBundle``, ``models.build_tiny_clip``…) still
work: they are re-exported from the modules they moved to (deprecated, kept for one release).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import open_clip
import torch
from safetensors.torch import load_file

from . import env, weights
from .clip import PRECISIONS, ClipBundle
from .segmenters import ClassicalSegmenter, load_sam2
from .tiny_shapes import TINY_IMAGE_SIZE, TINY_NAME, TINY_WEIGHTS, build_tiny_clip, register_configs

# Deprecated re-exports (old import paths; one release): use the modules named here instead.
from .paths import CHECKPOINT_DIR  # noqa: F401,E402
from .tiny_shapes import (CONFIG_DIR, LOCAL_RADIUS, TokenGrid, install_conv_stem,  # noqa: F401,E402
                          install_late_class_token, install_local_attention, tiny_card)
from .weights import (REGISTRY, SAM2_ALIASES, SAM2_BASE, Checkpoint, CheckpointError,  # noqa: F401,E402
                      checkpoint_path, download, real_weights_available, sha256_file)


@dataclass(frozen=True)
class ModeDefaults:
    """The models a mode stands for (names as :func:`load_clip` / :func:`load_segmenter` take them).

    ``classify`` is how refinement names a mask by default: ``"clip"`` (a masked crop scored by
    CLIP: reliable for tiny-shapes, which was trained on crops) or ``"dense"`` (the dense map's
    probabilities under the mask: ViT-B/16's crops of real photos are not what it was built for).
    """

    clip: str
    clip_pretrained: str | None
    segmenter: str
    classify: str
    segmenter_gpu: str | None = None  # the segmenter on a CUDA device, where it differs


MODE_DEFAULTS: dict[str, ModeDefaults] = {
    "offline": ModeDefaults(clip=TINY_NAME, clip_pretrained=None, segmenter="classical", classify="clip"),
    "real": ModeDefaults(clip="ViT-B-16", clip_pretrained="openai", segmenter="sam2.1-hiera-tiny", classify="dense",
                         segmenter_gpu="sam2.1-hiera-base_plus"),
}


def mode_defaults(mode: str | None = None) -> ModeDefaults:
    """The :class:`ModeDefaults` of ``mode`` (default: ``$OGCLIP_MODE``, see :func:`env.get_mode`)."""
    return MODE_DEFAULTS[env.get_mode(mode)]


def default_clip(mode: str | None = None, device: str | None = None) -> ClipBundle:
    """The mode's CLIP: tiny-shapes offline, ViT-B/16 with OpenAI's weights in real mode."""
    d = mode_defaults(mode)
    return load_clip(d.clip, pretrained=d.clip_pretrained, device=device)


def default_segmenter_name(mode: str | None = None, device: str | None = None) -> str:
    """The name of the mode's segmenter on ``device`` (SAM2.1 tiny on a CPU, base+ on a CUDA GPU)."""
    d = mode_defaults(mode)
    return d.segmenter_gpu if d.segmenter_gpu and env.get_device(device).type == "cuda" else d.segmenter


def default_segmenter(mode: str | None = None, device: str | None = None, checkpoint: str | None = None,
                      model_cfg: str | None = None):
    """The mode's promptable segmenter: ``ClassicalSegmenter`` offline; in real mode SAM2.1
    hiera-tiny on a CPU and hiera-base+ on a CUDA GPU."""
    name = default_segmenter_name(mode, device)
    if name == "classical":
        return load_segmenter(name)
    return load_segmenter(name, checkpoint=checkpoint, device=device, model_cfg=model_cfg)


def clip_by_name(name: str | None = None, mode: str | None = None, device: str | None = None) -> ClipBundle:
    """CLIP as a user names it on a command line: None → the mode's (:func:`default_clip`);
    ``"tiny-shapes"`` → the committed model; ``"ViT-B-16"`` or ``"ViT-B/16"`` → OpenAI's
    weights (from the cache; downloaded once)."""
    if name is None:
        return default_clip(mode, device)
    n = clip_name(name)
    if n == TINY_NAME:
        return load_clip(n, device=device)
    if n in ("ViT-B-16", "ViT-B-16-quickgelu"):
        return load_clip("ViT-B-16", pretrained="openai", device=device)
    raise ValueError(f"--model {name!r}: the project fetches weights for 'tiny-shapes' and 'ViT-B/16' (OpenAI) only; "
                     "for another open_clip model call models.load_clip(name, pretrained=<local file>)")


def segmenter_by_name(name: str | None = None, mode: str | None = None, device: str | None = None,
                      checkpoint: str | None = None, model_cfg: str | None = None):
    """A segmenter as a user names it: None → the mode's (:func:`default_segmenter`), else
    ``"classical"`` or ``"sam2.1-hiera-{tiny,small,base_plus,large}"`` (:func:`load_segmenter`)."""
    if name is None:
        return default_segmenter(mode, device, checkpoint, model_cfg)
    if name == "classical":
        return load_segmenter(name)
    return load_segmenter(name, checkpoint=checkpoint, device=device, model_cfg=model_cfg)


def default_models(mode: str | None = None, device: str | None = None):
    """``(clip, segmenter)`` for the mode (:func:`default_clip`, :func:`default_segmenter`)."""
    return default_clip(mode, device), default_segmenter(mode, device)


def clip_summary(clip: ClipBundle) -> str:
    """Two lines about a loaded CLIP: name, parameters (millions), input side (px) and token grid;
    then where its weights come from (tiny-shapes: this repository's training run and its
    held-out accuracy from the card; otherwise open_clip's weights id)."""
    n = sum(p.numel() for p in clip.model.parameters())
    head = (f"{clip.name}: {n / 1e6:.2f} M parameters, input {clip.image_size} px, "
            f"token grid {tuple(clip.model.visual.grid_size)}")
    if clip.name == TINY_NAME:
        acc = tiny_card().get("held_out", {}).get("accuracy")
        return head + ("\nweights: trained by this repository on shapes-world captions; held-out 30-way accuracy "
                       f"at training time {acc}")
    return head + f"\nweights: {clip.weights_id} (open_clip; OpenAI's are trained on 400 M web image-text pairs)"


def clip_name(name: str) -> str:
    """open_clip's spelling of a CLIP name: OpenAI's ``"ViT-B/16"`` (the seeds' ``--model``) → ``"ViT-B-16"``."""
    return name.replace("/", "-") if isinstance(name, str) and name.startswith(("ViT-", "RN")) else name


def cpu_has_amx() -> bool:
    """True on CPUs with AMX tile instructions for bfloat16 (Intel Sapphire Rapids and later;
    Linux ``/proc/cpuinfo`` flag ``amx_bf16``), where bf16 matrix products are fast."""
    return "amx_bf16" in env.cpu_flags()


def resolve_precision(precision: str, device, name: str = "") -> str:
    """The :attr:`ClipBundle.precision` that ``precision`` means on ``device``.

    ``"auto"``: CUDA → ``"amp-bf16"`` where the GPU supports bfloat16, else ``"amp-fp16"``
    (autocast, float32 weights); a CPU with AMX → ``"bf16"`` weights (measured on an AMX Xeon:
    ViT-B/16 on 8 crops 1.07 s fp32 vs 0.38 s, cosine ≥ 0.9999, while bf16 *autocast* was 4.5×
    slower there); any other CPU or MPS → ``"fp32"`` (on AVX2-only CPUs bf16 is several times
    slower). ``tiny-shapes`` always resolves to ``"fp32"`` under ``"auto"``: it is tiny, and the
    offline lessons' printed numbers are compared exactly. ``"fp32"``, ``"bf16"``, ``"fp16"``
    force a precision (on CUDA the half precisions run as autocast; ``"fp16"`` needs CUDA).
    ``OGCLIP_PRECISION`` (environment) replaces ``"auto"`` for every CLIP the project loads."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    kind = torch.device(device).type if device is not None else "cpu"
    forced = os.environ.get("OGCLIP_PRECISION", "").strip().lower()
    if precision == "auto" and forced and forced != "auto":
        if forced not in PRECISIONS:
            raise ValueError(f"OGCLIP_PRECISION={forced!r}: use one of {PRECISIONS}")
        precision = forced
    if precision == "auto":
        if name == TINY_NAME:
            return "fp32"
        if kind == "cuda":
            return "amp-bf16" if torch.cuda.is_bf16_supported() else "amp-fp16"
        return "bf16" if kind == "cpu" and cpu_has_amx() else "fp32"
    if precision == "fp32":
        return "fp32"
    if kind == "cuda":
        return f"amp-{precision}"
    if precision == "fp16":
        raise ValueError(f"precision='fp16' needs a CUDA device (got {kind}); use 'bf16' or 'fp32' on a CPU")
    return "bf16"


def load_clip(name: str = TINY_NAME, pretrained: str | bool | None = None, device: str | None = None,
              precision: str = "auto") -> ClipBundle:
    """Load a CLIP model through open_clip's factory.

    Args:
        name: ``"tiny-shapes"`` (offline) or any open_clip model name (``"ViT-B-16"``…).
        pretrained: for tiny-shapes: None → the committed checkpoint, ``False`` → random
            init, or a path to a ``.safetensors`` file. For open_clip models: None → random
            init (the architecture only), ``"openai"`` → the official weights (downloaded
            once into the cache), or a local file path.
        device: torch device; default cuda → mps → cpu.
        precision: ``"auto"`` (default), ``"fp32"``, ``"bf16"`` or ``"fp16"``; see
            :func:`resolve_precision`. The bundle's ``precision`` says what was chosen.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    dev = env.get_device(device)
    register_configs()
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a model name such as 'tiny-shapes' or 'ViT-B-16', got {name!r}")
    name = clip_name(name)
    if name == TINY_NAME:
        model = build_tiny_clip()
        if pretrained is False:
            weights_id = "tiny-shapes:random"
        else:
            path = Path(pretrained) if pretrained else TINY_WEIGHTS
            if not path.exists():
                raise weights.CheckpointError(
                    f"tiny-shapes weights not found at {path}; they are committed in checkpoints/ "
                    "(git lfs is not used) — re-clone, or retrain with `python -m ogclip_utils train-tiny-clip`"
                )
            state = {k: v.float() for k, v in load_file(str(path)).items()}
            missing, unexpected = model.load_state_dict(state, strict=False)
            if missing or unexpected:
                raise weights.CheckpointError(f"{path} does not match the tiny-shapes architecture "
                                              f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
            weights_id = f"tiny-shapes:{weights.sha256_file(path)[:16]}"
        image_size = TINY_IMAGE_SIZE
    else:
        if name not in open_clip.list_models():
            raise ValueError(f"unknown CLIP model {name!r}; use 'tiny-shapes' or one of open_clip.list_models()")
        arch = name
        if pretrained is None or pretrained is False:
            model = open_clip.create_model(arch, pretrained=None)
            weights_id = f"{arch}:random"
        elif pretrained == "openai" and name.startswith("ViT-B-16"):
            path = weights.checkpoint_path("clip-vit-b-16-openai")
            if not path.exists():
                if env.get_mode() == "offline" and os.environ.get("OGCLIP_MODE", "").lower() == "offline":
                    raise weights.CheckpointError("OGCLIP_MODE=offline: official CLIP weights are not downloaded in offline mode; "
                                                  "unset OGCLIP_MODE or run `make checkpoints` on a machine with internet")
                path = weights.download("clip-vit-b-16-openai")
            arch = "ViT-B-16-quickgelu"  # OpenAI's weights were trained with QuickGELU
            model = open_clip.create_model(arch, pretrained=str(path))
            weights_id = f"{arch}:openai"
        else:
            p = Path(str(pretrained))
            if p.exists():
                model = open_clip.create_model(arch, pretrained=str(p))  # safetensors or weights_only=True
                weights_id = f"{arch}:{weights.sha256_file(p)[:16]}"
            else:
                raise ValueError(
                    f"pretrained={pretrained!r} is not supported offline-safely here: use None (random init), "
                    "'openai' for ViT-B-16, or a path to a local .safetensors/.pt file"
                )
        image_size = model.visual.image_size
        image_size = image_size[0] if isinstance(image_size, (tuple, list)) else int(image_size)
    prec = resolve_precision(precision, dev, name)
    model = model.to(dev).eval()
    if prec == "bf16":
        model = model.to(torch.bfloat16)
        weights_id += ":bf16"  # the text-embedding cache keeps precisions apart
    tokenizer = open_clip.get_tokenizer(TINY_NAME if name == TINY_NAME else name)
    pp = getattr(model.visual, "preprocess_cfg", {}) or {}
    mean = tuple(pp.get("mean", open_clip.OPENAI_DATASET_MEAN))
    std = tuple(pp.get("std", open_clip.OPENAI_DATASET_STD))
    return ClipBundle(model, tokenizer, mean, std, name, int(image_size), weights_id, dev, prec)


def load_segmenter(name: str = "classical", checkpoint: str | None = None, device: str | None = None,
                   model_cfg: str | None = None, precision: str = "auto", **kwargs):
    """A promptable segmenter with ``set_image(img)`` and
    ``predict(point_coords, point_labels, box=None, multimask_output=True) -> (masks C×H×W bool, scores C, logits)``.

    ``"classical"``: :class:`ogclip_utils.segmenters.ClassicalSegmenter` (offline, no weights).
    ``"sam2.1-hiera-{tiny,small,base_plus,large}"``: SAM2.1 through the official ``sam2``
    package; ``checkpoint=None`` downloads the official file, ``checkpoint="random"`` builds
    the architecture at random init (tests), or a local path. ``precision`` (SAM2 only):
    ``segmenters.resolve_sam2_precision`` — bf16/fp16 autocast on CUDA under ``"auto"``, fp32 elsewhere.
    """
    if name == "classical":
        return ClassicalSegmenter(**kwargs)
    key = SAM2_ALIASES.get(name, name)
    if key not in REGISTRY or REGISTRY[key].kind != "sam2":
        raise ValueError(f"unknown segmenter {name!r}; use 'classical' or one of "
                         f"{[k for k, v in REGISTRY.items() if v.kind == 'sam2']}")
    return load_sam2(key, checkpoint=checkpoint, device=device, model_cfg=model_cfg, precision=precision)
