"""Figures shared by every notebook: one palette, overlays, points and boxes.

Colours come from a golden-ratio walk around the hue circle, so class ``k`` has the same
colour in every figure (class 0, background, is dark grey).
"""
from __future__ import annotations

import colorsys
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

from ..data import CLASS_NAMES


def palette(n: int, seed_hue: float = 0.11) -> np.ndarray:
    """n×3 uint8 RGB colours; index 0 (background) is dark grey, the rest golden-ratio hues."""
    out = np.zeros((max(n, 1), 3), np.uint8)
    out[0] = (40, 40, 40)
    phi = 0.618033988749895
    for k in range(1, n):
        h = (seed_hue + k * phi) % 1.0
        s, v = (0.75, 0.95) if k % 2 else (0.6, 0.8)
        out[k] = np.round(np.array(colorsys.hsv_to_rgb(h, s, v)) * 255)
    return out[:n]


def colorize(label_map: np.ndarray, num_classes: int | None = None) -> np.ndarray:
    """H×W int label map → H×W×3 uint8 colours (255 = ignore → white)."""
    lm = np.asarray(label_map)
    n = int(num_classes or (lm[lm != 255].max() + 1 if (lm != 255).any() else 1))
    pal = palette(max(n, 2))
    out = pal[np.clip(lm, 0, len(pal) - 1)]
    out[lm == 255] = 255
    return out


def overlay(image: np.ndarray, label_map: np.ndarray, alpha: float = 0.55, num_classes: int | None = None,
            skip_background: bool = True) -> np.ndarray:
    """Blend class colours over ``image`` (uint8 H×W×3); background left untouched by default."""
    col = colorize(label_map, num_classes).astype(np.float32)
    img = np.asarray(image, np.float32)
    a = np.full(label_map.shape, alpha, np.float32)
    if skip_background:
        a[np.asarray(label_map) == 0] = 0.0
    return (img * (1 - a[..., None]) + col * a[..., None]).round().astype(np.uint8)


def mask_overlay(image: np.ndarray, mask: np.ndarray, color: Sequence[int] = (30, 144, 255), alpha: float = 0.5) -> np.ndarray:
    """Blend one bool mask over ``image`` in ``color``."""
    img = np.asarray(image, np.float32).copy()
    m = np.asarray(mask, bool)
    img[m] = img[m] * (1 - alpha) + np.asarray(color, np.float32) * alpha
    return img.round().astype(np.uint8)


def show_points(ax, points: np.ndarray, labels: np.ndarray, size: int = 120) -> None:
    """Green stars for positive points (label 1), red crosses for negative ones (label 0)."""
    pts = np.asarray(points, float).reshape(-1, 2)
    lab = np.asarray(labels).reshape(-1)
    pos, neg = pts[lab == 1], pts[lab == 0]
    ax.scatter(pos[:, 0], pos[:, 1], c="lime", marker="*", s=size, edgecolors="black", linewidths=0.8)
    ax.scatter(neg[:, 0], neg[:, 1], c="red", marker="X", s=size * 0.7, edgecolors="white", linewidths=0.8)


def show_box(ax, box: Sequence[float], color="yellow", label: str | None = None, lw: float = 2.0) -> None:
    """Draw an (x0, y0, x1, y1) box, optionally with a text label above it."""
    import matplotlib.patches as patches

    x0, y0, x1, y1 = box
    ax.add_patch(patches.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor=color, linewidth=lw))
    if label:
        ax.text(x0, y0 - 2, label, color="black", fontsize=8, va="bottom",
                bbox=dict(facecolor=color, alpha=0.8, pad=1, edgecolor="none"))


def image_grid(images: Sequence[np.ndarray], titles: Sequence[str] | None = None, ncols: int = 4,
               size: float = 2.6, suptitle: str | None = None, cmap=None):
    """A matplotlib figure showing ``images`` in a grid with optional titles; returns the figure."""
    import matplotlib.pyplot as plt

    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols)) if n else 1
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i], cmap=cmap)
            if titles is not None:
                ax.set_title(titles[i], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def legend_patches(class_names: Sequence[str], present: Sequence[int] | None = None):
    """Legend handles (matplotlib patches) in palette colours for the given class ids."""
    import matplotlib.patches as patches

    pal = palette(len(class_names))
    ids = range(len(class_names)) if present is None else present
    return [patches.Patch(color=pal[i] / 255.0, label=class_names[i]) for i in ids]


def heatmap(matrix: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str], title: str = "",
            cmap: str = "viridis", annotate: bool = False, fmt: str = "{:.0f}", size: float = 0.32):
    """A labelled heat map (e.g. an image×text similarity matrix or a confusion matrix); returns the figure."""
    import matplotlib.pyplot as plt

    m = np.asarray(matrix, float)
    fig, ax = plt.subplots(figsize=(max(4, size * m.shape[1] + 2), max(3, size * m.shape[0] + 1.5)))
    im = ax.imshow(m, cmap=cmap, aspect="auto")
    ax.set_xticks(range(m.shape[1]), col_labels, rotation=90, fontsize=7)
    ax.set_yticks(range(m.shape[0]), row_labels, fontsize=7)
    if annotate:
        hi = np.nanmax(m) if m.size else 0
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                ax.text(j, i, fmt.format(m[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if m[i, j] < 0.6 * hi else "black")
    fig.colorbar(im, ax=ax, fraction=0.04)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def scene_figure(scene, class_names: Sequence[str] | None = None, size: float = 3.2):
    """Image | class labels | instance ids of a shapes-world scene, with the caption; returns the figure."""
    import matplotlib.pyplot as plt

    names = list(class_names or CLASS_NAMES)
    fig, axes = plt.subplots(1, 3, figsize=(3 * size, size + 0.4))
    axes[0].imshow(scene.image)
    axes[0].set_title("image")
    axes[1].imshow(colorize(scene.labels, len(names)))
    axes[1].set_title("labels (class ids)")
    axes[2].imshow(scene.instances, cmap="tab10", interpolation="nearest", vmin=0, vmax=9)
    axes[2].set_title("instances")
    for i, o in enumerate(scene.objects):
        show_box(axes[0], o.box, color="white", label=f"{i + 1}: {o.name}")
    present = sorted({int(k) for k in np.unique(scene.labels)})
    axes[1].legend(handles=legend_patches(names, present), fontsize=7, loc="lower left", framealpha=0.8)
    for ax in axes:
        ax.axis("off")
    fig.suptitle(f'"{scene.caption}"', fontsize=10)
    fig.tight_layout()
    return fig


def curve(xs: Sequence[float], ys: dict, xlabel: str = "", ylabel: str = "", title: str = ""):
    """Line plot of several named series sharing ``xs``; returns the figure."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.4))
    for name, y in ys.items():
        ax.plot(xs, y, marker="o", ms=3, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def close_figure(fig):
    """Close ``fig`` (no implicit auto-display) and return it: a cell ending in the call shows
    it exactly once, the same way under JupyterLab, nbclient and nbval."""
    if fig is not None and hasattr(fig, "savefig"):
        plt.close(fig)
    return fig
