"""Figures of baseline grounding (notebook 01): candidate boxes with scores, crops, failure cases.

Every function returns an open matplotlib ``Figure`` (``plot_result`` draws into ``ax`` when given).
"""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

from .. import grounding
from . import draw


def plot_result(image: np.ndarray, result: "grounding.GroundingResult", gt_box: Sequence[float] | None = None, ax=None,
                title: str | None = None):
    """Draw every candidate box with its score (grey), the winner (yellow) and, when given,
    the ground-truth box (green, dashed). Returns the matplotlib axes."""

    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(image)
    ax.axis("off")
    k = result.index
    for i, c in enumerate(result.candidates):
        if i != k:
            draw.show_box(ax, c.box, color="lightgrey", label=f"{i}: {c.score:.2f}", lw=1.2)
    if gt_box is not None:
        import matplotlib.patches as patches

        x0, y0, x1, y1 = gt_box
        ax.add_patch(patches.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor="lime",
                                       linestyle="--", linewidth=2))
    if k is not None:
        draw.show_box(ax, result.candidates[k].box, color="yellow", label=f"{k}: {result.candidates[k].score:.2f}")
    ax.set_title(title if title is not None else f'"{result.text}"', fontsize=9)
    return ax


def plot_crops(result: "grounding.GroundingResult", ncols: int = 6):
    """The crops CLIP scored, titled with their index, score (and pseudo-query); winner starred."""
    k = result.index
    titles = [f"{'★ ' if i == k else ''}{i}: {c.score:.2f}" + (f"\n{c.query}" if c.query else "")
              for i, c in enumerate(result.candidates)]
    return draw.image_grid([c.crop for c in result.candidates], titles, ncols=ncols, size=1.9)


def plot_failures(ev: "grounding.Evaluation", variant: str, kind: str | None = None, n: int = 8, ncols: int = 4):
    """A gallery of wrong answers (IoU < 0.5) of one variant: prediction yellow, truth green."""

    if variant not in ev.predictions:
        raise ValueError(f"variant {variant!r} not in this evaluation; choose from {list(ev.predictions)}")
    bad = [p for p in ev.predictions[variant] if p.iou < 0.5 and (kind is None or p.kind == kind)][:n]
    if not bad:
        fig, ax = plt.subplots(figsize=(3, 1))
        ax.axis("off")
        ax.text(0.5, 0.5, "no failures", ha="center")
        return fig
    nrows = int(np.ceil(len(bad) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.8 * ncols, 2.9 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, p in zip(axes.flat, bad):
        img = ev.scene(p.scene_seed).image
        plot_result(img, p.result, gt_box=p.gt_box, ax=ax, title=p.text)
    fig.tight_layout()
    return fig
