"""Slider panels: ipywidgets that re-draw a figure when a threshold moves (notebooks 01–06).

Every panel re-runs only the cheap stages on a cached :class:`pipeline.SegmentationResult`
(``result.rerun(...)``: prompt extraction and refinement; the dense map and the segmenter's
image encoding are reused). Headless (nbval, scripts) the panel falls back to drawing the
figure for the default values, so the same notebook cell works in JupyterLab and in CI.
"""
from __future__ import annotations

import os
from typing import Callable, Sequence

import numpy as np

from . import benchmark, dense, metrics, prompts, refine, viz


# Figures moved to ogclip_utils.viz.refine; the old names stay importable from here (one release).
from .viz.draw import close_figure as _done  # noqa: E402
from .viz.refine import comparison_grid, show_candidates, show_overlap, show_prompt_steps, show_prompts  # noqa: E402,F401


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
    base = prompts.PromptConfig()  # the defaults, written once
    keys = ("min_confidence", "min_region_size", "points_per_cluster", "negative_points_per_cluster",
            "negative_confidence_threshold")
    d = {k: result.params.get(k, getattr(base, k)) for k in keys}
    d.update(defaults)
    controls = dict(min_confidence=(0.0, 1.0, 0.05), min_region_size=(0, 400, 10), points_per_cluster=(1, 5, 1),
                    negative_points_per_cluster=(0, 5, 1), negative_confidence_threshold=(0.0, 1.0, 0.05))
    return panel(lambda **v: show_prompt_steps(result.rerun(**v)), controls, d)


def refine_panel(result, **defaults):
    """Sliders for iou_threshold and the mask-choice rule; redraws overlap resolution."""
    base = refine.RefineConfig()
    d = {k: result.params.get(k, getattr(base, k)) for k in ("iou_threshold", "mask_choice")}
    d.update(defaults)
    controls = dict(iou_threshold=(0.0, 1.0, 0.05), mask_choice=list(refine.MASK_CHOICES))
    return panel(lambda **v: show_overlap(result.rerun(**v)), controls, d)


def prob_thd_panel(images: Sequence[np.ndarray], dense_results: Sequence, labels: Sequence[np.ndarray],
                   class_names: Sequence[str], thresholds: Sequence[float] | None = None, **defaults):
    """A slider for SCLIP's ``prob_thd`` (pixels below it become background) on cached dense
    results of a whole benchmark set (notebook 06): left, dataset mIoU against the threshold
    with the chosen value marked; right, one image's label map at that threshold and its
    ground truth. ``example`` picks the image shown."""
    import matplotlib.pyplot as plt


    th = np.round(np.linspace(0.0, 0.95, 20) if thresholds is None else np.asarray(thresholds, float), 4)
    n = len(class_names)
    curve = benchmark.prob_thd_sweep(dense_results, labels, th, n)
    d = dict(prob_thd=dense.DenseConfig().prob_thd, example=0)
    d.update(defaults)

    def draw(prob_thd: float, example: int):
        i = int(np.clip(example, 0, len(images) - 1))
        lab = dense.probs_to_labels(dense_results[i].probs, float(prob_thd), dense.background_class(dense_results[i].classes))
        fig, ax = plt.subplots(1, 4, figsize=(13, 3.2), gridspec_kw={"width_ratios": [1.5, 1, 1, 1]})
        ax[0].plot(th, 100 * curve, "o-", ms=3)
        ax[0].axvline(prob_thd, color="C3", lw=1)
        ax[0].set_xlabel("prob_thd")
        ax[0].set_ylabel("dataset mIoU (%)")
        ax[0].set_title(f"{len(images)} images")
        miou_i = metrics.segmentation_metrics([lab], [labels[i]], n)["miou"]
        for a, im, t in ((ax[1], images[i], f"image {i}"), (ax[2], viz.overlay(images[i], lab, vocabulary=class_names),
                                                             f"prob_thd {prob_thd:.2f}: mIoU {100 * miou_i:.0f} %"),
                         (ax[3], viz.overlay(images[i], labels[i], vocabulary=class_names), "ground truth")):
            a.imshow(im)
            a.set_title(t, fontsize=9)
            a.axis("off")
        fig.tight_layout()
        return _done(fig)

    controls = dict(prob_thd=(0.0, 0.95, 0.05), example=(0, max(len(images) - 1, 0), 1))
    return panel(draw, controls, d)
