"""What a lesson works on, in the mode it runs in, so one set of notebook cells serves both modes.

Offline, :func:`example` returns a rendered shapes scene with its exact ground truth, the
31-class vocabulary, tiny-shapes and the classical segmenter. In real mode it returns a bundled
photo with its vocabulary (``data.PHOTO_VOCABULARIES``), CLIP ViT-B/16 (OpenAI) and SAM2.1
(tiny on a CPU, base+ on a CUDA GPU) — and no ground truth, so the cells that measure on the
example say so instead of printing a number (:meth:`Example.score`). :func:`sized` shrinks a
lesson's loop in the real-mode smoke run (``OGCLIP_SMOKE=1``). :func:`grounding_lesson` does the
same for notebook 01 (a scene and its expressions offline, a photo and hand-written expressions
in real mode, the shapes set for Acc@0.5 in both, RefCOCOg when it is in the cache).
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from . import data, env, grounding, metrics, models, paths, refcocog
from .detectors import Detection, detect
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


# ----------------------------------------------------------------------------- notebook 01
#: Referring expressions written for the bundled photos (real mode's notebook 01): (text, kind).
#: They have no ground-truth boxes; the kinds follow the shapes world's (a relation word or not).
PHOTO_EXPRESSIONS: dict[str, list[tuple[str, str]]] = {
    "astronaut": [("the American flag", "attribute"), ("the woman in the orange suit", "attribute"),
                  ("the small model of the space shuttle", "attribute"), ("the flag behind the woman", "relational"),
                  ("the person next to the flag", "relational")],
    "coffee": [("the cup of coffee", "attribute"), ("the white saucer", "attribute"), ("the small spoon", "attribute"),
               ("the spoon on the saucer", "relational")],
}

#: where real mode looks for RefCOCOg (umd): this folder of the cache, or ``$OGCLIP_REFCOCOG``
REFCOCOG_HOWTO = ("RefCOCOg (umd) is not in $OGCLIP_CACHE/datasets/refcocog/ (nor in $OGCLIP_REFCOCOG). It needs "
                  "refs(umd).p and instances.json (the refer toolkit's "
                  "https://bvisionweb1.cs.unc.edu/licheng/referit/data/refcocog.zip) and the COCO train2014 images in images/train2014/ "
                  "(http://images.cocodataset.org/zips/train2014.zip, about 13 GB), unpacked into that folder.")


def refcocog_root() -> Path | None:
    """The RefCOCOg folder real mode uses: ``$OGCLIP_REFCOCOG``, else ``$OGCLIP_CACHE/datasets/refcocog``
    when it exists; None when neither does."""
    for root in (os.environ.get("OGCLIP_REFCOCOG"), paths.dataset_dir("refcocog")):
        if root and Path(root).expanduser().is_dir():
            return Path(root).expanduser()
    return None


def real_detector() -> str:
    """Real mode's proposal detector: ``"yolo"`` when ultralytics is installed, else ``"torchvision"``
    (Faster R-CNN MobileNetV3; both read their weights from the project's cache)."""
    return "yolo" if importlib.util.find_spec("ultralytics") is not None else "torchvision"


@dataclass
class GroundingLesson:
    """What notebook 01 grounds, for the mode it runs in.

    mode; name: what the image is; image: uint8 H×W×3; expressions: ``data.Expression`` (offline
    with the target's box; on a photo ``box`` is None); clip: the mode's CLIP; detector: a
    ``detectors.DETECTORS`` name ("shapes" offline; "yolo" or "torchvision" in real mode);
    eval_seeds: the shapes scenes of the Acc@0.5 table (both modes: exact ground truth, and the
    shapes detector, since a COCO detector knows no shapes); note: what to expect in this mode."""

    mode: str
    name: str
    image: np.ndarray
    expressions: list
    clip: object = field(repr=False)
    detector: object
    eval_seeds: list[int]
    note: str

    def detect(self, fallback_grid: int = 3) -> list:
        """The detector's proposals for :attr:`image` (``detectors.detect``). When it proposes
        nothing (a random-init stand-in; a photo without COCO objects) a ``fallback_grid``² grid of
        boxes stands in, with confidence 0 and label "grid", and a line says so, so that the
        lesson's cells still have candidates to score."""
        dets = detect(self.image, self.detector)
        if dets:
            return dets
        h, w = self.image.shape[:2]
        n = int(fallback_grid)
        print(f"{self.detector} proposed no box in {self.name}; using a {n}×{n} grid of boxes instead")
        return [Detection((w * i / n, h * j / n, w * (i + 1) / n, h * (j + 1) / n), 0.0, "grid")
                for j in range(n) for i in range(n)]

    def iou_text(self, box, expression) -> str:
        """``"IoU with truth 0.99"`` for ``box`` against the expression's box, or ``"no ground truth"``."""
        if expression.box is None:
            return "no ground truth (a photo)"
        return f"IoU with truth {metrics.box_iou(box, expression.box) if box is not None else 0.0:.2f}"

    def evaluate(self, progress: bool = False) -> "grounding.Evaluation":
        """Acc@0.5 of every ``grounding.DEFAULT_VARIANTS`` row with this lesson's CLIP on the shapes set
        (``eval_seeds``, the shapes detector)."""
        return grounding.evaluate(self.clip, self.eval_seeds, progress=progress)

    def refcocog(self, limit: int = 200, padding: str = "square") -> str:
        """Acc@0.5 of crop grounding (full sentence, ``padding``) on the first ``limit`` RefCOCOg (umd)
        validation sentences with this lesson's CLIP and detector, as one line — or, offline or
        without RefCOCOg in the cache, what it needs and how to get it (nothing is downloaded)."""
        if self.mode != "real":
            return "RefCOCOg is real mode's data (photos, a COCO detector); offline the shapes set above is the measurement."
        root = refcocog_root()
        if root is None:
            return REFCOCOG_HOWTO
        refs = refcocog.load_refcocog(root, "val", limit=limit)
        boxes = [grounding.ground(x.load_image(), x.sentence, self.clip, detector=self.detector, padding=padding).box
                 or (0, 0, 0, 0) for x in refs]
        acc = metrics.grounding_accuracy(boxes, [x.box for x in refs])
        return (f"RefCOCOg umd val, first {acc['n']} sentences, {self.clip.name} + {self.detector} proposals, "
                f"padding={padding}: Acc@0.5 {acc['all']:.1f} %")


def grounding_lesson(mode: str | None = None, scene: int = 71_500_008, photo: str = "astronaut", clip=None,
                     detector=None, num_eval: int = 80) -> GroundingLesson:
    """The mode-aware set-up of notebook 01 (see :class:`GroundingLesson`).

    Offline: ``data.make_scene(scene, size=160, num_objects=4)`` and its generated expressions,
    tiny-shapes, the shapes detector. Real: the bundled ``photo`` with :data:`PHOTO_EXPRESSIONS`,
    ViT-B/16, :func:`real_detector`. ``clip`` / ``detector`` override the mode's. ``num_eval``
    shapes scenes from ``grounding.EVAL_SEED_BASE`` for the table (2 in the smoke run)."""
    mode = env.get_mode(mode)
    clip = models.default_clip(mode) if clip is None else clip
    seeds = list(range(grounding.EVAL_SEED_BASE, grounding.EVAL_SEED_BASE + knob(num_eval, 2)))
    if mode == "offline":
        sc = data.make_scene(scene, size=160, num_objects=4)
        return GroundingLesson(mode, f"shapes scene {scene}", sc.image, data.referring_expressions(sc), clip,
                               detector or "shapes",
                               seeds, f"offline: {clip.name} and the shapes detector on a rendered scene with exact boxes")
    if photo not in PHOTO_EXPRESSIONS:
        raise ValueError(f"photo={photo!r}: expressions are written for {sorted(PHOTO_EXPRESSIONS)}")
    exprs = [data.Expression(t, k, -1, None) for t, k in PHOTO_EXPRESSIONS[photo]]
    det = detector or real_detector()
    return GroundingLesson(mode, f"photo {photo!r}", data.load_photo(photo), exprs, clip, det, seeds,
                           f"real: {clip.name} and {det} proposals on the bundled photo {photo!r} (no ground-truth "
                           "boxes); the Acc@0.5 table measures the same CLIP on the shapes set")
