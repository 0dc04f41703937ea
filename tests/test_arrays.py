"""The one implementation of resizing, mask boxes and the masked crop (ogclip_utils.arrays)."""
import numpy as np
import pytest

from ogclip_utils import arrays, data, grounding, og_clip, refine


def _scene():
    img = np.zeros((40, 50, 3), np.uint8)
    img[:] = (100, 110, 120)                 # background
    img[5:15, 5:15] = (200, 0, 0)            # the object
    img[5:15, 15:25] = (0, 0, 200)           # a neighbour touching its box
    m = np.zeros((40, 50), bool)
    m[5:15, 5:15] = True
    return img, m


def test_mask_box_is_tight_and_exclusive():
    _, m = _scene()
    assert arrays.mask_box(m) == (5.0, 5.0, 15.0, 15.0)
    assert arrays.mask_box(np.zeros((4, 4), bool)) == (0.0, 0.0, 0.0, 0.0)


def test_fill_outside_paints_the_median_of_the_outside_and_keeps_the_input():
    img, m = _scene()
    before = img.copy()
    out = arrays.fill_outside(img, m)
    assert np.array_equal(img, before), "the caller's image must not be changed"
    assert (out[~m] == (100, 110, 120)).all(), "the neighbour is painted out with the background median"
    assert (out[m] == (200, 0, 0)).all()


def test_masked_crop_shows_the_object_alone_at_the_requested_size():
    img, m = _scene()
    c = arrays.masked_crop(img, m, 32)
    assert c.shape == (32, 32, 3) and c.dtype == np.uint8
    blue = (c[..., 2] > 150) & (c[..., 0] < 50)
    assert not blue.any(), "no pixel of the neighbour may survive"
    assert (c[..., 0] > 150).mean() > 0.4


def test_masked_crop_rejects_a_mask_of_the_wrong_shape():
    img, _ = _scene()
    with pytest.raises(ValueError, match="does not match the image"):
        arrays.masked_crop(img, np.ones((3, 3), bool), 32)


def test_every_stage_uses_the_one_masked_crop():
    """Grounding's masked padding, refinement's mask naming and OG-CLIP's baseline share the fill."""
    assert og_clip.masked_crop is arrays.masked_crop
    assert refine.masked_crop is arrays.masked_crop
    assert data.crop_box is arrays.crop_box
    img, m = _scene()
    g = grounding.crop(img, arrays.mask_box(m), padding="masked", size=None, mask=m)
    assert not ((g[..., 2] > 150) & (g[..., 0] < 50)).any()


def test_resizes():
    img, m = _scene()
    assert arrays.resize_rgb(img, (20, 25)).shape == (20, 25, 3)
    assert arrays.resize_rgb(img, 16, "bicubic").shape == (16, 16, 3)
    assert arrays.resize_rgb(img, img.shape[:2]) is img
    with pytest.raises(ValueError, match="resample"):
        arrays.resize_rgb(img, 16, "lanczos9")
    lab = np.arange(6).reshape(2, 3)
    up = arrays.resize_labels(lab, (4, 6))
    assert up.dtype == np.int64 and set(np.unique(up)) == set(range(6)), "labels are never blended"
    f = arrays.resize_float(m.astype(np.float32), (80, 100))
    assert f.shape == (80, 100) and 0.0 <= f.min() and f.max() <= 1.0 + 1e-6
