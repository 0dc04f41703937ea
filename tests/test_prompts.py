"""Tests for ogclip_utils.prompts on hand-made probability maps."""
import dataclasses

import numpy as np
import pytest

from ogclip_utils import prompts


def _probs(label_map: np.ndarray, num_classes: int, p: float = 0.9) -> np.ndarray:
    """C×H×W probabilities: ``p`` on the labelled class, the rest spread evenly."""
    C = num_classes
    out = np.full((C,) + label_map.shape, (1 - p) / (C - 1), np.float32)
    for c in range(C):
        out[c][label_map == c] = p
    return out


def _ring(h=64, w=64, cx=32, cy=32, r0=10, r1=18):
    yy, xx = np.mgrid[0:h, 0:w]
    d = np.hypot(xx - cx, yy - cy)
    return (d >= r0) & (d <= r1)


def _cross(h=64, w=64):
    m = np.zeros((h, w), bool)
    m[8:56, 28:36] = True
    m[28:36, 8:56] = True
    return m


def _crescent(h=64, w=64):
    yy, xx = np.mgrid[0:h, 0:w]
    return (np.hypot(xx - 32, yy - 32) <= 20) & (np.hypot(xx - 42, yy - 32) > 16)


def test_threshold_components_and_size_filter():
    lab = np.zeros((40, 40), int)
    lab[2:12, 2:12] = 1      # 100 px, class 1
    lab[20:30, 20:30] = 1    # second component of class 1
    lab[35:37, 35:37] = 2    # 4 px: too small
    p = _probs(lab, 3)
    p[:, 20:30, 20:30] = [[[0.3]], [[0.4]], [[0.3]]]  # the second square is not confident
    ex = prompts.extract_prompts(p, min_confidence=0.5, min_region_size=10)
    assert ex.thresholded[25, 25] == -1 and ex.thresholded[5, 5] == 1
    assert ex.thresholded[0, 0] == -1  # background (class 0) is never prompted
    assert sorted(zip(ex.component_class, ex.component_size)) == [(1, 100), (2, 4)]
    assert len(ex) == 1 and ex[0].class_id == 1 and ex[0].area == 100
    assert ex.num_components == 2 and ex.num_kept == 1
    assert abs(ex[0].confidence - 0.9) < 1e-6
    # lowering the threshold brings the second square back
    assert len(prompts.extract_prompts(p, min_confidence=0.35, min_region_size=10)) == 2


def test_eight_connectivity():
    lab = np.zeros((20, 20), int)
    lab[5:10, 5:10] = 1
    lab[10:15, 10:15] = 1  # touches the first square only at a corner
    ex = prompts.extract_prompts(_probs(lab, 2), min_confidence=0.5, min_region_size=1)
    assert len(ex) == 1 and ex[0].area == 50


@pytest.mark.parametrize("shape", [_ring, _cross, _crescent])
def test_first_point_is_inside_rings_crosses_crescents(shape):
    m = shape()
    ex = prompts.extract_prompts(_probs(m.astype(int), 2), min_confidence=0.5, min_region_size=5)
    assert len(ex) == 1
    x, y = ex[0].points[0]
    assert m[int(y), int(x)]
    # the centroid of a ring lies outside it: the rule must not use it there
    if shape is _ring:
        assert not m[32, 32]


def test_interior_rule_picks_deepest_pixel():
    m = np.zeros((30, 60), bool)
    m[5:25, 5:25] = True   # a 20×20 square ...
    m[12:18, 25:55] = True  # ... with a thin arm pulling the centroid right
    pts = prompts.positive_points(m, 1, first="interior")
    x, y = pts[0]
    assert 12 <= x <= 17 and 12 <= y <= 17


def test_more_points_are_inside_and_spread():
    m = np.zeros((64, 64), bool)
    m[10:54, 10:54] = True
    pts = prompts.positive_points(m, 4)
    assert pts.shape == (4, 2)
    assert all(m[int(y), int(x)] for x, y in pts)
    d = np.linalg.norm(pts[:, None] - pts[None], axis=-1)[np.triu_indices(4, 1)]
    assert d.min() >= 10  # farthest-point sampling spreads them out


def test_farthest_point_sampling_order():
    cand = np.array([[0, 0], [1, 0], [10, 0], [5, 0]], float)
    out = prompts.farthest_point_sampling(cand, 3)
    assert out.tolist() == [[0, 0], [10, 0], [5, 0]]
    assert len(prompts.farthest_point_sampling(cand, 10)) == 4


def test_negative_points_are_far_and_on_confident_other_classes():
    lab = np.zeros((64, 64), int)
    lab[20:40, 20:40] = 1
    lab[0:64, 50:64] = 2
    p = _probs(lab, 3, p=0.95)
    ex = prompts.extract_prompts(p, min_confidence=0.5, min_region_size=5, negative_points_per_cluster=3,
                                 negative_confidence_threshold=0.9)
    pr = next(q for q in ex if q.class_id == 1)
    neg = pr.negative
    assert len(neg) == 3 and (pr.labels == 0).sum() == 3
    region = lab == 1
    ys, xs = np.nonzero(region)
    for x, y in neg:
        assert lab[int(y), int(x)] != 1
        assert np.min(np.hypot(xs - x, ys - y)) >= 10
    # a threshold above every probability gives no negatives
    ex2 = prompts.extract_prompts(p, min_confidence=0.5, min_region_size=5, negative_points_per_cluster=3,
                                  negative_confidence_threshold=0.99)
    assert all((q.labels == 0).sum() == 0 for q in ex2)


def test_empty_result_has_a_message():
    p = np.full((3, 16, 16), 1 / 3, np.float32)
    ex = prompts.extract_prompts(p, min_confidence=0.5)
    assert len(ex) == 0 and "min_confidence" in ex.message
    lab = np.zeros((16, 16), int)
    lab[2:4, 2:4] = 1
    ex = prompts.extract_prompts(_probs(lab, 2), min_confidence=0.5, min_region_size=10)
    assert len(ex) == 0 and "min_region_size" in ex.message


def test_dense_result_like_input_and_class_filter():
    class DR:  # duck-typed DenseResult
        def __init__(self, probs, classes):
            self.probs, self.classes = probs, classes
    lab = np.zeros((32, 32), int)
    lab[2:12, 2:12] = 1
    lab[20:30, 20:30] = 2
    ex = prompts.extract_prompts(DR(_probs(lab, 3), ["background", "cat", "dog"]), min_confidence=0.5,
                                 min_region_size=5)
    assert [q.class_name for q in ex] == ["cat", "dog"]
    ex = prompts.extract_prompts(_probs(lab, 3), min_confidence=0.5, min_region_size=5, classes=[2])
    assert [q.class_id for q in ex] == [2]


def test_bad_input():
    good = np.full((2, 8, 8), 0.5, np.float32)
    with pytest.raises(ValueError, match="C×H×W"):
        prompts.extract_prompts(np.zeros((8, 8)))
    with pytest.raises(ValueError, match="empty"):
        prompts.extract_prompts(np.zeros((0, 8, 8)))
    bad = good.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        prompts.extract_prompts(bad)
    with pytest.raises(ValueError, match="min_confidence"):
        prompts.extract_prompts(good, min_confidence=1.5)
    with pytest.raises(ValueError, match="points_per_cluster"):
        prompts.extract_prompts(good, points_per_cluster=0)
    with pytest.raises(ValueError, match="min_region_size"):
        prompts.extract_prompts(good, min_region_size=-1)
    with pytest.raises(ValueError, match="classes"):
        prompts.extract_prompts(good, classes=[5])
    with pytest.raises(ValueError, match="first"):
        prompts.positive_points(np.ones((4, 4), bool), first="middle")


def test_prompt_config_holds_the_defaults_and_validates_once():
    from ogclip_utils import prompts as P

    cfg = P.PromptConfig()
    assert (cfg.min_confidence, cfg.min_region_size, cfg.first_point) == (0.3, 40, "centroid")
    with pytest.raises(ValueError, match="min_confidence"):
        P.PromptConfig(min_confidence=1.5)
    with pytest.raises(ValueError, match="first_point"):
        P.PromptConfig(first_point="middle")
    with pytest.raises(ValueError, match="points_per_cluster"):
        P.PromptConfig(points_per_cluster=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.min_confidence = 0.5
