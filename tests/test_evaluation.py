"""One way to score label maps (ogclip_utils.evaluation): the accumulator, Scores, and its three users."""
import numpy as np
import pytest

from ogclip_utils import benchmark, data, datasets, evaluation, metrics, models, pipeline


def _pairs(n=3, size=48):
    rng = np.random.default_rng(0)
    gts = [rng.integers(0, 4, (size, size)) for _ in range(n)]
    preds = [np.where(rng.random(g.shape) < 0.7, g, rng.integers(0, 4, g.shape)) for g in gts]
    return preds, gts


def test_accumulate_equals_the_published_metrics_and_counts_costs():
    preds, gts = _pairs()
    table = {id(g): p for p, g in zip(preds, gts)}
    imgs = [g for g in gts]  # the "image" is the label itself, so predict can look its prediction up
    acc = evaluation.accumulate(lambda im: (table[id(im)], {"dense": 0.5}, 7), zip(imgs, gts), 4)
    s = evaluation.Scores.from_accumulator(acc, ["a", "b", "c", "d"], "toy")
    ref = metrics.segmentation_metrics(preds, gts, 4)
    assert s.miou == pytest.approx(ref["miou"]) and s.pixel_acc == pytest.approx(ref["pixel_acc"])
    assert s.mean_acc == pytest.approx(ref["mean_acc"])
    assert s.num_images == 3 and s.mean_queries == 7 and s.mean_times["dense"] == pytest.approx(0.5)
    assert "total" in s.mean_times and s.seconds_per_image >= 0.0
    assert set(s.per_class_iou) == {"a", "b", "c", "d"}


def test_a_perfect_and_a_wrong_predictor():
    preds, gts = _pairs()
    perfect = evaluation.Scores.from_accumulator(evaluation.accumulate(lambda im: im, zip(gts, gts), 4), list("abcd"))
    assert perfect.miou == 1.0
    wrong = evaluation.Scores.from_accumulator(evaluation.accumulate(lambda im: (im + 1) % 4, zip(gts, gts), 4), list("abcd"))
    assert wrong.miou == 0.0


def test_clear_errors():
    with pytest.raises(ValueError, match="differs from the ground truth"):
        evaluation.accumulate(lambda im: im[:10], [(np.zeros((20, 20), int), np.zeros((20, 20), int))], 2)
    with pytest.raises(ValueError, match="no image"):
        evaluation.Scores.from_accumulator(evaluation.Accumulator.empty(2), ["a", "b"])
    with pytest.raises(ValueError, match="seeds is empty"):
        evaluation.benchmark_scenes([])


def test_benchmark_scenes_scores_what_the_pipeline_predicts():
    clip, seg = models.load_clip("tiny-shapes"), models.load_segmenter("classical")
    b = evaluation.benchmark_scenes([424200, 424201], size=96, clip=clip, segmenter=seg, keep=True)
    refined = [r.label_map for r in b.results]
    dense_maps = [r.dense_label_map for r in b.results]
    gts = [sc.labels for sc in b.scenes]
    assert b.refined_miou == pytest.approx(metrics.segmentation_metrics(refined, gts, data.NUM_CLASSES)["miou"])
    assert b.dense_miou == pytest.approx(metrics.segmentation_metrics(dense_maps, gts, data.NUM_CLASSES)["miou"])
    assert b.mean_queries == pytest.approx(np.mean([r.num_queries for r in b.results]))
    r0 = pipeline.segment(b.scenes[0].image, data.CLASS_NAMES, clip=clip, segmenter=seg)
    np.testing.assert_array_equal(r0.label_map, refined[0])


def test_the_benchmark_command_uses_the_same_scores():
    ds = datasets.load_dataset("shapes", num_samples=2, size=48)
    res = benchmark.run(ds, predictor=lambda im, ds_, s, c, g: (np.zeros(im.shape[:2], np.int64), {}, 0))
    assert isinstance(res, evaluation.Scores) and res.num_images == 2
