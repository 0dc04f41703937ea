"""Figures of Object-Guided CLIP (notebook 05): outlined scenes, masked crops, curves, each method's pick.

Context-task scenes with target / distractor / anchor outlined, the masked crops a baseline
sees side by side, training curves, and which object each method picks."""
from __future__ import annotations

import textwrap
from typing import Mapping, Sequence

import numpy as np

from ..arrays import masked_crop

#: outline colours and styles: the object the caption means, its same-class distractors, the anchor
ROLES = {"target": ("#2ca02c", "-"), "distractor": ("#ff7f0e", "--"), "anchor": ("#1f77b4", ":")}


def _outline(ax, mask: np.ndarray, colour: str, style: str, width: float = 2.2) -> None:
    ax.contour(np.asarray(mask, float), levels=[0.5], colors=[colour], linestyles=[style], linewidths=width)


def _role_legend(fig, roles=("target", "distractor", "anchor")) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([0], [0], color=ROLES[r][0], ls=ROLES[r][1], lw=2.2, label=r) for r in roles]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)


def context_examples(samples: Sequence, cols: int = 4, title: str | None = None):
    """One panel per sample: the scene, its caption, the target (green), same-class distractors
    (orange, dashed) and the anchor (blue, dotted) outlined. Returns the Figure."""
    import matplotlib.pyplot as plt

    n = len(samples)
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.1 * cols, 3.4 * rows + 0.5), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, s in zip(axes.ravel(), samples):
        ax.imshow(s.image)
        for k in s.distractors:
            _outline(ax, s.masks[k], *ROLES["distractor"])
        if s.anchor is not None:
            _outline(ax, s.masks[s.anchor], *ROLES["anchor"])
        _outline(ax, s.masks[s.target], *ROLES["target"])
        ax.set_title("\n".join(textwrap.wrap(s.caption, 26)), fontsize=9)
    _role_legend(fig)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def crop_pairs(samples: Sequence, size: int = 64):
    """Per sample: the masked crop of the target and of its distractor, side by side — what a
    masked-crop baseline sees. Returns the Figure."""
    import matplotlib.pyplot as plt


    fig, axes = plt.subplots(len(samples), 3, figsize=(7.5, 2.6 * len(samples)), squeeze=False)
    for row, s in zip(axes, samples):
        d = s.distractors[0]
        row[0].imshow(s.image)
        _outline(row[0], s.masks[s.target], *ROLES["target"])
        _outline(row[0], s.masks[d], *ROLES["distractor"])
        row[0].set_title("\n".join(textwrap.wrap(s.caption, 30)), fontsize=8)
        row[1].imshow(masked_crop(s.image, s.masks[s.target], size))
        row[1].set_title("masked crop: target", fontsize=9, color=ROLES["target"][0])
        row[2].imshow(masked_crop(s.image, s.masks[d], size))
        row[2].set_title("masked crop: distractor", fontsize=9, color=ROLES["distractor"][0])
        for ax in row:
            ax.axis("off")
    _role_legend(fig, ("target", "distractor"))
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def training_curves(histories: Mapping[str, Sequence[dict]], key: str = "relational", ax=None):
    """Validation within-scene accuracy (percent) against training step, one line per run
    (``histories[name]`` = rows with ``step`` and ``key``). Returns the Axes."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6.4, 3.6))[1]
    for name, rows in histories.items():
        ax.plot([r["step"] for r in rows], [100 * r[key] for r in rows], marker="o", ms=3, label=name)
    ax.set_xlabel("training step")
    ax.set_ylabel(f"within-scene accuracy, {key} (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def choices(samples: Sequence, picks: Mapping[str, Sequence[int]], cols: int = 4):
    """Which object each method picks: per sample, the scene with the target outlined in green and
    each method's pick marked by a labelled dot (✓ when right). ``picks[method][i]`` is the
    object index chosen for ``samples[i]``. Returns the Figure."""
    import matplotlib.pyplot as plt
    from scipy import ndimage as ndi

    n = len(samples)
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.6 * rows + 0.4), squeeze=False)
    markers = ["o", "s", "^", "D"]
    colours = ["#d62728", "#9467bd", "#8c564b", "#e377c2"]
    for ax in axes.ravel():
        ax.axis("off")
    for i, (ax, s) in enumerate(zip(axes.ravel(), samples)):
        ax.imshow(s.image)
        _outline(ax, s.masks[s.target], *ROLES["target"])
        lines = []
        for j, (name, pk) in enumerate(picks.items()):
            k = int(pk[i])
            cy, cx = ndi.center_of_mass(s.masks[k])
            off = (j - (len(picks) - 1) / 2) * 0.06 * s.image.shape[1]
            ax.plot(cx + off, cy, markers[j % 4], color=colours[j % 4], ms=9, mec="white", mew=1.5)
            lines.append(f"{name}: {'✓' if k == s.target else '✗'}")
        ax.set_title("\n".join(textwrap.wrap(s.caption, 28)) + "\n" + "  ".join(lines), fontsize=8)
    from matplotlib.lines import Line2D

    handles = [Line2D([0], [0], color=ROLES["target"][0], lw=2.2, label="target")]
    handles += [Line2D([0], [0], marker=markers[j % 4], color=colours[j % 4], ls="", ms=8, label=f"{name}'s pick")
                for j, name in enumerate(picks)]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig
