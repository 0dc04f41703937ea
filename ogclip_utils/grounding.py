"""Baseline visual grounding: detector boxes → padded crops → CLIP scores → the chosen box.

Referring expression comprehension the way many projects start: propose boxes with a
detector, crop each box, ask CLIP which crop matches the sentence, return the best box.

- proposals: :func:`detect` with ``"shapes"`` (offline, classical colour segmentation of the
  image alone), ``"torchvision"`` (Faster R-CNN MobileNetV3, real mode) or ``"yolo"``
  (ultralytics, optional extra, real mode); or any :class:`Detector`-like callable;
- crops: :func:`crop` with ``padding`` = ``"none"`` (tight, stretched to a square),
  ``"context"`` (box enlarged by ``context`` × its size per side, stretched) or
  ``"square"`` (the context crop letterboxed on a square of its mean colour — no distortion)
  or ``"masked"`` (square, with pixels outside the detector's segment painted background);
  ``ground`` defaults to ``"auto"``: masked when the detector gives masks;
- scoring: cosine similarity between crop and text embeddings, one template or an ensemble
  (:data:`TEMPLATES`); the full sentence or only its subject (:func:`extract_subject`);
- pseudo-queries (:func:`pseudo_queries`): describe every crop in words by zero-shot over
  size / colour / shape vocabularies and compare the description with the expression
  through CLIP's text encoder (text-to-text similarity);
- :func:`ground` → :class:`GroundingResult` (box, score, every candidate with its score);
- :func:`evaluate` → Acc@0.5 per expression kind on shapes-world scenes (cached per scene);
- :func:`load_refcocog` reads RefCOCOg (umd split) in its published layout.

Boxes are (x0, y0, x1, y1) in pixels with x1/y1 exclusive; images uint8 H×W×3 RGB.
"""
from __future__ import annotations

import json
import pickle
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from . import data, metrics

PADDINGS = ("none", "context", "square", "masked")
DETECTORS = ("shapes", "torchvision", "yolo")
#: A small template ensemble; ``"{}"`` is the expression itself.
TEMPLATES = ("{}", "a {}", "a photo of {}", "a picture of {}")
DEFAULT_TEMPLATES = ("{}",)
SIZE_WORDS = ("small", "large")


# ----------------------------------------------------------------------------- results
@dataclass
class Detection:
    """One proposal: box (x0, y0, x1, y1) pixels, detector confidence in [0, 1], detector label,
    and (detectors that segment, like the shapes detector) its bool H×W pixel mask."""

    box: tuple[float, float, float, float]
    confidence: float
    label: str = "object"
    mask: np.ndarray | None = field(default=None, repr=False)


@dataclass
class Candidate:
    """A scored proposal. ``score`` is the cosine similarity used for the choice;
    ``crop`` the uint8 S×S×3 image CLIP saw; ``query`` the text it was compared with
    (the pseudo-query for the pseudo-query method)."""

    box: tuple[float, float, float, float]
    score: float
    confidence: float
    label: str
    crop: np.ndarray | None = None
    query: str | None = None


@dataclass
class GroundingResult:
    """The chosen box (None when the detector found nothing), its score, and every candidate
    (in detector order) with its score; ``text`` is the text actually scored."""

    box: tuple[float, float, float, float] | None
    score: float
    candidates: list[Candidate]
    expression: str = ""
    text: str = ""
    method: str = "crop"

    @property
    def index(self) -> int | None:
        """Index of the winner in ``candidates``."""
        if not self.candidates:
            return None
        return int(np.argmax([c.score for c in self.candidates]))


# ----------------------------------------------------------------------------- input checks
def _check_image(image: Any) -> np.ndarray:
    if isinstance(image, (str, Path)):
        return data.load_image(image)
    arr = np.asarray(image) if isinstance(image, np.ndarray) else None
    if arr is None:
        return data.load_image(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        return data.load_image(arr)
    if arr.shape[0] < 2 or arr.shape[1] < 2:
        raise ValueError(f"image must be at least 2×2 pixels, got {arr.shape[:2]}")
    return arr


def _check_expression(expression: Any) -> str:
    if not isinstance(expression, str):
        raise ValueError(f"expression must be a string such as 'the red circle', got {type(expression).__name__}")
    text = " ".join(expression.split())
    if not text:
        raise ValueError("expression is empty; pass a referring expression such as 'the red circle'")
    return text


def check_box(box: Sequence[float], shape: tuple[int, int] | None = None) -> tuple[float, float, float, float]:
    """Validate an (x0, y0, x1, y1) box (finite, x1 > x0, y1 > y0, overlapping the image when
    ``shape`` = (H, W) is given) and return it as floats."""
    try:
        b = tuple(float(v) for v in box)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"box must be 4 numbers (x0, y0, x1, y1), got {box!r}") from exc
    if len(b) != 4 or not all(np.isfinite(b)):
        raise ValueError(f"box must be 4 finite numbers (x0, y0, x1, y1), got {box!r}")
    x0, y0, x1, y1 = b
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"box {b} is degenerate: need x1 > x0 and y1 > y0 (boxes are x0, y0, x1, y1, not x, y, w, h)")
    if shape is not None:
        H, W = shape
        if x1 <= 0 or y1 <= 0 or x0 >= W or y0 >= H:
            raise ValueError(f"box {b} lies outside the {H}×{W} image")
    return b


# ----------------------------------------------------------------------------- detectors
@dataclass
class ShapesDetector:
    """Classical detector for the shapes world, from the image alone (no ground truth).

    1. estimate the background colour in CIE Lab as a plane a + b·x + c·y fitted to the
       pixels that are not foreground (two rounds, starting from the image median);
    2. foreground = Lab distance from that background (L weighted by ``l_weight``) above
       ``threshold``; holes filled; connected components (``scipy.ndimage.label``);
    3. a component whose core pixels hold clearly different colours (k-means on Lab,
       centres more than ``split_distance`` apart) is split into one part per colour, so
       touching objects of different colours become separate boxes;
    4. parts smaller than ``min_area`` pixels or thinner than 3 px are dropped.

    Confidence = (1 − exp(−area / 80)) · min(1, median distance / 40): small faint blobs
    score low. Touching objects of the same colour stay merged (a known limit: a distance-transform
    watershed was tried and cost more on stars and crosses than it gained).
    """

    threshold: float = 18.0
    l_weight: float = 0.5
    split_distance: float = 6.0
    min_area: int = 12
    seed: int = 0

    def background(self, lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Background Lab image (H×W×3) and the Lab distance map (H×W) from it."""
        H, W = lab.shape[:2]
        yy, xx = np.mgrid[0:H, 0:W]
        A = np.stack([np.ones(H * W), xx.ravel() / W, yy.ravel() / H], 1)
        flat = lab.reshape(-1, 3)
        bg = np.broadcast_to(np.median(flat, 0), flat.shape)
        for _ in range(3):
            dist = self._dist(flat, bg)
            keep = dist < self.threshold
            if keep.sum() < 10:
                break
            coef, *_ = np.linalg.lstsq(A[keep], flat[keep], rcond=None)
            bg = A @ coef
        dist = self._dist(flat, bg)
        return bg.reshape(H, W, 3), dist.reshape(H, W)

    def _dist(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        d = a - b
        return np.sqrt((self.l_weight * d[..., 0]) ** 2 + d[..., 1] ** 2 + d[..., 2] ** 2)

    def _split(self, lab: np.ndarray, region: np.ndarray, core: np.ndarray) -> list[np.ndarray]:
        """Split a bool region by colour: k-means (k ≤ 6) on the Lab values of its core pixels,
        centres closer than ``split_distance`` merged; every pixel goes to its nearest colour."""
        from scipy.cluster.vq import kmeans2

        pts = lab[region & core]
        if len(pts) < 2 * self.min_area:
            return [region]
        w = np.array([self.l_weight, 1.0, 1.0])
        k = int(min(6, len(pts) // self.min_area, len(np.unique(pts.round(1), axis=0))))
        if k < 2:
            return [region]
        with warnings.catch_warnings():  # empty clusters on flat colours are harmless here
            warnings.simplefilter("ignore")
            centres, _ = kmeans2(pts * w, k, minit="++", seed=self.seed)
        groups: list[list[np.ndarray]] = []
        for c in centres:  # greedy merge of close centres
            for g in groups:
                if min(np.linalg.norm(c - x) for x in g) < self.split_distance:
                    g.append(c)
                    break
            else:
                groups.append([c])
        if len(groups) == 1:
            return [region]
        ys, xs = np.nonzero(region)
        allc = np.concatenate([np.stack(g) for g in groups])
        owner = np.concatenate([[i] * len(g) for i, g in enumerate(groups)])
        d = ((lab[ys, xs][:, None, :] * w - allc[None]) ** 2).sum(-1)
        which = owner[d.argmin(1)]
        from scipy import ndimage

        # smooth the per-pixel colour assignment (5×5 majority) so noise and anti-aliased
        # rims do not speckle one object into many pieces
        votes = np.zeros((len(groups),) + region.shape, np.float32)
        votes[which, ys, xs] = 1.0
        votes = ndimage.uniform_filter(votes, size=(1, 5, 5))
        smooth = votes.argmax(0)
        out = [region & (smooth == k) for k in range(len(groups))]
        return [p for p in out if p.sum() >= self.min_area] or [region]

    def __call__(self, image: np.ndarray) -> list[Detection]:
        from scipy import ndimage
        from skimage.color import rgb2lab

        image = _check_image(image)
        lab = rgb2lab(image)
        _, dist = self.background(lab)
        fg = ndimage.binary_fill_holes(dist > self.threshold)
        comps, n = ndimage.label(fg)
        core = ndimage.binary_erosion(fg, iterations=1)
        out: list[Detection] = []
        for i in range(1, n + 1):
            region = comps == i
            if region.sum() < self.min_area:
                continue
            for part in self._split(lab, region, core):
                pc, m = ndimage.label(part)
                for piece in (pc == j for j in range(1, m + 1)):
                    area = int(piece.sum())
                    ys, xs = np.nonzero(piece)
                    if area < self.min_area or np.ptp(xs) < 2 or np.ptp(ys) < 2:
                        continue
                    box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
                    conf = (1 - np.exp(-area / 80.0)) * min(1.0, float(np.median(dist[piece])) / 40.0)
                    out.append(Detection(box, float(conf), "object", piece))
        out.sort(key=lambda d: (d.box[0], d.box[1]))
        return out


class TorchvisionDetector:
    """A torchvision detection model (default: Faster R-CNN MobileNetV3-Large FPN) as a
    proposal backend. ``model`` may be passed in (e.g. built at random init for tests);
    otherwise the COCO weights are fetched by torchvision (real mode)."""

    def __init__(self, model: Any = None, weights: str | None = "DEFAULT", device: str | None = None):
        import torchvision
        from . import env

        self.device = env.get_device(device)
        if model is None:
            model = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_fpn(weights=weights)
        self.model = model.to(self.device).eval()
        meta = getattr(getattr(torchvision.models.detection, "FasterRCNN_MobileNet_V3_Large_FPN_Weights"), "DEFAULT").meta
        self.categories = list(meta.get("categories", []))

    def __call__(self, image: np.ndarray) -> list[Detection]:
        import torch

        image = _check_image(image)
        x = torch.as_tensor(image).permute(2, 0, 1).float().div(255.0).to(self.device)
        with torch.inference_mode():
            pred = self.model([x])[0]
        out = []
        for b, s, lab in zip(pred["boxes"].cpu().numpy(), pred["scores"].cpu().numpy(), pred["labels"].cpu().numpy()):
            name = self.categories[int(lab)] if int(lab) < len(self.categories) else str(int(lab))
            if b[2] > b[0] and b[3] > b[1]:
                out.append(Detection(tuple(float(v) for v in b), float(s), name))
        return out


class YoloDetector:
    """ultralytics YOLO (``pip install ogclip-utils[yolo]``) as a proposal backend.
    ``weights``: a ``.pt`` file (e.g. ``yolo11n.pt``, fetched by ultralytics) or a ``.yaml``
    architecture for random init."""

    def __init__(self, weights: str = "yolo11n.pt", device: str | None = None):
        try:
            from ultralytics import YOLO
        except ImportError as exc:
            raise ImportError("detector='yolo' needs ultralytics: pip install 'ogclip-utils[yolo]' "
                              "(or use detector='torchvision' / 'shapes')") from exc
        self.model = YOLO(weights)
        self.device = device

    def __call__(self, image: np.ndarray) -> list[Detection]:
        image = _check_image(image)
        # ultralytics expects BGR numpy arrays
        res = self.model.predict(np.ascontiguousarray(image[..., ::-1]), verbose=False, device=self.device, conf=0.001)[0]
        names = getattr(res, "names", {}) or {}
        out = []
        for b, s, c in zip(res.boxes.xyxy.cpu().numpy(), res.boxes.conf.cpu().numpy(), res.boxes.cls.cpu().numpy()):
            if b[2] > b[0] and b[3] > b[1]:
                out.append(Detection(tuple(float(v) for v in b), float(s), str(names.get(int(c), int(c)))))
        return out


_DETECTOR_CACHE: dict[str, Any] = {}


def get_detector(detector: "str | Callable" = "shapes") -> Callable[[np.ndarray], list[Detection]]:
    """A detector callable by name (built once and cached) or ``detector`` itself if callable."""
    if callable(detector):
        return detector
    if detector not in DETECTORS:
        raise ValueError(f"detector must be one of {DETECTORS} or a callable image -> [Detection], got {detector!r}")
    if detector not in _DETECTOR_CACHE:
        _DETECTOR_CACHE[detector] = {"shapes": ShapesDetector, "torchvision": TorchvisionDetector,
                                     "yolo": YoloDetector}[detector]()
    return _DETECTOR_CACHE[detector]


def detect(image: np.ndarray, detector: "str | Callable" = "shapes", min_confidence: float = 0.0,
           max_boxes: int = 50) -> list[Detection]:
    """Proposals for ``image`` (uint8 H×W×3): detections with confidence ≥ ``min_confidence``,
    the ``max_boxes`` most confident, boxes clipped to the image; degenerate boxes dropped."""
    image = _check_image(image)
    if not 0.0 <= float(min_confidence) <= 1.0:
        raise ValueError(f"min_confidence must lie in [0, 1], got {min_confidence!r}")
    H, W = image.shape[:2]
    dets = []
    for d in get_detector(detector)(image):
        x0, y0, x1, y1 = d.box
        b = (max(0.0, x0), max(0.0, y0), min(float(W), x1), min(float(H), y1))
        if b[2] > b[0] and b[3] > b[1] and d.confidence >= min_confidence:
            mask = d.mask if d.mask is not None and np.shape(d.mask) == (H, W) else None
            dets.append(Detection(b, d.confidence, d.label, mask))
    if len(dets) > max_boxes:
        keep = sorted(np.argsort([-d.confidence for d in dets], kind="stable")[:max_boxes])
        dets = [dets[i] for i in keep]
    return dets


# ----------------------------------------------------------------------------- crops
def crop(image: np.ndarray, box: Sequence[float], padding: str = "square", context: float = 0.15,
         size: int | None = 64, mask: np.ndarray | None = None) -> np.ndarray:
    """Crop ``box`` from ``image`` (uint8 H×W×3) for CLIP; returns uint8 size×size×3
    (or the unresized crop when ``size`` is None).

    - ``"none"``: the tight box, stretched to a square (thin objects get distorted);
    - ``"context"``: the box grown by ``context`` × its width/height on each side (clipped
      to the image), stretched to a square;
    - ``"square"``: the same context crop letterboxed — centred on a square canvas filled
      with the crop's mean colour — so the object keeps its aspect ratio;
    - ``"masked"``: like ``"square"``, but every pixel outside ``mask`` (bool H×W, the
      detector's segment) is first painted with the median colour of the image outside the
      mask (mostly background), so neighbours that overlap the box cannot steer CLIP.
    """
    from PIL import Image

    image = _check_image(image)
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    if not 0.0 <= float(context) <= 2.0:
        raise ValueError(f"context must be a fraction of the box size in [0, 2], got {context!r}")
    H, W = image.shape[:2]
    x0, y0, x1, y1 = check_box(box, (H, W))
    if padding == "masked":
        m = np.asarray(mask, bool) if mask is not None else None
        if m is None or m.shape != (H, W):
            raise ValueError(f"padding='masked' needs mask: a bool array of the image's shape {(H, W)}, got "
                             f"{None if m is None else m.shape}; use detections with masks (the shapes detector) or padding='square'")
        if m.any() and not m.all():
            image = image.copy()
            image[~m] = np.median(image[~m], 0).round().astype(np.uint8)
    if padding != "none":
        px, py = context * (x1 - x0), context * (y1 - y0)
        x0, y0, x1, y1 = x0 - px, y0 - py, x1 + px, y1 + py
    X0, Y0 = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
    X1, Y1 = min(W, max(int(np.ceil(x1)), X0 + 1)), min(H, max(int(np.ceil(y1)), Y0 + 1))
    out = image[Y0:Y1, X0:X1]
    if padding in ("square", "masked"):
        h, w = out.shape[:2]
        s = max(h, w)
        canvas = np.empty((s, s, 3), np.uint8)
        canvas[:] = out.reshape(-1, 3).mean(0).round().astype(np.uint8)
        oy, ox = (s - h) // 2, (s - w) // 2
        canvas[oy:oy + h, ox:ox + w] = out
        out = canvas
    if size is None:
        return np.ascontiguousarray(out)
    return np.asarray(Image.fromarray(np.ascontiguousarray(out)).resize((int(size), int(size)), Image.BICUBIC))


# ----------------------------------------------------------------------------- language
_DETERMINERS = {"the", "a", "an", "this", "that", "these", "those", "one", "some"}
_BREAKS = {
    # relations and prepositions that end the head noun phrase
    "left", "right", "above", "below", "under", "over", "behind", "near", "next", "beside", "between",
    "on", "in", "at", "with", "of", "to", "by", "from", "inside", "outside", "across", "beneath", "around",
    "on", "onto", "into", "against", "along", "front", "top", "bottom", "closest", "nearest", "farthest",
    # relative pronouns / verbs that start a clause
    "that", "which", "who", "whose", "where", "is", "are", "was", "being", "has", "having", "holding", "wearing",
    "sitting", "standing", "looking", "eating", "walking", "riding", "playing", "and", ",", ".",
}


def _spacy_subject(expression: str) -> str | None:
    try:
        import spacy  # optional
    except ImportError:
        return None
    nlp = _DETECTOR_CACHE.get("_spacy")
    if nlp is None:
        try:
            nlp = spacy.load("en_core_web_sm")
        except OSError:
            return None
        _DETECTOR_CACHE["_spacy"] = nlp
    chunks = list(nlp(expression).noun_chunks)
    if not chunks:
        return None
    words = [t.text for t in chunks[0] if t.lower_ not in _DETERMINERS]
    return " ".join(words) or None


def extract_subject(expression: str, use_spacy: bool = True) -> str:
    """The head noun phrase of a referring expression, without its determiner.

    Rule-based by default: the words before the first relation, preposition, relative
    pronoun or clause verb ("the star left of the red circle" → "star"; "the large blue
    square" → "large blue square"; "a man in a red shirt" → "man"). With ``use_spacy`` and
    spaCy plus ``en_core_web_sm`` installed, the first noun chunk is used instead.
    """
    text = _check_expression(expression)
    if use_spacy:
        s = _spacy_subject(text)
        if s:
            return s
    words = re.findall(r"[A-Za-z0-9'-]+|[,.]", text.lower())
    while words and words[0] in _DETERMINERS:
        words = words[1:]
    head = []
    for w in words:
        if w in _BREAKS and head:
            break
        if w not in _BREAKS:
            head.append(w)
    return " ".join(head) if head else text


# ----------------------------------------------------------------------------- scoring
_TEXT_CACHE: dict = {}


def _text_embeddings(clip, texts: Sequence[str], templates: Sequence[str], cache: dict | None = None) -> np.ndarray:
    """T×D L2-normalised embeddings; with several templates the normalised mean over them.
    Encoded in one batch and cached per (weights, text, templates)."""
    if not templates or not all(isinstance(t, str) and "{}" in t for t in templates):
        raise ValueError(f"templates must be a non-empty list of strings containing '{{}}', got {templates!r}")
    cache = _TEXT_CACHE if cache is None else cache
    wid = getattr(clip, "weights_id", id(clip))
    keys = [(wid, t, tuple(templates)) for t in texts]
    todo = sorted({k[1] for k in keys if k not in cache})
    if todo:
        e = clip.encode_texts([tp.format(t) for t in todo for tp in templates]).cpu().numpy()
        e = e.reshape(len(todo), len(templates), -1).mean(1)
        e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
        for t, v in zip(todo, e):
            cache[(wid, t, tuple(templates))] = v
    return np.stack([cache[k] for k in keys])


def encode_crops(clip, crops: Sequence[np.ndarray]) -> np.ndarray:
    """N×D L2-normalised CLIP embeddings of uint8 crops (resized to the model's input size)."""
    if len(crops) == 0:
        return np.zeros((0, 1), np.float32)
    S = clip.image_size
    arr = np.stack([c if c.shape[:2] == (S, S) else crop(c, (0, 0, c.shape[1], c.shape[0]), "none", size=S)
                    for c in crops])
    return clip.encode_images(arr).cpu().numpy()


def pseudo_queries(clip, crop_embeddings: np.ndarray, boxes: Sequence[Sequence[float]],
                   colours: Sequence[str] = data.COLOUR_NAMES, shapes: Sequence[str] = data.SHAPES,
                   size_ratio: float = 1.4) -> list[str]:
    """Describe each crop in words: "the [large|small] <colour> <shape>".

    Colour and shape come from zero-shot classification of the crop over every
    "a {colour} {shape}" pair; the size word from the box, relative to the other boxes
    given the same description (the largest is "large" when its side is ``size_ratio``
    times every other one's, likewise "small") — crops are resized, so size must come
    from the box, never from the crop.
    """
    names = [f"{c} {s}" for c in colours for s in shapes]
    t = _text_embeddings(clip, names, ("a {}",))
    best = [names[i] for i in (np.asarray(crop_embeddings) @ t.T).argmax(1)] if len(boxes) else []
    side = [np.sqrt((b[2] - b[0]) * (b[3] - b[1])) for b in boxes]
    out = []
    for i, n in enumerate(best):
        others = [side[j] for j in range(len(best)) if j != i and best[j] == n]
        word = ""
        if others and all(side[i] >= size_ratio * o for o in others):
            word = "large "
        elif others and all(side[i] * size_ratio <= o for o in others):
            word = "small "
        out.append(f"the {word}{n}")
    return out


def ground(image: np.ndarray, expression: str, clip, detector: "str | Callable" = "shapes",
           padding: str = "auto", context: float = 0.15, templates: Sequence[str] = DEFAULT_TEMPLATES,
           query: str = "full", method: str = "crop", min_confidence: float = 0.0,
           detections: list[Detection] | None = None) -> GroundingResult:
    """Ground ``expression`` in ``image``: the detector box whose crop CLIP matches best.

    Args:
        image: uint8 H×W×3 (or anything :func:`data.load_image` accepts).
        expression: a referring expression, e.g. "the red circle".
        clip: a :class:`models.ClipBundle`.
        detector: "shapes" | "torchvision" | "yolo" or a callable image → [Detection].
        padding: "none" | "context" | "square" | "masked" (see :func:`crop`) or "auto" (masked
            when every proposal carries a mask, as the shapes detector's do; else square);
            ``context`` the context fraction.
        templates: prompt templates; several = an ensemble (mean of normalised embeddings).
        query: "full" (the whole sentence) or "subject" (:func:`extract_subject`).
        method: "crop" (image–text cosine) or "pseudo" (pseudo-query text–text cosine).
        min_confidence: drop proposals below this detector confidence.
        detections: precomputed proposals (skips the detector).

    Returns:
        :class:`GroundingResult`; its box is None when there is no proposal.
    """
    image = _check_image(image)
    expression = _check_expression(expression)
    if query not in ("full", "subject"):
        raise ValueError(f"query must be 'full' or 'subject', got {query!r}")
    if method not in ("crop", "pseudo"):
        raise ValueError(f"method must be 'crop' or 'pseudo', got {method!r}")
    text = extract_subject(expression) if query == "subject" else expression
    dets = detections if detections is not None else detect(image, detector, min_confidence)
    dets = [d for d in dets if d.confidence >= min_confidence]
    if not dets:
        return GroundingResult(None, float("nan"), [], expression, text, method)
    crops = crop_detections(image, dets, padding, context, clip.image_size)
    return _choose(clip, dets, crops, encode_crops(clip, crops), expression, text, templates, method)


def resolve_padding(padding: str, dets: Sequence[Detection]) -> str:
    """``"auto"`` → ``"masked"`` when every detection has a mask, else ``"square"``."""
    if padding == "auto":
        return "masked" if dets and all(d.mask is not None for d in dets) else "square"
    if padding not in PADDINGS:
        raise ValueError(f"padding must be 'auto' or one of {PADDINGS}, got {padding!r}")
    return padding


def crop_detections(image: np.ndarray, dets: Sequence[Detection], padding: str = "auto", context: float = 0.15,
                    size: int | None = 64) -> list[np.ndarray]:
    """:func:`crop` of every detection (``padding`` resolved by :func:`resolve_padding`)."""
    pad = resolve_padding(padding, dets)
    if pad == "masked" and any(d.mask is None for d in dets):
        raise ValueError("padding='masked' needs detections with masks (the shapes detector gives them; "
                         "YOLO/torchvision boxes do not): use padding='square' or 'auto'")
    return [crop(image, d.box, pad, context, size=size, mask=d.mask if pad == "masked" else None) for d in dets]


def _choose(clip, dets: list[Detection], crops: list[np.ndarray], emb: np.ndarray, expression: str, text: str,
            templates: Sequence[str], method: str, cache: dict | None = None,
            queries: list[str] | None = None) -> GroundingResult:
    """Score precomputed crop embeddings (N×D) against ``text`` and pick the best candidate."""
    t = _text_embeddings(clip, [text], templates, cache)[0]
    if method == "crop":
        scores, qs = emb @ t, [None] * len(dets)
    else:
        qs = queries if queries is not None else pseudo_queries(clip, emb, [d.box for d in dets])
        scores = _text_embeddings(clip, qs, templates, cache) @ t
    cands = [Candidate(d.box, float(s), d.confidence, d.label, c, q) for d, s, c, q in zip(dets, scores, crops, qs)]
    k = int(np.argmax(scores))
    return GroundingResult(cands[k].box, cands[k].score, cands, expression, text, method)


# ----------------------------------------------------------------------------- evaluation
@dataclass
class Variant:
    """One row of the evaluation table."""

    name: str
    padding: str = "square"
    query: str = "full"
    method: str = "crop"
    templates: tuple[str, ...] = DEFAULT_TEMPLATES


DEFAULT_VARIANTS = (
    Variant("crop · full sentence · masked", "masked", "full"),
    Variant("crop · full sentence · square", "square", "full"),
    Variant("crop · subject only · square", "square", "subject"),
    Variant("crop · full sentence · no padding", "none", "full"),
    Variant("crop · full sentence · context", "context", "full"),
    Variant("crop · full sentence · square · ensemble", "square", "full", "crop", TEMPLATES),
    Variant("pseudo-query · full sentence · square", "square", "full", "pseudo"),
)


@dataclass
class Prediction:
    """One evaluated expression under one variant."""

    scene_seed: int
    text: str
    kind: str
    gt_box: tuple[float, float, float, float]
    pred_box: tuple[float, float, float, float] | None
    iou: float
    result: GroundingResult


@dataclass
class Evaluation:
    """Accuracy table (percent Acc@0.5 per variant and expression kind) plus every prediction."""

    table: dict[str, dict]
    predictions: dict[str, list[Prediction]]
    n_scenes: int
    detector_recall: dict[str, float]  # % of targets with some proposal at IoU ≥ 0.5, per kind
    scene_size: int = 160
    num_objects: tuple[int, int] = (2, 5)

    def scene(self, seed: int) -> data.Scene:
        """Re-render an evaluated scene from its seed."""
        return data.make_scene(int(seed), size=self.scene_size, num_objects=self.num_objects)

    def format(self) -> str:
        kinds = sorted({k for row in self.table.values() for k in row if k not in ("all", "n")})
        head = f"{'variant':44s} " + " ".join(f"{k:>11s}" for k in kinds) + f" {'all':>7s} {'n':>5s}"
        lines = [head]
        for name, row in self.table.items():
            lines.append(f"{name:44s} " + " ".join(f"{row.get(k, float('nan')):10.1f}%" for k in kinds)
                         + f" {row['all']:6.1f}% {row['n']:5d}")
        rec = " ".join(f"{k} {v:.1f}%" for k, v in self.detector_recall.items())
        lines.append(f"detector recall@0.5 (upper bound): {rec}")
        return "\n".join(lines)


def evaluate(clip, seeds: Sequence[int], variants: Sequence[Variant] = DEFAULT_VARIANTS,
             detector: "str | Callable" = "shapes", context: float = 0.15, scene_size: int = 160,
             num_objects: tuple[int, int] = (2, 5), progress: bool = False) -> Evaluation:
    """Acc@0.5 of every variant on the referring expressions of ``data.make_scene(seed)`` scenes.

    The detector runs once per scene, and crops are encoded once per scene and padding.
    With a box-only detector ("torchvision", "yolo") the "masked" variants are left out.
    """
    from tqdm.auto import tqdm

    if isinstance(detector, str) and detector != "shapes":  # box-only detectors: no masked crops
        variants = [v for v in variants if v.padding != "masked"]
    preds: dict[str, list[Prediction]] = {v.name: [] for v in variants}
    recall_hits: dict[str, list[bool]] = {}
    text_cache: dict | None = None
    n = 0
    for seed in tqdm(list(seeds), disable=not progress, desc="scenes"):
        sc = data.make_scene(int(seed), size=scene_size, num_objects=num_objects)
        exprs = data.referring_expressions(sc)
        if not exprs:
            continue
        n += 1
        dets = detect(sc.image, detector)
        per_pad = {}
        for pad in sorted({v.padding for v in variants}):
            crops = crop_detections(sc.image, dets, pad, context, clip.image_size)
            emb = encode_crops(clip, crops)
            qs = pseudo_queries(clip, emb, [d.box for d in dets]) if dets else []
            per_pad[pad] = (crops, emb, qs)
        for e in exprs:
            recall_hits.setdefault(e.kind, []).append(any(metrics.box_iou(d.box, e.box) >= 0.5 for d in dets))
            for v in variants:
                text = extract_subject(e.text) if v.query == "subject" else e.text
                if dets:
                    crops, emb, qs = per_pad[v.padding]
                    r = _choose(clip, dets, crops, emb, e.text, text, v.templates, v.method, text_cache, qs)
                else:
                    r = GroundingResult(None, float("nan"), [], e.text, text, v.method)
                iou = metrics.box_iou(r.box, e.box) if r.box is not None else 0.0
                preds[v.name].append(Prediction(int(seed), e.text, e.kind, e.box, r.box, iou, r))
    table = {}
    for v in variants:
        p = preds[v.name]
        table[v.name] = metrics.grounding_accuracy([x.pred_box or (0, 0, 0, 0) for x in p], [x.gt_box for x in p],
                                                   [x.kind for x in p])
    recall = {k: float(100 * np.mean(h)) for k, h in sorted(recall_hits.items())}
    return Evaluation(table, preds, n, recall, scene_size, tuple(num_objects))


def relational_failures(ev: Evaluation, variant: str) -> dict[str, int]:
    """Where the wrong answers to relational expressions went, for one variant of ``ev``.

    Counts ``"anchor"`` (the box of the object named after the relation — "the red circle"
    in "the star left of the red circle"), ``"same shape"`` (another object of the target's
    shape: right kind, wrong place), ``"other"`` and ``"correct"``. Scenes are re-rendered from
    their seeds (:meth:`Evaluation.scene`).
    """
    if variant not in ev.predictions:
        raise ValueError(f"variant {variant!r} not in this evaluation; choose from {list(ev.predictions)}")
    out = {"correct": 0, "anchor": 0, "same shape": 0, "other": 0}
    scenes: dict[int, data.Scene] = {}
    for p in ev.predictions[variant]:
        if p.kind != "relational":
            continue
        if p.iou >= 0.5:
            out["correct"] += 1
            continue
        sc = scenes.setdefault(p.scene_seed, ev.scene(p.scene_seed))
        m = re.match(r"the (\w+) (left of|right of|above|below) the (\w+ \w+)$", p.text)
        hit = [o for o in sc.objects if p.pred_box is not None and metrics.box_iou(o.box, p.pred_box) >= 0.5]
        if m and hit and any(o.name == m.group(3) for o in hit):
            out["anchor"] += 1
        elif m and hit and any(o.shape == m.group(1) for o in hit):
            out["same shape"] += 1
        else:
            out["other"] += 1
    return out


# ----------------------------------------------------------------------------- figures
def plot_result(image: np.ndarray, result: GroundingResult, gt_box: Sequence[float] | None = None, ax=None,
                title: str | None = None):
    """Draw every candidate box with its score (grey), the winner (yellow) and, when given,
    the ground-truth box (green, dashed). Returns the matplotlib axes."""
    import matplotlib.pyplot as plt

    from . import viz

    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(image)
    ax.axis("off")
    k = result.index
    for i, c in enumerate(result.candidates):
        if i != k:
            viz.show_box(ax, c.box, color="lightgrey", label=f"{i}: {c.score:.2f}", lw=1.2)
    if gt_box is not None:
        import matplotlib.patches as patches

        x0, y0, x1, y1 = gt_box
        ax.add_patch(patches.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor="lime",
                                       linestyle="--", linewidth=2))
    if k is not None:
        viz.show_box(ax, result.candidates[k].box, color="yellow", label=f"{k}: {result.candidates[k].score:.2f}")
    ax.set_title(title if title is not None else f'"{result.text}"', fontsize=9)
    return ax


def plot_crops(result: GroundingResult, ncols: int = 6):
    """The crops CLIP scored, titled with their index, score (and pseudo-query); winner starred."""
    from . import viz

    k = result.index
    titles = [f"{'★ ' if i == k else ''}{i}: {c.score:.2f}" + (f"\n{c.query}" if c.query else "")
              for i, c in enumerate(result.candidates)]
    return viz.image_grid([c.crop for c in result.candidates], titles, ncols=ncols, size=1.9)


def plot_failures(ev: Evaluation, variant: str, kind: str | None = None, n: int = 8, ncols: int = 4):
    """A gallery of wrong answers (IoU < 0.5) of one variant: prediction yellow, truth green."""
    import matplotlib.pyplot as plt

    if variant not in ev.predictions:
        raise ValueError(f"variant {variant!r} not in this evaluation; choose from {list(ev.predictions)}")
    bad = [p for p in ev.predictions[variant] if p.iou < 0.5 and (kind is None or p.kind == kind)][:n]
    if not bad:
        fig, ax = plt.subplots(figsize=(3, 1))
        ax.axis("off")
        ax.text(0.5, 0.5, "no failures", ha="center")
        return fig
    nrows = int(np.ceil(len(bad) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.8 * ncols, 2.9 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, p in zip(axes.flat, bad):
        img = ev.scene(p.scene_seed).image
        plot_result(img, p.result, gt_box=p.gt_box, ax=ax, title=p.text)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- RefCOCOg
@dataclass
class RefExample:
    """One RefCOCOg sentence: the image file, the sentence, the target box (x0, y0, x1, y1)."""

    image_path: Path
    sentence: str
    box: tuple[float, float, float, float]
    ref_id: int
    ann_id: int
    image_id: int
    category: str
    split: str

    def load_image(self) -> np.ndarray:
        return data.load_image(self.image_path)


class _SafeUnpickler(pickle.Unpickler):
    """Unpickler that only builds plain containers and scalars (refs(umd).p holds nothing else)."""

    def find_class(self, module, name):  # noqa: D401
        raise pickle.UnpicklingError(f"refs file wants to build {module}.{name}; refusing (only plain data is allowed)")


def _find(root: Path, names: Sequence[str]) -> Path | None:
    for n in names:
        p = root / n
        if p.exists():
            return p
    return None


def load_refcocog(root: str | Path, split: str = "val", limit: int | None = None) -> list[RefExample]:
    """Read RefCOCOg (umd split) in its published layout.

    ``root`` holds ``refs(umd).p`` and ``instances.json`` (directly or in ``refcocog/``) and
    the COCO train2014 images in ``images/train2014/``, ``train2014/`` or
    ``images/mscoco/images/train2014/`` (as with the refer toolkit). ``split``: "train",
    "val" or "test". Returns one :class:`RefExample` per sentence (boxes converted from COCO
    x, y, w, h to x0, y0, x1, y1). The pickle is read with an unpickler that refuses to
    build anything but plain data.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"RefCOCOg root {str(root)!r} is not a folder; download RefCOCOg and pass its folder")
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test' (umd), got {split!r}")
    refs_p = _find(root, ["refs(umd).p", "refcocog/refs(umd).p"])
    inst_p = _find(root, ["instances.json", "refcocog/instances.json"])
    if refs_p is None or inst_p is None:
        raise FileNotFoundError(f"{root} must contain refs(umd).p and instances.json (or refcocog/ with both)")
    img_dir = _find(root, ["images/train2014", "train2014", "images/mscoco/images/train2014",
                           "../images/mscoco/images/train2014", "images"])
    if img_dir is None:
        raise FileNotFoundError(f"no COCO train2014 image folder under {root} (expected images/train2014/)")
    with open(refs_p, "rb") as f:
        try:
            refs = _SafeUnpickler(f, encoding="latin1").load()
        except (pickle.UnpicklingError, EOFError) as exc:
            raise ValueError(f"{refs_p} is not a valid refs pickle ({exc})") from exc
    inst = json.loads(inst_p.read_text())
    anns = {a["id"]: a for a in inst.get("annotations", [])}
    imgs = {i["id"]: i for i in inst.get("images", [])}
    cats = {c["id"]: c["name"] for c in inst.get("categories", [])}
    out: list[RefExample] = []
    for r in refs:
        if r.get("split") != split:
            continue
        a = anns.get(r["ann_id"])
        if a is None:
            raise ValueError(f"ref {r.get('ref_id')} points to annotation {r['ann_id']} missing from {inst_p.name}")
        x, y, w, h = a["bbox"]
        info = imgs.get(r["image_id"], {})
        fname = info.get("file_name") or f"COCO_train2014_{int(r['image_id']):012d}.jpg"
        for s in r.get("sentences", []):
            sent = s.get("sent") or s.get("raw") or " ".join(s.get("tokens", []))
            out.append(RefExample(img_dir / fname, str(sent), (float(x), float(y), float(x + w), float(y + h)),
                                  int(r["ref_id"]), int(r["ann_id"]), int(r["image_id"]),
                                  cats.get(r.get("category_id"), str(r.get("category_id"))), split))
            if limit is not None and len(out) >= limit:
                return out
    return out


# ----------------------------------------------------------------------------- command line
EVAL_SEED_BASE = 71_000_000  # grounding evaluation scenes: disjoint from training (0…20 M), zero-shot eval (50 M)
#                              and the seeds the shapes detector was tuned on (70 M)


def main(argv: list[str] | None = None) -> int:
    """``python -m ogclip_utils.grounding [--scenes N] [--seed-base S]``: print the accuracy table."""
    import argparse

    from . import env, models

    p = argparse.ArgumentParser(prog="python -m ogclip_utils ground",
                                description="Acc@0.5 of baseline grounding variants on shapes-world expressions.")
    p.add_argument("--scenes", type=int, default=80)
    p.add_argument("--seed-base", type=int, default=EVAL_SEED_BASE)
    p.add_argument("--detector", default="shapes", choices=DETECTORS)
    p.add_argument("--context", type=float, default=0.15)
    p.add_argument("--json", default=None, help="also write the table as JSON here")
    a = p.parse_args(argv)
    env.seed_everything(0)
    clip = models.load_clip("tiny-shapes")
    ev = evaluate(clip, range(a.seed_base, a.seed_base + a.scenes), detector=a.detector, context=a.context,
                  progress=True)
    print(f"{ev.n_scenes} scenes, seeds {a.seed_base}…{a.seed_base + a.scenes - 1}, weights {clip.weights_id}")
    print(ev.format())
    if a.json:
        Path(a.json).write_text(json.dumps({"table": ev.table, "detector_recall": ev.detector_recall,
                                            "weights": clip.weights_id, "scenes": a.scenes,
                                            "seed_base": a.seed_base}, indent=1))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
