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
from .og_clip.samples import interior_point


@dataclass
class Example:
    """One image to teach on, with the mode's models.

    mode: "offline" or "real"; name: what the image is ("shapes scene 4242", "photo 'chelsea'");
    image: uint8 H×W×3; vocabulary: class names (index = class id; entries may list synonyms
    separated by ", "); clip / segmenter: the mode's models (``models.default_models``);
    labels: int64 H×W ground-truth class ids into ``vocabulary`` (offline), or None for a photo;
    objects: the ground-truth object names (offline), [] for a photo; note: what to expect in
    this mode, one line; scene: the ``data.Scene`` offline (objects, masks, caption), None for a photo."""

    mode: str
    name: str
    image: np.ndarray
    vocabulary: list[str]
    clip: object = field(repr=False)
    segmenter: object = field(repr=False)
    labels: np.ndarray | None
    objects: list[str]
    note: str
    scene: data.Scene | None = field(default=None, repr=False)

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

    def score(self, label_map: np.ndarray, percent: bool = False) -> str:
        """``"mIoU 0.969"`` (``percent``: ``"mIoU 12.3 %, pixel accuracy 76.8 %"``), or
        ``"mIoU: no ground truth for a photo"``."""
        if not self.has_truth:
            return "mIoU: no ground truth for a photo"
        if not percent:
            return f"mIoU {self.miou(label_map):.3f}"
        m = metrics.segmentation_metrics([label_map], [self.labels], len(self.vocabulary))
        return f"mIoU {100 * m['miou']:.1f} %, pixel accuracy {100 * m['pixel_acc']:.1f} %"

    def query_window(self, size: int) -> tuple[str, np.ndarray, tuple[int, int]]:
        """``(what the point is on, size×size crop, (x, y) of the point in the crop)``: a window of
        the model's input size around the most interior visible pixel of the first object
        (offline; its centre may lie under another object) or around the image centre (a photo),
        clamped inside the image."""
        h, w = self.image.shape[:2]
        if self.scene is not None and self.scene.objects:
            obj = self.scene.objects[0]
            (cx, cy), what = interior_point(obj.mask), obj.name
        else:
            cx, cy, what = w // 2, h // 2, f"the centre of {self.name}"
        size = int(min(size, h, w))
        x0, y0 = int(np.clip(cx - size // 2, 0, w - size)), int(np.clip(cy - size // 2, 0, h - size))
        return what, self.image[y0:y0 + size, x0:x0 + size], (int(cx - x0), int(cy - y0))


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
                       f"offline: {clip.name} and the classical segmenter on a rendered scene with exact ground truth", sc)
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
