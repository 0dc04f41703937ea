"""Dense open-vocabulary maps from CLIP without training: vanilla, MaskCLIP, SCLIP, ClearCLIP, NaCLIP.

One function on one image (:func:`dense_probs`), reproducing the published SCLIP code
(wangf3014/SCLIP, ``clip_segmentor.py``) on identical weights:

1. **Text side** — every vocabulary entry may list synonyms ("person, man, woman"); every
   name is a *query*. Query embedding = normalize(mean_k normalize(encode_text(template_k(name))))
   over the templates (OpenAI's 80 ImageNet templates by default; :data:`TINY_TEMPLATES` for
   tiny-shapes). Cached per (weights, templates, name) in memory and on disk under
   ``$OGCLIP_CACHE/text`` (see :func:`text_embeddings`).
2. **Image side** — blocks 1…L−1 unchanged; the last block is replaced by one of
   :data:`METHODS` (:func:`last_block`); ``ln_post`` and ``proj`` on every token; L2-normalize;
   drop CLS; cosine similarity with each query; reshape to the patch grid; bilinear upsampling
   to the crop size.
3. **Sliding window** (:func:`window_grid`) — logits summed on a canvas and divided by a count
   map; all windows in one batched forward (chunked for memory) under inference mode.
4. **Post-processing** (:func:`postprocess`, cheap: sliders call it on cached logits) —
   × logit_scale → softmax over queries → max over each class's synonyms → ``area_thd`` →
   ``prob_thd`` (low-confidence pixels → class 0 in ``labels``).

Works for any open_clip ``VisionTransformer`` whose blocks use ``nn.MultiheadAttention``
(tiny-shapes with its convolutional stem, ViT-B/16), on CPU, MPS or CUDA (fp16 autocast).
"""
from __future__ import annotations

import hashlib
import math
import os
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import env

METHODS = ("vanilla", "maskclip", "sclip", "clearclip", "naclip")

#: Templates for tiny-shapes: its training captions are "a red circle", "a circle",
#: "a red circle and a blue square", "a background" — so "a {}" first, and nothing photographic.
TINY_TEMPLATES: tuple[str, ...] = ("a {}",)

#: σ of NaCLIP's Gaussian neighbourhood prior, in patches.
NACLIP_SIGMA = 5.0


def openai_templates() -> tuple[str, ...]:
    """OpenAI's 80 ImageNet prompt templates as format strings ("a bad photo of a {}.", …)."""
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    return tuple(t("{}") for t in OPENAI_IMAGENET_TEMPLATES)


# ----------------------------------------------------------------------------- results
@dataclass
class DenseResult:
    """Dense class maps of one image.

    Attributes:
        probs: float32 C×H×W class probabilities at the input resolution (after synonyms max
            and ``area_thd``; ``prob_thd`` is applied to ``labels`` only, so the confidence
            views still show the real probabilities).
        classes: the C class names (first synonym of each vocabulary entry).
        labels: int64 H×W argmax of ``probs``, pixels whose best probability < ``prob_thd`` → 0.
        logits: float32 Q×H×W raw cosine similarities per query (before × logit_scale):
            :func:`postprocess` re-runs the thresholds from them without re-encoding.
        queries: the Q query names (every synonym); ``query_to_class`` int64 Q maps them to classes.
        method, logit_scale, prob_thd, area_thd: the settings used.
        windows: (x0, y0, x1, y1) of every sliding window, in input-image pixels (floats when
            ``short_side`` resized the image).
        scale: processed size / input size (1.0 without ``short_side``).
        timings: seconds per stage ("text", "image", "post").
    """

    probs: np.ndarray
    classes: list[str]
    labels: np.ndarray
    logits: np.ndarray
    queries: list[str]
    query_to_class: np.ndarray
    method: str = "sclip"
    logit_scale: float = 40.0
    prob_thd: float = 0.0
    area_thd: float | None = None
    windows: list[tuple[float, float, float, float]] = field(default_factory=list)
    scale: float = 1.0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def confidence(self) -> np.ndarray:
        """float32 H×W best class probability per pixel."""
        return self.probs.max(0)

    def postprocess(self, logit_scale: float | None = None, prob_thd: float | None = None,
                    area_thd: float | None | str = "same") -> "DenseResult":
        """A new result with other post-processing settings (see :func:`postprocess`)."""
        return postprocess(self, logit_scale=logit_scale, prob_thd=prob_thd, area_thd=area_thd)


# ----------------------------------------------------------------------------- validation
def parse_vocabulary(vocabulary: Sequence[str]) -> tuple[list[str], list[str], np.ndarray]:
    """Split entries on ", " into synonyms.

    Returns (classes C, queries Q, query_to_class int64 Q). Raises ValueError for an empty
    vocabulary, non-string or empty entries, or a name used twice.
    """
    if isinstance(vocabulary, str) or not isinstance(vocabulary, (list, tuple)):
        raise ValueError(f"vocabulary must be a list of class names such as ['background', 'cat'], "
                         f"got {type(vocabulary).__name__} {vocabulary!r:.60}")
    if len(vocabulary) == 0:
        raise ValueError("vocabulary is empty; give at least one class name, e.g. ['background', 'cat']")
    classes, queries, idx, seen = [], [], [], {}
    for c, entry in enumerate(vocabulary):
        if not isinstance(entry, str):
            raise ValueError(f"vocabulary[{c}] must be a string, got {type(entry).__name__} {entry!r:.40}")
        names = [n.strip() for n in entry.split(", ")]
        if not entry.strip() or any(not n for n in names):
            raise ValueError(f"vocabulary[{c}] = {entry!r} has an empty name; synonyms are separated by ', '")
        for n in names:
            if n in seen:
                raise ValueError(f"vocabulary: the name {n!r} appears twice (entries {seen[n]} and {c}); "
                                 "every class and synonym must be unique")
            seen[n] = c
            queries.append(n)
            idx.append(c)
        classes.append(names[0])
    return classes, queries, np.asarray(idx, np.int64)


def _check_image(image) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy uint8 H×W×3 RGB array, got {type(image).__name__}; "
                         "convert it with data.load_image(...)")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be uint8 H×W×3 RGB, got dtype {image.dtype} shape {image.shape}; "
                         "convert it with data.load_image(...)")
    return image


def _pair(v, name: str) -> tuple[int, int]:
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return int(v), int(v)
    if isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(x, (int, np.integer)) for x in v):
        return int(v[0]), int(v[1])
    raise ValueError(f"{name} must be an int or an (h, w) pair of ints, got {v!r}")


# ----------------------------------------------------------------------------- model access
@dataclass
class _Clip:
    model: object
    tokenizer: Callable
    mean: tuple
    std: tuple
    name: str
    image_size: int
    weights_id: str
    device: torch.device


def _as_clip(clip) -> _Clip:
    """Accept a models.ClipBundle or a bare open_clip CLIP model."""
    model = getattr(clip, "model", clip)
    visual = getattr(model, "visual", None)
    if visual is None or not hasattr(visual, "transformer") or not hasattr(visual, "conv1"):
        raise ValueError("clip must be a models.ClipBundle (models.load_clip(...)) or an open_clip CLIP "
                         f"with a VisionTransformer image tower, got {type(clip).__name__}")
    if getattr(visual, "attn_pool", None) is not None:
        raise ValueError("dense maps need a class-token ViT (no attentional pooler); this model has attn_pool")
    if model is clip:
        import open_clip

        size = visual.image_size
        size = size[0] if isinstance(size, (tuple, list)) else int(size)
        pp = getattr(visual, "preprocess_cfg", {}) or {}
        ctx = getattr(model, "context_length", 77)
        return _Clip(model, lambda t: open_clip.tokenize(t, context_length=ctx),
                     tuple(pp.get("mean", open_clip.OPENAI_DATASET_MEAN)),
                     tuple(pp.get("std", open_clip.OPENAI_DATASET_STD)),
                     type(model).__name__, int(size), type(model).__name__, next(model.parameters()).device)
    dev = clip.device if clip.device is not None else next(model.parameters()).device
    return _Clip(model, clip.tokenizer, tuple(clip.mean), tuple(clip.std), clip.name, int(clip.image_size),
                 str(clip.weights_id), torch.device(dev))


def default_templates(clip) -> tuple[str, ...]:
    """:data:`TINY_TEMPLATES` for tiny-shapes, else OpenAI's 80 ImageNet templates."""
    return TINY_TEMPLATES if getattr(clip, "name", "") == "tiny-shapes" else openai_templates()


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


# ----------------------------------------------------------------------------- text side
_TEXT_CACHE: dict[tuple[str, str, str], np.ndarray] = {}


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


def _safe(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s)[:60] or "model"


def text_cache_dir(clip, templates: Sequence[str] | None = None) -> Path:
    """Folder holding the cached query embeddings for this model and template set
    (``$OGCLIP_CACHE/text/<weights>/<templates hash>``)."""
    c = _as_clip(clip)
    tpl = _template_strings(templates) if templates is not None else default_templates(c)
    th = hashlib.sha1("\n".join(tpl).encode()).hexdigest()[:12]
    return env.cache_dir("text") / f"{_safe(c.weights_id)}-{weights_fingerprint(c.model)}" / th


def text_embeddings(clip, names: Sequence[str], templates: Sequence[str] | None = None,
                    batch_size: int = 256) -> torch.Tensor:
    """Query embeddings (float32 Q×E, L2-normalised, on CPU): normalize(mean_k normalize(text(t_k(name)))).

    Cached in memory and on disk (one ``.npy`` per name); only missing names are encoded."""
    c = _as_clip(clip)
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


# ----------------------------------------------------------------------------- image side
def interpolate_pos_embed(visual, grid: tuple[int, int]) -> torch.Tensor:
    """Positional embeddings (1+gh·gw)×D for a gh×gw patch grid, bicubic as SCLIP does
    (``scale_factor=(g+0.1)/N``); unchanged when the grid is the training grid."""
    pos = visual.positional_embedding
    n = pos.shape[0] - 1
    side = int(round(math.sqrt(n)))
    gh, gw = grid
    if (gh, gw) == (side, side):
        return pos
    dim = pos.shape[-1]
    patch = pos[1:].reshape(1, side, side, dim).permute(0, 3, 1, 2)
    patch = F.interpolate(patch.float(), scale_factor=((gh + 0.1) / side, (gw + 0.1) / side), mode="bicubic")
    if patch.shape[-2:] != (gh, gw):
        raise RuntimeError(f"positional interpolation gave {tuple(patch.shape[-2:])}, expected {(gh, gw)}")
    patch = patch.permute(0, 2, 3, 1).reshape(gh * gw, dim).to(pos.dtype)
    return torch.cat([pos[:1], patch], 0)


def _qkv(blk, x: torch.Tensor):
    """q, k, v (B×heads×L×hd) of a ResidualAttentionBlock's attention on ln_1(x) (x: B×L×D)."""
    attn = blk.attn
    if not isinstance(attn, torch.nn.MultiheadAttention):
        raise ValueError("dense maps support open_clip blocks with nn.MultiheadAttention "
                         f"(ViT-B/16, tiny-shapes), not {type(attn).__name__}")
    b, n, d = x.shape
    h = attn.num_heads
    q, k, v = F.linear(blk.ln_1(x), attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    return [t.reshape(b, n, h, d // h).transpose(1, 2) for t in (q, k, v)]


def _gaussian_prior(grid: tuple[int, int], sigma: float, device, dtype) -> torch.Tensor:
    """(1+N)×(1+N) additive prior exp(-|p_i-p_j|²/2σ²) between patches (0 for the CLS row/column)."""
    gh, gw = grid
    ys, xs = torch.meshgrid(torch.arange(gh, device=device, dtype=torch.float32),
                            torch.arange(gw, device=device, dtype=torch.float32), indexing="ij")
    p = torch.stack([ys.reshape(-1), xs.reshape(-1)], 1)
    g = torch.exp(-torch.cdist(p, p).pow(2) / (2 * sigma ** 2))
    out = torch.zeros(gh * gw + 1, gh * gw + 1, device=device)
    out[1:, 1:] = g
    return out.to(dtype)


def attention_weights(blk, x: torch.Tensor, method: str, grid: tuple[int, int] | None = None) -> torch.Tensor | None:
    """The last block's attention (B×heads×L×L) for ``method`` (None for maskclip, which has none)."""
    q, k, _ = _qkv(blk, x)
    s = q.shape[-1] ** -0.5
    if method == "vanilla":
        return torch.softmax((q * s) @ k.transpose(-2, -1), -1)
    if method == "sclip":
        return torch.softmax(q @ q.transpose(-2, -1) * s, -1) + torch.softmax(k @ k.transpose(-2, -1) * s, -1)
    if method == "clearclip":
        return torch.softmax(q @ q.transpose(-2, -1) * s, -1)
    if method == "naclip":
        if grid is None:
            raise ValueError("naclip needs the patch grid")
        prior = _gaussian_prior(grid, NACLIP_SIGMA, x.device, q.dtype)
        return torch.softmax(k @ k.transpose(-2, -1) * s + prior, -1)
    if method == "maskclip":
        return None
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def last_block(blk, x: torch.Tensor, method: str, grid: tuple[int, int]) -> torch.Tensor:
    """The last transformer block (x: B×L×D → B×L×D) as ``method`` defines it.

    vanilla: unchanged; sclip: softmax(QQᵀ/√d)+softmax(KKᵀ/√d), residual and MLP kept;
    maskclip: out_proj(V); clearclip: softmax(QQᵀ/√d)·V; naclip: softmax(KKᵀ/√d + Gaussian)·V
    (the last three without residual and MLP)."""
    b, n, d = x.shape
    _, _, v = _qkv(blk, x)
    w = attention_weights(blk, x, method, grid)
    y = v if w is None else w @ v
    y = blk.attn.out_proj(y.transpose(1, 2).reshape(b, n, d))
    y = blk.ls_1(y) if hasattr(blk, "ls_1") else y
    if method in ("vanilla", "sclip"):
        x = x + y
        mlp = blk.mlp(blk.ln_2(x))
        return x + (blk.ls_2(mlp) if hasattr(blk, "ls_2") else mlp)
    return y


def _tokens_before_last(visual, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    """Blocks 1…L−1 on normalised images B×3×H×W → (tokens B×(1+N)×D, patch grid)."""
    f = visual.conv1(x)
    b, _, gh, gw = f.shape
    t = f.reshape(b, f.shape[1], -1).transpose(1, 2)
    cls = visual.class_embedding.to(t.dtype).view(1, 1, -1).expand(b, -1, -1)
    t = torch.cat([cls, t], 1) + interpolate_pos_embed(visual, (gh, gw)).to(t.dtype)
    t = visual.ln_pre(t)
    batch_first = getattr(visual.transformer, "batch_first", True)
    if not batch_first:
        t = t.transpose(0, 1)
    for blk in visual.transformer.resblocks[:-1]:
        t = blk(t)
    if not batch_first:
        t = t.transpose(0, 1)
    return t, (gh, gw)


def patch_features(visual, x: torch.Tensor, method: str = "sclip") -> tuple[torch.Tensor, tuple[int, int]]:
    """L2-normalised patch embeddings (B×N×E, CLS dropped) and the patch grid (gh, gw)."""
    t, grid = _tokens_before_last(visual, x)
    t = last_block(visual.transformer.resblocks[-1], t, method, grid)
    t = visual.ln_post(t)
    if visual.proj is not None:
        t = t @ visual.proj
    return F.normalize(t[:, 1:].float(), dim=-1), grid


def window_grid(h: int, w: int, crop: int | tuple[int, int], stride: int | tuple[int, int]
                ) -> list[tuple[int, int, int, int]]:
    """Sliding windows (x0, y0, x1, y1) over an h×w image, as SCLIP/mmseg place them.

    ``max(H−crop+stride−1, 0)//stride + 1`` windows per axis; the last one is clamped inside
    the image; an image smaller than the crop gets one window covering it."""
    ch, cw = _pair(crop, "crop")
    sh, sw = _pair(stride, "stride")
    if min(ch, cw, sh, sw) <= 0:
        raise ValueError(f"crop {crop!r} and stride {stride!r} must be positive")
    if sh > ch or sw > cw:
        raise ValueError(f"stride {stride!r} larger than crop {crop!r} leaves pixels uncovered; use stride <= crop")
    out = []
    for i in range(max(h - ch + sh - 1, 0) // sh + 1):
        for j in range(max(w - cw + sw - 1, 0) // sw + 1):
            y1, x1 = i * sh, j * sw
            y2, x2 = min(y1 + ch, h), min(x1 + cw, w)
            y1, x1 = max(y2 - ch, 0), max(x2 - cw, 0)
            out.append((x1, y1, x2, y2))
    return out


def _normalise(c: _Clip, image: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().div_(255.0)
    mean = torch.tensor(c.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(c.std, dtype=torch.float32).view(1, 3, 1, 1)
    return ((x - mean) / std).to(c.device)


def _crop_logits(c: _Clip, crops: torch.Tensor, text: torch.Tensor, method: str, out_hw: tuple[int, int]) -> torch.Tensor:
    """Cosine logits of a batch of crops, upsampled (bilinear) to out_hw: B×Q×h×w float32."""
    use_amp = crops.device.type == "cuda"
    with torch.autocast("cuda", dtype=torch.float16, enabled=use_amp):
        feats, (gh, gw) = patch_features(c.model.visual, crops, method)
    logits = feats @ text.T  # B×N×Q
    logits = logits.transpose(1, 2).reshape(crops.shape[0], text.shape[0], gh, gw)
    return F.interpolate(logits, size=out_hw, mode="bilinear", align_corners=False)


def dense_logits(clip, image: np.ndarray, text: torch.Tensor, method: str = "sclip", crop=None, stride=None,
                 short_side: int | None = None, batch_size: int = 8
                 ) -> tuple[torch.Tensor, list[tuple[int, int, int, int]], float]:
    """Raw per-query cosine maps (Q×H×W float32 at the input resolution) of one image.

    ``text``: Q×E normalised query embeddings. ``crop=0`` runs the whole image in one forward
    (positional embeddings interpolated). Returns (logits, windows in processed pixels, scale)."""
    c = _as_clip(clip)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    image = _check_image(image)
    h0, w0 = image.shape[:2]
    x = _normalise(c, image)
    scale = 1.0
    if short_side is not None:
        if not isinstance(short_side, (int, np.integer)) or isinstance(short_side, bool) or short_side <= 0:
            raise ValueError(f"short_side must be a positive int (pixels) or None, got {short_side!r}")
        scale = float(short_side) / min(h0, w0)
        size = (int(h0 * scale + 0.5), int(w0 * scale + 0.5))
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    h, w = x.shape[-2:]
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    text = text.to(c.device)
    whole = crop == 0
    crop = c.image_size if crop is None else crop
    stride = (_pair(crop, "crop")[0] // 2, _pair(crop, "crop")[1] // 2) if (stride is None and not whole) else stride
    model_patch = c.image_size // c.model.visual.grid_size[0]
    with torch.inference_mode():
        if whole:
            if min(h, w) < model_patch:
                raise ValueError(f"image is {h}×{w} after resizing; at least {model_patch} px per side are needed")
            logits = _crop_logits(c, x, text, method, (h0, w0))[0].float()
            return logits, [(0, 0, w, h)], scale
        windows = window_grid(h, w, crop, stride)
        cw, ch = windows[0][2] - windows[0][0], windows[0][3] - windows[0][1]
        if min(ch, cw) < model_patch:
            raise ValueError(f"windows of {ch}×{cw} px are smaller than one {model_patch} px patch; "
                             "use a larger image, short_side=..., or a larger crop")
        canvas = torch.zeros(text.shape[0], h, w, device=c.device)
        count = torch.zeros(1, h, w, device=c.device)
        for i in range(0, len(windows), batch_size):
            chunk = windows[i:i + batch_size]
            crops = torch.cat([x[:, :, y1:y2, x1:x2] for x1, y1, x2, y2 in chunk])
            out = _crop_logits(c, crops, text, method, (ch, cw)).float()
            for (x1, y1, x2, y2), o in zip(chunk, out):
                canvas[:, y1:y2, x1:x2] += o
                count[:, y1:y2, x1:x2] += 1
        logits = canvas / count
        if (h, w) != (h0, w0):
            logits = F.interpolate(logits[None], size=(h0, w0), mode="bilinear", align_corners=False)[0]
    return logits, windows, scale


# ----------------------------------------------------------------------------- post-processing
def logits_to_probs(logits: torch.Tensor | np.ndarray, query_to_class: np.ndarray, num_classes: int,
                    logit_scale: float = 40.0, area_thd: float | None = None) -> torch.Tensor:
    """× logit_scale → softmax over queries → max over each class's synonyms → area_thd.

    logits: Q×H×W cosine similarities. Returns float32 C×H×W. ``area_thd``: a foreground class
    (≥ 1) whose argmax area is ≤ area_thd × all foreground argmax pixels gets probability 0."""
    if not isinstance(logit_scale, (int, float, np.floating, np.integer)) or not logit_scale > 0:
        raise ValueError(f"logit_scale must be a positive number, got {logit_scale!r}")
    t = torch.as_tensor(logits).float()
    p = torch.softmax(t * float(logit_scale), 0)
    q2c = torch.as_tensor(np.asarray(query_to_class), dtype=torch.long, device=p.device)
    if len(q2c) != num_classes:
        p = torch.stack([p[q2c == k].amax(0) for k in range(num_classes)])
    if area_thd is not None:
        if not isinstance(area_thd, (int, float, np.floating, np.integer)) or area_thd < 0:
            raise ValueError(f"area_thd must be a non-negative number or None, got {area_thd!r}")
        arg = p.argmax(0)
        area = torch.bincount(arg.reshape(-1), minlength=num_classes).float()
        area[0] = 0
        keep = (area > float(area_thd) * area.sum()).float()
        keep[0] = 1
        p = p * keep.view(-1, 1, 1)
    return p


def probs_to_labels(probs: torch.Tensor | np.ndarray, prob_thd: float = 0.0) -> np.ndarray:
    """int64 H×W argmax; pixels whose best probability < prob_thd → 0 (the background class)."""
    if not isinstance(prob_thd, (int, float, np.floating, np.integer)) or not 0 <= prob_thd <= 1:
        raise ValueError(f"prob_thd must be a number in [0, 1], got {prob_thd!r}")
    p = torch.as_tensor(probs)
    best, arg = p.max(0)
    arg[best < float(prob_thd)] = 0
    return arg.cpu().numpy().astype(np.int64)


def postprocess(result: DenseResult, logit_scale: float | None = None, prob_thd: float | None = None,
                area_thd: float | None | str = "same") -> DenseResult:
    """Re-run the cheap stages on a result's cached logits (sliders): a new DenseResult.

    Arguments left out keep the result's values (``area_thd="same"``; pass None to switch it off)."""
    if not isinstance(result, DenseResult):
        raise ValueError(f"result must be a DenseResult from dense_probs, got {type(result).__name__}")
    ls = result.logit_scale if logit_scale is None else logit_scale
    pt = result.prob_thd if prob_thd is None else prob_thd
    at = result.area_thd if isinstance(area_thd, str) and area_thd == "same" else area_thd
    t = time.perf_counter()
    p = logits_to_probs(result.logits, result.query_to_class, len(result.classes), ls, at)
    labels = probs_to_labels(p, pt)
    timings = dict(result.timings, post=time.perf_counter() - t)
    return replace(result, probs=p.cpu().numpy().astype(np.float32), labels=labels, logit_scale=float(ls),
                   prob_thd=float(pt), area_thd=at, timings=timings)


# ----------------------------------------------------------------------------- PAMR
#: PAMR's 8 neighbours as (row, column) in a 3×3 window, in the order of its kernels.
_PAMR_NEIGHBOURS = ((0, 0), (0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1), (2, 2))


def _pamr_kernels(kind: str) -> torch.Tensor:
    """3×3 kernels of PAMR: "diff" centre − neighbour (8), "copy" neighbour (8), "std" all 9 pixels."""
    pos = list(_PAMR_NEIGHBOURS)
    if kind == "std":
        pos = pos[:4] + [(1, 1)] + pos[4:]
    w = torch.zeros(len(pos), 1, 3, 3)
    for i, (a, b) in enumerate(pos):
        w[i, 0, a, b] = -1.0 if kind == "diff" else 1.0
    if kind == "diff":
        w[:, 0, 1, 1] = 1.0
    return w


def _local(x: torch.Tensor, kernel: torch.Tensor, dilations: Sequence[int]) -> torch.Tensor:
    """B×K×H×W → B×K×(P·len(dilations))×H×W: the 3×3 ``kernel`` bank (P×1×3×3, one ±1 tap per
    position and an optional +1 centre) applied at each dilation with replicate padding.
    Done with shifted slices of the padded map — the same numbers as a dilated conv2d, many
    times faster on CPU (dilated 1-channel convolutions are slow there)."""
    b, k, h, w = x.shape
    outs = []
    for d in dilations:
        xp = F.pad(x.reshape(b * k, 1, h, w), [d] * 4, mode="replicate").reshape(b, k, h + 2 * d, w + 2 * d)
        for kern in kernel[:, 0]:
            acc = None
            for (a, c) in torch.nonzero(kern).tolist():
                t = xp[..., a * d:a * d + h, c * d:c * d + w] * float(kern[a, c])
                acc = t if acc is None else acc + t
            outs.append(acc)
    return torch.stack(outs, 2)


def pamr(image: np.ndarray, maps: np.ndarray | torch.Tensor, num_iter: int = 10,
         dilations: Sequence[int] = (8, 16)) -> np.ndarray:
    """Pixel-adaptive mask refinement (Araslanov & Roth 2020), as SCLIP applies it.

    image: uint8 H×W×3; maps: C×H×W (logits or probabilities, resized to the image if needed).
    Returns float32 C×H×W: ``num_iter`` steps of averaging each map over a colour-affinity
    weighted neighbourhood at the given dilations."""
    image = _check_image(image)
    m = torch.as_tensor(np.asarray(maps) if not isinstance(maps, torch.Tensor) else maps).float()
    if m.ndim != 3:
        raise ValueError(f"maps must be C×H×W, got shape {tuple(m.shape)}")
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float().div(255.0)
    m = m[None]
    if m.shape[-2:] != x.shape[-2:]:
        m = F.interpolate(m, size=x.shape[-2:], mode="bilinear", align_corners=True)
    std = _local(x, _pamr_kernels("std"), dilations).std(2, keepdim=True)
    aff = -_local(x, _pamr_kernels("diff"), dilations).abs() / (1e-8 + 0.1 * std)
    aff = torch.softmax(aff.mean(1, keepdim=True), 2)
    # m ← Σ_j aff_j · (m shifted to neighbour j): the "copy" kernels, accumulated in place
    shifts = [(d, a, c) for d in dilations for (a, c) in _PAMR_NEIGHBOURS]
    aff = aff[:, 0]  # 1×J×H×W
    h, w = m.shape[-2:]
    for _ in range(int(num_iter)):
        pads = {d: F.pad(m, [d] * 4, mode="replicate") for d in dilations}
        out = torch.zeros_like(m)
        for j, (d, a, c) in enumerate(shifts):
            out.addcmul_(pads[d][..., a * d:a * d + h, c * d:c * d + w], aff[:, j:j + 1])
        m = out
    return m[0].numpy().astype(np.float32)


# ----------------------------------------------------------------------------- entry point
def dense_probs(clip, image: np.ndarray, vocabulary: Sequence[str], method: str = "sclip",
                logit_scale: float = 40.0, prob_thd: float = 0.0, area_thd: float | None = None,
                crop: int | tuple[int, int] | None = None, stride: int | tuple[int, int] | None = None,
                short_side: int | None = None, templates: Sequence[str] | None = None, *,
                use_pamr: bool = False, batch_size: int = 8) -> DenseResult:
    """Dense class probabilities of one image, as SCLIP computes them.

    Args:
        clip: a ``models.ClipBundle`` (or an open_clip CLIP with a ViT image tower).
        image: uint8 H×W×3 RGB.
        vocabulary: class names; "a, b" lists synonyms of one class. With ``prob_thd`` > 0,
            entry 0 receives the low-confidence pixels (it should be the background).
        method: one of :data:`METHODS`.
        logit_scale: multiplies the cosine similarities before the softmax (SCLIP: 40).
        prob_thd: pixels whose best probability is below it → class 0 in ``labels``.
        area_thd: foreground classes covering ≤ area_thd of the foreground argmax area → prob 0.
        crop, stride: sliding window in pixels (after ``short_side``); default the model's input
            size and half of it; ``crop=0``: the whole image in one forward.
        short_side: resize so the short side has this many pixels first (bilinear); the
            result comes back at the input resolution.
        templates: prompt templates ("a photo of a {}."); default :func:`default_templates`.
        use_pamr: PAMR (10 iterations, dilations 8 and 16) on the logits before post-processing.
        batch_size: windows per forward.

    Returns:
        :class:`DenseResult` with probs float32 C×H×W at the input resolution.
    """
    classes, queries, q2c = parse_vocabulary(vocabulary)
    image = _check_image(image)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    timings = {}
    t = time.perf_counter()
    text = text_embeddings(clip, queries, templates)
    timings["text"] = time.perf_counter() - t
    t = time.perf_counter()
    logits, windows, scale = dense_logits(clip, image, text, method, crop, stride, short_side, batch_size)
    if use_pamr:
        logits = torch.from_numpy(pamr(image, logits.cpu()))
    timings["image"] = time.perf_counter() - t
    res = DenseResult(probs=np.zeros(0, np.float32), classes=classes, labels=np.zeros(0, np.int64),
                      logits=logits.cpu().numpy().astype(np.float32), queries=queries, query_to_class=q2c,
                      method=method, logit_scale=float(logit_scale), prob_thd=float(prob_thd), area_thd=area_thd,
                      windows=[tuple(v / scale for v in b) if scale != 1.0 else b for b in windows],
                      scale=scale, timings=timings)
    return postprocess(res)


# ----------------------------------------------------------------------------- benchmark
def _forward_flops(clip, crop_hw: tuple[int, int], method: str) -> float:
    """FLOPs of one window's image forward (torch's FlopCounterMode: 2 × multiply-adds)."""
    from torch.utils.flop_counter import FlopCounterMode

    c = _as_clip(clip)
    x = torch.zeros(1, 3, *crop_hw, device=c.device)
    with torch.inference_mode(), FlopCounterMode(display=False) as fc:
        patch_features(c.model.visual, x, method)
    return float(fc.get_total_flops())


def _matmul_gflops(n: int = 2048, repeats: int = 3) -> float:
    """Best GFLOP/s of an n×n float32 matrix multiply on this CPU (the compute ceiling)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def speed_benchmark(model: str = "ViT-B-16-quickgelu", image_hw: tuple[int, int] = (448, 597),
                    vocabulary: Sequence[str] = ("background", "person", "cat", "dog", "car"),
                    templates: Sequence[str] | None = None, method: str = "sclip", seed: int = 0,
                    progress: bool = True) -> dict:
    """Time :func:`dense_probs` against the per-window loop, on one image, in one run.

    Builds ``model`` at random init (``"tiny-shapes"`` or an open_clip name), renders a random
    ``image_hw`` image, and measures: the first call with an empty text cache (OpenAI's 80
    templates by default), a call reusing the on-disk cache (a new process), a cached call,
    the per-window loop (one crop per forward, batch 1, same maths), the effective GFLOP/s of
    both against a large matrix multiply timed in the same run, and the largest probability
    difference between the two. Returns a flat dict (the ``make bench`` JSON entry)."""
    import tempfile

    from tqdm.auto import tqdm

    from . import models

    global _TEXT_CACHE
    rng = env.seed_everything(seed)
    clip = models.load_clip(model, pretrained=False if model == models.TINY_NAME else None)
    image = rng.integers(0, 256, (*image_hw, 3), dtype=np.uint8)
    tpl = _template_strings(templates) if templates is not None else default_templates(clip)
    steps = tqdm(total=6, desc="dense speed benchmark", disable=not progress, leave=False)
    saved_env, saved_cache = os.environ.get("OGCLIP_CACHE"), _TEXT_CACHE
    out: dict = {"model": model, "image_hw": list(image_hw), "method": method, "num_names": len(vocabulary),
                 "num_templates": len(tpl), "threads": torch.get_num_threads(), "device": str(_as_clip(clip).device)}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["OGCLIP_CACHE"] = tmp
            _TEXT_CACHE = {}
            t = time.perf_counter()
            first = dense_probs(clip, image, list(vocabulary), method=method, templates=tpl)
            out["first_call_s"] = time.perf_counter() - t
            out["first_call_text_s"] = first.timings["text"]
            steps.update()
            _TEXT_CACHE = {}  # what a new process sees: only the disk cache
            t = time.perf_counter()
            dense_probs(clip, image, list(vocabulary), method=method, templates=tpl)
            out["disk_cache_call_s"] = time.perf_counter() - t
            steps.update()
            t = time.perf_counter()
            cached = dense_probs(clip, image, list(vocabulary), method=method, templates=tpl)
            out["cached_call_s"] = time.perf_counter() - t
            out["cached_call_text_s"] = cached.timings["text"]
            steps.update()
            text = text_embeddings(clip, cached.queries, tpl)
            t = time.perf_counter()
            logits, windows, _ = dense_logits(clip, image, text, method, batch_size=1)
            out["per_window_loop_s"] = time.perf_counter() - t
            steps.update()
            naive = logits_to_probs(logits, cached.query_to_class, len(cached.classes))
            out["max_abs_prob_diff"] = float(np.abs(naive.numpy() - cached.probs).max())
    finally:
        _TEXT_CACHE = saved_cache
        if saved_env is None:
            os.environ.pop("OGCLIP_CACHE", None)
        else:
            os.environ["OGCLIP_CACHE"] = saved_env
    w = windows[0]
    flops = _forward_flops(clip, (w[3] - w[1], w[2] - w[0]), method) * len(windows)
    steps.update()
    out["matmul_gflops"] = _matmul_gflops()
    steps.update()
    steps.close()
    image_s = out["cached_call_s"] - out["cached_call_text_s"]
    out.update(windows=len(windows), image_gflop=flops / 1e9,
               dense_gflops=flops / 1e9 / image_s, per_window_gflops=flops / 1e9 / out["per_window_loop_s"],
               speedup_vs_per_window=out["per_window_loop_s"] / out["cached_call_s"],
               text_cache_speedup=out["first_call_s"] / out["cached_call_s"])
    out["dense_vs_matmul"] = out["dense_gflops"] / out["matmul_gflops"]
    out["per_window_vs_matmul"] = out["per_window_gflops"] / out["matmul_gflops"]
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()}


# ----------------------------------------------------------------------------- evaluation
@dataclass
class MethodScore:
    """mIoU, pixel and mean accuracy (fractions) of one method over a set of images; seconds per image."""

    method: str
    miou: float
    pixel_acc: float
    mean_acc: float
    seconds_per_image: float
    use_pamr: bool = False

    @property
    def label(self) -> str:
        return self.method + (" + PAMR" if self.use_pamr else "")


def compare_methods(clip, images: Sequence[np.ndarray], labels: Sequence[np.ndarray], vocabulary: Sequence[str],
                    methods: Sequence[str] = METHODS, ignore_index: int = 255, progress: bool = False,
                    use_pamr: bool = False, **params) -> list[MethodScore]:
    """Dense maps of every image with every method, scored with :func:`metrics.segmentation_metrics`.

    images: uint8 H×W×3 each; labels: int H×W ground-truth class ids (indices into
    ``vocabulary``). ``params`` go to :func:`dense_probs` (crop, stride, prob_thd, …);
    predictions are ``DenseResult.labels``."""
    from tqdm.auto import tqdm

    from . import metrics

    if len(images) != len(labels) or not len(images):
        raise ValueError(f"images and labels must be non-empty lists of equal length, got {len(images)} and {len(labels)}")
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"methods: {m!r} is not one of {METHODS}")
    out = []
    for m in tqdm(list(methods), desc="methods", disable=not progress, leave=False):
        t = time.perf_counter()
        preds = [dense_probs(clip, im, vocabulary, method=m, use_pamr=use_pamr, **params).labels for im in images]
        dt = (time.perf_counter() - t) / len(images)
        r = metrics.segmentation_metrics(preds, list(labels), len(vocabulary), ignore_index)
        out.append(MethodScore(m, float(r["miou"]), float(r["pixel_acc"]), float(r["mean_acc"]), dt, use_pamr))
    return out


def format_scores(scores: Sequence[MethodScore]) -> str:
    """A small text table of scores in percent (1 decimal), no timings (stable across machines)."""
    lines = [f"{'method':18s} {'mIoU %':>7s} {'pixel acc %':>12s} {'mean acc %':>11s}"]
    for s in scores:
        lines.append(f"{s.label:18s} {100 * s.miou:7.1f} {100 * s.pixel_acc:12.1f} {100 * s.mean_acc:11.1f}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- figures
def attention_maps(clip, crop: np.ndarray, point: tuple[float, float],
                   methods: Sequence[str] = ("vanilla", "sclip", "clearclip", "naclip")) -> dict[str, np.ndarray]:
    """Last-block attention of the patch under ``point`` (x, y in crop pixels) to every patch.

    crop: uint8 image (ideally the model's input size). Returns method → float32 gh×gw map
    (averaged over heads, CLS column dropped, renormalised to sum 1)."""
    c = _as_clip(clip)
    crop = _check_image(crop)
    x = _normalise(c, crop)
    out = {}
    with torch.inference_mode():
        t, (gh, gw) = _tokens_before_last(c.model.visual, x)
        blk = c.model.visual.transformer.resblocks[-1]
        py = min(int(point[1] / crop.shape[0] * gh), gh - 1)
        px = min(int(point[0] / crop.shape[1] * gw), gw - 1)
        for m in methods:
            w = attention_weights(blk, t, m, (gh, gw))
            if w is None:
                raise ValueError(f"{m} has no attention map (it uses the value embeddings only)")
            a = w[0, :, 1 + py * gw + px, 1:].mean(0).float()
            out[m] = (a / a.sum()).reshape(gh, gw).cpu().numpy()
    return out


def plot_attention(clip, crop: np.ndarray, point: tuple[float, float],
                   methods: Sequence[str] = ("vanilla", "sclip", "clearclip", "naclip")):
    """The crop with the query point, then each method's attention map from it; returns the figure."""
    import matplotlib.pyplot as plt

    maps = attention_maps(clip, crop, point, methods)
    fig, axes = plt.subplots(1, len(maps) + 1, figsize=(2.6 * (len(maps) + 1), 2.9))
    axes[0].imshow(crop)
    axes[0].scatter([point[0]], [point[1]], c="red", marker="x", s=80)
    axes[0].set_title("crop + query patch", fontsize=9)
    h, w = crop.shape[:2]
    for ax, (m, a) in zip(axes[1:], maps.items()):
        ax.imshow(crop, alpha=0.35)
        ax.imshow(a, cmap="magma", extent=(-0.5, w - 0.5, h - 0.5, -0.5), alpha=0.8)
        ax.set_title(f"{m} attention", fontsize=9)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_windows(image: np.ndarray, windows: Sequence[tuple[float, float, float, float]]):
    """The image with every sliding window drawn (colours cycle); returns the figure."""
    import matplotlib.pyplot as plt

    from . import viz

    fig, axes = plt.subplots(1, 2, figsize=(7, 3.6))
    axes[0].imshow(image)
    cols = plt.get_cmap("tab10").colors
    for i, b in enumerate(windows):
        viz.show_box(axes[0], b, color=cols[i % len(cols)], lw=1.5)
    axes[0].set_title(f"{len(windows)} windows", fontsize=9)
    count = np.zeros(image.shape[:2], int)
    for x0, y0, x1, y1 in windows:
        count[int(round(y0)):int(round(y1)), int(round(x0)):int(round(x1))] += 1
    im = axes[1].imshow(count, cmap="viridis", vmin=0)
    fig.colorbar(im, ax=axes[1], fraction=0.046)
    axes[1].set_title("windows per pixel (the count map)", fontsize=9)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return fig


def top_classes(result: DenseResult, k: int = 4) -> list[int]:
    """Ids of the k classes with the largest argmax area (ties by id)."""
    area = np.bincount(result.labels.reshape(-1), minlength=len(result.classes))
    return [int(i) for i in np.argsort(-area, kind="stable")[:k]]


def plot_class_maps(result: DenseResult, image: np.ndarray, classes: Sequence[str | int] | None = None):
    """Per-class probability maps (default: the 4 largest classes) next to the image; returns the figure."""
    import matplotlib.pyplot as plt

    ids = top_classes(result) if classes is None else [
        c if isinstance(c, (int, np.integer)) else _class_id(result, c) for c in classes]
    fig, axes = plt.subplots(1, len(ids) + 1, figsize=(2.6 * (len(ids) + 1), 2.8))
    axes[0].imshow(image)
    axes[0].set_title("image", fontsize=9)
    for ax, i in zip(axes[1:], ids):
        im = ax.imshow(result.probs[i], cmap="viridis", vmin=0, vmax=1)
        ax.set_title(f"p({result.classes[i]})", fontsize=9)
    fig.colorbar(im, ax=list(axes), fraction=0.02)
    for ax in axes:
        ax.axis("off")
    return fig


def _class_id(result: DenseResult, name: str) -> int:
    if name in result.classes:
        return result.classes.index(name)
    if name in result.queries:
        return int(result.query_to_class[result.queries.index(name)])
    raise ValueError(f"class {name!r} is not in the vocabulary {result.classes}")


def plot_labels(result: DenseResult, image: np.ndarray, gt: np.ndarray | None = None, title: str = ""):
    """Argmax map, its overlay on the image, and (optionally) the ground truth; returns the figure."""
    import matplotlib.pyplot as plt

    from . import viz

    n = len(result.classes)
    panels = [("argmax map", viz.colorize(result.labels, n)), ("overlay", viz.overlay(image, result.labels, num_classes=n))]
    if gt is not None:
        panels.append(("ground truth", viz.colorize(gt, n)))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels) + 1.6, 3.2))
    for ax, (t, im) in zip(axes, panels):
        ax.imshow(im)
        ax.set_title(t, fontsize=9)
        ax.axis("off")
    present = sorted(set(np.unique(result.labels).tolist()) | (set(np.unique(gt).tolist()) - {255} if gt is not None else set()))
    fig.legend(handles=viz.legend_patches(result.classes, present), fontsize=7, loc="center right", framealpha=0.8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.8, 1))
    return fig


def plot_confidence(result: DenseResult, image: np.ndarray, threshold: float = 0.5):
    """Confidence views: best-probability heat map; argmax with pixels below ``threshold``
    marked white; the argmax overlay weighted by confidence. Returns the figure."""
    import matplotlib.pyplot as plt

    from . import viz

    conf = result.confidence
    n = len(result.classes)
    unsure = viz.colorize(result.labels, n)
    unsure[conf < threshold] = 255
    col = viz.colorize(result.labels, n).astype(np.float32)
    a = (0.8 * conf)[..., None]
    weighted = (image.astype(np.float32) * (1 - a) + col * a).round().astype(np.uint8)
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.3))
    im = axes[0].imshow(conf, cmap="magma", vmin=0, vmax=1)
    fig.colorbar(im, ax=axes[0], fraction=0.046)
    axes[0].set_title("best probability", fontsize=9)
    axes[1].imshow(unsure)
    axes[1].set_title(f"argmax, white = below {threshold:g} ({100 * (conf < threshold).mean():.0f} %)", fontsize=9)
    axes[2].imshow(weighted)
    axes[2].set_title("overlay weighted by confidence", fontsize=9)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_postprocessed(result: DenseResult, image: np.ndarray, logit_scale: float = 40.0, prob_thd: float = 0.0,
                       class_name: str | None = None):
    """Slider view: re-run post-processing on the cached logits, show one class map and the labels."""
    import matplotlib.pyplot as plt

    from . import viz

    r = postprocess(result, logit_scale=logit_scale, prob_thd=prob_thd)
    k = _class_id(r, class_name) if class_name else top_classes(r, 2)[-1]
    n = len(r.classes)
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.3))
    axes[0].imshow(image)
    axes[0].set_title("image", fontsize=9)
    im = axes[1].imshow(r.probs[k], cmap="viridis", vmin=0, vmax=1)
    fig.colorbar(im, ax=axes[1], fraction=0.046)
    axes[1].set_title(f"p({r.classes[k]}), logit scale {logit_scale:g}", fontsize=9)
    axes[2].imshow(viz.overlay(image, r.labels, num_classes=n))
    axes[2].set_title(f"labels, prob_thd {prob_thd:g}", fontsize=9)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return fig
