"""Metrics against hand-computed cases (mmsegmentation definitions)."""
import numpy as np
import pytest

from ogclip_utils import metrics


def test_confusion_matrix_hand_case_and_ignore():
    gt = np.array([[0, 0, 1], [1, 2, 255]])
    pred = np.array([[0, 1, 1], [1, 0, 2]])
    cm = metrics.confusion_matrix(pred, gt, 3)
    # rows = gt, cols = pred; the ignored pixel (pred 2) is dropped
    expected = np.array([[1, 1, 0], [0, 2, 0], [1, 0, 0]])
    np.testing.assert_array_equal(cm, expected)


def test_segmentation_metrics_hand_computed():
    gt = np.array([[0, 0, 1], [1, 2, 255]])
    pred = np.array([[0, 1, 1], [1, 0, 2]])
    m = metrics.segmentation_metrics(pred, gt, 3)
    # class 0: tp 1, gt 2, pred 2 -> iou 1/3; class 1: tp 2, gt 2, pred 3 -> 2/3; class 2: tp 0 -> 0
    np.testing.assert_allclose(m["per_class_iou"], [1 / 3, 2 / 3, 0.0])
    assert m["miou"] == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)
    assert m["pixel_acc"] == pytest.approx(3 / 5)
    assert m["mean_acc"] == pytest.approx((1 / 2 + 1 + 0) / 3)


def test_absent_class_excluded_from_mean():
    # class 2 never appears in gt nor pred: NaN IoU, not counted in the mIoU
    gt = np.array([[0, 1]])
    pred = np.array([[0, 0]])
    m = metrics.segmentation_metrics(pred, gt, 3)
    assert np.isnan(m["per_class_iou"][2])
    assert m["miou"] == pytest.approx((0.5 + 0.0) / 2)
    # a class predicted but absent from gt has IoU 0 and does count
    m2 = metrics.segmentation_metrics(np.array([[0, 2]]), np.array([[0, 0]]), 3)
    assert m2["miou"] == pytest.approx((0.5 + 0.0) / 2)


def test_dataset_level_accumulation_differs_from_per_image_mean():
    gts = [np.zeros((1, 4), int), np.array([[1, 1, 1, 1]])]
    preds = [np.array([[0, 0, 0, 1]]), np.array([[1, 1, 1, 1]])]
    m = metrics.segmentation_metrics(preds, gts, 2)
    # pooled: class 0 tp 3 union 4; class 1 tp 4 union 5
    assert m["miou"] == pytest.approx((3 / 4 + 4 / 5) / 2)
    per_image = np.mean([metrics.segmentation_metrics(p, g, 2)["miou"] for p, g in zip(preds, gts)])
    assert m["miou"] != pytest.approx(per_image)
    np.testing.assert_array_equal(m["confusion"], [[3, 1], [0, 4]])


def test_metrics_from_confusion_all_ignored():
    m = metrics.metrics_from_confusion(np.zeros((3, 3), np.int64))
    assert np.isnan(m["miou"]) and np.isnan(m["pixel_acc"])


@pytest.mark.parametrize("pred,gt,msg", [
    (np.zeros((2, 2), int), np.zeros((2, 3), int), "shape"),
    (np.zeros((2, 2), float), np.zeros((2, 2), int), "integer"),
    (np.full((2, 2), 5), np.zeros((2, 2), int), "predicted labels"),
    (np.zeros((2, 2), int), np.full((2, 2), 7), "ground-truth labels"),
])
def test_confusion_matrix_bad_input(pred, gt, msg):
    with pytest.raises(ValueError, match=msg):
        metrics.confusion_matrix(pred, gt, 3)


def test_segmentation_metrics_empty():
    with pytest.raises(ValueError, match="no images"):
        metrics.segmentation_metrics([], [], 3)


def test_retrieval_metrics_hand_case():
    s = np.array([[0.9, 0.1, 0.0], [0.8, 0.5, 0.1], [0.0, 0.2, 0.3]])
    r = metrics.retrieval_metrics(s, ks=(1, 2))
    # i2t ranks: row0 1, row1 2 (0.8 > 0.5), row2 1 -> R@1 = 2/3
    assert r["i2t_r1"] == pytest.approx(100 * 2 / 3)
    assert r["i2t_r2"] == pytest.approx(100.0)
    # t2i ranks: col0 1, col1 1, col2 1
    assert r["t2i_r1"] == pytest.approx(100.0)
    assert r["mean_rank"] == pytest.approx((4 / 3 + 1) / 2)
    with pytest.raises(ValueError):
        metrics.retrieval_metrics(np.zeros((2, 3)))


def test_retrieval_metrics_count_float_noise_as_a_tie():
    # column 1: the wrong image scores 0.5 - 1e-7 against the true 0.5, float noise of a matrix product
    s = np.array([[0.9, 0.5 - 1e-7], [0.1, 0.5]])
    assert metrics.retrieval_metrics(s)["t2i_r1"] == pytest.approx(100.0)  # exact comparison: the true image wins
    assert metrics.retrieval_metrics(s, tie_tolerance=1e-5)["t2i_r1"] == pytest.approx(50.0)  # a tie, counted against
    with pytest.raises(ValueError, match="tie_tolerance"):
        metrics.retrieval_metrics(s, tie_tolerance=-1.0)


def test_box_and_mask_iou():
    assert metrics.box_iou((0, 0, 2, 2), (1, 1, 3, 3)) == pytest.approx(1 / 7)
    a = np.zeros((4, 4), bool); a[:2] = True
    b = np.zeros((4, 4), bool); b[:, :2] = True
    assert metrics.mask_iou(a, b) == pytest.approx(4 / 12)
    g = metrics.grounding_accuracy([(0, 0, 2, 2), (0, 0, 1, 1)], [(0, 0, 2, 2), (5, 5, 6, 6)], ["a", "b"])
    assert g["all"] == 50.0 and g["a"] == 100.0 and g["b"] == 0.0
