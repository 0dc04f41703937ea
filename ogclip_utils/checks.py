"""Input checks shared by every stage: images, points, boxes, sizes — clear errors, never deep tracebacks.

Each function returns the value in the project's convention (uint8 H×W×3 RGB images, float
(x, y) pixel points, (x0, y0, x1, y1) pixel boxes) or raises ``ValueError`` naming the
argument, what was wrong and how to fix it.
"""
from __future__ import annotations

import numpy as np


def check_image(image) -> np.ndarray:
    """``image`` as a uint8 H×W×3 RGB array (at least 2×2), or a ``ValueError`` that says how to convert it."""
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"image must be uint8 H×W×3 RGB, got shape {arr.shape}; use data.load_image() to convert")
    if arr.dtype != np.uint8:
        raise ValueError(f"image must be uint8 H×W×3 RGB, got dtype {arr.dtype}; use data.load_image() to convert")
    if min(arr.shape[:2]) < 2:
        raise ValueError(f"image is too small ({arr.shape[0]}×{arr.shape[1]}); need at least 2×2 pixels")
    return arr


def check_points(point_coords, point_labels, hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Validate (K,2) xy pixel points and (K,) labels in {0,1}; return float (K,2), int (K,)."""
    H, W = hw
    if point_coords is None:
        if point_labels is not None and len(np.asarray(point_labels).reshape(-1)):
            raise ValueError("point_labels given without point_coords")
        return np.zeros((0, 2), float), np.zeros(0, int)
    pts = np.asarray(point_coords, dtype=float)
    if pts.ndim == 1 and pts.size == 2:
        pts = pts[None]
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"point_coords must have shape (K, 2) as (x, y) pixels, got {pts.shape}")
    if point_labels is None:
        raise ValueError("point_labels is required with point_coords: 1 = positive, 0 = negative, shape (K,)")
    lab = np.asarray(point_labels).reshape(-1)
    if len(lab) != len(pts):
        raise ValueError(f"point_labels has {len(lab)} entries but point_coords has {len(pts)} points")
    if not np.all(np.isin(lab, (0, 1))):
        raise ValueError(f"point_labels must be 0 (negative) or 1 (positive), got {np.unique(lab).tolist()}")
    if not np.all(np.isfinite(pts)):
        raise ValueError("point_coords contains NaN or inf")
    bad = (pts[:, 0] < 0) | (pts[:, 0] > W - 1) | (pts[:, 1] < 0) | (pts[:, 1] > H - 1)
    if bad.any():
        raise ValueError(f"point_coords {pts[bad].tolist()} lie outside the {W}×{H} image "
                         "(x must be in [0, W-1], y in [0, H-1], in pixels)")
    return pts, lab.astype(int)


def check_pixel_box(box, hw: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """An (x0, y0, x1, y1) box (or None) as whole pixels clipped to the H×W image; ``ValueError`` if empty."""
    if box is None:
        return None
    b = np.asarray(box, dtype=float).reshape(-1)
    if b.size != 4 or not np.all(np.isfinite(b)):
        raise ValueError(f"box must be (x0, y0, x1, y1) in pixels, got {box!r}")
    H, W = hw
    x0, y0 = int(np.clip(np.floor(b[0]), 0, W - 1)), int(np.clip(np.floor(b[1]), 0, H - 1))
    x1, y1 = int(np.clip(np.ceil(b[2]), 0, W)), int(np.clip(np.ceil(b[3]), 0, H))
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"box {tuple(b)} is empty inside the {W}×{H} image: need x1 > x0 and y1 > y0")
    return x0, y0, x1, y1


def check_pair(v, name: str) -> tuple[int, int]:
    """An int or an (h, w) pair of ints as ``(h, w)``; ``ValueError`` naming ``name`` otherwise."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return int(v), int(v)
    if isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(x, (int, np.integer)) for x in v):
        return int(v[0]), int(v[1])
    raise ValueError(f"{name} must be an int or an (h, w) pair of ints, got {v!r}")
