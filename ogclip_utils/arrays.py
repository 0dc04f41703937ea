"""Image arrays: resizing, the box around a mask, padded crops and the masked crop CLIP is shown.

One implementation of each, for every stage (grounding, refinement, dense maps, the
segmenters, Object-Guided CLIP and the tiny-CLIP trainer):

- :func:`resize_rgb` — uint8 H×W×3 to a new size with a named filter (``"bilinear"`` or
  ``"bicubic"``); :func:`resize_float` — a float H×W map (a mask, logits), bilinear;
  :func:`resize_labels` — an int label map, nearest neighbour (labels are never blended).
- :func:`mask_box` — the tight box (x0, y0, x1, y1) of a bool mask, x1/y1 exclusive.
- :func:`crop_box` — a box with ``padding`` × its size of context, optionally squared;
  parts outside the image filled with the image's mean colour.
- :func:`fill_outside` / :func:`masked_crop` — the object alone: every pixel outside its
  mask painted with **the median colour of the image outside the mask** (in the shapes
  world and most photos that is the background, so neighbours that overlap the box are
  painted out), then a square crop around the mask, resized for CLIP (bicubic).

Conventions: images uint8 H×W×3 RGB, masks bool H×W, boxes (x0, y0, x1, y1) in pixels
with x1/y1 exclusive, sizes ``(H, W)`` or one int for a square.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image

FILTERS = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}


def _hw(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    h, w = (int(v) for v in size)
    return h, w


def resize_rgb(image: np.ndarray, size: int | Sequence[int], resample: str = "bilinear") -> np.ndarray:
    """uint8 H'×W'×3 of uint8 ``image`` resized to ``size`` (an int for a square, or (H', W')).

    ``resample`` is ``"bilinear"`` (the default; no PIL reducing-gap shortcut) or
    ``"bicubic"`` (crops shown to CLIP). An image already at the size is returned as is."""
    h, w = _hw(size)
    if resample not in FILTERS:
        raise ValueError(f"resample must be one of {sorted(FILTERS)}, got {resample!r}")
    if image.shape[0] == h and image.shape[1] == w:
        return image
    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((w, h), FILTERS[resample], reducing_gap=None))


def resize_float(arr: np.ndarray, size: int | Sequence[int]) -> np.ndarray:
    """float32 H'×W' of a float H×W map (a soft mask, logits), bilinear (antialiased when shrinking)."""
    h, w = _hw(size)
    a = np.asarray(arr, np.float32)
    if a.shape == (h, w):
        return a
    return np.asarray(Image.fromarray(np.ascontiguousarray(a), mode="F").resize((w, h), Image.BILINEAR), np.float32)


def resize_labels(labels: np.ndarray, size: int | Sequence[int]) -> np.ndarray:
    """int64 H'×W' of an int label map, nearest neighbour."""
    h, w = _hw(size)
    lab = np.asarray(labels)
    if lab.shape == (h, w):
        return lab.astype(np.int64, copy=False)
    return np.asarray(Image.fromarray(lab.astype(np.int32), mode="I").resize((w, h), Image.NEAREST)).astype(np.int64)


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) in pixels, x1/y1 exclusive, of the True pixels of ``mask``; all zeros when empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return (0.0, 0.0, 0.0, 0.0)
    return (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))


def crop_box(image: np.ndarray, box: Sequence[float], padding: float = 0.1, square: bool = True) -> np.ndarray:
    """Crop ``box`` (x0, y0, x1, y1) with ``padding`` × box size of context on each side,
    squared around its centre when ``square``; parts outside the image are filled with the
    image's mean colour. Returns uint8 h×w×3."""
    x0, y0, x1, y1 = [float(v) for v in box]
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"box {tuple(box)} is degenerate: need x1 > x0 and y1 > y0")
    w, h = x1 - x0, y1 - y0
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if square:
        w = h = max(w, h)
    w, h = w * (1 + 2 * padding), h * (1 + 2 * padding)
    X0, Y0 = int(np.floor(cx - w / 2)), int(np.floor(cy - h / 2))
    X1, Y1 = max(int(np.ceil(cx + w / 2)), X0 + 1), max(int(np.ceil(cy + h / 2)), Y0 + 1)
    H, W = image.shape[:2]
    out = np.empty((Y1 - Y0, X1 - X0, 3), np.uint8)
    out[:] = image.reshape(-1, 3).mean(0).astype(np.uint8)
    sx0, sy0, sx1, sy1 = max(X0, 0), max(Y0, 0), min(X1, W), min(Y1, H)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - Y0:sy1 - Y0, sx0 - X0:sx1 - X0] = image[sy0:sy1, sx0:sx1]
    return out


def _check_mask(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = np.asarray(mask, bool)
    if m.shape != image.shape[:2]:
        raise ValueError(f"mask shape {m.shape} does not match the image's {image.shape[:2]}; pass a bool H×W mask")
    return m


def fill_outside(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A copy of ``image`` (uint8 H×W×3) with every pixel outside ``mask`` painted the median
    colour of those pixels. A mask that is empty or covers everything leaves the image as it is."""
    m = _check_mask(image, mask)
    if not m.any() or m.all():
        return image.copy()
    out = image.copy()
    out[~m] = np.median(image[~m], 0).round().astype(np.uint8)
    return out


def masked_crop(image: np.ndarray, mask: np.ndarray, size: int, padding: float = 0.1) -> np.ndarray:
    """uint8 size×size×3: :func:`fill_outside`, then a square crop around the mask with
    ``padding`` × its side of context, resized bicubic. An empty mask gives the whole image
    resized (there is nothing to cut out)."""
    m = _check_mask(image, mask)
    if not m.any():
        return resize_rgb(image, size, "bicubic")
    return resize_rgb(crop_box(fill_outside(image, m), mask_box(m), padding=padding, square=True), size, "bicubic")
