"""Refinement: prompt a promptable segmenter where CLIP is confident, pick masks, resolve overlaps.

- :class:`ClassicalSegmenter` — the offline segmenter with ``SAM2ImagePredictor``'s interface
  (``set_image`` once, then cheap ``predict`` calls), built on classical colour-distance
  region growing. No weights.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy import ndimage as ndi

LOWRES = 256  # side of the low-resolution logits, as SAM2 returns them


def _as_image(image) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"image must be uint8 H×W×3 RGB, got shape {arr.shape}; use data.load_image() to convert")
    if arr.dtype != np.uint8:
        raise ValueError(f"image must be uint8 H×W×3 RGB, got dtype {arr.dtype}; use data.load_image() to convert")
    if min(arr.shape[:2]) < 2:
        raise ValueError(f"image is too small ({arr.shape[0]}×{arr.shape[1]}); need at least 2×2 pixels")
    return arr


def _check_points(point_coords, point_labels, hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Validate (K,2) xy pixel points and (K,) labels in {0,1}; return float (K,2), int (K,)."""
    H, W = hw
    if point_coords is None:
        if point_labels is not None and len(np.asarray(point_labels).reshape(-1)):
            raise ValueError("point_labels given without point_coords")
        return np.zeros((0, 2), float), np.zeros(0, int)
    pts = np.asarray(point_coords, dtype=float)
    if pts.ndim == 1 and pts.size == 2:
        pts = pts[None]
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"point_coords must have shape (K, 2) as (x, y) pixels, got {pts.shape}")
    if point_labels is None:
        raise ValueError("point_labels is required with point_coords: 1 = positive, 0 = negative, shape (K,)")
    lab = np.asarray(point_labels).reshape(-1)
    if len(lab) != len(pts):
        raise ValueError(f"point_labels has {len(lab)} entries but point_coords has {len(pts)} points")
    if not np.all(np.isin(lab, (0, 1))):
        raise ValueError(f"point_labels must be 0 (negative) or 1 (positive), got {np.unique(lab).tolist()}")
    if not np.all(np.isfinite(pts)):
        raise ValueError("point_coords contains NaN or inf")
    bad = (pts[:, 0] < 0) | (pts[:, 0] > W - 1) | (pts[:, 1] < 0) | (pts[:, 1] > H - 1)
    if bad.any():
        raise ValueError(f"point_coords {pts[bad].tolist()} lie outside the {W}×{H} image "
                         "(x must be in [0, W-1], y in [0, H-1], in pixels)")
    return pts, lab.astype(int)


def _check_box(box, hw: tuple[int, int]) -> tuple[int, int, int, int] | None:
    if box is None:
        return None
    b = np.asarray(box, dtype=float).reshape(-1)
    if b.size != 4 or not np.all(np.isfinite(b)):
        raise ValueError(f"box must be (x0, y0, x1, y1) in pixels, got {box!r}")
    H, W = hw
    x0, y0 = int(np.clip(np.floor(b[0]), 0, W - 1)), int(np.clip(np.floor(b[1]), 0, H - 1))
    x1, y1 = int(np.clip(np.ceil(b[2]), 0, W)), int(np.clip(np.ceil(b[3]), 0, H))
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"box {tuple(b)} is empty inside the {W}×{H} image: need x1 > x0 and y1 > y0")
    return x0, y0, x1, y1


def _resize(arr: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a float H×W array (order-1 spline via scipy)."""
    zoom = (hw[0] / arr.shape[0], hw[1] / arr.shape[1])
    return ndi.zoom(arr, zoom, order=1, mode="nearest", grid_mode=True)


class ClassicalSegmenter:
    """A promptable segmenter with ``SAM2ImagePredictor``'s interface, built on colour distances.

    ``set_image(image)`` stores the image as float RGB (and its smoothed copy);
    ``predict(point_coords, point_labels, box=None, multimask_output=True)`` returns
    ``(masks C×H×W bool, scores C float32, low_res_logits C×256×256 float32)`` with C = 3
    nested candidates (small ⊆ middle ⊆ large) or C = 1 without ``multimask_output``.

    How one prediction works (region growing in colour space):

    1. the *object colour* is the median of the 3×3 patch at each positive point; ``D(x)``
       is a pixel's colour distance to the nearest object colour;
    2. the *core* is the 4-connected component of ``D < core_tolerance`` (measured on the
       image smoothed with a Gaussian of ``smooth`` px, so pixel noise does not stop it)
       holding the positive points (a flood fill);
    3. the *surround colours* are sampled in a ring 2–4 px outside the core (pixels that
       are not object-coloured) plus the colours at negative points; ``N(x)`` is a pixel's
       distance to the nearest surround colour;
    4. candidate ``k`` is the connected part of ``D < alpha_k · N`` (``alpha`` = 0.6, 1, 1.6)
       that holds a positive point, limited to ``grow`` px around the core. ``alpha = 1``
       is the perpendicular bisector between object and surround colour: for an
       anti-aliased edge (a linear blend of the two colours) it keeps exactly the pixels
       with coverage ≥ 0.5 — the shapes world's ground-truth rule;
    5. the score is a stability score, as in SAM: the IoU of the candidate's masks at
       ``alpha·(1 − delta)`` and ``alpha·(1 + delta)`` — high when the boundary does not
       move as the threshold changes, i.e. when the colour edge is sharp.

    Negative points add their colour to the surround set and, when a negative point is still
    inside a candidate (same colour as the object), cut the candidate spatially: pixels
    nearer to a negative point than to every positive point are removed. A box limits all
    candidates to the box; a box without positive points uses the most interior pixel of the
    region whose colour differs most from the box border as its positive point.
    The low-resolution logits are ``alpha·N − D`` (positive inside) resized to 256×256.

    Limits (honest): this works because shapes-world objects are flat-coloured regions on a
    smoother, differently coloured background. On photos it is a colour flood fill: it
    follows colour, not objects — it stops at texture and shading edges (a striped shirt or
    a shadowed face gives a fragment), leaks into neighbours of similar colour (a brown dog
    on a brown sofa), and knows nothing of object shape. Use SAM2.1 (``OGCLIP_MODE=real``,
    ``models.load_segmenter("sam2.1-hiera-tiny")``) for photos.

    Args:
        core_tolerance: colour distance (0–255 RGB units) of the seed flood fill.
        smooth: Gaussian sigma (px) of the image the flood fill runs on.
        alphas: the three bisector factors of the nested candidates (ascending).
        grow: how many pixels a candidate may extend beyond the core.
        delta: relative threshold offset of the stability score.
    """

    def __init__(self, core_tolerance: float = 24.0, alphas: Sequence[float] = (0.6, 1.0, 1.6),
                 grow: int = 3, delta: float = 0.15, smooth: float = 0.0):
        if not core_tolerance > 0:
            raise ValueError(f"core_tolerance must be > 0 (RGB distance), got {core_tolerance}")
        alphas = tuple(float(a) for a in alphas)
        if len(alphas) != 3 or not all(a > 0 for a in alphas) or list(alphas) != sorted(alphas):
            raise ValueError(f"alphas must be three ascending positive factors, got {alphas}")
        if not 0 < delta < 1:
            raise ValueError(f"delta must be in (0, 1), got {delta}")
        self.core_tolerance = float(core_tolerance)
        self.alphas = alphas
        self.grow = int(grow)
        self.delta = float(delta)
        self.smooth = float(smooth)
        self._img: np.ndarray | None = None
        self._orig_hw: tuple[int, int] | None = None

    # SAM2ImagePredictor compatibility
    @property
    def is_image_set(self) -> bool:
        return self._img is not None

    def reset_predictor(self) -> None:
        self._img = None
        self._orig_hw = None

    def set_image(self, image) -> None:
        """Store the image (uint8 H×W×3 RGB); the classical 'embedding' is just float RGB."""
        arr = _as_image(image)
        self._img = arr.astype(np.float32)
        self._smoothed = (ndi.gaussian_filter(self._img, sigma=(self.smooth, self.smooth, 0))
                          if self.smooth > 0 else self._img)
        self._orig_hw = arr.shape[:2]

    # ------------------------------------------------------------------ internals
    def _patch_colour(self, x: float, y: float) -> np.ndarray:
        H, W = self._orig_hw
        xi, yi = int(round(x)), int(round(y))
        patch = self._img[max(yi - 1, 0):min(yi + 2, H), max(xi - 1, 0):min(xi + 2, W)].reshape(-1, 3)
        return np.median(patch, axis=0)

    def _dist(self, refs: np.ndarray, window: tuple[slice, slice] | None = None, smoothed: bool = False) -> np.ndarray:
        """Distance (h×w) of every pixel (of ``window``, default the whole image; of the
        Gaussian-smoothed image with ``smoothed``) to the nearest of ``refs`` (M×3)."""
        src = self._smoothed if smoothed else self._img
        img = src if window is None else src[window]
        flat = img.reshape(-1, 3)
        # |x - r|^2 = |x|^2 - 2 x·r + |r|^2, one matrix product instead of an M-fold broadcast
        d2 = (flat ** 2).sum(1)[:, None] - 2.0 * flat @ refs.T + (refs ** 2).sum(1)[None, :]
        return np.sqrt(np.maximum(d2.min(axis=1), 0.0)).reshape(img.shape[:2])

    @staticmethod
    def _component(mask: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """Union of the 4-connected components of ``mask`` containing any seed (K,2 int yx)."""
        lab, _ = ndi.label(mask)
        ids = np.unique(lab[seeds[:, 0], seeds[:, 1]])
        ids = ids[ids > 0]
        return np.isin(lab, ids) if len(ids) else np.zeros_like(mask)

    def _box_seed(self, box: tuple[int, int, int, int]) -> np.ndarray:
        """A positive point (x, y) for a box alone: the most interior pixel of the biggest
        region inside the box whose colour differs from the box border."""
        x0, y0, x1, y1 = box
        sub = self._img[y0:y1, x0:x1]
        border = np.concatenate([sub[0], sub[-1], sub[:, 0], sub[:, -1]])
        step = max(1, len(border) // 64)
        d = np.linalg.norm(sub[:, :, None, :] - border[None, None, ::step, :], axis=-1).min(axis=2)
        fg = d > self.core_tolerance
        if not fg.any():
            fg = d >= d.max()
        lab, n = ndi.label(fg)
        biggest = 1 + int(np.argmax(ndi.sum(fg, lab, index=np.arange(1, n + 1))))
        dt = ndi.distance_transform_edt(np.pad(lab == biggest, 1))[1:-1, 1:-1]
        yy, xx = np.unravel_index(int(np.argmax(dt)), dt.shape)
        return np.array([[x0 + xx, y0 + yy]], float)

    # ------------------------------------------------------------------ API
    def predict(self, point_coords=None, point_labels=None, box=None, multimask_output: bool = True,
                mask_input=None, return_logits: bool = False, normalize_coords: bool = True):
        """Segment the object marked by the prompts.

        Args:
            point_coords: (K, 2) float (x, y) in pixels of the image given to ``set_image``.
            point_labels: (K,) 1 = positive (on the object), 0 = negative (not on it).
            box: optional (x0, y0, x1, y1) in pixels; the mask stays inside it.
            multimask_output: three nested candidates (True) or the middle one only.
            mask_input, return_logits, normalize_coords: accepted for SAM2 compatibility;
                ignored (masks are always bool, coordinates always pixels).

        Returns:
            masks (C, H, W) bool, scores (C,) float32 stability scores in [0, 1],
            low-res logits (C, 256, 256) float32 (positive inside).
        """
        if self._img is None:
            raise RuntimeError("call set_image(image) before predict(...)")
        H, W = self._orig_hw
        pts, lab = _check_points(point_coords, point_labels, (H, W))
        bx = _check_box(box, (H, W))
        pos, neg = pts[lab == 1], pts[lab == 0]
        if len(pos) == 0:
            if bx is None:
                raise ValueError("predict needs at least one positive point (label 1) or a box")
            pos = self._box_seed(bx)
        inside = np.ones((H, W), bool)
        if bx is not None:
            inside[:] = False
            inside[bx[1]:bx[3], bx[0]:bx[2]] = True
        seeds = np.clip(np.round(pos[:, ::-1]).astype(int), 0, [H - 1, W - 1])
        refs = np.stack([self._patch_colour(x, y) for x, y in pos])
        D = self._dist(refs)
        core = self._component((self._dist(refs, smoothed=True) < self.core_tolerance) & inside, seeds)
        core[seeds[:, 0], seeds[:, 1]] = True
        # surround colours: a ring 2–4 px outside the core, minus object-coloured pixels
        ring = ndi.binary_dilation(core, iterations=4) & ~ndi.binary_dilation(core, iterations=2)
        ring &= D >= self.core_tolerance
        surround = self._img[ring]
        if len(surround) > 256:
            surround = surround[:: int(np.ceil(len(surround) / 256))]
        # negative points add their colour to the contrast set only when it differs from the
        # object's; same-coloured negatives act through the spatial cut below
        negrefs = [c for c in (self._patch_colour(x, y) for x, y in neg)
                   if np.min(np.linalg.norm(refs - c, axis=1)) >= self.core_tolerance]
        negrefs = np.stack(negrefs) if negrefs else np.zeros((0, 3), np.float32)
        allrefs = np.concatenate([surround.reshape(-1, 3), negrefs])
        allowed = inside & ndi.binary_dilation(core, iterations=self.grow) if self.grow > 0 else inside & core
        # N is only needed where a candidate may grow: compute it inside the allowed window
        N = np.full((H, W), 2.0 * max(float(D.max()), self.core_tolerance), np.float32)
        if len(allrefs):
            ys, xs = np.nonzero(allowed)
            win = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
            N[win] = self._dist(allrefs.astype(np.float32), win)
        if len(neg):  # spatial cut: pixels nearer a negative point than any positive point
            yy, xx = np.mgrid[0:H, 0:W]
            dpos = np.min([(xx - x) ** 2 + (yy - y) ** 2 for x, y in pos], axis=0)
            dneg = np.min([(xx - x) ** 2 + (yy - y) ** 2 for x, y in neg], axis=0)
            allowed &= dpos <= dneg

        def grow_mask(alpha: float) -> np.ndarray:
            m = self._component((D < alpha * N) & allowed, seeds)
            return m

        alphas = self.alphas if multimask_output else (self.alphas[1],)
        masks, scores, logits = [], [], []
        for a in alphas:
            m = grow_mask(a)
            lo, hi = grow_mask(a * (1 - self.delta)), grow_mask(a * (1 + self.delta))
            union = float(hi.sum())
            scores.append(float((lo & hi).sum()) / union if union > 0 else 0.0)
            masks.append(m)
            lg = np.where(allowed, a * N - D, -np.maximum(D, 1.0)).astype(np.float32) / 10.0
            logits.append(_resize(lg, (LOWRES, LOWRES)))
        return np.stack(masks), np.asarray(scores, np.float32), np.stack(logits).astype(np.float32)


# ============================================================================= refinement
MASK_CHOICES = ("score", "agreement")
CLASSIFY = ("auto", "clip", "dense", "prompt")


@dataclass
class Candidate:
    """What the segmenter answered for one prompt.

    ``masks`` (C, H, W) bool, ``scores`` (C,) the segmenter's scores, ``agreement`` (C,)
    IoU of each mask with the prompt's CLIP region, ``chosen`` the index kept by the
    mask-choice rule (-1 when every candidate was rejected, see ``note``).
    """

    prompt_index: int
    class_id: int
    masks: np.ndarray
    scores: np.ndarray
    agreement: np.ndarray
    chosen: int
    note: str = ""

    @property
    def mask(self) -> np.ndarray | None:
        return self.masks[self.chosen] if self.chosen >= 0 else None

    @property
    def score(self) -> float:
        return float(self.scores[self.chosen]) if self.chosen >= 0 else 0.0


@dataclass
class Instance:
    """One refined object: ``mask`` bool H×W, ``class_id`` in the vocabulary, ``score`` the
    segmenter's score, ``class_prob`` the probability of the class (CLIP crop or dense),
    ``confidence`` = score × class_prob (used to resolve overlaps), ``prompts`` the prompt
    indices that produced it (several after duplicate merging)."""

    mask: np.ndarray
    class_id: int
    score: float
    class_prob: float
    prompts: list[int]
    class_name: str = ""

    @property
    def confidence(self) -> float:
        return float(self.score * self.class_prob)

    @property
    def area(self) -> int:
        return int(self.mask.sum())

    @property
    def box(self) -> tuple[float, float, float, float]:
        ys, xs = np.nonzero(self.mask)
        if len(xs) == 0:
            return (0.0, 0.0, 0.0, 0.0)
        return (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))

    def __repr__(self) -> str:
        name = f" {self.class_name!r}" if self.class_name else ""
        return (f"Instance(class {self.class_id}{name}, {self.area} px, score {self.score:.3g}, "
                f"class prob {self.class_prob:.3g}, prompts {self.prompts})")


@dataclass
class Refined:
    """Result of :func:`refine`.

    Attributes:
        label_map: int64 H×W final class ids (``background_id`` where nothing claims a pixel,
            or the dense argmax with ``fill="dense"``).
        instances: the instances after duplicate merging, each mask cut to the pixels it won.
        num_queries: segmenter prompts answered (one per prompt).
        candidates: per prompt, the segmenter's candidates and the chosen one.
        before_overlap: the instances after classification, before merging and pixel
            resolution (masks may overlap).
        claims: int H×W, how many merged instances claimed each pixel (> 1 = contested).
        dropped: (prompt index, reason) for prompts that produced no instance.
    """

    label_map: np.ndarray
    instances: list[Instance]
    num_queries: int
    candidates: list[Candidate] = field(default_factory=list)
    before_overlap: list[Instance] = field(default_factory=list)
    claims: np.ndarray | None = None
    dropped: list[tuple[int, str]] = field(default_factory=list)
    params: dict = field(default_factory=dict)


def classify_masks(clip, image: np.ndarray, masks: Sequence[np.ndarray], names: Sequence[str],
                   padding: float = 0.1, templates: Sequence[str] | None = None,
                   logit_scale: float | None = None, crop: str = "masked") -> np.ndarray:
    """Zero-shot class probabilities (M, C) of each mask's object.

    The crop is the mask's box, padded by ``padding`` × its size and squared
    (``data.crop_box``), resized to the model's input size and encoded by CLIP; the class
    texts are the dense stage's (``dense.text_embeddings``: same templates and cache; a class
    scores the best of its ", "-separated synonyms). ``logit_scale`` defaults to the model's
    own. Region-level classification of a whole object is far more reliable than reading
    the class off pixel-level dense maps.

    ``crop="masked"`` first paints every pixel outside the mask with the median colour of a
    ring 2–5 px around it (the object's local surround), so the crop shows the segmented
    object alone — and a mask that covers only background shows only background, which CLIP
    then names "background". ``crop="box"`` keeps the plain padded box (neighbours visible).
    """
    import torch

    from . import dense
    from .data import crop_box

    if len(masks) == 0:
        return np.zeros((0, len(names)), np.float32)
    if crop not in ("masked", "box"):
        raise ValueError(f"crop must be 'masked' or 'box', got {crop!r}")
    classes, queries, q2c = dense.parse_vocabulary(list(names))
    crops = []
    for m in masks:
        ys, xs = np.nonzero(m)
        if len(xs) == 0:
            raise ValueError("classify_masks: a mask is empty")
        src = image
        if crop == "masked":
            ring = ndi.binary_dilation(m, iterations=5) & ~ndi.binary_dilation(m, iterations=2)
            fillc = np.median(image[ring], axis=0) if ring.any() else np.median(image.reshape(-1, 3), axis=0)
            src = np.where(m[..., None], image, fillc.astype(np.uint8)[None, None, :])
        c = crop_box(src, (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), padding=padding, square=True)
        crops.append(_resize_uint8(c, clip.image_size))
    T = dense.text_embeddings(clip, queries, templates).float()
    img_emb = clip.encode_images(np.stack(crops)).float().cpu()
    scale = float(logit_scale) if logit_scale is not None else float(clip.model.logit_scale.exp().item())
    with torch.inference_mode():
        q = (scale * img_emb @ T.T).numpy()  # M × Q
    logits = np.full((len(masks), len(classes)), -np.inf, np.float32)
    for j, c in enumerate(q2c):
        logits[:, c] = np.maximum(logits[:, c], q[:, j])
    logits -= logits.max(1, keepdims=True)
    e = np.exp(logits)
    return (e / e.sum(1, keepdims=True)).astype(np.float32)


def _resize_uint8(img: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((size, size), Image.BICUBIC))


def _image_key(img: np.ndarray) -> tuple:
    import hashlib

    return (img.shape, hashlib.sha1(np.ascontiguousarray(img).tobytes()).hexdigest())


def ensure_image(predictor, image: np.ndarray, mode: bool | str = "auto") -> bool:
    """Call ``predictor.set_image(image)`` when ``mode`` is True, or with ``"auto"`` when the
    predictor last saw another image (tracked by a content hash). Returns whether it encoded."""
    if mode not in (True, False, "auto"):
        raise ValueError(f"set_image must be True, False or 'auto', got {mode!r}")
    key = _image_key(image)
    if mode is True or (mode == "auto" and getattr(predictor, "_ogclip_image_key", None) != key):
        predictor.set_image(image)
        predictor._ogclip_image_key = key
        return True
    return False


def _is_sam2(predictor) -> bool:
    return type(predictor).__name__ == "SAM2ImagePredictor"


def _query(predictor, prompts, multimask_output: bool = True) -> list[tuple[np.ndarray, np.ndarray]]:
    """Ask the segmenter once per prompt; SAM2 answers prompts with the same number of
    points in one batched call. Returns [(masks C×H×W bool, scores C)]."""
    out: list = [None] * len(prompts)
    groups: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        groups.setdefault(len(p.points), []).append(i)
    for k, idx in groups.items():
        if _is_sam2(predictor) and len(idx) > 1:
            pts = np.stack([prompts[i].points for i in idx]).astype(np.float32)
            lab = np.stack([prompts[i].labels for i in idx]).astype(np.int32)
            masks, scores, _ = predictor.predict(point_coords=pts, point_labels=lab, multimask_output=multimask_output)
            for j, i in enumerate(idx):
                out[i] = (np.asarray(masks[j]) > 0, np.asarray(scores[j], np.float32).reshape(-1))
        else:
            for i in idx:
                masks, scores, _ = predictor.predict(point_coords=prompts[i].points, point_labels=prompts[i].labels,
                                                     multimask_output=multimask_output)
                out[i] = (np.asarray(masks) > 0, np.asarray(scores, np.float32).reshape(-1))
    return out


def choose_mask(masks: np.ndarray, scores: np.ndarray, region: np.ndarray | None, rule: str = "score",
                max_area: int | None = None, min_area: int = 1) -> tuple[int, np.ndarray, str]:
    """Index of the candidate to keep (-1 if none), the agreement IoUs with ``region``, and a note.

    ``rule="score"``: the highest segmenter score; ``"agreement"``: the highest IoU with the
    CLIP region. Masks smaller than ``min_area`` or larger than ``max_area`` pixels are never chosen.
    """
    if rule not in MASK_CHOICES:
        raise ValueError(f"mask_choice must be one of {MASK_CHOICES}, got {rule!r}")
    areas = masks.reshape(len(masks), -1).sum(1)
    if region is not None:
        inter = (masks & region[None]).reshape(len(masks), -1).sum(1)
        union = (masks | region[None]).reshape(len(masks), -1).sum(1)
        agree = np.where(union > 0, inter / np.maximum(union, 1), 0.0).astype(np.float32)
    else:
        agree = np.zeros(len(masks), np.float32)
    ok = areas >= max(1, min_area)
    if max_area is not None:
        ok &= areas <= max_area
    if not ok.any():
        why = (f"all candidates smaller than {min_area} px" if not (areas >= max(1, min_area)).any()
               else f"all candidates larger than {max_area} px (background?)")
        return -1, agree, why
    key = scores if rule == "score" else agree + 1e-3 * scores
    key = np.where(ok, key, -np.inf)
    return int(np.argmax(key)), agree, ""


def merge_duplicates(instances: list[Instance], iou_threshold: float = 0.8) -> list[Instance]:
    """Same-class instances whose masks overlap with IoU > ``iou_threshold`` are one object:
    keep the higher-scoring mask (greedy, by confidence) and record every prompt it absorbed."""
    order = sorted(range(len(instances)), key=lambda i: -instances[i].confidence)
    kept: list[Instance] = []
    for i in order:
        inst = instances[i]
        for k in kept:
            if k.class_id == inst.class_id:
                inter = np.logical_and(k.mask, inst.mask).sum()
                union = np.logical_or(k.mask, inst.mask).sum()
                if union and inter / union > iou_threshold:
                    k.prompts = sorted(set(k.prompts + inst.prompts))
                    break
        else:
            kept.append(Instance(inst.mask.copy(), inst.class_id, inst.score, inst.class_prob, list(inst.prompts),
                                 inst.class_name))
    return kept


def resolve_overlaps(instances: list[Instance], shape: tuple[int, int], background_id: int = 0,
                     fill: np.ndarray | None = None) -> tuple[np.ndarray, list[Instance], np.ndarray]:
    """Give every contested pixel to the instance with the highest confidence (score × class
    probability); unclaimed pixels get ``fill`` (an int H×W map, e.g. the dense argmax) or
    ``background_id``. Returns (label_map int64 H×W, instances cut to the pixels they won
    (empty ones removed), claims int H×W)."""
    H, W = shape
    claims = np.zeros((H, W), np.int32)
    owner = np.full((H, W), -1, np.int64)
    best = np.full((H, W), -np.inf)
    for i, inst in enumerate(instances):
        claims += inst.mask
        win = inst.mask & (inst.confidence > best)
        owner[win] = i
        best[win] = inst.confidence
    label_map = (np.asarray(fill, np.int64).copy() if fill is not None else np.full((H, W), background_id, np.int64))
    out = []
    for i, inst in enumerate(instances):
        m = owner == i
        label_map[m] = inst.class_id
        if m.any():
            out.append(Instance(m, inst.class_id, inst.score, inst.class_prob, inst.prompts, inst.class_name))
    return label_map, out, claims


def refine(predictor, image, prompts, iou_threshold: float = 0.8, *, mask_choice: str = "score",
           classify: str = "auto", clip=None, probs=None, class_names: Sequence[str] | None = None,
           fill: str = "background", background_id: int | None = None, max_area_fraction: float = 0.5,
           min_class_prob: float = 0.0, min_area: int = 10, set_image: bool | str = "auto",
           multimask_output: bool = True, class_crop: str = "masked") -> Refined:
    """Prompt the segmenter once per prompt, keep one mask each, name it, resolve overlaps.

    Args:
        predictor: anything with SAM2ImagePredictor's ``set_image`` / ``predict``
            (``models.load_segmenter(...)``).
        image: uint8 H×W×3 RGB.
        prompts: a ``PromptExtraction`` or a list of ``prompts.Prompt``.
        iou_threshold: same-class masks with IoU above this merge (higher confidence kept).
        mask_choice: ``"score"`` (segmenter score) or ``"agreement"`` (IoU with the CLIP region).
        classify: where each mask's class comes from: ``"clip"`` — zero-shot classification of
            the mask's padded crop with ``clip`` over ``class_names`` (region-level, the most
            reliable); ``"dense"`` — the mean of ``probs`` inside the mask; ``"prompt"`` — keep
            the prompt's class; ``"auto"`` — clip if given, else dense if ``probs`` given, else prompt.
            Masks classified as background are dropped.
        clip: a ``models.ClipBundle`` (for ``classify="clip"``).
        probs: ``DenseResult`` or C×H×W probabilities (``classify="dense"``, ``fill="dense"``).
        class_names: the vocabulary (default: the names carried by ``probs`` or the prompts).
        fill: unclaimed pixels become ``"background"`` (``background_id``) or the ``"dense"`` argmax.
        background_id: class id of background (default: the class named "background", else 0).
        max_area_fraction: candidates covering more than this fraction of the image are
            rejected as background floods (1.0 disables).
        min_class_prob: drop instances whose class probability is below this.
        min_area: candidates smaller than this many pixels are rejected (edge slivers).
        class_crop: ``"masked"`` or ``"box"`` — what CLIP sees of each mask (see :func:`classify_masks`).
        set_image: call ``predictor.set_image(image)`` first: True, False (it already holds
            this image), or ``"auto"`` — only when the predictor last saw a different image
            (what makes slider re-runs cheap: SAM2's image encoder runs once).

    Returns:
        :class:`Refined` — ``label_map``, ``instances``, ``num_queries`` and every intermediate.
    """
    from . import prompts as _prompts

    img = _as_image(image)
    H, W = img.shape[:2]
    plist = list(prompts)
    for p in plist:
        if not isinstance(p, _prompts.Prompt):
            raise ValueError(f"prompts must be prompts.Prompt objects (from extract_prompts), got {type(p).__name__}")
        if p.region.shape != (H, W):
            raise ValueError(f"a prompt's region is {p.region.shape} but the image is {(H, W)}: "
                             "extract prompts from dense maps at the image's resolution")
    if not 0.0 <= float(iou_threshold) <= 1.0:
        raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold!r}")
    if mask_choice not in MASK_CHOICES:
        raise ValueError(f"mask_choice must be one of {MASK_CHOICES}, got {mask_choice!r}")
    if classify not in CLASSIFY:
        raise ValueError(f"classify must be one of {CLASSIFY}, got {classify!r}")
    if fill not in ("background", "dense"):
        raise ValueError(f"fill must be 'background' or 'dense', got {fill!r}")
    if not 0.0 < float(max_area_fraction) <= 1.0:
        raise ValueError(f"max_area_fraction must be in (0, 1], got {max_area_fraction!r}")
    p_arr, names = (None, [])
    if probs is not None:
        p_arr, names = _prompts.as_probs(probs)
        if p_arr.shape[1:] != (H, W):
            raise ValueError(f"probs are {p_arr.shape[1:]} but the image is {(H, W)}: resize the dense maps first")
    if isinstance(prompts, _prompts.PromptExtraction) and not names:
        names = list(prompts.class_names)
    names = list(class_names) if class_names is not None else names
    if classify == "auto":
        classify = "clip" if (clip is not None and names) else ("dense" if p_arr is not None else "prompt")
    if classify == "clip" and (clip is None or not names):
        raise ValueError("classify='clip' needs clip= (models.load_clip()) and class_names= (the vocabulary)")
    if (classify == "dense" or fill == "dense") and p_arr is None:
        raise ValueError(f"classify/fill='dense' needs probs= (the DenseResult the prompts came from)")
    if background_id is None:
        low = [n.split(",")[0].strip().lower() for n in names]
        background_id = low.index("background") if "background" in low else 0
    if plist:
        ensure_image(predictor, img, set_image)
    answers = _query(predictor, plist, multimask_output) if plist else []
    max_area = int(max_area_fraction * H * W) if max_area_fraction < 1.0 else None
    candidates, chosen, dropped = [], [], []
    for i, (p, (masks, scores)) in enumerate(zip(plist, answers)):
        k, agree, note = choose_mask(masks, scores, p.region, mask_choice, max_area, int(min_area))
        candidates.append(Candidate(i, p.class_id, masks, scores, agree, k, note))
        if k < 0:
            dropped.append((i, note))
        else:
            chosen.append((i, masks[k], float(scores[k])))
    # name each chosen mask
    if classify == "clip" and chosen:
        cp = classify_masks(clip, img, [m for _, m, _ in chosen], names, crop=class_crop)
    elif classify == "dense" and chosen:
        cp = np.stack([p_arr[:, m].mean(1) for _, m, _ in chosen])
    else:
        cp = None
    before = []
    for j, (i, m, s) in enumerate(chosen):
        if cp is not None:
            c = int(np.argmax(cp[j]))
            prob = float(cp[j, c])
        else:
            c, prob = plist[i].class_id, float(plist[i].confidence)
        if c == background_id and cp is not None:
            dropped.append((i, f"classified as background ({prob:.2f})"))
            continue
        if prob < min_class_prob:
            dropped.append((i, f"class probability {prob:.2f} < min_class_prob"))
            continue
        before.append(Instance(m, c, s, prob, [i], names[c] if c < len(names) else ""))
    merged = merge_duplicates(before, float(iou_threshold))
    fill_map = p_arr.argmax(0) if fill == "dense" else None
    label_map, instances, claims = resolve_overlaps(merged, (H, W), background_id, fill_map)
    params = dict(iou_threshold=float(iou_threshold), mask_choice=mask_choice, classify=classify, fill=fill,
                  background_id=background_id, max_area_fraction=float(max_area_fraction),
                  min_class_prob=float(min_class_prob), min_area=int(min_area), class_crop=class_crop)
    return Refined(label_map, instances, len(plist), candidates, before, claims, dropped, params)


# ============================================================================= blind grid baseline
def grid_points(shape: tuple[int, int], points_per_side: int = 32) -> np.ndarray:
    """(n², 2) xy points on a regular grid at cell centres (SAM's automatic-mask-generator layout)."""
    H, W = shape
    n = int(points_per_side)
    if n < 1:
        raise ValueError(f"points_per_side must be ≥ 1, got {points_per_side!r}")
    xs = (np.arange(n) + 0.5) * W / n - 0.5
    ys = (np.arange(n) + 0.5) * H / n - 0.5
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], 1)


def grid_baseline(predictor, image, points_per_side: int = 32, *, clip=None, class_names: Sequence[str] | None = None,
                  iou_threshold: float = 0.8, max_area_fraction: float = 0.5, min_area: int = 10,
                  background_id: int | None = None, set_image: bool | str = "auto", class_crop: str = "masked") -> Refined:
    """The blind baseline: prompt the segmenter at every point of an N×N grid (N² queries),
    keep each point's best mask, drop duplicates (IoU > ``iou_threshold``, class-agnostic),
    name the survivors with CLIP (when ``clip`` and ``class_names`` are given) and resolve
    overlaps like :func:`refine`. With SAM2 this is ``SAM2AutomaticMaskGenerator``
    (``points_per_side=N``); its masks are named the same way."""
    img = _as_image(image)
    H, W = img.shape[:2]
    names = list(class_names) if class_names is not None else []
    if background_id is None:
        low = [n.split(",")[0].strip().lower() for n in names]
        background_id = low.index("background") if "background" in low else 0
    max_area = int(max_area_fraction * H * W) if max_area_fraction < 1.0 else None
    n = int(points_per_side)
    pts = grid_points((H, W), n)
    found: list[Instance] = []
    if _is_sam2(predictor):
        from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

        gen = SAM2AutomaticMaskGenerator(predictor.model, points_per_side=n, box_nms_thresh=float(iou_threshold))
        for rec in gen.generate(img):
            m = np.asarray(rec["segmentation"], bool)
            if m.sum() >= min_area and (max_area is None or m.sum() <= max_area):
                found.append(Instance(m, -1, float(rec["predicted_iou"]), 1.0, []))
    else:
        ensure_image(predictor, img, set_image)
        for i, p in enumerate(pts):
            masks, scores, _ = predictor.predict(point_coords=p[None], point_labels=np.array([1]), multimask_output=True)
            masks = np.asarray(masks) > 0
            k, _, _ = choose_mask(masks, np.asarray(scores, np.float32).reshape(-1), None, "score", max_area, min_area)
            if k >= 0:
                found.append(Instance(masks[k], -1, float(np.asarray(scores).reshape(-1)[k]), 1.0, [i]))
    found = merge_duplicates(found, float(iou_threshold))  # class -1 for all: class-agnostic
    before: list[Instance] = []
    if clip is not None and names and found:
        cp = classify_masks(clip, img, [f.mask for f in found], names, crop=class_crop)
        for f, pr in zip(found, cp):
            c = int(np.argmax(pr))
            if c != background_id:
                before.append(Instance(f.mask, c, f.score, float(pr[c]), f.prompts, names[c]))
    else:
        before = [Instance(f.mask, background_id + 1, f.score, 1.0, f.prompts) for f in found]
    label_map, instances, claims = resolve_overlaps(before, (H, W), background_id)
    return Refined(label_map, instances, n * n, [], before, claims, [],
                   dict(points_per_side=n, iou_threshold=float(iou_threshold)))
