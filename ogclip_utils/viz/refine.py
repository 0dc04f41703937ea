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
from .. import prompts as _prompts


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


def inside_points(regions: dict, n: int = 3, size: float = 2.6):
    """Notebook 03's picture of inside-ness: one panel per named region (bool H×W) with its
    centroid (red ×, titled "outside" when that pixel is not in the region) and the ``n`` points
    :func:`ogclip_utils.prompts.positive_points` chooses (green stars). Returns the Figure."""
    fig, axes = _axes(len(regions), size)
    for ax, (name, region) in zip(axes, regions.items()):
        m = np.asarray(region, bool)
        ys, xs = np.nonzero(m)
        cx, cy = xs.mean(), ys.mean()
        inside = bool(m[int(round(cy)), int(round(cx))])
        ax.imshow(m, cmap="Greys", vmin=0, vmax=1.6)
        ax.plot([cx], [cy], "x", color="#d62728", ms=11, mew=3, label="centroid")
        pts = _prompts.positive_points(m, n)
        draw.show_points(ax, pts, np.ones(len(pts), int), size=140)
        ax.set_title(f"{name}: centroid {'inside' if inside else 'outside'}", fontsize=9)
        ax.axis("off")
    axes[0].legend(loc="lower left", fontsize=7, framealpha=0.8)
    fig.tight_layout()
    return fig


def point_vs_box(image: np.ndarray, answers, size: float = 2.3):
    """One row per :class:`ogclip_utils.refine.PromptAnswer`: the image with the prompt (green
    star or yellow box), then each candidate mask outlined (the image outside it dimmed), titled with its
    score; the best-scored candidate's title is starred. Returns the Figure."""
    n = 1 + max(len(a.masks) for a in answers)
    fig, axes = plt.subplots(len(answers), n, figsize=(size * n, size * len(answers)), squeeze=False)
    for row, a in zip(axes, answers):
        for ax in row:
            ax.axis("off")
        row[0].imshow(image)
        if a.kind == "point":
            draw.show_points(row[0], np.asarray([a.prompt]), np.ones(1, int))
        else:
            draw.show_box(row[0], a.prompt, color="yellow")
        row[0].set_title(f"{a.kind} prompt", fontsize=9)
        best = int(np.argmax(a.scores)) if len(a.scores) else -1
        for k, (m, sc) in enumerate(zip(a.masks, a.scores)):
            draw.show_mask(row[k + 1], image, m)
            row[k + 1].set_title(f"{'★ ' if k == best else ''}candidate {k}: {sc:.2f}", fontsize=9)
    fig.tight_layout()
    return fig


def sam2_architecture():
    """A diagram of SAM2's split for one image: the heavy image encoder runs once
    (``set_image``) and its embedding is kept; each prompt then costs only the light prompt
    encoder and mask decoder (``predict``), which returns three candidate masks and an IoU
    estimate each. Returns the Figure (nothing is computed)."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    fig, ax = plt.subplots(figsize=(10, 3.4))
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 3.4)
    ax.axis("off")
    boxes = {
        "image": (0.1, 2.0, 1.3, 0.9, "#eeeeee", "image\nH×W×3"),
        "enc": (1.9, 2.0, 2.0, 0.9, "#f4a259", "image encoder\n(Hiera, heavy)\nset_image(): once"),
        "emb": (4.4, 2.0, 1.5, 0.9, "#f7d08a", "image embedding\n(kept in memory)"),
        "prompt": (0.1, 0.4, 1.3, 0.9, "#eeeeee", "prompt\npoints · box · mask"),
        "penc": (1.9, 0.4, 2.0, 0.9, "#8cb369", "prompt encoder\n(light)"),
        "dec": (6.4, 1.2, 1.8, 0.9, "#5b8e7d", "mask decoder\n(two-way attention)\npredict(): per prompt"),
        "out": (8.6, 1.2, 1.3, 0.9, "#bcd4e6", "3 masks +\nIoU scores"),
    }
    for x, y, w, h, c, t in boxes.values():
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.05", fc=c, ec="#333333"))
        ax.text(x + w / 2, y + h / 2, t, ha="center", va="center", fontsize=8)

    def arrow(a, b, yoff_a=0.45, yoff_b=0.45):
        xa, ya, wa, _ = boxes[a][:4]
        xb, yb = boxes[b][:2]
        ax.add_patch(FancyArrowPatch((xa + wa, ya + yoff_a), (xb, yb + yoff_b), arrowstyle="-|>", mutation_scale=12))

    arrow("image", "enc")
    arrow("enc", "emb")
    arrow("emb", "dec", 0.45, 0.65)
    arrow("prompt", "penc")
    arrow("penc", "dec", 0.45, 0.25)
    arrow("dec", "out")
    ax.set_title("SAM2 on one image: encode once, prompt many times", fontsize=10)
    return fig


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
    CLIP-region agreement (each candidate outlined, the image outside it dimmed); the chosen
    one is framed in green."""
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
            draw.show_mask(a, result.image, c.masks[k])
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
