"""Figures and ipywidgets panels for the prompt and refinement lessons (notebooks 03 and 04).

Every panel re-runs only the cheap stages on a cached :class:`pipeline.SegmentationResult`
(``result.rerun(...)``: prompt extraction and refinement; the dense map and the segmenter's
image encoding are reused). Headless (nbval, scripts) the panel falls back to drawing the
figure for the default values, so the same notebook cell works in JupyterLab and in CI.
"""
from __future__ import annotations

import os
from typing import Callable, Sequence

import numpy as np

from . import viz


# ----------------------------------------------------------------------------- figures
def _axes(n: int, size: float = 3.0, ncols: int | None = None):
    import matplotlib.pyplot as plt

    ncols = ncols or n
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    return fig, axes.ravel()


def _done(fig):
    """Close ``fig`` (no implicit auto-display) and return it: a cell ending in the call shows
    it exactly once, the same way under JupyterLab, nbclient and nbval."""
    import matplotlib.pyplot as plt

    if fig is not None and hasattr(fig, "savefig"):
        plt.close(fig)
    return fig


def _name(result, c: int) -> str:
    return result.vocabulary[c] if 0 <= c < len(result.vocabulary) else str(c)


def show_prompt_steps(result, size: float = 3.0):
    """Five panels: max probability, thresholded map, components, size-filtered regions,
    prompts (green stars positive, red crosses negative). Returns the figure."""
    ex = result.extraction
    n = len(result.vocabulary)
    fig, ax = _axes(5, size)
    ax[0].imshow(ex.max_prob, vmin=0, vmax=1, cmap="magma")
    ax[0].set_title("max class probability")
    ax[1].imshow(viz.colorize(np.where(ex.thresholded < 0, 0, ex.thresholded), n))
    ax[1].set_title(f"≥ min_confidence {ex.params['min_confidence']:.2f}")
    ax[2].imshow(viz.colorize(ex.components % 30 + (ex.components > 0), 31))
    ax[2].set_title(f"{ex.num_components} components")
    ax[3].imshow(viz.colorize(np.where(ex.kept > 0, ex.thresholded, 0), n))
    ax[3].set_title(f"{ex.num_kept} kept (≥ {ex.params['min_region_size']} px)")
    ax[4].imshow(result.image)
    for p in ex.prompts:
        viz.show_points(ax[4], p.points, p.labels, size=80)
    ax[4].set_title(f"{len(ex.prompts)} prompts")
    fig.tight_layout()
    return _done(fig)


def show_prompts(result, ax=None, size: float = 4.0):
    """All prompts on the image (green positive, red negative), each labelled with its class."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(size, size))
    else:
        fig = ax.figure
    ax.imshow(result.image)
    ax.axis("off")
    for i, p in enumerate(result.prompts):
        viz.show_points(ax, p.points, p.labels, size=90)
        x, y = p.positive[0]
        ax.text(x + 3, y - 3, f"{i}: {_name(result, p.class_id)}", fontsize=7, color="white",
                bbox=dict(facecolor="black", alpha=0.6, pad=1, edgecolor="none"))
    ax.set_title(f"{len(result.prompts)} prompts")
    return _done(fig)


def show_candidates(result, prompts: Sequence[int] | None = None, size: float = 2.4):
    """For each prompt (default: the first four), its three candidates with their scores and
    CLIP-region agreement; the chosen one is framed in green."""
    cands = result.candidates
    idx = list(prompts) if prompts is not None else list(range(min(4, len(cands))))
    if not idx:
        fig, ax = _axes(1, size)
        ax[0].set_title("no prompts")
        return _done(fig)
    C = max(len(cands[i].masks) for i in idx)
    fig, ax = _axes(len(idx) * (C + 1), size, ncols=C + 1)
    for r, i in enumerate(idx):
        c = cands[i]
        p = result.prompts[i]
        a = ax[r * (C + 1)]
        a.imshow(viz.mask_overlay(result.image, p.region, (255, 200, 0), 0.4))
        viz.show_points(a, p.points, p.labels, size=60)
        a.set_title(f"prompt {i}: {_name(result, p.class_id)}", fontsize=8)
        for k in range(len(c.masks)):
            a = ax[r * (C + 1) + 1 + k]
            a.imshow(viz.mask_overlay(result.image, c.masks[k], (30, 144, 255), 0.6))
            viz.show_points(a, p.points, p.labels, size=40)
            a.set_title(f"score {c.scores[k]:.2f} · agree {c.agreement[k]:.2f}", fontsize=8)
            if k == c.chosen:
                for s in a.spines.values():
                    s.set_visible(True)
                    s.set_edgecolor("lime")
                    s.set_linewidth(3)
                a.axis("on")
                a.set_xticks([])
                a.set_yticks([])
    fig.tight_layout()
    return _done(fig)


def show_overlap(result, size: float = 3.2):
    """Before / after overlap resolution: every classified mask outlined (overlaps brighter),
    the claim count, and the resolved label map."""
    ref = result.refined
    n = len(result.vocabulary)
    fig, ax = _axes(3, size)
    stack = np.zeros(result.image.shape[:2], np.int64)
    for inst in ref.before_overlap:
        stack = np.where(inst.mask & (stack == 0), inst.class_id, stack)
    ax[0].imshow(viz.overlay(result.image, stack, num_classes=n))
    ax[0].set_title(f"{len(ref.before_overlap)} masks before")
    claims = ref.claims if ref.claims is not None else np.zeros(result.image.shape[:2], int)
    ax[1].imshow(claims, cmap="viridis", vmin=0, vmax=max(2, int(claims.max())))
    ax[1].set_title(f"claims per pixel (max {int(claims.max())})")
    ax[2].imshow(viz.overlay(result.image, result.label_map, num_classes=n))
    ax[2].set_title(f"{len(ref.instances)} instances after")
    fig.tight_layout()
    return _done(fig)


def comparison_grid(result, gt: np.ndarray | None = None, size: float = 3.0):
    """image | dense argmax | confidence | final (| ground truth). Returns the figure."""
    n = len(result.vocabulary)
    panels = [(result.image, "image"), (viz.colorize(result.dense_label_map, n), "dense argmax"),
              (result.extraction.max_prob, "confidence"), (viz.colorize(result.label_map, n), "refined")]
    if gt is not None:
        panels.append((viz.colorize(np.asarray(gt), n), "ground truth"))
    fig, ax = _axes(len(panels), size)
    for a, (im, t) in zip(ax, panels):
        a.imshow(im, vmin=0, vmax=1, cmap="magma") if im.ndim == 2 else a.imshow(im)
        a.set_title(t)
    fig.tight_layout()
    return _done(fig)


# ----------------------------------------------------------------------------- panels
def headless() -> bool:
    """True when ``OGCLIP_HEADLESS`` is set (``make test``/``make demo``/CI set it): panels then
    draw their default figure instead of creating widgets. A kernel without a front end still
    exchanges widget messages with the client, and headless runners (nbclient) can block on
    them now and then (jupyter/nbclient#312), so headless runs create no widgets at all."""
    return os.environ.get("OGCLIP_HEADLESS", "").strip().lower() not in ("", "0", "false", "no")


def panel(draw: Callable, controls: dict, defaults: dict):
    """Sliders and drop-downs for ``draw(**values) -> matplotlib Figure`` (or None after printing).

    ``controls`` maps each argument to a list of strings (drop-down), an ``(min, max, step)``
    tuple of ints (integer slider) or of floats (float slider); ``defaults`` gives the values
    drawn first. In JupyterLab/Colab: an ``ipywidgets.interactive`` that redraws on release.
    Headless (:func:`headless`, no IPython, or no ipywidgets): the figure for ``defaults``."""
    if headless():
        return _done(draw(**defaults))
    try:
        import ipywidgets as w
        from IPython import get_ipython

        if get_ipython() is None:
            raise ImportError
    except ImportError:
        return draw(**defaults)
    made = {}
    for k, spec in controls.items():
        if isinstance(spec, (list, tuple)) and spec and isinstance(spec[0], str):
            made[k] = w.Dropdown(options=list(spec), value=defaults[k], description=k)
        elif isinstance(spec, tuple) and all(isinstance(v, int) for v in spec):
            made[k] = w.IntSlider(min=spec[0], max=spec[1], step=spec[2], value=defaults[k], description=k,
                                  continuous_update=False)
        else:
            made[k] = w.FloatSlider(min=spec[0], max=spec[1], step=spec[2], value=defaults[k], description=k,
                                    continuous_update=False)
    return w.interactive(lambda **v: _show(draw(**v)), **made)


def _show(fig):
    from IPython.display import display

    if fig is not None:  # draw functions may print instead of returning a figure
        display(_done(fig))  # closed first: the inline backend must not show it a second time
    return None


def prompt_panel(result, **defaults):
    """Sliders for min_confidence, min_region_size, points_per_cluster, negative points and
    their threshold; each move re-runs prompt extraction (and refinement) on the cached
    dense map and redraws :func:`show_prompt_steps`."""
    p = result.params
    d = dict(min_confidence=p.get("min_confidence", 0.3), min_region_size=p.get("min_region_size", 40),
             points_per_cluster=p.get("points_per_cluster", 1),
             negative_points_per_cluster=p.get("negative_points_per_cluster", 0),
             negative_confidence_threshold=p.get("negative_confidence_threshold", 0.8))
    d.update(defaults)
    controls = dict(min_confidence=(0.0, 1.0, 0.05), min_region_size=(0, 400, 10), points_per_cluster=(1, 5, 1),
                    negative_points_per_cluster=(0, 5, 1), negative_confidence_threshold=(0.0, 1.0, 0.05))
    return panel(lambda **v: show_prompt_steps(result.rerun(**v)), controls, d)


def refine_panel(result, **defaults):
    """Sliders for iou_threshold and the mask-choice rule; redraws overlap resolution."""
    d = dict(iou_threshold=result.params.get("iou_threshold", 0.8),
             mask_choice=result.params.get("mask_choice", "score"))
    d.update(defaults)
    controls = dict(iou_threshold=(0.0, 1.0, 0.05), mask_choice=["score", "agreement"])
    return panel(lambda **v: show_overlap(result.rerun(**v)), controls, d)


def prob_thd_panel(images: Sequence[np.ndarray], dense_results: Sequence, labels: Sequence[np.ndarray],
                   class_names: Sequence[str], thresholds: Sequence[float] | None = None, **defaults):
    """A slider for SCLIP's ``prob_thd`` (pixels below it become background) on cached dense
    results of a whole benchmark set (notebook 06): left, dataset mIoU against the threshold
    with the chosen value marked; right, one image's label map at that threshold and its
    ground truth. ``example`` picks the image shown."""
    import matplotlib.pyplot as plt

    from . import benchmark, dense, metrics

    th = np.round(np.linspace(0.0, 0.95, 20) if thresholds is None else np.asarray(thresholds, float), 4)
    n = len(class_names)
    curve = benchmark.prob_thd_sweep(dense_results, labels, th, n)
    d = dict(prob_thd=0.0, example=0)
    d.update(defaults)

    def draw(prob_thd: float, example: int):
        i = int(np.clip(example, 0, len(images) - 1))
        lab = dense.probs_to_labels(dense_results[i].probs, float(prob_thd))
        fig, ax = plt.subplots(1, 4, figsize=(13, 3.2), gridspec_kw={"width_ratios": [1.5, 1, 1, 1]})
        ax[0].plot(th, 100 * curve, "o-", ms=3)
        ax[0].axvline(prob_thd, color="C3", lw=1)
        ax[0].set_xlabel("prob_thd")
        ax[0].set_ylabel("dataset mIoU (%)")
        ax[0].set_title(f"{len(images)} images")
        miou_i = metrics.segmentation_metrics([lab], [labels[i]], n)["miou"]
        for a, im, t in ((ax[1], images[i], f"image {i}"), (ax[2], viz.overlay(images[i], lab, num_classes=n),
                                                             f"prob_thd {prob_thd:.2f}: mIoU {100 * miou_i:.0f} %"),
                         (ax[3], viz.overlay(images[i], labels[i], num_classes=n), "ground truth")):
            a.imshow(im)
            a.set_title(t, fontsize=9)
            a.axis("off")
        fig.tight_layout()
        return _done(fig)

    controls = dict(prob_thd=(0.0, 0.95, 0.05), example=(0, max(len(images) - 1, 0), 1))
    return panel(draw, controls, d)
