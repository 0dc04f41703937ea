"""Points and masks: a point inside a mask, the segmenter's mask for a point, COCO polygons, where COCO lives."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..segmenters import sam2_autocast
from .. import paths


def interior_point(mask: np.ndarray) -> tuple[float, float]:
    """(x, y) of the most interior pixel of a bool H×W mask (distance-transform maximum)."""
    from scipy import ndimage as ndi

    m = np.asarray(mask, bool)
    if m.ndim != 2 or not m.any():
        raise ValueError("mask must be a non-empty bool H×W array to place a point on it")
    dt = ndi.distance_transform_edt(np.pad(m, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dt)), dt.shape)
    return float(x), float(y)


def segment_point(segmenter, point: tuple[float, float]) -> np.ndarray:
    """Best-scoring multimask candidate (bool H×W) for one positive point (x, y) in pixels;
    call ``segmenter.set_image`` first."""
    pt = np.asarray(point, np.float64).reshape(-1)
    if pt.shape != (2,) or not np.isfinite(pt).all():
        raise ValueError(f"point must be one finite (x, y) pair in pixels, got {point!r}")
    with sam2_autocast(segmenter):
        masks, scores, _ = segmenter.predict(point_coords=pt[None].astype(np.float32),
                                             point_labels=np.asarray([1], np.int32), multimask_output=True)
    return np.asarray(masks[int(np.argmax(scores))], bool)


def polygon_mask(polys: list, hw: tuple[int, int]) -> np.ndarray:
    """bool H×W of COCO polygons ``[[x0, y0, x1, y1, …], …]`` (pixels)."""
    from PIL import Image, ImageDraw

    canvas = Image.new("L", (hw[1], hw[0]), 0)
    draw = ImageDraw.Draw(canvas)
    for p in polys:
        if len(p) >= 6:
            draw.polygon([(float(p[i]), float(p[i + 1])) for i in range(0, len(p) - 1, 2)], fill=1)
    return np.asarray(canvas, bool)


def coco_val2017() -> tuple[Path, Path] | None:
    """(annotation file, image folder) of COCO val2017 in its published layout under
    ``$OGCLIP_CACHE/datasets/coco/`` (``annotations/instances_val2017.json``, ``val2017/``),
    or None when it is not there (then :data:`COCO_HOWTO` says how to get it)."""
    root = paths.dataset_dir("coco")
    ann, img = root / "annotations" / "instances_val2017.json", root / "val2017"
    return (ann, img) if ann.is_file() and img.is_dir() else None


COCO_HOWTO = ("COCO val2017 is not in $OGCLIP_CACHE/datasets/coco/. Fetch the subset real mode measures on with "
              "`python -m ogclip_utils datasets coco-val2017` (the instance annotations, a 241 MB zip of which only "
              "instances_val2017.json is kept, and 200 images fetched one by one, about 32 MB), or unpack COCO's own "
              "annotations_trainval2017.zip and val2017.zip (about 0.8 GB) into that folder.")
