"""The one masked crop (ogclip_utils.crops)."""
import numpy as np
import pytest

from ogclip_utils import crops


def _scene():
    img = np.zeros((40, 40, 3), np.uint8)
    img[:] = (200, 200, 200)            # far background
    img[10:30, 10:30] = (60, 60, 60)    # the object's local surround (a darker patch)
    img[15:25, 15:25] = (220, 0, 0)     # the object
    mask = np.zeros((40, 40), bool)
    mask[15:25, 15:25] = True
    return img, mask


def test_fill_is_the_local_surround_not_the_whole_image():
    img, mask = _scene()
    assert tuple(crops.surround_colour(img, mask)) == (60, 60, 60)
    out = crops.fill_outside(img, mask)
    assert (out[mask] == img[mask]).all() and (out[~mask] == (60, 60, 60)).all()
    assert (img[0, 0] == 200).all()  # the input is not modified


def test_masked_crop_is_square_padded_and_resized():
    img, mask = _scene()
    out = crops.masked_crop(img, mask, 32, padding=0.1)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    colours = {tuple(c) for c in out.reshape(-1, 3)}
    assert (200, 200, 200) not in colours  # the far background never shows
    assert crops.masked_crop(img, np.zeros((40, 40), bool), 16).shape == (16, 16, 3)  # empty mask: whole image


def test_a_mask_of_the_wrong_shape_is_a_clear_error():
    img, mask = _scene()
    with pytest.raises(ValueError, match="mask shape"):
        crops.masked_crop(img, mask[:20], 16)
