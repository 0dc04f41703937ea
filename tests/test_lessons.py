"""lessons.example: the offline example is exactly the shapes scene, measured against its own labels."""
import numpy as np
import pytest

from ogclip_utils import data, env, lessons, metrics


@pytest.fixture(scope="module")
def ex():
    return lessons.example("offline", scene=4242, size=96)


def test_offline_example_is_the_shapes_scene_with_its_ground_truth(ex):
    sc = data.make_scene(4242, size=96)
    assert ex.mode == "offline" and ex.has_truth
    assert np.array_equal(ex.image, sc.image) and np.array_equal(ex.labels, sc.labels)
    assert ex.vocabulary == list(data.CLASS_NAMES) and ex.objects == [o.name for o in sc.objects]
    assert ex.describe() == "objects: " + ", ".join(o.name for o in sc.objects)
    assert ex.clip.name == "tiny-shapes" and type(ex.segmenter).__name__ == "ClassicalSegmenter"


def test_truth_names_the_majority_class_under_a_mask(ex):
    sc = data.make_scene(4242, size=96)
    for o in sc.objects:
        if o.area:
            assert ex.truth(o.mask & (sc.labels == o.class_id)) == o.name
    assert ex.truth(np.zeros_like(ex.labels, dtype=bool)) == "empty mask"
    with pytest.raises(ValueError, match="shape"):
        ex.truth(np.ones((3, 3), bool))


def test_miou_is_the_metric_against_the_labels(ex):
    assert ex.miou(ex.labels) == pytest.approx(1.0)
    wrong = np.zeros_like(ex.labels)
    expect = metrics.segmentation_metrics([wrong], [ex.labels], data.NUM_CLASSES)["miou"]
    assert ex.miou(wrong) == pytest.approx(expect) and expect < 1.0
    assert ex.score(ex.labels) == "mIoU 1.000"


def test_unknown_photo_is_a_clear_error():
    with pytest.raises(ValueError, match="photo='nope'.*bundled photos"):
        lessons.example("real", photo="nope")


def test_sized_shrinks_only_in_the_smoke_run(monkeypatch):
    monkeypatch.delenv("OGCLIP_SMOKE", raising=False)
    assert lessons.sized(range(5)) == [0, 1, 2, 3, 4]
    monkeypatch.setenv("OGCLIP_SMOKE", "1")
    assert env.smoke() and lessons.sized(range(5)) == [0, 1]


def test_knob_is_the_value_except_in_the_smoke_run(monkeypatch):
    monkeypatch.delenv("OGCLIP_SMOKE", raising=False)
    assert lessons.knob(16, smoke=4) == 16
    monkeypatch.setenv("OGCLIP_SMOKE", "1")
    assert lessons.knob(16, smoke=4) == 4


def test_real_clip_templates_shrink_only_in_the_smoke_run(monkeypatch):
    from ogclip_utils import clip as clip_mod

    class Big:
        name = "ViT-B-16"

    monkeypatch.delenv("OGCLIP_SMOKE", raising=False)
    assert len(clip_mod.default_templates(Big())) == 80
    monkeypatch.setenv("OGCLIP_SMOKE", "1")
    assert clip_mod.default_templates(Big()) == clip_mod.openai_templates()[:1]
    assert clip_mod.default_templates(type("T", (), {"name": "tiny-shapes"})()) == clip_mod.TINY_TEMPLATES


def test_score_in_percent_and_the_query_window(ex):
    m = metrics.segmentation_metrics([ex.labels], [ex.labels], data.NUM_CLASSES)
    assert ex.score(ex.labels, percent=True) == f"mIoU {100 * m['miou']:.1f} %, pixel accuracy {100 * m['pixel_acc']:.1f} %"
    what, crop, (x, y) = ex.query_window(64)
    assert what == ex.objects[0] and crop.shape == (64, 64, 3)
    from ogclip_utils.og_clip import interior_point

    obj = data.make_scene(4242, size=96).objects[0]
    cx, cy = (int(v) for v in interior_point(obj.mask))
    assert obj.mask[cy, cx] and np.array_equal(crop[y, x], ex.image[cy, cx])  # the point is the object's interior pixel
    assert 0 <= x < 64 and 0 <= y < 64


def test_example_figure_draws_a_scene_and_a_photo(ex):
    import matplotlib

    matplotlib.use("Agg")
    from ogclip_utils import viz

    assert len(viz.example_figure(ex).axes) == 3
    photo = lessons.Example("real", "photo 'chelsea'", data.load_photo("chelsea"), ["cat", "background"], None, None,
                            None, [], "real")
    assert len(photo.query_window(224)[1]) == 224 and photo.query_window(224)[0].startswith("the centre")
    assert len(viz.example_figure(photo).axes) == 1
