"""Dense open-vocabulary maps from CLIP without training: vanilla, MaskCLIP, SCLIP, ClearCLIP, NaCLIP.

One function on one image (:func:`dense_probs`), reproducing the published SCLIP code
(wangf3014/SCLIP, ``clip_segmentor.py``) on identical weights:

1. **Text side** — every vocabulary entry may list synonyms ("person, man, woman"); every
   name is a *query*. Query embedding = normalize(mean_k normalize(encode_text(template_k(name))))
   over the templates (OpenAI's 80 ImageNet templates by default; ``TINY_TEMPLATES`` for
   tiny-shapes). Cached per (weights, templates, name) in memory and on disk under
   ``$OGCLIP_CACHE/text`` (:func:`ogclip_utils.clip.text_embeddings`).
2. **Image side** — blocks 1…L−1 unchanged; the last block is replaced by one of
   :data:`METHODS` (:func:`last_block`); ``ln_post`` and ``proj`` on every token; L2-normalize;
   drop CLS; cosine similarity with each query; reshape to the patch grid; bilinear upsampling
   to the crop size.
3. **Sliding window** (:func:`window_grid`) — logits summed on a canvas and divided by a count
   map; all windows in one batched forward (chunked for memory) under inference mode.
4. **PAMR** (optional, :mod:`ogclip_utils.pamr`) on the logits.
5. **Post-processing** (:func:`postprocess`, cheap: sliders call it on cached logits) —
   × logit_scale → softmax over queries → max over each class's synonyms → ``area_thd`` →
   ``prob_thd`` (low-confidence pixels → the background class in ``labels``, found by name).

Works for any open_clip ``VisionTransformer`` whose blocks use ``nn.MultiheadAttention``
(tiny-shapes with its convolutional stem, ViT-B/16), on CPU, MPS or CUDA (fp16 autocast).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .checks import check_image as _check_image, check_pair as _pair
from .clip import as_bundle as _as_clip, text_embeddings
from .pamr import pamr
from .vocabulary import background_index, parse_vocabulary

# Old import paths (deprecated, one release): these moved to ogclip_utils.clip.
from .clip import (TINY_TEMPLATES, default_templates, openai_templates, text_cache_dir,  # noqa: F401,E402
                   weights_fingerprint)

METHODS = ("vanilla", "maskclip", "sclip", "clearclip", "naclip")

#: σ of NaCLIP's Gaussian neighbourhood prior, in patches.
NACLIP_SIGMA = 5.0


@dataclass(frozen=True)
class DenseConfig:
    """Settings of a dense map, validated once (the pipeline, the CLI and the sliders read their defaults here).

    method: one of :data:`METHODS`. logit_scale: multiplies cosine similarities before the
    softmax (> 0). prob_thd: pixels below it go to the background class in ``labels`` (0–1; :func:`background_class`). area_thd:
    foreground classes covering at most this fraction of the foreground argmax get probability 0
    (None: off). crop, stride: sliding window in pixels (None: the model's input size and half
    of it; ``crop=0``: the whole image). short_side: resize the short side first (None: no).
    templates: prompt templates (None: :func:`ogclip_utils.clip.default_templates`).
    """

    method: str = "sclip"
    logit_scale: float = 40.0
    prob_thd: float = 0.0
    area_thd: float | None = None
    crop: int | tuple[int, int] | None = None
    stride: int | tuple[int, int] | None = None
    short_side: int | None = None
    templates: Sequence[str] | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if not float(self.logit_scale) > 0:
            raise ValueError(f"logit_scale must be > 0, got {self.logit_scale!r}")
        if not 0.0 <= float(self.prob_thd) <= 1.0:
            raise ValueError(f"prob_thd must be in [0, 1], got {self.prob_thd!r}")


_D = DenseConfig()


# ----------------------------------------------------------------------------- results
@dataclass
class DenseResult:
    """Dense class maps of one image.

    Attributes:
        probs: float32 C×H×W class probabilities at the input resolution (after synonyms max
            and ``area_thd``; ``prob_thd`` is applied to ``labels`` only, so the confidence
            views still show the real probabilities).
        classes: the C class names (first synonym of each vocabulary entry).
        labels: int64 H×W argmax of ``probs``, pixels whose best probability < ``prob_thd`` → the background class.
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


def _crop_logits(c, crops: torch.Tensor, text: torch.Tensor, method: str, out_hw: tuple[int, int]) -> torch.Tensor:
    """Cosine logits of a batch of crops, upsampled (bilinear) to out_hw: B×Q×h×w float32."""
    with c.autocast():  # the bundle's precision (fp16/bf16 autocast on CUDA; bf16 weights need nothing)
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
    x = c.preprocess(image)
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
def background_class(classes: Sequence[str]) -> int:
    """The class that low-confidence pixels go to and that ``area_thd`` never removes: the one
    whose first synonym is "background" wherever it stands (``vocabulary.background_index``),
    else entry 0 (SCLIP's convention, for vocabularies without a class named background)."""
    b = background_index(classes)
    return 0 if b is None else b


def logits_to_probs(logits: torch.Tensor | np.ndarray, query_to_class: np.ndarray, num_classes: int,
                    logit_scale: float = 40.0, area_thd: float | None = None, background: int = 0) -> torch.Tensor:
    """× logit_scale → softmax over queries → max over each class's synonyms → area_thd.

    logits: Q×H×W cosine similarities. Returns float32 C×H×W. ``area_thd``: a foreground class
    (any but ``background``, see :func:`background_class`) whose argmax area is ≤ area_thd × all
    foreground argmax pixels gets probability 0."""
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
        area[background] = 0
        keep = (area > float(area_thd) * area.sum()).float()
        keep[background] = 1
        p = p * keep.view(-1, 1, 1)
    return p


def probs_to_labels(probs: torch.Tensor | np.ndarray, prob_thd: float = 0.0, background: int = 0) -> np.ndarray:
    """int64 H×W argmax; pixels whose best probability < prob_thd → ``background`` (:func:`background_class`)."""
    if not isinstance(prob_thd, (int, float, np.floating, np.integer)) or not 0 <= prob_thd <= 1:
        raise ValueError(f"prob_thd must be a number in [0, 1], got {prob_thd!r}")
    p = torch.as_tensor(probs)
    best, arg = p.max(0)
    arg[best < float(prob_thd)] = int(background)
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
    bg = background_class(result.classes)
    p = logits_to_probs(result.logits, result.query_to_class, len(result.classes), ls, at, bg)
    labels = probs_to_labels(p, pt, bg)
    timings = dict(result.timings, post=time.perf_counter() - t)
    return replace(result, probs=p.cpu().numpy().astype(np.float32), labels=labels, logit_scale=float(ls),
                   prob_thd=float(pt), area_thd=at, timings=timings)


# ----------------------------------------------------------------------------- entry point
def dense_probs(clip, image: np.ndarray, vocabulary: Sequence[str], method: str = _D.method,
                logit_scale: float = _D.logit_scale, prob_thd: float = _D.prob_thd, area_thd: float | None = _D.area_thd,
                crop: int | tuple[int, int] | None = _D.crop, stride: int | tuple[int, int] | None = _D.stride,
                short_side: int | None = _D.short_side, templates: Sequence[str] | None = _D.templates, *,
                use_pamr: bool = False, batch_size: int = 8) -> DenseResult:
    """Dense class probabilities of one image, as SCLIP computes them.

    Args:
        clip: a ``models.ClipBundle`` (or an open_clip CLIP with a ViT image tower).
        image: uint8 H×W×3 RGB.
        vocabulary: class names; "a, b" lists synonyms of one class. With ``prob_thd`` > 0,
            the low-confidence pixels go to the class named "background" wherever it stands,
            else to entry 0 (:func:`background_class`).
        method: one of :data:`METHODS`.
        logit_scale: multiplies the cosine similarities before the softmax (SCLIP: 40).
        prob_thd: pixels whose best probability is below it → the background class in ``labels``.
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
    DenseConfig(method, logit_scale, prob_thd, area_thd, crop, stride, short_side, templates)  # validates
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


# ----------------------------------------------------------------------------- attention (for figures)
def attention_maps(clip, crop: np.ndarray, point: tuple[float, float],
                   methods: Sequence[str] = ("vanilla", "sclip", "clearclip", "naclip")) -> dict[str, np.ndarray]:
    """Last-block attention of the patch under ``point`` (x, y in crop pixels) to every patch.

    crop: uint8 image (ideally the model's input size). Returns method → float32 gh×gw map
    (averaged over heads, CLS column dropped, renormalised to sum 1)."""
    c = _as_clip(clip)
    crop = _check_image(crop)
    x = c.preprocess(crop)
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
