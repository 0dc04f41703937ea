"""Scoring label maps against ground truth: one accumulator, one result class, fed by any predict function.

Every stage is scored the same way (notebooks 02, 04 and 06, ``make bench`` and the
``benchmark`` command): a predict function turns an image into a label map, an
:class:`Accumulator` sums one confusion matrix over the whole set (plus seconds per stage
and segmenter queries; the sums can be all-reduced over processes), and :class:`Scores`
reads the published metrics off it (:mod:`ogclip_utils.metrics`: mmsegmentation's
definitions, 255 ignored).

- :func:`accumulate` — run ``predict`` over (image, label) pairs into an :class:`Accumulator`;
- :func:`compare_methods` — every dense method on the same images (notebook 02);
- :func:`benchmark_scenes` — the whole chain on shapes scenes, dense argmax and refined map
  scored side by side (notebook 04);
- :func:`guided_vs_grid` — the guided chain against a blind point grid (notebook 06, ``make bench``).

A predict function returns either a label map (int H×W, the ground truth's class ids) or
``(label_map, timings, queries)`` with ``timings`` in seconds per stage.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from tqdm.auto import tqdm

from . import data, dense, metrics, models, pipeline, refine

@dataclass
class Accumulator:
    """Sums over images (all-reducible): confusion matrix, seconds per stage, queries."""

    confusion: np.ndarray  # int64 C×C, rows = ground truth
    stage_seconds: dict[str, float] = field(default_factory=dict)
    queries: int = 0
    images: int = 0

    @classmethod
    def empty(cls, num_classes: int) -> "Accumulator":
        return cls(np.zeros((int(num_classes), int(num_classes)), np.int64))

    def add(self, pred: np.ndarray, gt: np.ndarray, timings: dict[str, float] | None = None, queries: int = 0,
            ignore_index: int = 255) -> None:
        """Add one image: ``pred`` and ``gt`` int H×W of the same shape (``ignore_index`` in ``gt`` is skipped)."""
        pred, gt = np.asarray(pred), np.asarray(gt)
        if pred.shape != gt.shape:
            raise ValueError(f"prediction shape {pred.shape} differs from the ground truth's {gt.shape}; "
                             "resize the label map to the image (arrays.resize_labels) before scoring")
        self.confusion += metrics.confusion_matrix(pred, gt, self.confusion.shape[0], ignore_index)
        for k, v in (timings or {}).items():
            self.stage_seconds[k] = self.stage_seconds.get(k, 0.0) + float(v)
        self.queries += int(queries)
        self.images += 1


@dataclass
class Scores:
    """Dataset-level metrics (fractions in [0, 1]) and mean costs per image of one evaluated method."""

    name: str
    miou: float
    pixel_acc: float
    mean_acc: float
    per_class_iou: dict[str, float | None]  # None where the class has an empty union
    confusion: np.ndarray
    mean_times: dict[str, float]  # seconds per image per stage
    mean_queries: float  # segmenter queries per image
    num_images: int
    settings: Any = None  # what produced it (benchmark.Settings for the benchmark command)

    @classmethod
    def from_accumulator(cls, acc: Accumulator, class_names: Sequence[str], name: str = "",
                         settings: Any = None) -> "Scores":
        if acc.images == 0:
            raise ValueError("nothing to score: the accumulator holds no image")
        m = metrics.metrics_from_confusion(acc.confusion)
        n = acc.images
        iou = {str(c): (None if np.isnan(v) else float(v)) for c, v in zip(class_names, m["per_class_iou"])}
        return cls(name, float(m["miou"]), float(m["pixel_acc"]), float(m["mean_acc"]), iou, acc.confusion,
                   {k: v / n for k, v in acc.stage_seconds.items()}, acc.queries / n, n, settings)

    @property
    def label(self) -> str:
        return self.name

    @property
    def seconds_per_image(self) -> float:
        """Mean wall time per image: the ``"total"`` stage when recorded, else the sum of stages."""
        t = self.mean_times
        return float(t["total"]) if "total" in t else float(sum(t.values()))


def _unpack(out) -> tuple[np.ndarray, dict[str, float], int]:
    if isinstance(out, tuple):
        pred, timings, queries = out
        return np.asarray(pred), dict(timings), int(queries)
    return np.asarray(out), {}, 0


def accumulate(predict: Callable[[np.ndarray], Any], samples: Iterable, num_classes: int, ignore_index: int = 255,
               progress: bool = False, desc: str = "images",
               on_prediction: Callable[[Any, np.ndarray], None] | None = None) -> Accumulator:
    """Run ``predict(image)`` over ``samples`` and sum confusion, seconds and queries.

    samples: (image, label) pairs, or objects with ``.image`` and ``.label``
    (``datasets.Sample``). The wall time of each ``predict`` call is recorded as the stage
    ``"total"`` unless ``predict`` reports one. ``on_prediction(sample, pred)`` is called for
    every image (saving, figures)."""
    acc = Accumulator.empty(num_classes)
    for item in tqdm(samples, desc=desc, disable=not progress, leave=False):
        image, gt = (item.image, item.label) if hasattr(item, "image") else item
        t = time.perf_counter()
        pred, timings, q = _unpack(predict(image))
        timings.setdefault("total", time.perf_counter() - t)
        acc.add(pred, gt, timings, q, ignore_index)
        if on_prediction is not None:
            on_prediction(item, pred)
    return acc


# ----------------------------------------------------------------------------- notebook 02
def compare_methods(clip, images: Sequence[np.ndarray], labels: Sequence[np.ndarray], vocabulary: Sequence[str],
                    methods: Sequence[str] = dense.METHODS, ignore_index: int = 255, progress: bool = False,
                    use_pamr: bool = False, **params) -> list[Scores]:
    """Dense maps of every image with every method, each scored as one :class:`Scores`
    (named ``"sclip"`` or ``"sclip + PAMR"``).

    images: uint8 H×W×3 each; labels: int H×W ground-truth class ids (indices into
    ``vocabulary``). ``params`` go to :func:`dense.dense_probs` (crop, stride, prob_thd, …);
    predictions are ``DenseResult.labels``."""
    if len(images) != len(labels) or not len(images):
        raise ValueError(f"images and labels must be non-empty lists of equal length, got {len(images)} and {len(labels)}")
    for m in methods:
        if m not in dense.METHODS:
            raise ValueError(f"methods: {m!r} is not one of {dense.METHODS}")
    out = []
    for m in tqdm(list(methods), desc="methods", disable=not progress, leave=False):
        def predict(im, m=m):
            return dense.dense_probs(clip, im, vocabulary, method=m, use_pamr=use_pamr, **params).labels

        acc = accumulate(predict, zip(images, labels), len(vocabulary), ignore_index)
        out.append(Scores.from_accumulator(acc, list(vocabulary), m + (" + PAMR" if use_pamr else ""),
                                           dict(method=m, use_pamr=use_pamr, **params)))
    return out


def format_scores(scores: Sequence[Scores]) -> str:
    """A small text table of scores in percent (1 decimal), no timings (stable across machines)."""
    lines = [f"{'method':18s} {'mIoU %':>7s} {'pixel acc %':>12s} {'mean acc %':>11s}"]
    for s in scores:
        lines.append(f"{s.name:18s} {100 * s.miou:7.1f} {100 * s.pixel_acc:12.1f} {100 * s.mean_acc:11.1f}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- notebook 04
@dataclass
class SceneBenchmark:
    """Dense argmax and refined label map of the whole chain on the same shapes scenes."""

    seeds: list[int]
    dense: Scores
    refined: Scores
    results: list = field(default_factory=list, repr=False)
    scenes: list = field(default_factory=list, repr=False)

    @property
    def dense_miou(self) -> float:
        return self.dense.miou

    @property
    def refined_miou(self) -> float:
        return self.refined.miou

    @property
    def mean_queries(self) -> float:
        return self.refined.mean_queries

    @property
    def timings(self) -> dict[str, float]:
        return self.refined.mean_times

    def table(self) -> str:
        t = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in self.timings.items())
        return (f"{len(self.seeds)} scenes: dense mIoU {self.dense_miou:.3f} → refined {self.refined_miou:.3f}; "
                f"{self.mean_queries:.1f} queries/image; {t}")


def benchmark_scenes(seeds: Sequence[int], size: int = 160, clip=None, segmenter=None, keep: bool = False,
                     progress: bool = False, **params) -> SceneBenchmark:
    """Run :func:`pipeline.segment` on the shapes scenes ``data.make_scene(seed, size)`` and score both
    the dense argmax and the refined label map against the exact labels (31-class mIoU).

    ``clip`` / ``segmenter`` default to the run mode's (``models.default_models``); ``params``
    go to :func:`pipeline.segment`; ``keep`` keeps every result and scene (for figures)."""
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds is empty: pass the scene seeds to evaluate, e.g. range(1000, 1030)")
    if clip is None:
        clip = models.default_clip()
    if segmenter is None:
        segmenter = models.default_segmenter()
    dense_acc, refined_acc = Accumulator.empty(data.NUM_CLASSES), Accumulator.empty(data.NUM_CLASSES)
    results, scenes = [], []
    for s in tqdm(seeds, desc="scenes", disable=not progress, leave=False):
        sc = data.make_scene(s, size=size)
        r = pipeline.segment(sc.image, data.CLASS_NAMES, clip=clip, segmenter=segmenter, **params)
        dense_acc.add(r.dense_label_map, sc.labels, {"dense": r.timings["dense"]})
        refined_acc.add(r.label_map, sc.labels, r.timings, r.num_queries)
        if keep:
            results.append(r)
            scenes.append(sc)
    names = list(data.CLASS_NAMES)
    return SceneBenchmark(seeds, Scores.from_accumulator(dense_acc, names, "dense", params),
                          Scores.from_accumulator(refined_acc, names, "refined", params), results, scenes)


# ----------------------------------------------------------------------------- notebook 06
@dataclass
class GuidedVsGrid:
    """The guided chain (CLIP → prompts → segmenter) against a blind point grid on the same scenes."""

    seeds: list[int]
    size: int
    points_per_side: int
    guided: Scores
    grid: Scores

    @property
    def query_ratio(self) -> float:
        """Grid queries per guided query (how many more times the grid asks the segmenter); inf when
        the guided run found no prompt at all (e.g. a random-init CLIP), nan when neither asked."""
        if self.guided.mean_queries == 0:
            return float("inf") if self.grid.mean_queries else float("nan")
        return self.grid.mean_queries / self.guided.mean_queries

    @property
    def time_ratio(self) -> float:
        return self.grid.seconds_per_image / max(self.guided.seconds_per_image, 1e-9)

    def as_dict(self) -> dict:
        """The JSON form ``make bench`` writes."""
        out: dict = {"scenes": len(self.seeds), "size": self.size, "seeds": self.seeds,
                     "points_per_side": self.points_per_side}
        for key, s in (("guided", self.guided), ("grid", self.grid)):
            out[key] = {"queries_per_image": s.mean_queries, "seconds_per_image": s.seconds_per_image, "miou": s.miou}
        out["query_ratio_grid_over_guided"] = self.query_ratio
        out["time_ratio_grid_over_guided"] = self.time_ratio
        return out


def guided_vs_grid(seeds: Sequence[int], size: int = 128, points_per_side: int = 32, clip=None, segmenter=None,
                   num_objects: tuple[int, int] = (1, 4), progress: bool = False) -> GuidedVsGrid:
    """Guided pipeline vs blind grid (``refine.grid_baseline``) on shapes scenes: queries, seconds, mIoU.

    ``clip`` / ``segmenter`` default to the run mode's (``models.default_models``)."""
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds is empty: pass the scene seeds to evaluate")
    if clip is None:
        clip = models.default_clip()
    if segmenter is None:
        segmenter = models.default_segmenter()
    scenes = [data.make_scene(s, size=size, num_objects=num_objects) for s in seeds]
    pairs = [(sc.image, sc.labels) for sc in scenes]

    def guided(im):
        r = pipeline.segment(im, data.CLASS_NAMES, clip=clip, segmenter=segmenter)
        return r.label_map, {}, r.num_queries

    def grid(im):
        gb = refine.grid_baseline(segmenter, im, points_per_side, clip=clip, class_names=data.CLASS_NAMES)
        return gb.label_map, {}, gb.num_queries

    names = list(data.CLASS_NAMES)
    g = accumulate(guided, pairs, data.NUM_CLASSES, progress=progress, desc="guided")
    b = accumulate(grid, pairs, data.NUM_CLASSES, progress=progress, desc="grid")
    return GuidedVsGrid(seeds, int(size), int(points_per_side), Scores.from_accumulator(g, names, "guided"),
                        Scores.from_accumulator(b, names, "grid"))
