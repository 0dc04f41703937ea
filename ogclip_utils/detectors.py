"""Object detectors that propose boxes for grounding: the classical shapes detector, torchvision, YOLO.

Each is a callable ``image (uint8 H×W×3) -> [Detection]`` with boxes (x0, y0, x1, y1) in
pixels. :func:`get_detector` builds one by name; :func:`detect` runs one and filters by
confidence.

- ``"shapes"`` (:class:`ShapesDetector`, offline): classical colour segmentation of the image
  alone (no ground truth), with a mask per detection;
- ``"torchvision"`` (Faster R-CNN MobileNetV3, real mode) and ``"yolo"`` (ultralytics,
  optional extra, real mode): boxes only.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import data, env, weights
from .arrays import mask_box
from .checks import check_image

DETECTORS = ("shapes", "torchvision", "yolo")


def _check_image(image: Any) -> np.ndarray:
    """Anything :func:`data.load_image` accepts → uint8 H×W×3 (at least 2×2)."""
    return check_image(data.load_image(image))


@dataclass
class Detection:
    """One proposal: box (x0, y0, x1, y1) pixels, detector confidence in [0, 1], detector label,
    and (detectors that segment, like the shapes detector) its bool H×W pixel mask."""

    box: tuple[float, float, float, float]
    confidence: float
    label: str = "object"
    mask: np.ndarray | None = field(default=None, repr=False)


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
                    box = mask_box(piece)
                    conf = (1 - np.exp(-area / 80.0)) * min(1.0, float(np.median(dist[piece])) / 40.0)
                    out.append(Detection(box, float(conf), "object", piece))
        out.sort(key=lambda d: (d.box[0], d.box[1]))
        return out


class TorchvisionDetector:
    """A torchvision detection model (Faster R-CNN MobileNetV3-Large FPN, COCO) as a proposal backend.

    ``model`` may be passed in (e.g. built at random init for tests). Otherwise the
    architecture is built without weights and the COCO state dict is read (``weights_only``)
    from ``checkpoint`` or from the project's cache (``weights.checkpoint_path(NAME)``),
    downloaded there once by the project's downloader — never through torch.hub's cache."""

    NAME = "fasterrcnn-mobilenet-v3-large-fpn"

    def __init__(self, model: Any = None, checkpoint: str | None = None, device: str | None = None):
        import torch
        import torchvision

        self.device = env.get_device(device)
        if model is None:
            model = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None)
            path = weights.local_file(self.NAME, checkpoint)
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
                model.load_state_dict(state)
            except Exception as exc:  # noqa: BLE001 - re-raised with advice
                raise weights.CheckpointError(f"{path} is not torchvision's Faster R-CNN MobileNetV3-Large FPN state dict "
                                              f"({str(exc)[:200]}); delete it and run `python -m ogclip_utils checkpoints "
                                              f"--only {self.NAME}`") from exc
        self.model = model.to(self.device).eval()
        meta = torchvision.models.detection.FasterRCNN_MobileNet_V3_Large_FPN_Weights.DEFAULT.meta
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

    ``weights``: a registry name (default ``"yolo11n"``: read from the project's cache, downloaded
    there once by the project's downloader), a local ``.pt`` file, or a ``.yaml`` architecture
    for random init. ultralytics is never left to fetch files on its own."""

    def __init__(self, weights_name: str = "yolo11n", device: str | None = None):
        try:
            from ultralytics import YOLO
        except ImportError as exc:
            raise ImportError("detector='yolo' needs ultralytics: pip install 'ogclip-utils[yolo]' "
                              "(or use detector='torchvision' / 'shapes')") from exc
        src = str(weights_name)
        by_file = {ck.filename: k for k, ck in weights.REGISTRY.items() if ck.kind == "detector"}
        src = by_file.get(src, src)  # "yolo11n.pt", as ultralytics users write it, is the registry's yolo11n
        if src in weights.REGISTRY:
            src = str(weights.local_file(src))
        elif not src.endswith(".yaml") and not Path(src).exists():
            raise FileNotFoundError(f"YOLO weights {src!r} not found: pass 'yolo11n' (downloaded into the cache), "
                                    "a local .pt file or a .yaml architecture")
        self.model = YOLO(src)
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
