"""Figures of the benchmark (notebook 06): metrics by method and variant, where the time goes.

Every function returns an open matplotlib ``Figure`` (drawn into ``ax`` when given).
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np


def plot_comparison(comp, metric: str = "miou", ax=None):
    """``comp``: a ``benchmark.Comparison``. Grouped bars: ``metric`` (percent) per method, one bar per variant; returns the figure."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(1.6 * len(comp.methods) + 2, 3.6))
    else:
        fig = ax.figure
    vs, ms = comp.variants, comp.methods
    w = 0.8 / max(len(vs), 1)
    for j, v in enumerate(vs):
        vals = [100 * getattr(comp.results[(m, v)], metric) if (m, v) in comp.results else np.nan for m in ms]
        bars = ax.bar(np.arange(len(ms)) + (j - (len(vs) - 1) / 2) * w, vals, w, label=v)
        ax.bar_label(bars, fmt="%.0f", fontsize=7, padding=1)
    ax.set_xticks(np.arange(len(ms)), ms)
    ax.set_ylabel(f"{metric} (%)")
    ax.set_title(f"{comp.dataset}, {comp.num_images} images: {metric} by method and post-processing")
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def plot_stage_times(comp, method: str = "sclip", ax=None):
    """``comp``: a ``benchmark.Comparison``. Stacked horizontal bars: mean milliseconds per image in each stage, one bar per variant."""
    rows = [(v, comp.results[(method, v)]) for v in comp.variants if (method, v) in comp.results]
    if not rows:
        raise ValueError(f"method {method!r} is not in this comparison ({comp.methods})")
    if ax is None:
        fig, ax = plt.subplots(figsize=(7.5, 0.6 * len(rows) + 1.4))
    else:
        fig = ax.figure
    # stages in a fixed, readable order; "total"/"dense" sums are not stacked twice
    names = {"dense_text": "text encoding", "dense_image": "image (windows)", "dense_post": "post-processing",
             "dense": "dense map", "prompts": "prompt extraction", "refine": "segmenter + naming"}
    for i, (v, r) in enumerate(rows):
        t = r.mean_times
        parts = ([(k, t[k]) for k in ("dense_text", "dense_image", "dense_post") if k in t] if "dense_text" in t
                 else [(k, t[k]) for k in ("dense", "prompts", "refine") if k in t])
        left = 0.0
        for k, sec in parts:
            ax.barh(i, 1000 * sec, left=left, color=f"C{list(names).index(k)}", label=names[k])
            left += 1000 * sec
    handles, labels = ax.get_legend_handles_labels()
    uniq = dict(zip(labels, handles))
    ax.legend(uniq.values(), uniq.keys(), fontsize=8, frameon=False, loc="lower right")
    ax.set_yticks(range(len(rows)), [v for v, _ in rows])
    ax.set_xlabel("milliseconds per image")
    ax.set_title(f"where the time goes ({method})")
    fig.tight_layout()
    return fig
