"""The masked crop CLIP is shown of one object: outside the mask painted with the object's surround, squared, resized.

One implementation for every stage that names or embeds a segmented object (grounding's
``"masked"`` padding, refinement's mask naming, Object-Guided CLIP's masked-crop baseline):

- :func:`surround_colour` — the fill: the median colour of a ring 2–5 px around the mask (the
  object's *local* background), so neighbours that overlap the box are painted out while the
  object keeps the background it was seen on; the whole image's median when the ring is empty.
- :func:`fill_outside` — the image with every pixel outside the mask painted that colour.
- :func:`masked_crop` — :func:`fill_outside`, then a square box around the mask grown by
  ``padding`` × its side (``data.crop_box``), resized to size×size (bicubic).
"""
from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from . import data

RING = (2, 5)  # the surround: pixels 2–5 px outside the mask (dilation iterations)


def _check(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = np.asarray(mask, bool)
    if m.shape != image.shape[:2]:
        raise ValueError(f"mask shape {m.shape} does not match the image's {image.shape[:2]}; pass a bool H×W mask")
    return m


def surround_colour(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """uint8 (3,): the median RGB of the ring :data:`RING` pixels outside ``mask`` (bool H×W)."""
    m = _check(image, mask)
    ring = ndi.binary_dilation(m, iterations=RING[1]) & ~ndi.binary_dilation(m, iterations=RING[0])
    src = image[ring] if ring.any() else image.reshape(-1, 3)
    return np.median(src, axis=0).astype(np.uint8)


def fill_outside(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A copy of ``image`` (uint8 H×W×3) with every pixel outside ``mask`` painted :func:`surround_colour`."""
    m = _check(image, mask)
    return np.where(m[..., None], image, surround_colour(image, m)[None, None, :])


def resize_rgb(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 size×size×3, bicubic (the one resize of a crop before CLIP sees it)."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((int(size), int(size)), Image.BICUBIC))


def masked_crop(image: np.ndarray, mask: np.ndarray, size: int, padding: float = 0.1) -> np.ndarray:
    """uint8 size×size×3: the object of ``mask`` on its surround colour, squared with ``padding``
    of context on each side. An empty mask gives the whole image resized (nothing to cut out)."""
    m = _check(image, mask)
    if not m.any():
        return resize_rgb(image, size)
    ys, xs = np.nonzero(m)
    c = data.crop_box(fill_outside(image, m), (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), padding=padding, square=True)
    return resize_rgb(c, size)
