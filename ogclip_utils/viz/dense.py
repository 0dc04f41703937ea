"""Figures of the dense stage (notebook 02): attention from one patch, windows, class maps, labels, confidence.

Every function returns an open matplotlib ``Figure`` (display it, save it, or close it).
"""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

from .. import dense
from . import draw


def plot_attention(clip, crop: np.ndarray, point: tuple[float, float],
                   methods: Sequence[str] = ("vanilla", "sclip", "clearclip", "naclip")):
    """The crop with the query point, then each method's attention map from it; returns the figure."""

    maps = dense.attention_maps(clip, crop, point, methods)
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

    fig, axes = plt.subplots(1, 2, figsize=(7, 3.6))
    axes[0].imshow(image)
    cols = plt.get_cmap("tab10").colors
    for i, b in enumerate(windows):
        draw.show_box(axes[0], b, color=cols[i % len(cols)], lw=1.5)
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


def top_classes(result: dense.DenseResult, k: int = 4) -> list[int]:
    """Ids of the k classes with the largest argmax area (ties by id)."""
    area = np.bincount(result.labels.reshape(-1), minlength=len(result.classes))
    return [int(i) for i in np.argsort(-area, kind="stable")[:k]]


def plot_class_maps(result: dense.DenseResult, image: np.ndarray, classes: Sequence[str | int] | None = None):
    """Per-class probability maps (default: the 4 largest classes) next to the image; returns the figure."""

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


def _class_id(result: dense.DenseResult, name: str) -> int:
    if name in result.classes:
        return result.classes.index(name)
    if name in result.queries:
        return int(result.query_to_class[result.queries.index(name)])
    raise ValueError(f"class {name!r} is not in the vocabulary {result.classes}")


def plot_labels(result: dense.DenseResult, image: np.ndarray, gt: np.ndarray | None = None, title: str = ""):
    """Argmax map, its overlay on the image, and (optionally) the ground truth; returns the figure."""

    names = list(result.classes)  # colours by name (viz.class_colours)
    panels = [("argmax map", draw.colorize(result.labels, names)), ("overlay", draw.overlay(image, result.labels, vocabulary=names))]
    if gt is not None:
        panels.append(("ground truth", draw.colorize(gt, names)))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels) + 1.6, 3.2))
    for ax, (t, im) in zip(axes, panels):
        ax.imshow(im)
        ax.set_title(t, fontsize=9)
        ax.axis("off")
    present = sorted(set(np.unique(result.labels).tolist()) | (set(np.unique(gt).tolist()) - {255} if gt is not None else set()))
    fig.legend(handles=draw.legend_patches(result.classes, present), fontsize=7, loc="center right", framealpha=0.8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.8, 1))
    return fig


def plot_confidence(result: dense.DenseResult, image: np.ndarray, threshold: float = 0.5):
    """Confidence views: best-probability heat map; argmax with pixels below ``threshold``
    marked white; the argmax overlay weighted by confidence. Returns the figure."""

    conf = result.confidence
    names = list(result.classes)  # colours by name (viz.class_colours)
    unsure = draw.colorize(result.labels, names)
    unsure[conf < threshold] = 255
    col = draw.colorize(result.labels, names).astype(np.float32)
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


def plot_postprocessed(result: dense.DenseResult, image: np.ndarray, logit_scale: float = 40.0, prob_thd: float = 0.0,
                       class_name: str | None = None, area_thd: float | None | str = "same"):
    """Slider view: re-run post-processing on the cached logits (``area_thd`` 0 or None = off,
    ``"same"`` = the result's), show one class's probability map and the label map with a
    legend of the classes it contains."""

    if area_thd is not None and area_thd != "same" and float(area_thd) <= 0:
        area_thd = None
    r = dense.postprocess(result, logit_scale=logit_scale, prob_thd=prob_thd, area_thd=area_thd)
    k = _class_id(r, class_name) if class_name else top_classes(r, 2)[-1]
    names = list(r.classes)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
    axes[0].imshow(image)
    axes[0].set_title("image", fontsize=9)
    im = axes[1].imshow(r.probs[k], cmap="viridis", vmin=0, vmax=1)
    fig.colorbar(im, ax=axes[1], fraction=0.046)
    axes[1].set_title(f"p({r.classes[k]}), logit scale {logit_scale:g}", fontsize=9)
    axes[2].imshow(draw.overlay(image, r.labels, vocabulary=names))
    thd = "off" if r.area_thd is None else f"{r.area_thd:g}"
    axes[2].set_title(f"labels, prob_thd {prob_thd:g}, area_thd {thd}", fontsize=9)
    present = [int(c) for c in np.unique(r.labels)]
    axes[2].legend(handles=draw.legend_patches(names, present), fontsize=7, loc="upper left",
                   bbox_to_anchor=(1.01, 1.0), frameon=False)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return fig
