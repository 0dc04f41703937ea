"""Tests for ogclip_utils.pipeline (and refine's SAM2 path at random init)."""
import numpy as np
import pytest

from ogclip_utils import data, models, pipeline, prompts, refine


@pytest.fixture(scope="module")
def clip():
    return models.load_clip("tiny-shapes", pretrained=False, device="cpu")  # random init: fast, shapes only


def test_segment_intermediates_rerun_and_target(clip):
    sc = data.make_scene(3, size=64, num_objects=2)
    seg = models.load_segmenter("classical")
    r = pipeline.segment(sc.image, data.CLASS_NAMES, clip=clip, segmenter=seg, min_confidence=0.0, min_region_size=20)
    assert r.label_map.shape == (64, 64) and r.probs.shape == (31, 64, 64)
    assert r.num_queries == len(r.prompts) == len(r.candidates)
    assert set(r.timings) >= {"dense", "prompts", "refine", "total"}
    r2 = r.rerun(min_region_size=10_000)  # cheap stages only
    assert r2.dense is r.dense and r2.num_queries == 0 and "min_region_size" in r2.extraction.message
    assert (r2.label_map == 0).all()
    t = pipeline.segment(sc.image, data.CLASS_NAMES, clip=clip, segmenter=seg, target="red circle",
                         min_confidence=0.0, min_region_size=1)
    assert set(np.unique(t.label_map)) <= {0, data.CLASS_NAMES.index("red circle")}
    assert all(p.class_id == data.CLASS_NAMES.index("red circle") for p in t.prompts)


def test_segment_bad_input(clip):
    img = data.make_scene(1, size=32).image
    seg = models.load_segmenter("classical")
    with pytest.raises(ValueError, match="vocabulary"):
        pipeline.segment(img, [], clip=clip, segmenter=seg)
    with pytest.raises(ValueError, match="vocabulary"):
        pipeline.segment(img, "red circle", clip=clip, segmenter=seg)
    with pytest.raises(ValueError, match="target"):
        pipeline.segment(img, data.CLASS_NAMES, clip=clip, segmenter=seg, target="unicorn")
    with pytest.raises(ValueError, match="unknown parameter"):
        pipeline.segment(img, data.CLASS_NAMES, clip=clip, segmenter=seg, min_confidance=0.3)


def _prompt(mask, cls, pts, conf=0.9):
    return prompts.Prompt(cls, np.asarray(pts, np.float32), np.ones(len(pts), np.int64), mask, conf)


def test_refine_merges_duplicates_and_resolves_overlaps():
    img = np.full((48, 48, 3), 120, np.uint8)
    img[5:25, 5:25] = (220, 30, 30)
    seg = refine.ClassicalSegmenter()
    reg = np.zeros((48, 48), bool)
    reg[5:25, 5:25] = True
    ps = [_prompt(reg, 1, [[10, 10]]), _prompt(reg, 1, [[20, 20]], 0.8)]
    r = refine.refine(seg, img, ps, classify="prompt")
    assert r.num_queries == 2 and len(r.before_overlap) == 2
    assert len(r.instances) == 1 and r.instances[0].prompts == [0, 1]  # duplicates merged
    assert (r.label_map[5:25, 5:25] == 1).all() and (r.label_map[30:, 30:] == 0).all()
    # two classes claim the same pixels: the higher score × class probability wins
    a = refine.Instance(reg.copy(), 1, 0.9, 0.5, [0])
    b = refine.Instance(reg.copy(), 2, 0.9, 0.8, [1])
    lm, inst, claims = refine.resolve_overlaps([a, b], (48, 48))
    assert (lm[reg] == 2).all() and claims.max() == 2 and len(inst) == 1
    # below the IoU threshold two same-class masks stay separate
    c = np.zeros((48, 48), bool)
    c[5:25, 15:35] = True
    kept = refine.merge_duplicates([refine.Instance(reg, 1, 1, 1, [0]), refine.Instance(c, 1, 1, 1, [1])], 0.8)
    assert len(kept) == 2


def test_refine_bad_input():
    img = np.zeros((16, 16, 3), np.uint8)
    seg = refine.ClassicalSegmenter()
    reg = np.ones((8, 8), bool)
    with pytest.raises(ValueError, match="region"):
        refine.refine(seg, img, [_prompt(reg, 1, [[1, 1]])], classify="prompt")
    with pytest.raises(ValueError, match="mask_choice"):
        refine.refine(seg, img, [], mask_choice="biggest")
    with pytest.raises(ValueError, match="clip"):
        refine.refine(seg, img, [], classify="clip")


def test_sam2_random_init_through_refine():
    pytest.importorskip("sam2")
    pred = models.load_segmenter("sam2.1-hiera-tiny", checkpoint="random", device="cpu")
    img = data.make_scene(2, size=64, num_objects=1).image
    reg = np.zeros((64, 64), bool)
    reg[20:40, 20:40] = True
    ps = [_prompt(reg, 1, [[30, 30]]), _prompt(reg, 2, [[25, 35]])]
    r = refine.refine(pred, img, ps, classify="prompt", max_area_fraction=1.0, min_area=1)
    assert r.num_queries == 2 and r.label_map.shape == (64, 64)
    for c in r.candidates:
        assert c.masks.shape == (3, 64, 64) and c.masks.dtype == bool and c.scores.shape == (3,)


def test_target_matches_a_synonym_of_a_vocabulary_entry():
    vocab = ["background", "dog, puppy", "cat"]
    assert pipeline._target_id("puppy", vocab) == 1 and pipeline._target_id("Dog, Puppy", vocab) == 1
    assert pipeline._target_id("cat", vocab) == 2 and pipeline._target_id(2, vocab) == 2
    with pytest.raises(ValueError, match="not in the vocabulary"):
        pipeline._target_id("pup", vocab)


def test_cli_lists_and_dispatches_ground(capsys):
    from ogclip_utils import cli

    assert cli.main([]) == 0 and "ground" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        cli.main(["ground", "--help"])
    assert e.value.code == 0 and "--scenes" in capsys.readouterr().out


def test_stage_keywords_are_the_settings_dataclasses_fields():
    from dataclasses import fields

    from ogclip_utils import dense, prompts

    assert pipeline.DENSE_KEYS == tuple(f.name for f in fields(dense.DenseConfig))
    assert "min_confidence" in pipeline.PROMPT_KEYS and "iou_threshold" in pipeline.REFINE_KEYS
    assert prompts.extract_prompts.__defaults__[0] == prompts.PromptConfig().min_confidence
    with pytest.raises(ValueError, match="logit_scale"):
        dense.DenseConfig(logit_scale=0)


def test_largest_object_falls_back_to_the_clip_region_then_explains():
    import dataclasses

    sc = data.make_scene(4242, size=96)
    r = pipeline.segment(sc.image, data.CLASS_NAMES, clip=models.load_clip("tiny-shapes"),
                         segmenter=models.load_segmenter("classical"))
    assert r.instances
    name, mask = r.largest_object()
    big = max(r.instances, key=lambda i: i.area)
    assert name == data.CLASS_NAMES[big.class_id] and np.array_equal(mask, r.label_map == big.class_id)
    bare = dataclasses.replace(r, refined=dataclasses.replace(r.refined, instances=[]))
    name, mask = bare.largest_object()
    p = max(r.prompts, key=lambda q: int(q.region.sum()))
    assert name == f"{data.CLASS_NAMES[p.class_id]} (CLIP region)" and np.array_equal(mask, p.region)
    none = r.rerun(min_region_size=10_000)  # no prompt: the dense argmax's largest foreground class
    name, mask = none.largest_object()
    counts = np.bincount(r.dense_label_map.ravel(), minlength=data.NUM_CLASSES)
    counts[0] = 0
    assert name == f"{data.CLASS_NAMES[counts.argmax()]} (dense argmax)" and mask.sum() == counts.max()
    flat = dataclasses.replace(none, dense=dataclasses.replace(none.dense, probs=np.eye(data.NUM_CLASSES)[0][:, None, None]
                                                                * np.ones((1, 96, 96), np.float32)))
    with pytest.raises(ValueError, match="background everywhere"):
        flat.largest_object()
