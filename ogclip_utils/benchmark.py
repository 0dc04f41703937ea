"""Benchmark dense / refined open-vocabulary segmentation on a dataset.

``python -m ogclip_utils benchmark --dataset shapes --num-samples 20 --output-dir outputs/bench``
writes ``results.json`` (metrics, per-class IoU, mean time per stage, segmenter queries,
settings, versions, device), ``summary.txt``, ``predictions/<id>.png`` (the predicted
label maps, uint8 class ids, so anyone can recompute the metrics) and, with
``--save-vis``, ``visualizations/<id>.png`` (image | ground truth | prediction).

Scale-out: ``torchrun --standalone --nproc_per_node N -m ogclip_utils benchmark …`` gives every rank the
images ``rank, rank + N, …``; the confusion matrices (and time / query sums) are
all-reduced (gloo on CPU, NCCL on GPUs) and rank 0 writes the results — the same numbers
as one process, because the metric is a sum over images.

Metrics follow mmsegmentation (see :mod:`ogclip_utils.metrics`): one confusion matrix over
the whole dataset, 255 ignored, mIoU = nanmean of per-class IoU over non-empty unions.
"""
from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .arrays import resize_labels
from . import __version__, datasets, dense, env, evaluation, lessons, metrics, models, paths, pipeline, viz
from .evaluation import Accumulator  # noqa: F401  (old import path benchmark.Accumulator)
from .viz.benchmark import plot_comparison, plot_stage_times  # noqa: F401  (old import path)

METHODS = ("vanilla", "maskclip", "sclip", "clearclip", "naclip")


@dataclass
class Settings:
    """Everything that defines one benchmark run (None = the dataset's published default)."""

    dataset: str = "shapes"
    data_dir: str | None = None
    num_samples: int | None = None
    size: int = 160  # shapes scene size in pixels
    method: str = "sclip"
    use_sam: bool = False
    use_pamr: bool = False
    slide_crop: int | None = None
    slide_stride: int | None = None
    logit_scale: float | None = None
    prob_thd: float | None = None
    area_thd: float | None = None
    short_side: int | None = None
    clip_model: str | None = None  # None: tiny-shapes offline, ViT-B-16 (openai) in real mode
    segmenter: str | None = None  # None: classical offline, sam2.1-hiera-tiny in real mode
    device: str | None = None

    def resolved(self, ds: datasets.BenchDataset) -> "Settings":
        """A copy with every None default filled from the dataset's published defaults."""
        d = ds.defaults
        s = Settings(**asdict(self))
        s.slide_crop = s.slide_crop if s.slide_crop is not None else d.slide_crop
        s.slide_stride = (s.slide_stride if s.slide_stride is not None else d.slide_stride) if s.slide_crop != 0 else None
        s.logit_scale = s.logit_scale if s.logit_scale is not None else d.logit_scale
        s.prob_thd = s.prob_thd if s.prob_thd is not None else d.prob_thd
        s.area_thd = s.area_thd if s.area_thd is not None else d.area_thd
        s.short_side = s.short_side if s.short_side is not None else d.short_side
        return s


#: One result class for every evaluation (``evaluation.Scores``); the old name stays.
BenchmarkResult = evaluation.Scores


# ----------------------------------------------------------------------------- models
def load_models(settings: Settings, need_segmenter: bool):
    """(clip, segmenter or None) for the run mode: tiny-shapes + classical offline,
    ViT-B-16 (openai) + SAM2.1 in real mode, unless the settings name others."""
    clip = models.clip_by_name(settings.clip_model, device=settings.device)
    seg = models.segmenter_by_name(settings.segmenter, device=settings.device) if need_segmenter else None
    return clip, seg


def predict(image: np.ndarray, ds: datasets.BenchDataset, s: Settings, clip, segmenter=None
            ) -> tuple[np.ndarray, dict[str, float], int]:
    """Predict one label map (int64 H×W in the dataset's class ids) with resolved settings ``s``.

    Returns (prediction, seconds per stage, number of segmenter queries)."""
    timings: dict[str, float] = {}
    if s.use_sam:
        t = time.perf_counter()
        res = pipeline.segment(image, ds.vocabulary, clip=clip, segmenter=segmenter, **_dense_params(s))
        pred = np.asarray(res.label_map).astype(np.int64)
        timings.update({k: float(v) for k, v in getattr(res, "timings", {}).items()})
        timings.setdefault("total", time.perf_counter() - t)
        return resize_labels(pred, image.shape[:2]), timings, int(res.num_queries)
    t = time.perf_counter()
    dr = dense.dense_probs(clip, image, ds.vocabulary, use_pamr=s.use_pamr, **_dense_params(s))
    timings.update({f"dense_{k}": float(v) for k, v in dr.timings.items()})
    timings["dense"] = time.perf_counter() - t
    # dense_probs applies SCLIP's post-processing: area_thd on the probabilities, and pixels
    # below prob_thd go to class 0 (the background) in ``labels``.
    return resize_labels(np.asarray(dr.labels, np.int64), image.shape[:2]), timings, 0


def _dense_params(s: Settings) -> dict:
    return dict(method=s.method, logit_scale=s.logit_scale, prob_thd=s.prob_thd, area_thd=s.area_thd,
                crop=s.slide_crop, stride=s.slide_stride, short_side=s.short_side)


# ----------------------------------------------------------------------------- a whole run
def evaluate(ds: datasets.BenchDataset, settings: Settings | None = None, clip=None, segmenter=None,
             indices: Sequence[int] | None = None, progress: bool = True,
             on_prediction: Callable[[datasets.Sample, np.ndarray], None] | None = None,
             predictor: Callable | None = None) -> tuple[Accumulator, Settings]:
    """Run ``predict`` over ``indices`` (default all) and accumulate confusion, times, queries.

    ``predictor(image, ds, settings, clip, segmenter)`` replaces :func:`predict` (tests);
    ``on_prediction(sample, pred)`` is called for every image (saving, visualisation)."""
    s = (settings or Settings(dataset=ds.name)).resolved(ds)
    if s.method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {s.method!r}")
    if s.use_sam and s.use_pamr:
        raise ValueError("use_sam and use_pamr cannot be combined: PAMR smooths the dense map, refinement replaces it "
                         "with segmenter masks; run them as two benchmarks")
    predictor = predictor or predict
    if predictor is predict and clip is None:
        clip, segmenter = load_models(s, s.use_sam)
    if clip is not None:  # name the models that ran in the settings (results.json, summary.txt)
        s.clip_model = s.clip_model or f"{clip.name} ({clip.weights_id})"
    if s.use_sam and segmenter is not None and not s.segmenter:
        s.segmenter = "classical" if type(segmenter).__name__ == "ClassicalSegmenter" else type(segmenter).__name__
    idx = list(range(len(ds)) if indices is None else indices)
    acc = evaluation.accumulate(lambda image: predictor(image, ds, s, clip, segmenter), (ds[i] for i in idx),
                                ds.num_classes, ds.ignore_index, progress=progress, desc=f"{ds.name} {s.method}",
                                on_prediction=on_prediction)
    return acc, s


def run(ds: datasets.BenchDataset, settings: Settings | None = None, clip=None, segmenter=None,
        progress: bool = False, predictor: Callable | None = None) -> BenchmarkResult:
    """One-process benchmark of ``ds`` (what notebook 06 calls): a :class:`BenchmarkResult`."""
    acc, s = evaluate(ds, settings, clip, segmenter, progress=progress, predictor=predictor)
    return BenchmarkResult.from_accumulator(acc, ds.class_names, f"{ds.name} {s.method}", s)


# ----------------------------------------------------------------------------- notebook 06
#: The post-processing variants notebook 06 compares, as Settings overrides.
VARIANTS: dict[str, dict] = {"dense": {}, "+ PAMR": {"use_pamr": True}, "+ refinement": {"use_sam": True}}


@dataclass
class Comparison:
    """Benchmark results of every (method, variant) pair on one dataset with the same models."""

    dataset: str
    num_images: int
    results: dict[tuple[str, str], BenchmarkResult]  # (method, variant) -> result

    @property
    def methods(self) -> list[str]:
        return list(dict.fromkeys(m for m, _ in self.results))

    @property
    def variants(self) -> list[str]:
        return list(dict.fromkeys(v for _, v in self.results))

    def table(self, metric: str = "miou") -> str:
        """A text table: one row per method, one column per variant, ``metric`` in percent."""
        if metric not in ("miou", "pixel_acc", "mean_acc"):
            raise ValueError(f"metric must be 'miou', 'pixel_acc' or 'mean_acc', got {metric!r}")
        vs = self.variants
        head = f"{metric + ' (%)':12s}" + "".join(f"{v:>15s}" for v in vs)
        rows = [head, "-" * len(head)]
        for m in self.methods:
            cells = [self.results.get((m, v)) for v in vs]
            rows.append(f"{m:12s}" + "".join(f"{100 * getattr(r, metric):15.1f}" if r else f"{'-':>15s}" for r in cells))
        return "\n".join(rows)

    def costs(self) -> str:
        """Mean milliseconds and segmenter queries per image for every pair."""
        rows = [f"{'method':12s}{'variant':>15s}{'ms / image':>12s}{'queries':>9s}"]
        for (m, v), r in self.results.items():
            total = r.mean_times.get("total", r.mean_times.get("dense", float("nan")))
            rows.append(f"{m:12s}{v:>15s}{1000 * total:12.0f}{r.mean_queries:9.1f}")
        return "\n".join(rows)


def compare(ds: datasets.BenchDataset, methods: Sequence[str] = METHODS, variants: Sequence[str] = tuple(VARIANTS),
            clip=None, segmenter=None, settings: Settings | None = None, progress: bool = False,
            predictor: Callable | None = None) -> Comparison:
    """Run :func:`run` for every method × variant (see :data:`VARIANTS`) with one set of models.

    ``settings``: the shared base settings (default: the dataset's published defaults);
    ``predictor``: as in :func:`evaluate` (tests)."""
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        raise ValueError(f"variants must be among {list(VARIANTS)}, got {bad}")
    base = settings or Settings(dataset=ds.name)
    need_seg = any(VARIANTS[v].get("use_sam") for v in variants)
    if predictor is None and (clip is None or (need_seg and segmenter is None)):
        c, sg = load_models(base.resolved(ds), need_seg)
        clip, segmenter = clip or c, segmenter or sg
    out = {}
    from dataclasses import replace as _replace

    for m in methods:
        for v in variants:
            st = _replace(base, method=m, **VARIANTS[v])
            out[(m, v)] = run(ds, st, clip=clip, segmenter=segmenter, progress=progress, predictor=predictor)
    return Comparison(ds.name, len(ds), out)


def prob_thd_sweep(dense_results: Sequence, labels: Sequence[np.ndarray], thresholds: Sequence[float],
                   num_classes: int, ignore_index: int = 255) -> np.ndarray:
    """Dataset mIoU (fraction) for every ``prob_thd`` in ``thresholds``, re-using cached dense
    results (``dense.DenseResult``; low-confidence pixels go to ``dense.background_class``). float64 (len(thresholds),)."""
    if len(dense_results) != len(labels) or not len(labels):
        raise ValueError(f"dense_results and labels must be non-empty and of equal length, got {len(dense_results)} and {len(labels)}")
    out = []
    for t in thresholds:
        cm = np.zeros((num_classes, num_classes), np.int64)
        for r, gt in zip(dense_results, labels):
            cm += metrics.confusion_matrix(dense.probs_to_labels(r.probs, float(t), dense.background_class(r.classes)), gt,
                                          num_classes, ignore_index)
        out.append(metrics.metrics_from_confusion(cm)["miou"])
    return np.asarray(out, np.float64)


# ----------------------------------------------------------------------------- notebook 06
@dataclass
class Lesson:
    """What notebook 06 benchmarks, for the mode it runs in.

    mode: "offline" or "real"; clip / segmenter: the mode's models (``models.default_models``);
    dataset: the benchmark set (offline: the shapes benchmark; real: the first real set of
    ``datasets.REAL_LESSON_SETS`` found in the cache, else the shapes benchmark measured with the
    real models); settings: the dataset's published inference settings, resolved; note: one
    line on what is measured here and what would make it a real-data measurement."""

    mode: str
    clip: object
    segmenter: object
    dataset: datasets.BenchDataset
    settings: Settings
    note: str

    @property
    def samples(self) -> list:
        """Every sample of :attr:`dataset` (``datasets.Sample``: id, image, label)."""
        return [self.dataset[i] for i in range(len(self.dataset))]

    def cli_args(self, num_samples: int = 4) -> list[str]:
        """The ``python -m ogclip_utils benchmark`` arguments that run this lesson's dataset and CLIP
        on its first ``num_samples`` images (add ``--output-dir``)."""
        args = ["benchmark", "--dataset", self.dataset.name, "--num-samples", str(min(num_samples, len(self.dataset))),
                "--model", self.clip.name]
        return args + (["--data-dir", self.settings.data_dir] if self.settings.data_dir else [])

    def dense_map(self, image: np.ndarray, method: str = "sclip") -> dense.DenseResult:
        """The dense map of ``image`` with the dataset's settings and no ``prob_thd`` / ``area_thd``
        (the slider of notebook 06 re-thresholds it)."""
        s = self.settings
        return dense.dense_probs(self.clip, image, self.dataset.vocabulary, method=method, logit_scale=s.logit_scale,
                                 crop=s.slide_crop, stride=s.slide_stride, short_side=s.short_side)


def lesson(mode: str | None = None, num_samples: int = 12, size: int = 160, clip=None, segmenter=None) -> Lesson:
    """The mode-aware set-up of notebook 06 (see :class:`Lesson`).

    ``num_samples`` images (1 in the real-mode smoke run, ``OGCLIP_SMOKE=1``); ``size``: the
    shapes scenes' side in pixels. Real datasets are looked up, never downloaded:
    ``$OGCLIP_CACHE/datasets/<name>/`` or ``data/benchmarks/<name>/`` in the published layout."""
    mode = env.get_mode(mode)
    clip = models.default_clip(mode) if clip is None else clip
    segmenter = models.default_segmenter(mode) if segmenter is None else segmenter
    n = lessons.knob(num_samples, 1)
    found = datasets.find_real() if mode == "real" else None
    if found:
        ds = datasets.load_dataset(found[0], data_dir=found[1], num_samples=n)
        note = f"real: {clip.name} on {found[0]} ({found[1]}), its first {len(ds)} validation images"
    else:
        ds = datasets.load_dataset("shapes", num_samples=n, size=size)
        note = (f"offline: {clip.name} and the classical segmenter on {len(ds)} shapes scenes with exact ground truth"
                if mode == "offline" else
                f"real: {clip.name} measured on {len(ds)} shapes scenes, because no real benchmark set is in the "
                f"cache; put PASCAL VOC 2012 in {datasets.cache_root('pascal-voc')} (published layout, see "
                f"datasets.INSTRUCTIONS) to measure on photos")
    settings = Settings(dataset=ds.name, data_dir=str(found[1]) if found else None).resolved(ds)
    return Lesson(mode, clip, segmenter, ds, settings, note)


# ----------------------------------------------------------------------------- distributed
def _dist_setup() -> tuple[int, int, bool]:
    """(rank, world size, initialised here) from torchrun's environment variables."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, False
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
        return dist.get_rank(), dist.get_world_size(), True
    return dist.get_rank(), dist.get_world_size(), False


def _all_reduce(acc: Accumulator, stages: Sequence[str]) -> Accumulator:
    """Sum an accumulator over all ranks (confusion in int64, exact)."""
    import torch
    import torch.distributed as dist

    dev = torch.device("cuda") if dist.get_backend() == "nccl" else torch.device("cpu")
    cm = torch.from_numpy(acc.confusion).to(dev)
    dist.all_reduce(cm)
    counts = torch.tensor([acc.queries, acc.images], dtype=torch.int64, device=dev)
    dist.all_reduce(counts)
    secs = torch.tensor([acc.stage_seconds.get(k, 0.0) for k in stages], dtype=torch.float64, device=dev)
    dist.all_reduce(secs)
    return Accumulator(cm.cpu().numpy(), dict(zip(stages, secs.cpu().tolist())), int(counts[0]), int(counts[1]))


def _gather_stage_names(acc: Accumulator) -> list[str]:
    import torch.distributed as dist

    names: list = [None] * dist.get_world_size()
    dist.all_gather_object(names, sorted(acc.stage_seconds))
    return sorted({k for ns in names for k in ns})


# ----------------------------------------------------------------------------- outputs
def save_prediction(out_dir: Path, sample: datasets.Sample, pred: np.ndarray, num_classes: int, save_vis: bool,
                    class_names: Sequence[str] | None = None) -> None:
    """``predictions/<id>.png`` (uint8 class ids) and, if asked, ``visualizations/<id>.png``."""
    from PIL import Image

    if num_classes > 255:
        raise ValueError("predictions are saved as uint8 PNGs; more than 255 classes are not supported")
    (out_dir / "predictions").mkdir(parents=True, exist_ok=True)
    name = paths.safe_name(sample.id, max_len=120, keep_dots=True, default="sample")
    Image.fromarray(pred.astype(np.uint8), mode="L").save(out_dir / "predictions" / f"{name}.png")
    if save_vis:
        (out_dir / "visualizations").mkdir(parents=True, exist_ok=True)
        strip = np.concatenate([sample.image, viz.colorize(sample.label, class_names or num_classes),
                                viz.colorize(pred, class_names or num_classes)], 1)
        Image.fromarray(strip).save(out_dir / "visualizations" / f"{name}.png")


def versions() -> dict:
    import open_clip
    import torch

    return {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
            "open_clip": getattr(open_clip, "__version__", "?"), "ogclip_utils": __version__}


def results_dict(res: BenchmarkResult, ds: datasets.BenchDataset, ids: Sequence[str], world: int, device: str) -> dict:
    """The JSON-able content of ``results.json``."""
    return {
        "dataset": ds.name,
        "num_images": res.num_images,
        "metrics": {"miou": res.miou, "pixel_acc": res.pixel_acc, "mean_acc": res.mean_acc},
        "metrics_percent": {k: round(100 * v, 4) for k, v in
                            {"miou": res.miou, "pixel_acc": res.pixel_acc, "mean_acc": res.mean_acc}.items()},
        "per_class_iou": res.per_class_iou,
        "mean_time_s": res.mean_times,
        "segmenter_queries": {"mean_per_image": res.mean_queries, "total": int(round(res.mean_queries * res.num_images))},
        "num_classes": ds.num_classes,
        "class_names": ds.class_names,
        "ignore_index": ds.ignore_index,
        "confusion_matrix": res.confusion.tolist(),
        "metric_definition": "mmseg: dataset-level confusion matrix (rows gt, cols pred), ignore_index dropped, "
                             "mIoU = nanmean of per-class IoU over classes with a non-empty union",
        "predictions": "predictions/<id>.png: uint8 predicted class ids, same size as the ground truth",
        "ids": list(ids),
        "shapes_seeds": [int(i.split("-")[1]) for i in ids] if ds.name == "shapes" else None,
        "settings": asdict(res.settings),
        "mode": env.get_mode(),
        "world_size": world,
        "device": device,
        "versions": versions(),
        "published_sclip_miou_percent": datasets.PUBLISHED_SCLIP.get(ds.name),
    }


def summary_text(res: BenchmarkResult, ds: datasets.BenchDataset) -> str:
    s = res.settings
    mode = "dense" + (" + refinement" if s.use_sam else "") + (" + PAMR" if s.use_pamr else "")
    lines = [f"Benchmark: {ds.name} ({res.num_images} images, {ds.num_classes} classes)",
             f"Method: {s.method} ({mode}), logit scale {s.logit_scale}, prob_thd {s.prob_thd}, area_thd {s.area_thd}, "
             f"crop/stride {'whole image' if s.slide_crop == 0 else f'{s.slide_crop}/{s.slide_stride}'}, short side {s.short_side}",
             f"Models: CLIP {s.clip_model or '-'}" + (f", segmenter {s.segmenter}" if s.use_sam else "") + f" ({env.get_mode()} mode)",
             "", f"mIoU           {100 * res.miou:6.2f} %", f"pixel accuracy {100 * res.pixel_acc:6.2f} %",
             f"mean accuracy  {100 * res.mean_acc:6.2f} %", f"segmenter queries per image {res.mean_queries:.1f}", ""]
    lines += [f"time per image, {k}: {v * 1000:.1f} ms" for k, v in res.mean_times.items()]
    pub = datasets.PUBLISHED_SCLIP.get(ds.name)
    if pub:
        lines += ["", f"published SCLIP (ViT-B/16) mIoU for reference, not this run: {pub}"]
    lines += ["", "per-class IoU (%):"]
    lines += [f"  {c:30s} {'-' if v is None else f'{100 * v:6.2f}'}" for c, v in res.per_class_iou.items()]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- CLI


def run_to_folder(ds: datasets.BenchDataset, settings: Settings, output_dir: str | Path, save_vis: bool = False,
                  progress: bool = True, device: str | None = None) -> BenchmarkResult | None:
    """Evaluate ``ds`` (sharded over ``torchrun`` ranks, the confusion matrix all-reduced) and write
    ``results.json``, ``summary.txt`` and ``predictions/`` into ``output_dir``; print the summary.
    Returns the result on rank 0 (None on the other ranks)."""
    rank, world, owned = _dist_setup()
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    res = None
    try:
        mine = list(range(rank, len(ds), world))
        acc, s = evaluate(ds, settings, indices=mine, progress=progress and rank == 0,
                          on_prediction=lambda smp, pred: save_prediction(out, smp, pred, ds.num_classes, save_vis,
                                                                          ds.class_names))
        if world > 1:
            acc = _all_reduce(acc, _gather_stage_names(acc))
        if rank == 0:
            res = BenchmarkResult.from_accumulator(acc, ds.class_names, f"{ds.name} {s.method}", s)
            dev = str(env.get_device(device))
            (out / "results.json").write_text(json.dumps(results_dict(res, ds, ds.ids, world, dev), indent=2))
            text = summary_text(res, ds)
            (out / "summary.txt").write_text(text)
            print(text)
            print(f"wrote {out / 'results.json'}, {out / 'summary.txt'}, {out / 'predictions'}/")
    finally:
        if owned:
            import torch.distributed as dist

            dist.barrier()
            dist.destroy_process_group()
    return res
