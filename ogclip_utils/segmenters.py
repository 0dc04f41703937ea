"""Promptable segmenters with ``SAM2ImagePredictor``'s interface: the classical stand-in and SAM2.1.

Both follow SAM2's split between expensive and cheap work: ``set_image(img)`` once, then many
``predict(point_coords, point_labels, box=None, multimask_output=True) -> (masks C×H×W bool,
scores C, low-res logits C×256×256)`` calls.

- :class:`ClassicalSegmenter` — offline, no weights: colour-distance region growing.
- :func:`load_sam2` — SAM2.1 through the official ``sam2`` package (``build_sam2`` with
  package-relative config names, weights loaded with ``weights_only=True``).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from . import env, weights
from .arrays import resize_float
from .checks import check_image as _as_image, check_pixel_box as _check_box, check_points as _check_points

LOWRES = 256  # side of the low-resolution logits, as SAM2 returns them


class ClassicalSegmenter:
    """A promptable segmenter with ``SAM2ImagePredictor``'s interface, built on colour distances.

    ``set_image(image)`` stores the image as float RGB (and its smoothed copy);
    ``predict(point_coords, point_labels, box=None, multimask_output=True)`` returns
    ``(masks C×H×W bool, scores C float32, low_res_logits C×256×256 float32)`` with C = 3
    nested candidates — *part* ⊆ *object* ⊆ *whole*, SAM's three granularities — or C = 1 (the
    object) without ``multimask_output``.

    How one prediction works (region growing in colour space):

    1. the *object colour* is the median of the 3×3 patch at each positive point; ``D(x)``
       is a pixel's colour distance to the nearest object colour;
    2. the *core* is the 4-connected component of ``D < core_tolerance`` (measured on the
       image smoothed with a Gaussian of ``smooth`` px, so pixel noise does not stop it)
       holding the positive points (a flood fill);
    3. the *surround colours* are sampled in a ring 2–4 px outside the core (pixels that
       are not object-coloured) plus the colours at negative points; ``N(x)`` is a pixel's
       distance to the nearest surround colour;
    4. the **object** is the connected part of ``D < alpha · N`` that holds a positive point,
       limited to ``grow`` px around the core. ``alpha = 1`` is the perpendicular bisector
       between object and surround colour: for an anti-aliased edge (a linear blend of the two
       colours) it keeps exactly the pixels with coverage ≥ 0.5 — the shapes world's
       ground-truth rule;
    5. the **part** is the object within ``part_scale`` × its equivalent radius √(area/π) of
       the nearest positive point — the piece around the click (the object itself when the
       object is no wider than that);
    6. the **whole** is the object together with every region touching it that is not
       background-coloured (far from every colour on the image border): objects that touch
       form one whole (the object itself when nothing touches it);
    7. the scores play the part of SAM's predicted IoU: the object's *stability score* (the IoU
       of its masks at ``alpha·(1 − delta)`` and ``alpha·(1 + delta)``: high when the boundary
       does not move as the threshold changes, i.e. when the colour edge is sharp) times each
       candidate's IoU with the object. The stand-in believes the flat-colour region is what
       you meant, so the object always ranks first and the part and the whole score by how
       much of it they miss or add; SAM2 learned its ranking and may put the part or the
       whole first when a click is ambiguous.

    Negative points add their colour to the surround set and, when a negative point is still
    inside a candidate (same colour as the object), cut the candidate spatially: pixels
    nearer to a negative point than to every positive point are removed. A box limits all
    candidates to the box; a box without positive points uses the most interior pixel of the
    region whose colour differs most from the box border as its positive point.
    The low-resolution logits are ``alpha·N − D`` (positive inside; for the part and the whole
    the same magnitude, signed by the candidate) resized to 256×256.

    Limits (honest): this works because shapes-world objects are flat-coloured regions on a
    smoother, differently coloured background. On photos it is a colour flood fill: it
    follows colour, not objects — it stops at texture and shading edges (a striped shirt or
    a shadowed face gives a fragment), leaks into neighbours of similar colour (a brown dog
    on a brown sofa), and knows nothing of object shape. Use SAM2.1 (``OGCLIP_MODE=real``,
    ``models.load_segmenter("sam2.1-hiera-tiny")``) for photos.

    Args:
        core_tolerance: colour distance (0–255 RGB units) of the seed flood fill.
        smooth: Gaussian sigma (px) of the image the flood fill runs on.
        alpha: the object's bisector factor (1 = pixels with coverage ≥ 0.5).
        part_scale: the part's radius over the object's equivalent radius, in (0, 1).
        grow: how many pixels the object may extend beyond the core.
        delta: relative threshold offset of the stability score.
    """

    def __init__(self, core_tolerance: float = 24.0, alpha: float = 1.0, part_scale: float = 0.6,
                 grow: int = 3, delta: float = 0.15, smooth: float = 0.0):
        if not core_tolerance > 0:
            raise ValueError(f"core_tolerance must be > 0 (RGB distance), got {core_tolerance}")
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0 (1 = the bisector between object and surround colour), got {alpha}")
        if not 0 < part_scale < 1:
            raise ValueError(f"part_scale must be in (0, 1) (the part's radius over the object's), got {part_scale}")
        if not 0 < delta < 1:
            raise ValueError(f"delta must be in (0, 1), got {delta}")
        self.core_tolerance = float(core_tolerance)
        self.alpha = float(alpha)
        self.part_scale = float(part_scale)
        self.grow = int(grow)
        self.delta = float(delta)
        self.smooth = float(smooth)
        self._img: np.ndarray | None = None
        self._orig_hw: tuple[int, int] | None = None
        self._not_background: np.ndarray | None = None

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
        self._not_background = None  # computed by the first _whole

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

    def _box_seed(self, box: tuple[int, int, int, int], band: int = 3) -> np.ndarray:
        """A positive point (x, y) for a box alone: the most interior pixel of the biggest
        region inside the box whose colour differs from the surroundings — the pixels in a
        ``band``-pixel frame just outside the box (a tight box's own border is mostly object),
        or the box's border rows and columns when the box fills the image."""
        x0, y0, x1, y1 = box
        H, W = self._orig_hw
        sub = self._img[y0:y1, x0:x1]
        X0, Y0, X1, Y1 = max(0, x0 - band), max(0, y0 - band), min(W, x1 + band), min(H, y1 + band)
        frame = np.ones((Y1 - Y0, X1 - X0), bool)
        frame[y0 - Y0:y1 - Y0, x0 - X0:x1 - X0] = False
        border = self._img[Y0:Y1, X0:X1][frame]
        if len(border) == 0:
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
            multimask_output: three nested candidates, part ⊆ object ⊆ whole (True), or the object only.
            mask_input, return_logits, normalize_coords: accepted for SAM2 compatibility;
                ignored (masks are always bool, coordinates always pixels).

        Returns:
            masks (C, H, W) bool, scores (C,) float32 in [0, 1] (stability × IoU with the object),
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
        cut = np.ones((H, W), bool)
        if len(neg):  # spatial cut: pixels nearer a negative point than any positive point
            yy, xx = np.mgrid[0:H, 0:W]
            dpos = np.min([(xx - x) ** 2 + (yy - y) ** 2 for x, y in pos], axis=0)
            dneg = np.min([(xx - x) ** 2 + (yy - y) ** 2 for x, y in neg], axis=0)
            cut = dpos <= dneg
            allowed &= cut

        def grow_mask(alpha: float) -> np.ndarray:
            return self._component((D < alpha * N) & allowed, seeds)

        a = self.alpha
        obj = grow_mask(a)
        lo, hi = grow_mask(a * (1 - self.delta)), grow_mask(a * (1 + self.delta))
        stability = float((lo & hi).sum()) / max(float((lo | hi).sum()), 1.0)
        obj_logits = np.where(allowed, a * N - D, -np.maximum(D, 1.0)).astype(np.float32) / 10.0
        if not multimask_output:
            return (obj[None], np.asarray([stability], np.float32),
                    resize_float(obj_logits, LOWRES)[None].astype(np.float32))
        part = self._part(obj, seeds)
        whole = self._whole(obj, seeds, inside & cut)
        masks = [part, obj, whole]
        area = max(float(obj.sum()), 1.0)
        # score = stability × IoU with the object (part ⊆ object ⊆ whole, so the IoU is an area ratio)
        scores = [stability * float(part.sum()) / area, stability, stability * area / max(float(whole.sum()), 1.0)]
        # low-res logits: the object's colour margin, signed by each candidate (positive inside)
        mag = np.abs(obj_logits) + 0.1
        logits = [resize_float(obj_logits if m is obj else np.where(m, mag, -mag).astype(np.float32), LOWRES)
                  for m in masks]
        return np.stack(masks), np.asarray(scores, np.float32), np.stack(logits).astype(np.float32)

    def _part(self, obj: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """The object within ``part_scale`` × its equivalent radius √(area/π) of the nearest
        positive point (the piece around the click), as one connected piece holding a seed."""
        H, W = obj.shape
        click = np.ones((H, W), bool)
        click[seeds[:, 0], seeds[:, 1]] = False
        r = self.part_scale * np.sqrt(max(float(obj.sum()), 1.0) / np.pi)
        part = self._component(obj & (ndi.distance_transform_edt(click) <= r), seeds)
        return part if part.any() else obj.copy()

    def _whole(self, obj: np.ndarray, seeds: np.ndarray, allowed: np.ndarray) -> np.ndarray:
        """The object and every region touching it (within 2 px, at least 3 px thick) that is not
        background-coloured (farther than ``2 × core_tolerance`` from every colour on the
        smoothed image's border; limited to ``allowed``): objects that touch form one whole, as
        a cup and its saucer. The object itself when nothing touches it."""
        if self._not_background is None:  # once per image
            sm = self._smoothed
            border = np.concatenate([sm[0], sm[-1], sm[:, 0], sm[:, -1]])
            border = border[:: max(1, len(border) // 128)].astype(np.float32)
            self._not_background = self._dist(border, smoothed=True) >= 2.0 * self.core_tolerance
        fg = self._not_background & allowed
        # regions at least 3 px thick (an opening drops the object's own anti-aliased fringe)
        # that come within 2 px of the object
        extra = ndi.binary_opening(fg & ~obj, structure=np.ones((3, 3), bool))
        lab, n = ndi.label(extra)
        near = np.unique(lab[ndi.binary_dilation(obj, iterations=2)])
        near = near[near > 0]
        if not len(near):
            return obj.copy()
        touching = ndi.binary_dilation(np.isin(lab, near), iterations=1) & fg
        return self._component(obj | touching, seeds)


SAM2_PRECISIONS = ("auto", "fp32", "amp-bf16", "amp-fp16")


def resolve_sam2_precision(precision: str, device) -> str:
    """What ``precision`` means for SAM2 on ``device``.

    ``"auto"``: CUDA → ``"amp-bf16"`` where the GPU supports bfloat16 (what SAM2's own examples
    run: ``torch.autocast("cuda", dtype=torch.bfloat16)``), else ``"amp-fp16"``; a CPU with
    native bfloat16 instructions (``avx512_bf16`` or ``amx_bf16`` in ``env.cpu_flags()``) →
    ``"amp-bf16"`` (measured on an AMD Zen 4 with AVX-512 BF16, 2 threads: SAM2.1-tiny
    ``set_image`` on a 451×300 image 2.66 s in fp32, 2.02 s under bf16 autocast; ``predict``
    67 vs 62 ms); any other CPU and MPS → ``"fp32"`` (without those instructions bf16 is
    emulated). ``"amp-bf16"`` / ``"amp-fp16"`` force autocast (``"amp-fp16"`` needs CUDA);
    ``"fp32"`` turns it off. Weights stay float32 in every case."""
    import torch

    if precision not in SAM2_PRECISIONS:
        raise ValueError(f"SAM2 precision must be one of {SAM2_PRECISIONS}, got {precision!r}")
    dev = torch.device(device) if device is not None else env.get_device()
    if precision == "auto":
        if dev.type == "cuda":
            return "amp-bf16" if torch.cuda.is_bf16_supported() else "amp-fp16"
        return "amp-bf16" if dev.type == "cpu" and env.cpu_flags() & {"avx512_bf16", "amx_bf16"} else "fp32"
    if precision == "amp-fp16" and dev.type != "cuda":
        raise ValueError("SAM2 precision 'amp-fp16' needs a CUDA device; use 'fp32' or 'amp-bf16' on a CPU")
    return precision


def sam2_autocast(predictor):
    """The autocast context a SAM2 predictor's calls run under (``predictor.ogclip_precision``, set
    by :func:`load_sam2`); a no-op for fp32 and for any other segmenter."""
    import contextlib

    import torch

    prec = getattr(predictor, "ogclip_precision", "fp32")
    if not str(prec).startswith("amp-"):
        return contextlib.nullcontext()
    dev = getattr(predictor, "device", None) or torch.device("cpu")
    return torch.autocast(torch.device(dev).type, dtype=torch.bfloat16 if prec == "amp-bf16" else torch.float16)


def load_sam2(name: str = "sam2.1-hiera-tiny", checkpoint: str | None = None, device: str | None = None,
              model_cfg: str | None = None, precision: str = "auto"):
    """Build SAM2.1 with ``build_sam2`` (package-relative config names) and wrap it in
    ``SAM2ImagePredictor``. Weights are loaded by us with ``weights_only=True``.
    ``precision`` (:func:`resolve_sam2_precision`) is kept as ``predictor.ogclip_precision``;
    the refinement code runs every SAM2 call under :func:`sam2_autocast`."""
    import torch

    try:
        from sam2.build_sam import build_sam2
        from sam2.sam2_image_predictor import SAM2ImagePredictor
    except ImportError as exc:
        raise weights.CheckpointError("the `sam2` package is not installed: pip install sam2") from exc
    ck = weights.entry(name)
    cfg = model_cfg or ck.extra["config"]
    dev = env.get_device(device)
    model = build_sam2(cfg, ckpt_path=None, device=str(dev), mode="eval")
    if checkpoint != "random":
        path = weights.local_file(ck.name, checkpoint)
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - re-raised with advice
            raise weights.CheckpointError(f"{path} could not be loaded as a SAM2 checkpoint ({exc}); delete it and download again") from exc
        sd = sd.get("model", sd)
        missing, unexpected = model.load_state_dict(sd, strict=False)
        if missing or unexpected:
            raise weights.CheckpointError(f"{path} does not match {cfg}: missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]}; "
                                          "pass the matching --model-cfg")
    model = model.to(dev).eval()
    predictor = SAM2ImagePredictor(model)
    predictor.ogclip_precision = resolve_sam2_precision(precision, dev)
    return predictor
