"""Figures shared by every notebook: one palette, overlays, points and boxes.

Colours mean something (:func:`class_colours`): a class named after a colour is drawn in that
colour ("blue square" is blue; the five shapes of one colour differ in lightness, and every
label map has a legend), the background is found by name (the class whose first synonym is
"background", wherever it sits in the vocabulary) and drawn dark grey, and other names get
well-separated golden-ratio hues. :func:`palette` is the plain hue walk, for things that are
not classes (instances, components).
"""
from __future__ import annotations

import colorsys
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

from ..data import CLASS_NAMES, COLOURS, SHAPES
from ..vocabulary import background_index


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


BACKGROUND_RGB = (40, 40, 40)
#: Lightness of the five shapes of one colour: 0 = the colour itself, < 0 towards black, > 0 towards white.
SHAPE_SHADES = dict(zip(SHAPES, (0.0, -0.3, 0.35, -0.5, 0.6)))


def _shade(rgb: Sequence[int], t: float) -> np.ndarray:
    c = np.asarray(rgb, np.float64)
    return np.round(c * (1 + t) if t < 0 else c + (255 - c) * t).astype(np.uint8)


def class_colours(vocabulary: Sequence[str]) -> np.ndarray:
    """C×3 uint8 RGB, one colour per class of ``vocabulary`` (names, "a, b" synonyms allowed).

    - the background (first synonym "background", at any index) is dark grey;
    - a name containing a shapes-world colour word ("red", "blue", …) gets that colour, and a
      shape word after it sets the lightness (:data:`SHAPE_SHADES`: circle as is, square darker,
      triangle lighter, star darkest, cross lightest), so "blue star" and "blue square" are
      both blue and still told apart (with a legend);
    - every other name gets the next well-separated golden-ratio hue.
    """
    names = [str(c).split(",")[0].strip().lower() for c in vocabulary]
    bg = background_index(list(vocabulary))
    out = np.zeros((len(names), 3), np.uint8)
    hues = palette(len(names) + 1)[1:]  # skip palette's grey slot
    k = 0
    for i, name in enumerate(names):
        words = name.replace("-", " ").split()
        colour = next((w for w in words if w in COLOURS), None)
        if i == bg:
            out[i] = BACKGROUND_RGB
        elif colour is not None:
            shape = next((w for w in words if w in SHAPE_SHADES), None)
            out[i] = _shade(COLOURS[colour], SHAPE_SHADES.get(shape, 0.0))
        else:
            out[i] = hues[k]
            k += 1
    return out


def _colours_for(classes: "int | Sequence[str] | None", label_map: np.ndarray) -> np.ndarray:
    if classes is not None and not isinstance(classes, (int, np.integer)):
        return class_colours(list(classes))
    lm = np.asarray(label_map)
    valid = (lm != 255) & (lm >= 0)
    n = int(classes or (lm[valid].max() + 1 if valid.any() else 1))
    return palette(max(n, 2))


def colorize(label_map: np.ndarray, classes: "int | Sequence[str] | None" = None) -> np.ndarray:
    """H×W int label map → H×W×3 uint8 colours.

    ``classes``: the vocabulary (colours by :func:`class_colours`: true colours, background by
    name) or, for maps that are not classes, a count (:func:`palette`). 255 (ignore) → white;
    negative ids (unassigned) → the background grey."""
    lm = np.asarray(label_map)
    pal = _colours_for(classes, lm)
    out = pal[np.clip(lm, 0, len(pal) - 1)]
    out[lm < 0] = BACKGROUND_RGB
    out[lm == 255] = 255
    return out


def overlay(image: np.ndarray, label_map: np.ndarray, alpha: float = 0.55, num_classes: int | None = None,
            skip_background: bool = True, vocabulary: Sequence[str] | None = None) -> np.ndarray:
    """Blend class colours over ``image`` (uint8 H×W×3).

    With ``vocabulary`` the colours are :func:`class_colours` and the background is the class
    named "background" (none: every class is drawn); without it, class 0 is the background
    (``num_classes`` palette colours). ``skip_background`` leaves background pixels untouched;
    negative ids (e.g. pixels outside a selected class) are always left untouched."""
    lm = np.asarray(label_map)
    col = colorize(lm, vocabulary if vocabulary is not None else num_classes).astype(np.float32)
    img = np.asarray(image, np.float32)
    a = np.full(lm.shape, alpha, np.float32)
    bg = background_index(list(vocabulary)) if vocabulary is not None else 0
    if skip_background and bg is not None:
        a[lm == bg] = 0.0
    a[lm < 0] = 0.0
    return (img * (1 - a[..., None]) + col * a[..., None]).round().astype(np.uint8)


def mask_overlay(image: np.ndarray, mask: np.ndarray, color: Sequence[int] = (30, 144, 255), alpha: float = 0.5) -> np.ndarray:
    """Blend one bool mask over ``image`` in ``color``."""
    img = np.asarray(image, np.float32).copy()
    m = np.asarray(mask, bool)
    img[m] = img[m] * (1 - alpha) + np.asarray(color, np.float32) * alpha
    return img.round().astype(np.uint8)


def show_mask(ax, image: np.ndarray, mask: np.ndarray, dim: float = 0.35, color: str = "white") -> None:
    """Draw ``image`` on ``ax`` with the pixels outside ``mask`` dimmed to ``dim`` × their
    brightness and the mask's outline in ``color`` (black halo): the object keeps its own
    colour, so a blue mask on a blue object stays visible. Empty masks draw the dimmed image."""
    img = np.asarray(image, np.float32).copy()
    m = np.asarray(mask, bool)
    img[~m] *= float(dim)
    ax.imshow(img.round().astype(np.uint8))
    if m.any() and not m.all():
        ax.contour(m.astype(float), levels=[0.5], colors=["black"], linewidths=2.2)
        ax.contour(m.astype(float), levels=[0.5], colors=[color], linewidths=1.0)


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
    """Legend handles (matplotlib patches) in :func:`class_colours` for the given class ids."""
    import matplotlib.patches as patches

    pal = class_colours(list(class_names))
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
    axes[1].imshow(colorize(scene.labels, names))
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


def example_figure(example, size: float = 3.2):
    """A lesson's example (``lessons.Example``): a shapes scene as :func:`scene_figure` (image,
    labels, instances), a photo as the image titled with its vocabulary; returns the figure."""
    if getattr(example, "scene", None) is not None:
        return scene_figure(example.scene, example.vocabulary, size=size)
    h, w = example.image.shape[:2]
    return image_grid([example.image], [f"{example.name}: " + " | ".join(example.vocabulary)], ncols=1,
                      size=size * max(1.0, w / h))


def infonce_figure(sim: np.ndarray, scales: Sequence[float], losses: Sequence[float], row: int = 0,
                   names: Sequence[str] | None = None, show: Sequence[float] | None = None):
    """The temperature toy of notebook 00. Left: the softmax over row ``row`` of the N×N
    similarity matrix ``sim`` (one image against every caption) at the smallest and largest of
    ``show`` (default: of ``scales``), the true caption's bar outlined. Right: the InfoNCE loss
    ``losses`` against the scale s (log axis) with chance, log N, dashed."""
    sim = np.asarray(sim, np.float64)
    n = sim.shape[0]
    lo, hi = (min(scales), max(scales)) if show is None else (min(show), max(show))
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.2), gridspec_kw={"width_ratios": [1.6, 1]})
    x = np.arange(sim.shape[1])
    for s, colour, w, off in ((lo, "#9aa5b1", 0.4, -0.2), (hi, "#d1495b", 0.4, 0.2)):
        p = np.exp(s * (sim[row] - sim[row].max()))
        p /= p.sum()
        bars = a.bar(x + off, p, width=w, color=colour, label=f"s = {s:g}")
        bars[row].set_edgecolor("black")
        bars[row].set_linewidth(1.5)
    a.set_xticks(x)
    a.set_xticklabels(names if names is not None else [str(i) for i in x], rotation=90, fontsize=6)
    a.set_ylabel("softmax probability")
    a.set_title(f"row {row}: one image against all {sim.shape[1]} captions (true one outlined)", fontsize=9)
    a.legend(fontsize=8)
    b.plot(list(scales), list(losses), "o-", color="#d1495b", label="InfoNCE loss")
    b.axhline(np.log(n), ls="--", color="grey", label=f"chance: log {n} = {np.log(n):.2f}")
    b.set_xscale("log")
    b.set_xlabel("logit scale s = 1 / temperature")
    b.set_ylabel("loss (nats)")
    b.set_title("the same embeddings, another temperature", fontsize=9)
    b.legend(fontsize=8)
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
