"""What a lesson works on, in the mode it runs in, so one set of notebook cells serves both modes.

Offline, :func:`example` returns a rendered shapes scene with its exact ground truth, the
31-class vocabulary, tiny-shapes and the classical segmenter. In real mode it returns a bundled
photo with its vocabulary (``data.PHOTO_VOCABULARIES``), CLIP ViT-B/16 (OpenAI) and SAM2.1
(tiny on a CPU, base+ on a CUDA GPU) — and no ground truth, so the cells that measure on the
example say so instead of printing a number (:meth:`Example.score`). :func:`sized` shrinks a
lesson's loop in the real-mode smoke run (``OGCLIP_SMOKE=1``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from . import data, env, metrics, models


@dataclass
class Example:
    """One image to teach on, with the mode's models.

    mode: "offline" or "real"; name: what the image is ("shapes scene 4242", "photo 'chelsea'");
    image: uint8 H×W×3; vocabulary: class names (index = class id; entries may list synonyms
    separated by ", "); clip / segmenter: the mode's models (``models.default_models``);
    labels: int64 H×W ground-truth class ids into ``vocabulary`` (offline), or None for a photo;
    objects: the ground-truth object names (offline), [] for a photo; note: what to expect in
    this mode, one line."""

    mode: str
    name: str
    image: np.ndarray
    vocabulary: list[str]
    clip: object = field(repr=False)
    segmenter: object = field(repr=False)
    labels: np.ndarray | None
    objects: list[str]
    note: str

    @property
    def has_truth(self) -> bool:
        """True when the example has exact ground truth (offline scenes)."""
        return self.labels is not None

    def describe(self) -> str:
        """One line: the objects of a scene, or the photo's size and vocabulary."""
        if self.has_truth:
            return "objects: " + ", ".join(self.objects)
        h, w = self.image.shape[:2]
        return f"{self.name} ({w}×{h} px), vocabulary: " + " | ".join(self.vocabulary) + "; no ground truth"

    def truth(self, mask: np.ndarray) -> str:
        """The ground-truth class covering most of ``mask`` (bool H×W), or "no ground truth"."""
        if not self.has_truth:
            return "no ground truth"
        m = np.asarray(mask, dtype=bool)
        if m.shape != self.labels.shape:
            raise ValueError(f"mask has shape {m.shape}, the example's image is {self.labels.shape}")
        if not m.any():
            return "empty mask"
        return self.vocabulary[int(np.bincount(self.labels[m], minlength=len(self.vocabulary)).argmax())]

    def miou(self, label_map: np.ndarray) -> float | None:
        """mIoU of ``label_map`` (int H×W) against the ground truth over every class of the
        vocabulary (as ``metrics.segmentation_metrics``), or None without ground truth."""
        if not self.has_truth:
            return None
        return float(metrics.segmentation_metrics([label_map], [self.labels], len(self.vocabulary))["miou"])

    def score(self, label_map: np.ndarray) -> str:
        """``"mIoU 0.969"``, or ``"mIoU: no ground truth for a photo"``."""
        m = self.miou(label_map)
        return "mIoU: no ground truth for a photo" if m is None else f"mIoU {m:.3f}"


def example(mode: str | None = None, scene: int = 4242, size: int = 160, photo: str = "chelsea",
            clip=None, segmenter=None) -> Example:
    """The example of a lesson for ``mode`` (default ``$OGCLIP_MODE``).

    Args:
        scene / size: the shapes scene offline (``data.make_scene(scene, size=size)``).
        photo: the bundled photo in real mode (``data.PHOTOS``), with ``data.PHOTO_VOCABULARIES[photo]``.
        clip / segmenter: override the mode's models (default ``models.default_models(mode)``).
    """
    mode = env.get_mode(mode)
    if mode == "offline":
        clip = models.default_clip(mode) if clip is None else clip
        segmenter = models.default_segmenter(mode) if segmenter is None else segmenter
        sc = data.make_scene(scene, size=size)
        return Example(mode, f"shapes scene {scene}", sc.image, list(data.CLASS_NAMES), clip, segmenter,
                       sc.labels, [o.name for o in sc.objects],
                       f"offline: {clip.name} and the classical segmenter on a rendered scene with exact ground truth")
    if photo not in data.PHOTO_VOCABULARIES:
        raise ValueError(f"photo={photo!r}: real-mode examples are the bundled photos {sorted(data.PHOTO_VOCABULARIES)}")
    clip = models.default_clip(mode) if clip is None else clip
    seg_name = models.default_segmenter_name(mode) if segmenter is None else type(segmenter).__name__
    segmenter = models.default_segmenter(mode) if segmenter is None else segmenter
    return Example(mode, f"photo {photo!r}", data.load_photo(photo), list(data.PHOTO_VOCABULARIES[photo]), clip,
                   segmenter, None, [],
                   f"real: {clip.name} and {seg_name} on the bundled photo {photo!r}; a photo has no ground truth, "
                   "so the cells that measure on it say so")


def sized(items: Sequence, smoke_size: int = 2) -> list:
    """``items`` as a list, or its first ``smoke_size`` in the real-mode smoke run (``OGCLIP_SMOKE=1``)."""
    items = list(items)
    return items[:smoke_size] if env.smoke() else items


def knob(value: int, smoke: int) -> int:
    """``value``, or ``smoke`` in the real-mode smoke run (``OGCLIP_SMOKE=1``): e.g. a grid's side."""
    return int(smoke) if env.smoke() else int(value)
