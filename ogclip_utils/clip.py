"""One CLIP wrapper: :class:`ClipBundle` (model, tokenizer, preprocessing, image/text encoding) and its text cache.

- :class:`ClipBundle` is what ``models.load_clip`` returns; :func:`as_bundle` turns a bare
  open_clip ``CLIP`` into one, so every function that takes ``clip`` accepts either.
- Prompt templates: :data:`TINY_TEMPLATES` for tiny-shapes, OpenAI's 80 ImageNet templates
  otherwise (:func:`default_templates`).
- :func:`text_embeddings`: query embedding = normalize(mean_k normalize(encode_text(template_k(name)))),
  cached in memory and on disk under ``$OGCLIP_CACHE/text/<weights>-<fingerprint>/<templates>``.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import open_clip
import torch
import torch.nn.functional as F

from . import env, paths
from .arrays import resize_rgb

#: How a CLIP may compute (``models.load_clip(precision=...)``); "auto" is resolved there.
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")

#: Templates for tiny-shapes: its training captions are "a red circle", "a circle",
#: "a red circle and a blue square", "a background" — so "a {}" first, and nothing photographic.
TINY_TEMPLATES: tuple[str, ...] = ("a {}",)


def openai_templates() -> tuple[str, ...]:
    """OpenAI's 80 ImageNet prompt templates as format strings ("a bad photo of a {}.", …)."""
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    return tuple(t("{}") for t in OPENAI_IMAGENET_TEMPLATES)


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """CLIP's input normalisation of float N×3×H×W images in [0, 1]: ``(x - mean) / std`` per channel
    (the one place it is written; ``ClipBundle.preprocess`` and the tiny-CLIP trainer use it)."""
    return (x - torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)) / \
        torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)


@dataclass
class ClipBundle:
    """A CLIP model with what is needed to feed it.

    ``model`` is an ``open_clip.CLIP`` in eval mode; ``tokenizer(list[str]) -> LongTensor``;
    ``mean``/``std`` are per-channel RGB normalisation constants (0–1 scale);
    ``image_size`` is the model's input side in pixels; ``weights_id`` identifies the weights
    (used as a cache key for text embeddings); ``precision`` is how it computes
    (:data:`PRECISIONS`: ``"fp32"``; ``"bf16"`` = bfloat16 weights; ``"amp-fp16"`` /
    ``"amp-bf16"`` = float32 weights under CUDA autocast). Embeddings are always float32.
    """

    model: Any
    tokenizer: Any
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    name: str
    image_size: int
    weights_id: str
    device: Any = None
    precision: str = "fp32"

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the model's weights (what :meth:`preprocess` casts images to)."""
        return next(self.model.parameters()).dtype

    def autocast(self):
        """A context in which the model runs at its :attr:`precision` (CUDA autocast for the
        ``amp-*`` precisions; otherwise nothing to do)."""
        dev = torch.device(self.device or "cpu")
        if self.precision.startswith("amp-") and dev.type == "cuda":
            return torch.autocast("cuda", dtype=torch.float16 if self.precision == "amp-fp16" else torch.bfloat16)
        return contextlib.nullcontext()

    @property
    def patch_size(self) -> int:
        """Pixels per patch-grid cell (input size / grid size)."""
        return self.image_size // self.model.visual.grid_size[0]

    def preprocess(self, images) -> torch.Tensor:
        """uint8 N×H×W×3 (or H×W×3) numpy/torch → normalised float N×3×H×W on the model's device
        (no resizing: resize beforehand)."""
        x = torch.as_tensor(np.asarray(images))
        if x.ndim == 3:
            x = x[None]
        x = normalize(x.permute(0, 3, 1, 2).float().div_(255.0), self.mean, self.std)
        return x.to(self.device or "cpu", dtype=self.dtype)

    def encode_images(self, images, batch_size: int = 256) -> torch.Tensor:
        """L2-normalised image embeddings (N×D) of uint8 N×S×S×3 images (S = image_size; others are resized).

        ``images`` may also be a list of uint8 H×W×3 photos of different sizes: each is then
        resized to S×S (bicubic) first."""
        if isinstance(images, (list, tuple)) and len({np.shape(im) for im in images}) > 1:
            for k, im in enumerate(images):
                if np.ndim(im) != 3 or np.shape(im)[-1] != 3:
                    raise ValueError(f"images[{k}] has shape {np.shape(im)}; pass uint8 H×W×3 RGB images")
            images = [resize_rgb(np.asarray(im, np.uint8), self.image_size, "bicubic") for im in images]
        arr = np.asarray(images)
        if arr.ndim == 3:
            arr = arr[None]
        out = []
        with torch.inference_mode(), self.autocast():
            for i in range(0, len(arr), batch_size):
                x = self.preprocess(arr[i:i + batch_size])
                if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
                    x = F.interpolate(x.float(), size=(self.image_size, self.image_size), mode="bilinear",
                                      align_corners=False, antialias=True).to(self.dtype)
                out.append(F.normalize(self.model.encode_image(x).float(), dim=-1))
        return torch.cat(out) if out else torch.zeros(0, self.model.text_projection.shape[-1] if hasattr(self.model, "text_projection") else 0)

    def encode_texts(self, texts: list[str], batch_size: int = 512) -> torch.Tensor:
        """L2-normalised text embeddings (N×D)."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise ValueError("texts must be a list of strings")
        out = []
        with torch.inference_mode(), self.autocast():
            for i in range(0, len(texts), batch_size):
                tok = self.tokenizer(list(texts[i:i + batch_size])).to(self.device or "cpu")
                out.append(F.normalize(self.model.encode_text(tok).float(), dim=-1))
        return torch.cat(out)


def as_bundle(clip) -> ClipBundle:
    """``clip`` as a :class:`ClipBundle` with its device resolved.

    Accepts a ``ClipBundle`` (returned with ``device`` filled in) or a bare open_clip ``CLIP``
    with a class-token ``VisionTransformer`` image tower (wrapped with open_clip's tokenizer and
    the model's own normalisation constants). Raises ``ValueError`` for anything else.
    """
    model = getattr(clip, "model", clip)
    visual = getattr(model, "visual", None)
    if visual is None or not hasattr(visual, "transformer") or not hasattr(visual, "conv1"):
        raise ValueError("clip must be a models.ClipBundle (models.load_clip(...)) or an open_clip CLIP "
                         f"with a VisionTransformer image tower, got {type(clip).__name__}")
    if getattr(visual, "attn_pool", None) is not None:
        raise ValueError("dense maps need a class-token ViT (no attentional pooler); this model has attn_pool")
    if model is clip:
        size = visual.image_size
        size = size[0] if isinstance(size, (tuple, list)) else int(size)
        pp = getattr(visual, "preprocess_cfg", {}) or {}
        ctx = getattr(model, "context_length", 77)
        return ClipBundle(model, lambda t: open_clip.tokenize(t, context_length=ctx),
                          tuple(pp.get("mean", open_clip.OPENAI_DATASET_MEAN)),
                          tuple(pp.get("std", open_clip.OPENAI_DATASET_STD)),
                          type(model).__name__, int(size), type(model).__name__, next(model.parameters()).device)
    if isinstance(clip, ClipBundle) and isinstance(clip.device, torch.device):
        return clip
    dev = clip.device if clip.device is not None else next(model.parameters()).device
    return ClipBundle(model, clip.tokenizer, tuple(clip.mean), tuple(clip.std), clip.name, int(clip.image_size),
                      str(clip.weights_id), torch.device(dev), getattr(clip, "precision", "fp32"))


def default_templates(clip) -> tuple[str, ...]:
    """:data:`TINY_TEMPLATES` for tiny-shapes, else OpenAI's 80 ImageNet templates — only the
    first of them in the real-mode smoke run (``OGCLIP_SMOKE=1``: random-init stand-ins, nothing
    measured; 80 templates × 31 classes take about three minutes to encode on a 2-core CPU)."""
    if getattr(clip, "name", "") == "tiny-shapes":
        return TINY_TEMPLATES
    return openai_templates()[:1] if env.smoke() else openai_templates()


def _template_strings(templates) -> tuple[str, ...]:
    if isinstance(templates, str) or not isinstance(templates, (list, tuple)) or not templates:
        raise ValueError("templates must be a non-empty list of format strings such as ['a photo of a {}.'] "
                         f"(or callables name -> text), got {templates!r:.60}")
    out = []
    for t in templates:
        s = t("{}") if callable(t) else t
        if not isinstance(s, str) or "{}" not in s:
            raise ValueError(f"template {t!r} must be a string containing '{{}}' (or a callable name -> text)")
        out.append(s)
    return tuple(out)


_TEXT_CACHE: dict[tuple[str, str, str], np.ndarray] = {}
_TEXT_ROOT: list[Path] = []  # a temporary cache root pushed by isolated_text_cache()


def clear_memory_cache() -> None:
    """Forget the in-memory text embeddings (what a new process sees: only the disk cache)."""
    _TEXT_CACHE.clear()


@contextlib.contextmanager
def isolated_text_cache(folder: str | os.PathLike):
    """Within the ``with`` block, text embeddings are cached under ``folder`` with an empty
    memory cache (benchmarks time a cold cache this way); both are restored afterwards."""
    saved = dict(_TEXT_CACHE)
    _TEXT_CACHE.clear()
    _TEXT_ROOT.append(Path(folder))
    try:
        yield
    finally:
        _TEXT_ROOT.pop()
        _TEXT_CACHE.clear()
        _TEXT_CACHE.update(saved)


def weights_fingerprint(model) -> str:
    """A short hash of the text tower's weights (strided samples of every non-visual parameter).

    Used in the text-cache key, so two random-init models never share cached embeddings."""
    parts = []
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("visual."):
                continue
            flat = p.detach().reshape(-1)
            k = min(16, flat.numel())
            idx = torch.arange(k, device=flat.device) * (flat.numel() - 1) // max(k - 1, 1)
            parts.append(flat[idx].double())
            parts.append(torch.tensor([float(flat.numel())], dtype=torch.float64, device=flat.device))
    blob = torch.cat(parts).cpu().numpy().tobytes() if parts else b""
    return hashlib.sha1(blob).hexdigest()[:16]


def text_cache_dir(clip, templates: Sequence[str] | None = None) -> Path:
    """Folder holding the cached query embeddings for this model and template set
    (``$OGCLIP_CACHE/text/<weights>/<templates hash>``)."""
    c = as_bundle(clip)
    tpl = _template_strings(templates) if templates is not None else default_templates(c)
    th = hashlib.sha1("\n".join(tpl).encode()).hexdigest()[:12]
    root = _TEXT_ROOT[-1] if _TEXT_ROOT else paths.cache_dir("text")
    return root / f"{paths.safe_name(c.weights_id, max_len=60, keep_dots=True, default='model')}-{weights_fingerprint(c.model)}" / th


def text_embeddings(clip, names: Sequence[str], templates: Sequence[str] | None = None,
                    batch_size: int = 256) -> torch.Tensor:
    """Query embeddings (float32 Q×E, L2-normalised, on CPU): normalize(mean_k normalize(text(t_k(name)))).

    Cached in memory and on disk (one ``.npy`` per name); only missing names are encoded."""
    c = as_bundle(clip)
    tpl = _template_strings(templates) if templates is not None else default_templates(c)
    folder = text_cache_dir(clip, tpl)
    key0 = str(folder)
    out: dict[str, np.ndarray] = {}
    missing = []
    for n in names:
        k = (key0, "", n)
        if k in _TEXT_CACHE:
            out[n] = _TEXT_CACHE[k]
            continue
        path = folder / (hashlib.sha1(n.encode()).hexdigest()[:20] + ".npy")
        if path.exists():
            try:
                out[n] = _TEXT_CACHE[k] = np.load(path)
                continue
            except (OSError, ValueError):
                pass  # a corrupt cache file is simply re-computed
        missing.append(n)
    if missing:
        texts = [t.format(n) for n in missing for t in tpl]
        embs = []
        with torch.inference_mode():
            for i in range(0, len(texts), batch_size):
                tok = c.tokenizer(texts[i:i + batch_size]).to(c.device)
                embs.append(F.normalize(c.model.encode_text(tok).float(), dim=-1).cpu())
        e = torch.cat(embs).view(len(missing), len(tpl), -1).mean(1)
        e = F.normalize(e, dim=-1).numpy().astype(np.float32)
        folder.mkdir(parents=True, exist_ok=True)
        for n, v in zip(missing, e):
            out[n] = _TEXT_CACHE[(key0, "", n)] = v
            path = folder / (hashlib.sha1(n.encode()).hexdigest()[:20] + ".npy")
            tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
            try:
                np.save(tmp, v)
                os.replace(tmp, path)  # atomic: another process never reads half a file
            except OSError:
                pass  # read-only cache: memory cache still works
    return torch.from_numpy(np.stack([out[n] for n in names]))


