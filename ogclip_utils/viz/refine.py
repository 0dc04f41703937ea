"""Figures of prompt extraction and refinement (notebooks 03 and 04): the steps, prompts, candidates, overlaps.

Each takes a :class:`ogclip_utils.pipeline.SegmentationResult` (or anything with the same
fields) and returns a closed-but-displayable ``Figure``: a cell ending in the call shows it
exactly once, the same way under JupyterLab, nbclient and nbval.
"""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

from . import draw


def _axes(n: int, size: float = 3.0, ncols: int | None = None):
    ncols = ncols or n
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    return fig, axes.ravel()


def _name(result, c: int) -> str:
    return result.vocabulary[c] if 0 <= c < len(result.vocabulary) else str(c)


def show_prompt_steps(result, size: float = 3.0):
    """Five panels: max probability, thresholded map, components, size-filtered regions,
    prompts (green stars positive, red crosses negative). Returns the figure."""
    ex = result.extraction
    names = list(result.vocabulary)  # colours by name (viz.class_colours)
    fig, ax = _axes(5, size)
    ax[0].imshow(ex.max_prob, vmin=0, vmax=1, cmap="magma")
    ax[0].set_title("max class probability")
    ax[1].imshow(draw.colorize(np.where(ex.thresholded < 0, 0, ex.thresholded), names))
    ax[1].set_title(f"≥ min_confidence {ex.params['min_confidence']:.2f}")
    ax[2].imshow(draw.colorize(ex.components % 30 + (ex.components > 0), 31))
    ax[2].set_title(f"{ex.num_components} components")
    ax[3].imshow(draw.colorize(np.where(ex.kept > 0, ex.thresholded, 0), names))
    ax[3].set_title(f"{ex.num_kept} kept (≥ {ex.params['min_region_size']} px)")
    ax[4].imshow(result.image)
    for p in ex.prompts:
        draw.show_points(ax[4], p.points, p.labels, size=80)
    ax[4].set_title(f"{len(ex.prompts)} prompts")
    fig.tight_layout()
    return draw.close_figure(fig)


def show_prompts(result, ax=None, size: float = 4.0):
    """All prompts on the image (green positive, red negative), each labelled with its class."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(size, size))
    else:
        fig = ax.figure
    ax.imshow(result.image)
    ax.axis("off")
    for i, p in enumerate(result.prompts):
        draw.show_points(ax, p.points, p.labels, size=90)
        x, y = p.positive[0]
        ax.text(x + 3, y - 3, f"{i}: {_name(result, p.class_id)}", fontsize=7, color="white",
                bbox=dict(facecolor="black", alpha=0.6, pad=1, edgecolor="none"))
    ax.set_title(f"{len(result.prompts)} prompts")
    return draw.close_figure(fig)


def show_candidates(result, prompts: Sequence[int] | None = None, size: float = 2.4):
    """For each prompt (default: the first four), its three candidates with their scores and
    CLIP-region agreement; the chosen one is framed in green."""
    cands = result.candidates
    idx = list(prompts) if prompts is not None else list(range(min(4, len(cands))))
    if not idx:
        fig, ax = _axes(1, size)
        ax[0].set_title("no prompts")
        return draw.close_figure(fig)
    C = max(len(cands[i].masks) for i in idx)
    fig, ax = _axes(len(idx) * (C + 1), size, ncols=C + 1)
    for r, i in enumerate(idx):
        c = cands[i]
        p = result.prompts[i]
        a = ax[r * (C + 1)]
        a.imshow(draw.mask_overlay(result.image, p.region, (255, 200, 0), 0.4))
        draw.show_points(a, p.points, p.labels, size=60)
        a.set_title(f"prompt {i}: {_name(result, p.class_id)}", fontsize=8)
        for k in range(len(c.masks)):
            a = ax[r * (C + 1) + 1 + k]
            a.imshow(draw.mask_overlay(result.image, c.masks[k], (30, 144, 255), 0.6))
            draw.show_points(a, p.points, p.labels, size=40)
            a.set_title(f"#{k} score {c.scores[k]:.2f} · agree {c.agreement[k]:.2f}", fontsize=8)
            if k == c.chosen:
                for s in a.spines.values():
                    s.set_visible(True)
                    s.set_edgecolor("lime")
                    s.set_linewidth(3)
                a.axis("on")
                a.set_xticks([])
                a.set_yticks([])
    fig.tight_layout()
    return draw.close_figure(fig)


def show_overlap(result, size: float = 3.2):
    """Before / after overlap resolution: the classified masks, how many masks claim each pixel
    before same-class duplicates merge, and the resolved label map (with the number of pixels
    still contested between classes after merging, and a legend)."""
    ref = result.refined
    names = list(result.vocabulary)  # colours by name (viz.class_colours)
    fig, ax = _axes(3, size)
    stack = np.full(result.image.shape[:2], -1, np.int64)  # -1: no mask here (class 0 may be a real class)
    for inst in ref.before_overlap:
        stack = np.where(inst.mask & (stack < 0), inst.class_id, stack)
    ax[0].imshow(draw.overlay(result.image, stack, vocabulary=names))
    ax[0].set_title(f"{len(ref.before_overlap)} masks before")
    before = np.zeros(result.image.shape[:2], int)
    for inst in ref.before_overlap:
        before += inst.mask
    after = ref.claims if ref.claims is not None else np.zeros(result.image.shape[:2], int)
    im = ax[1].imshow(before, cmap="viridis", vmin=0, vmax=max(2, int(before.max())))
    fig.colorbar(im, ax=ax[1], fraction=0.046)
    ax[1].set_title(f"masks per pixel before merging (max {int(before.max())})", fontsize=9)
    ax[2].imshow(draw.overlay(result.image, result.label_map, vocabulary=names))
    ax[2].set_title(f"{len(ref.instances)} instances after; {int((after > 1).sum())} px contested\n"
                    "between classes, given to the surer mask", fontsize=9)
    present = [int(c) for c in np.unique(result.label_map)]
    ax[2].legend(handles=draw.legend_patches(names, present), fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                 frameon=False)
    fig.tight_layout()
    return draw.close_figure(fig)


def comparison_grid(result, gt: np.ndarray | None = None, size: float = 3.0):
    """image | dense argmax | confidence | final (| ground truth). Returns the figure."""
    names = list(result.vocabulary)  # colours by name (viz.class_colours)
    panels = [(result.image, "image"), (draw.colorize(result.dense_label_map, names), "dense argmax"),
              (result.extraction.max_prob, "confidence"), (draw.colorize(result.label_map, names), "refined")]
    if gt is not None:
        panels.append((draw.colorize(np.asarray(gt), names), "ground truth"))
    fig, ax = _axes(len(panels), size)
    for a, (im, t) in zip(ax, panels):
        a.imshow(im, vmin=0, vmax=1, cmap="magma") if im.ndim == 2 else a.imshow(im)
        a.set_title(t)
    fig.tight_layout()
    return draw.close_figure(fig)
