"""Scoring label maps against ground truth: dense methods compared on a set of images (notebook 02).

Predictions of any stage are scored with the same confusion-matrix metrics
(:func:`ogclip_utils.metrics.segmentation_metrics`); :func:`compare_methods` runs every dense
method on the same images and returns one :class:`MethodScore` each.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from . import dense, metrics


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
                    methods: Sequence[str] = dense.METHODS, ignore_index: int = 255, progress: bool = False,
                    use_pamr: bool = False, **params) -> list[MethodScore]:
    """Dense maps of every image with every method, scored with :func:`metrics.segmentation_metrics`.

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
        t = time.perf_counter()
        preds = [dense.dense_probs(clip, im, vocabulary, method=m, use_pamr=use_pamr, **params).labels for im in images]
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
