"""Tests for ogclip_utils.refine: ClassicalSegmenter, mask choice, overlap resolution, SAM2 path."""
import numpy as np
import pytest
from scipy import ndimage as ndi

from ogclip_utils import data, metrics, prompts, refine
from ogclip_utils.segmenters import ClassicalSegmenter


def _interior_point(mask):
    dt = ndi.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dt)), dt.shape)
    return np.array([[x, y]], float)


def _two_squares():
    img = np.full((64, 64, 3), 128, np.uint8)
    img[10:30, 10:30] = (220, 30, 30)
    img[34:54, 34:54] = (30, 60, 220)
    return img


def test_classical_interface_shapes_and_nesting():
    seg = ClassicalSegmenter()
    seg.set_image(_two_squares())
    masks, scores, logits = seg.predict(np.array([[20, 20]]), np.array([1]))
    assert masks.shape == (3, 64, 64) and masks.dtype == bool
    assert scores.shape == (3,) and scores.dtype == np.float32 and np.all((scores >= 0) & (scores <= 1))
    assert logits.shape == (3, 256, 256)
    assert np.all(masks[0] <= masks[1]) and np.all(masks[1] <= masks[2])  # nested
    truth = np.zeros((64, 64), bool)
    truth[10:30, 10:30] = True
    assert metrics.mask_iou(masks[1], truth) > 0.99
    m1, s1, l1 = seg.predict(np.array([[20, 20]]), np.array([1]), multimask_output=False)
    assert m1.shape == (1, 64, 64) and s1.shape == (1,)


def test_classical_candidates_are_part_object_whole_ranked_by_score():
    """Part ⊊ object ⊊ whole when another object touches; the object scores highest, and each
    other score is the object's times the candidate's IoU with it."""
    img = np.full((80, 80, 3), 128, np.uint8)
    img[10:50, 10:50] = (220, 30, 30)   # a red square ...
    img[20:40, 50:70] = (30, 60, 220)   # ... with a blue bar touching its right side
    seg = ClassicalSegmenter()
    seg.set_image(img)
    (part, obj, whole), scores, _ = seg.predict(np.array([[30, 30]]), np.array([1]))
    red = np.zeros((80, 80), bool)
    red[10:50, 10:50] = True
    both = red.copy()
    both[20:40, 50:70] = True
    assert metrics.mask_iou(obj, red) > 0.99 and metrics.mask_iou(whole, both) > 0.97
    assert part.sum() < 0.6 * obj.sum() and part[30, 30] and np.all(part <= obj) and np.all(obj <= whole)
    assert int(np.argmax(scores)) == 1
    np.testing.assert_allclose(scores[0], scores[1] * part.sum() / obj.sum(), rtol=1e-5)
    np.testing.assert_allclose(scores[2], scores[1] * obj.sum() / whole.sum(), rtol=1e-5)
    # a lone object: nothing touches it, so the whole is the object itself
    lone = np.full((80, 80, 3), 128, np.uint8)
    lone[20:60, 20:60] = (30, 60, 220)
    seg.set_image(lone)
    (part, obj, whole), _, _ = seg.predict(np.array([[40, 40]]), np.array([1]))
    assert np.array_equal(obj, whole) and part.sum() < obj.sum()


def test_choose_mask_drops_a_click_whose_best_reading_is_background():
    big = np.zeros((3, 10, 10), bool)
    big[0, :2, :6] = True      # a 12-px piece of the background
    big[1:, :, :] = True       # the background itself, 100 px
    k, _, why = refine.choose_mask(big, np.array([0.2, 0.95, 0.9], np.float32), None, "score", max_area=50)
    assert k == -1 and "background" in why and "0.95" in why
    k, _, _ = refine.choose_mask(big, np.array([0.99, 0.95, 0.9], np.float32), None, "score", max_area=50)
    assert k == 0  # the piece is the best reading: kept
    k, _, why = refine.choose_mask(big, np.array([0.99, 0.95, 0.9], np.float32), None, "score", max_area=50, min_area=20)
    assert k == -1 and "smaller than 20" in why  # the best reading is a speck: dropped, not its neighbour


def test_classical_negative_point_cuts_same_colour_region():
    img = np.full((64, 64, 3), 128, np.uint8)
    img[20:40, 4:60] = (220, 30, 30)  # one long red bar
    seg = ClassicalSegmenter()
    seg.set_image(img)
    full = seg.predict(np.array([[10, 30]]), np.array([1]))[0][1]
    cut = seg.predict(np.array([[10, 30], [54, 30]]), np.array([1, 0]))[0][1]
    assert full[30, 54] and not cut[30, 54] and cut[30, 10]
    assert cut.sum() < 0.7 * full.sum()


def test_classical_box_limits_and_box_only_prompt():
    img = _two_squares()
    seg = ClassicalSegmenter()
    seg.set_image(img)
    m = seg.predict(box=(5, 5, 35, 35))[0][1]  # box alone finds the red square
    truth = np.zeros((64, 64), bool)
    truth[10:30, 10:30] = True
    assert metrics.mask_iou(m, truth) > 0.95
    m2 = seg.predict(np.array([[20, 20]]), np.array([1]), box=(0, 0, 20, 64))[0]
    assert not m2[:, :, 20:].any()


def test_classical_bad_input():
    seg = ClassicalSegmenter()
    with pytest.raises(RuntimeError, match="set_image"):
        seg.predict(np.array([[1, 1]]), np.array([1]))
    with pytest.raises(ValueError, match="uint8"):
        seg.set_image(np.zeros((8, 8, 3), np.float32))
    seg.set_image(_two_squares())
    with pytest.raises(ValueError, match="outside"):
        seg.predict(np.array([[100, 5]]), np.array([1]))
    with pytest.raises(ValueError, match="point_labels"):
        seg.predict(np.array([[5, 5]]), np.array([1, 0]))
    with pytest.raises(ValueError, match="positive"):
        seg.predict(np.array([[5, 5]]), np.array([0]))
    with pytest.raises(ValueError, match="NaN"):
        seg.predict(np.array([[np.nan, 5]]), np.array([1]))


def test_classical_recovers_shapes_objects():
    """One positive point per object at its most interior pixel: masks match the ground truth."""
    seg = ClassicalSegmenter()
    ious = []
    for seed in range(9100, 9112):
        sc = data.make_scene(seed, size=96)
        seg.set_image(sc.image)
        for o in sc.objects:
            masks, scores, _ = seg.predict(_interior_point(o.mask), np.array([1]))
            ious.append(metrics.mask_iou(masks[1], o.mask))
    assert len(ious) >= 15
    assert np.median(ious) > 0.9
    assert np.mean(ious) > 0.85


def test_refine_config_holds_the_defaults_and_validates_once():
    cfg = refine.RefineConfig()
    assert (cfg.iou_threshold, cfg.mask_choice, cfg.class_crop) == (0.8, "score", "masked")
    for bad in (dict(iou_threshold=2.0), dict(mask_choice="best"), dict(classify="vote"), dict(fill="zero"),
                dict(max_area_fraction=0.0), dict(class_crop="blur")):
        with pytest.raises(ValueError, match=next(iter(bad))):
            refine.RefineConfig(**bad)


def test_point_and_box_answer_one_object_on_one_encoded_image():
    from ogclip_utils import viz
    from ogclip_utils.arrays import mask_box

    sc = data.make_scene(3, size=128, num_objects=3)
    obj = sc.objects[0]
    seg = ClassicalSegmenter()
    answers = refine.point_and_box(seg, sc.image, prompts.positive_points(obj.mask, 1)[0], mask_box(obj.mask))
    assert [a.kind for a in answers] == ["point", "box"]
    for a in answers:
        assert a.masks.shape[1:] == (128, 128) and a.masks.dtype == bool and len(a.scores) == len(a.masks) == 3
    x0, y0, x1, y1 = (int(v) for v in answers[1].prompt)
    outside = np.ones((128, 128), bool)
    outside[y0:y1, x0:x1] = False
    assert not answers[1].masks[:, outside].any(), "a box prompt's masks stay inside the box"
    assert len(viz.refine.point_vs_box(sc.image, answers).axes) == 8
    assert viz.refine.sam2_architecture() is not None
    yy, xx = np.mgrid[0:64, 0:64]
    ring = (np.hypot(xx - 32, yy - 32) >= 10) & (np.hypot(xx - 32, yy - 32) <= 18)
    fig = viz.refine.inside_points({"ring": ring, "disc": np.hypot(xx - 32, yy - 32) <= 16})
    assert [a.get_title() for a in fig.axes] == ["ring: centroid outside", "disc: centroid inside"]
