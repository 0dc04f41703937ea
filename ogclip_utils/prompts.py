"""Prompt extraction: from a dense class-probability map to point prompts for a segmenter.

Each step is a small function on numpy arrays, and :func:`extract_prompts` keeps every
intermediate so notebooks can draw it:

1. :func:`confident_regions` — per pixel the argmax class, kept where its probability
   ≥ ``min_confidence`` (``thresholded``: class id, or -1 where not confident);
2. :func:`components` — per class, 8-connected components (``scipy.ndimage.label``);
3. size filter — components smaller than ``min_region_size`` pixels are dropped;
4. :func:`positive_points` — one point **guaranteed inside** each region (its centroid
   when that lies inside, else its most interior pixel), more points spread by
   farthest-point sampling over the region's interior;
5. :func:`negative_points` — points on other classes' confident regions (probability ≥
   ``negative_confidence_threshold``), at least ``min_negative_distance`` px away from the
   region, spread by farthest-point sampling.

Points are float (x, y) in pixels; labels 1 = positive, 0 = negative (SAM's convention).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy import ndimage as ndi

from .arrays import mask_box

EIGHT = np.ones((3, 3), bool)  # 8-connectivity for scipy.ndimage.label


@dataclass
class Prompt:
    """Point prompts for one confident region.

    ``points`` (K, 2) float (x, y) pixels; ``labels`` (K,) int, 1 = positive, 0 = negative;
    ``region`` bool H×W (the size-filtered component the points came from); ``confidence``
    the mean probability of ``class_id`` inside the region.
    """

    class_id: int
    points: np.ndarray
    labels: np.ndarray
    region: np.ndarray
    confidence: float
    class_name: str = ""

    @property
    def positive(self) -> np.ndarray:
        """(P, 2) positive points."""
        return self.points[self.labels == 1]

    @property
    def negative(self) -> np.ndarray:
        """(N, 2) negative points."""
        return self.points[self.labels == 0]

    @property
    def area(self) -> int:
        return int(self.region.sum())

    @property
    def box(self) -> tuple[float, float, float, float]:
        """Tight (x0, y0, x1, y1) box of the region (x1/y1 exclusive)."""
        return mask_box(self.region)

    def __repr__(self) -> str:
        name = f" {self.class_name!r}" if self.class_name else ""
        return (f"Prompt(class {self.class_id}{name}, {int((self.labels == 1).sum())} positive / "
                f"{int((self.labels == 0).sum())} negative points, region {self.area} px, "
                f"confidence {self.confidence:.3g})")


@dataclass
class PromptExtraction:
    """The prompts and every intermediate of :func:`extract_prompts`. Iterates like the list of prompts.

    Attributes:
        prompts: the :class:`Prompt` list (possibly empty — see ``message``).
        argmax: int H×W, the most probable class per pixel.
        max_prob: float32 H×W, its probability.
        thresholded: int H×W, class id where ``max_prob ≥ min_confidence``, else -1
            (skipped classes such as background are -1 too).
        components: int H×W, component id (1…n) over all classes before the size filter, 0 elsewhere.
        component_class, component_size: class id and pixel count of each component (index id-1).
        kept: int H×W, like ``components`` but only components that passed the size filter.
        class_names: names of the classes, when the input carried them.
        params: the parameters used.
        message: a human-readable summary (says why when there are no prompts).
    """

    prompts: list[Prompt]
    argmax: np.ndarray
    max_prob: np.ndarray
    thresholded: np.ndarray
    components: np.ndarray
    component_class: list[int]
    component_size: list[int]
    kept: np.ndarray
    class_names: list[str] = field(default_factory=list)
    params: dict = field(default_factory=dict)
    message: str = ""

    def __len__(self) -> int:
        return len(self.prompts)

    def __iter__(self):
        return iter(self.prompts)

    def __getitem__(self, i):
        return self.prompts[i]

    @property
    def num_components(self) -> int:
        return len(self.component_class)

    @property
    def num_kept(self) -> int:
        return int(len(np.unique(self.kept[self.kept > 0])))


# ----------------------------------------------------------------------------- validation
def as_probs(probs) -> tuple[np.ndarray, list[str]]:
    """Accept a ``DenseResult`` (``.probs`` C×H×W, ``.classes``) or a C×H×W array; return
    (float32 C×H×W, class names or [])."""
    names: list[str] = []
    if hasattr(probs, "probs"):
        classes = getattr(probs, "classes", None)
        if classes is not None:
            names = [c if isinstance(c, str) else str(getattr(c, "name", c)) for c in classes]
        probs = probs.probs
    if hasattr(probs, "detach"):  # torch tensor
        probs = probs.detach().cpu().numpy()
    arr = np.asarray(probs)
    if arr.ndim != 3:
        raise ValueError(f"probs must be a C×H×W array (or a DenseResult), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError("probs has no classes (C = 0): the vocabulary is empty; pass at least one class name")
    if arr.shape[1] < 1 or arr.shape[2] < 1:
        raise ValueError(f"probs has an empty spatial size {arr.shape[1:]}")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"probs must be real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError("probs contains NaN or inf; check the dense stage (e.g. a zero logit scale or empty crops)")
    if names and len(names) != arr.shape[0]:
        raise ValueError(f"DenseResult has {len(names)} class names but {arr.shape[0]} probability maps")
    return arr, names


def _check_unit(name: str, value: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}") from None
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{name} must be in [0, 1] (a probability), got {value!r}")
    return v


def _check_count(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer ≥ {minimum}, got {value!r}")
    return int(value)


FIRST_POINTS = ("centroid", "interior")


@dataclass(frozen=True)
class PromptConfig:
    """Settings of prompt extraction, validated once (the CLI flags and the sliders read their defaults here).

    min_confidence: a pixel joins its argmax class's region when that probability ≥ this (0–1).
    min_region_size: connected regions smaller than this many pixels are dropped (noise).
    points_per_cluster: positive points per region (≥ 1; the first is guaranteed inside).
    negative_points_per_cluster: negative points per region (≥ 0).
    negative_confidence_threshold: other classes' pixels qualify as negatives at this probability (0–1).
    min_negative_distance: negatives stay at least this many pixels away from the region.
    first_point: ``"centroid"`` (the centroid if inside, else the most interior pixel) or ``"interior"``.
    """

    min_confidence: float = 0.3
    min_region_size: int = 40
    points_per_cluster: int = 1
    negative_points_per_cluster: int = 0
    negative_confidence_threshold: float = 0.8
    min_negative_distance: float = 10.0
    first_point: str = "centroid"

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "min_confidence", _check_unit("min_confidence", self.min_confidence))
        set_(self, "negative_confidence_threshold",
             _check_unit("negative_confidence_threshold", self.negative_confidence_threshold))
        set_(self, "min_region_size", _check_count("min_region_size", self.min_region_size, 0))
        set_(self, "points_per_cluster", _check_count("points_per_cluster", self.points_per_cluster, 1))
        set_(self, "negative_points_per_cluster",
             _check_count("negative_points_per_cluster", self.negative_points_per_cluster, 0))
        try:
            dist = float(self.min_negative_distance)
        except (TypeError, ValueError):
            dist = float("nan")
        if not dist >= 0:
            raise ValueError(f"min_negative_distance must be ≥ 0 pixels, got {self.min_negative_distance!r}")
        set_(self, "min_negative_distance", dist)
        if self.first_point not in FIRST_POINTS:
            raise ValueError(f"first_point must be one of {FIRST_POINTS}, got {self.first_point!r}")


# ----------------------------------------------------------------------------- steps
def confident_regions(probs: np.ndarray, min_confidence: float,
                      skip_classes: Sequence[int] = ()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(argmax int H×W, max_prob float32 H×W, thresholded int H×W with -1 where not confident)."""
    argmax = probs.argmax(0)
    max_prob = probs.max(0)
    thr = np.where(max_prob >= min_confidence, argmax, -1)
    for c in skip_classes:
        thr[thr == c] = -1
    return argmax, max_prob, thr


def components(thresholded: np.ndarray) -> tuple[np.ndarray, list[int], list[int]]:
    """8-connected components per class of a thresholded map.

    Returns (ids int H×W with 1…n, 0 = none; class of each component; size of each component),
    components numbered class by class in raster order.
    """
    out = np.zeros(thresholded.shape, np.int32)
    cls, size = [], []
    for c in np.unique(thresholded[thresholded >= 0]):
        lab, n = ndi.label(thresholded == c, structure=EIGHT)
        if n == 0:
            continue
        sizes = np.bincount(lab.ravel(), minlength=n + 1)[1:]
        out[lab > 0] = lab[lab > 0] + len(cls)
        cls += [int(c)] * n
        size += [int(s) for s in sizes]
    return out, cls, size


def _interior_distance(region: np.ndarray) -> np.ndarray:
    """Euclidean distance of each region pixel to the nearest non-region pixel (image border counts as outside)."""
    return ndi.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]


def farthest_point_sampling(candidates: np.ndarray, k: int, start: np.ndarray | None = None) -> np.ndarray:
    """Pick ``k`` rows of ``candidates`` (M×2) greedily, each the farthest from all picked so far.

    ``start`` (S×2) are points already chosen (they steer the spread but are not returned);
    without it the first pick is ``candidates[0]``. Deterministic (ties → lowest index).
    Returns (min(k, M), 2).
    """
    cand = np.asarray(candidates, float).reshape(-1, 2)
    if k <= 0 or len(cand) == 0:
        return np.zeros((0, 2), float)
    picked = []
    if start is None or len(start) == 0:
        picked.append(0)
        d = np.linalg.norm(cand - cand[0], axis=1)
    else:
        d = np.min(np.linalg.norm(cand[:, None, :] - np.asarray(start, float)[None], axis=2), axis=1)
    while len(picked) < min(k, len(cand)):
        i = int(np.argmax(d))
        if d[i] <= 0 and picked:
            break  # every candidate is already picked
        picked.append(i)
        d = np.minimum(d, np.linalg.norm(cand - cand[i], axis=1))
    return cand[picked]


def positive_points(region: np.ndarray, n: int = 1, prob: np.ndarray | None = None,
                    first: str = "centroid") -> np.ndarray:
    """``n`` points (n, 2) xy guaranteed inside ``region`` (bool H×W).

    The first point is the region's centroid when that pixel lies inside (``first="centroid"``),
    otherwise — and always with ``first="interior"`` — the most interior pixel (largest
    distance to the boundary; ties broken by the higher ``prob``). Rings, crosses and
    crescents have centroids outside themselves, which is why the check matters.
    Further points are spread by farthest-point sampling over the interior pixels (at least
    half the maximum boundary distance deep), so they do not sit on the blurry edge.
    """
    if first not in ("centroid", "interior"):
        raise ValueError(f"first must be 'centroid' or 'interior', got {first!r}")
    ys, xs = np.nonzero(region)
    if len(xs) == 0:
        raise ValueError("region is empty: cannot place a point inside it")
    dist = _interior_distance(region)
    cy, cx = int(round(ys.mean())), int(round(xs.mean()))
    if first == "centroid" and region[cy, cx]:
        p0 = np.array([cx, cy], float)
    else:
        score = dist + (1e-3 * prob if prob is not None else 0.0)
        y, x = np.unravel_index(int(np.argmax(np.where(region, score, -1))), region.shape)
        p0 = np.array([x, y], float)
    if n <= 1:
        return p0[None]
    deep = region & (dist >= max(1.0, 0.5 * dist.max()))
    dy, dx = np.nonzero(deep)
    more = farthest_point_sampling(np.stack([dx, dy], 1), n - 1, start=p0[None])
    return np.concatenate([p0[None], more])


def negative_points(region: np.ndarray, other: np.ndarray, n: int, min_distance: float = 10.0) -> np.ndarray:
    """Up to ``n`` points (≤n, 2) xy on ``other`` (bool H×W: other classes' confident pixels)
    at least ``min_distance`` px from ``region``: the nearest such pixel first, then spread
    by farthest-point sampling."""
    if n <= 0:
        return np.zeros((0, 2), float)
    far = ndi.distance_transform_edt(~region) >= min_distance
    ys, xs = np.nonzero(other & far)
    if len(xs) == 0:
        return np.zeros((0, 2), float)
    cand = np.stack([xs, ys], 1).astype(float)
    d = ndi.distance_transform_edt(~region)[ys, xs]
    order = np.argsort(d, kind="stable")
    return farthest_point_sampling(cand[order], n)


# ----------------------------------------------------------------------------- entry point
_D = PromptConfig()


def extract_prompts(probs, min_confidence: float = _D.min_confidence, min_region_size: int = _D.min_region_size,
                    points_per_cluster: int = _D.points_per_cluster,
                    negative_points_per_cluster: int = _D.negative_points_per_cluster,
                    negative_confidence_threshold: float = _D.negative_confidence_threshold,
                    min_negative_distance: float = _D.min_negative_distance, skip_classes: Sequence[int] | None = None,
                    classes: Sequence[int] | None = None, first_point: str = _D.first_point) -> PromptExtraction:
    """Turn a dense probability map into point prompts, one :class:`Prompt` per confident region.

    Args:
        probs: a ``DenseResult`` or a float C×H×W array of class probabilities.
        min_confidence: a pixel joins its argmax class's region when that probability ≥ this.
        min_region_size: components smaller than this many pixels are dropped (noise).
        points_per_cluster: positive points per region (1 = one guaranteed-inside point).
        negative_points_per_cluster: negative points per region (0 = none).
        negative_confidence_threshold: other classes' pixels qualify as negatives when their
            probability ≥ this.
        min_negative_distance: negatives stay at least this many pixels away from the region.
        skip_classes: class ids never prompted (default: classes named "background", or id 0
            for a bare array). Skipped classes still provide negative points.
        classes: prompt only these class ids (e.g. one target class); default all.
        first_point: ``"centroid"`` (centroid if inside, else most interior) or ``"interior"``.
        (The settings are validated by :class:`PromptConfig`, which holds their defaults.)

    Returns:
        :class:`PromptExtraction` — iterate it for the prompts; ``.message`` explains an empty result.
    """
    p, names = as_probs(probs)
    cfg = PromptConfig(min_confidence, min_region_size, points_per_cluster, negative_points_per_cluster,
                       negative_confidence_threshold, min_negative_distance, first_point)
    min_confidence, min_region_size = cfg.min_confidence, cfg.min_region_size
    points_per_cluster, negative_points_per_cluster = cfg.points_per_cluster, cfg.negative_points_per_cluster
    negative_confidence_threshold, min_negative_distance = cfg.negative_confidence_threshold, cfg.min_negative_distance
    C = p.shape[0]
    if skip_classes is None:
        skip_classes = [i for i, n in enumerate(names) if n.strip().lower() == "background"] if names else [0]
    skip = [int(c) for c in skip_classes]
    if classes is not None:
        classes = [int(c) for c in classes]
        bad = [c for c in classes if not 0 <= c < C]
        if bad:
            raise ValueError(f"classes {bad} are out of range for {C} probability maps (valid ids 0…{C - 1})")
    argmax, max_prob, thr = confident_regions(p, min_confidence, skip)
    if classes is not None:
        thr = np.where(np.isin(thr, classes), thr, -1)
    comp, comp_cls, comp_size = components(thr)
    keep_ids = [i + 1 for i, s in enumerate(comp_size) if s >= min_region_size]
    kept = np.where(np.isin(comp, keep_ids), comp, 0).astype(np.int32)
    strong = max_prob >= negative_confidence_threshold
    prompts: list[Prompt] = []
    for cid in keep_ids:
        region = comp == cid
        c = comp_cls[cid - 1]
        pos = positive_points(region, points_per_cluster, prob=p[c], first=first_point)
        neg = negative_points(region, strong & (argmax != c), negative_points_per_cluster, min_negative_distance)
        pts = np.concatenate([pos, neg]).astype(np.float32)
        labels = np.concatenate([np.ones(len(pos), np.int64), np.zeros(len(neg), np.int64)])
        prompts.append(Prompt(c, pts, labels, region, float(p[c][region].mean()), names[c] if names else ""))
    params = dict(min_confidence=min_confidence, min_region_size=min_region_size, points_per_cluster=points_per_cluster,
                  negative_points_per_cluster=negative_points_per_cluster,
                  negative_confidence_threshold=negative_confidence_threshold,
                  min_negative_distance=float(min_negative_distance), skip_classes=skip, classes=classes,
                  first_point=first_point)
    if prompts:
        message = (f"{len(prompts)} prompt(s) from {len(comp_cls)} confident component(s); "
                   f"{len(comp_cls) - len(prompts)} smaller than {min_region_size} px dropped")
    elif not comp_cls:
        best = float(max_prob.max())
        message = (f"no prompts: no pixel of a prompted class reached min_confidence={min_confidence:.3g} "
                   f"(highest probability anywhere {best:.3g}); lower min_confidence")
    else:
        message = (f"no prompts: all {len(comp_cls)} confident component(s) are smaller than "
                   f"min_region_size={min_region_size} px (largest {max(comp_size)} px); lower min_region_size")
    return PromptExtraction(prompts, argmax, max_prob.astype(np.float32), thr.astype(np.int32), comp, comp_cls,
                            comp_size, kept, names, params, message)
