"""The committed tiny-shapes checkpoint: loads through the factory and is as good as its card says."""
import json

import numpy as np
import pytest

from ogclip_utils import data, models, tiny_clip


@pytest.fixture(scope="module")
def clip():
    return models.load_clip("tiny-shapes", device="cpu")


def test_checkpoint_and_card_committed():
    assert models.TINY_WEIGHTS.exists()
    card = json.loads((models.CHECKPOINT_DIR / "tiny-shapes.json").read_text())
    assert card["held_out"]["accuracy"] >= 0.85  # measured 0.88; the issue target is 0.90 (not reached yet)
    assert len(card["history"]) >= 5


def test_architecture_is_open_clip_with_stem(clip):
    import open_clip

    assert isinstance(clip.model, open_clip.CLIP)
    assert "tiny-shapes" in open_clip.list_models()
    assert clip.model.visual.grid_size == (8, 8) and clip.model.visual.pool_type == "tok"


def test_zero_shot_accuracy_on_fresh_held_out_crops(clip):
    # seeds disjoint from training and from the card's own evaluation set
    x, y = tiny_clip.eval_crops(n_per_class=6, seed_base=tiny_clip.EVAL_SEED_BASE + 5_000)
    rep = tiny_clip.zero_shot(clip, x, y)
    assert rep.accuracy >= 0.8, rep.as_dict()
    assert rep.colour_accuracy >= 0.97
    assert rep.shape_confusion.sum() == len(y)


def test_whole_scene_caption_beats_wrong_caption(clip):
    hits = 0
    for seed in range(20):
        sc = data.make_scene(900_000 + seed, size=64, num_objects=1)
        o = sc.objects[0]
        other = "blue circle" if o.name != "blue circle" else "red star"
        t = clip.encode_texts([f"a {o.name}", f"a {other}"])
        v = clip.encode_images(sc.image[None])
        hits += int((v @ t.T).argmax() == 0)
    assert hits >= 16
