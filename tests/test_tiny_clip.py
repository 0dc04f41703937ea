"""The committed tiny-shapes checkpoint: loads through the factory and is as good as its card says."""
import json

import numpy as np
import pytest

from ogclip_utils import cli, data, models, tiny_clip


@pytest.fixture(scope="module")
def clip():
    return models.load_clip("tiny-shapes", device="cpu")


def test_checkpoint_and_card_committed():
    assert models.TINY_WEIGHTS.exists()
    card = json.loads((models.CHECKPOINT_DIR / "tiny-shapes.json").read_text())
    assert card["held_out"]["accuracy"] >= 0.90  # the target of the tiny-shapes issue
    assert len(card["history"]) >= 5
    # the card records the recipe that tiny_clip.RECIPE runs, and README.md is generated from it
    for st, want in zip(card["stages"], tiny_clip.RECIPE, strict=True):
        assert st["recipe"]["steps"] == want["steps"] and st["recipe"]["lr"] == want["lr"]
        assert st["recipe"].get("late_class_token", False) == want["late_class_token"]
        assert st["recipe"].get("local_radius") == want.get("local_radius")
    assert (models.CHECKPOINT_DIR / "README.md").read_text() == tiny_clip.model_card(card)


def test_scene_windows_name_what_they_show():
    for seed in range(40):
        img, cap = tiny_clip.scene_window(seed)
        assert img.shape == (64, 64, 3) and img.dtype == np.uint8
        assert cap == "a background" or cap.startswith("a ")
        again = tiny_clip.scene_window(seed)
        assert cap == again[1] and np.array_equal(img, again[0])
    caps = {tiny_clip.scene_window(s)[1] for s in range(40)}
    assert "a background" in caps and any(" and " in c for c in caps)


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


def test_late_class_token_reads_the_image_only_in_the_last_block(clip):
    """Before the last block the class token ignores the image and the patches ignore the class
    token; the weights file keeps open_clip's own keys."""
    import torch

    from ogclip_utils import dense

    v = clip.model.visual
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        t, _ = dense._tokens_before_last(v, x)
        assert torch.allclose(t[0, 0], t[1, 0], atol=1e-6)  # class token: same for any image
        saved = v.class_embedding.detach().clone()
        v.class_embedding.add_(torch.randn_like(saved))  # (a constant shift would vanish in ln_pre)
        try:
            t2, _ = dense._tokens_before_last(v, x)
        finally:
            v.class_embedding.copy_(saved)
        assert torch.allclose(t[:, 1:], t2[:, 1:], atol=1e-6)  # patches never saw the class token
        assert not torch.allclose(t[:, 0], t2[:, 0])
        # encode_image goes through the same blocks: last block + ln_post + proj on the class token
        y = v.transformer.resblocks[-1](t)
        assert torch.allclose(clip.model.encode_image(x), v.ln_post(y[:, 0]) @ v.proj, atol=1e-5)
    plain = models.build_tiny_clip(late_class_token=False, local_radius=None)
    assert set(clip.model.state_dict()) == set(plain.state_dict())


def test_local_attention_keeps_patch_tokens_local(clip):
    """Blocks 1…L−1 see a (2r+1)² neighbourhood: after L−1 of them a patch token depends only on
    patches within (L−1)·r grid steps (plus the stem's few pixels), for square and non-square grids."""
    import copy

    import torch

    from ogclip_utils import dense

    v = clip.model.visual
    r = v.transformer.resblocks[0].radius
    assert r == models.LOCAL_RADIUS
    assert all(b.radius == r for b in v.transformer.resblocks[:-1])
    reach = (len(v.transformer.resblocks) - 1) * r  # grid steps
    for gh, gw in [(16, 16), (12, 20)]:
        x = torch.randn(1, 3, 8 * gh, 8 * gw)
        x2 = x.clone()
        x2[..., :, -8:] = torch.randn(8 * gh, 8)  # change only the last column of patches
        with torch.no_grad():
            t, grid = dense._tokens_before_last(v, x)
            t2, _ = dense._tokens_before_last(v, x2)
        assert grid == (gh, gw) and v.conv1.token_grid.hw == (gh, gw)
        d = (t - t2)[0, 1:].abs().amax(-1).reshape(gh, gw)
        far = gw - 1 - reach - 2  # columns beyond the reach (2 spare columns for the stem's receptive field)
        assert far >= 1
        assert d[:, :far].max() < 1e-6, d
        assert d[:, -1].min() > 1e-4  # ...while the changed patches did change
    # a deep copy keeps stem and blocks sharing their own grid record
    c = copy.deepcopy(clip.model)
    assert c.visual.transformer.resblocks[0].token_grid is c.visual.conv1.token_grid is not v.conv1.token_grid


def test_local_attention_mask_made_under_inference_mode_still_trains():
    import torch

    m = models.build_tiny_clip()
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        m.encode_image(x)  # the cached mask is created here...
    m.encode_image(x).sum().backward()  # ...and must still work with autograd
    assert m.visual.conv1[0].weight.grad is not None


def test_local_attention_bad_input():
    with pytest.raises(ValueError, match="radius"):
        models.install_local_attention(models.build_tiny_clip(local_radius=None), 0)
    with pytest.raises(ValueError, match="late class token"):
        models.install_local_attention(models.build_tiny_clip(late_class_token=False, local_radius=None), 2)
    with pytest.raises(ValueError, match="late_class_token"):
        models.build_tiny_clip(late_class_token=False, local_radius=2)


def test_cli_rejects_stage1_weights_without_their_card(tmp_path, capsys):
    w = tmp_path / "stage1.safetensors"
    w.write_bytes(b"")
    with pytest.raises(SystemExit) as e:
        cli.cmd_train_tiny_clip(["--stage1", str(w), "--out", str(tmp_path / "out")])
    assert e.value.code == 2
    assert "stage1.json" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_train_recipe_chains_stages_into_one_card(tmp_path, monkeypatch):
    """The recipe machinery end to end on a toy budget (2 steps per stage, tiny caches)."""
    small = dict(steps=2, lr=1e-4, n_crops=30, n_scenes=4, n_bg=2, batch_size=16, eval_every=2, eval_per_class=(1, 1))
    monkeypatch.setattr(tiny_clip, "RECIPE", (
        dict(small, mix=(0.60, 0.35, 0.0), n_windows=0, late_class_token=False),
        dict(small, mix=(0.50, 0.20, 0.25), n_windows=4, late_class_token=True, local_radius=2)))
    card = tiny_clip.train_recipe(tmp_path, threads=1)
    assert [(h["stage"], h["step"]) for h in card["history"]] == [(1, 2), (2, 4)]
    assert [st["recipe"]["late_class_token"] for st in card["stages"]] == [False, True]
    assert [st["recipe"]["local_radius"] for st in card["stages"]] == [None, 2]
    assert card["stages"][1]["recipe"]["mix"]["windows"] == 4
    assert (tmp_path / "stage1" / "tiny-shapes.safetensors").exists()
    assert json.loads((tmp_path / "tiny-shapes.json").read_text()) == card
    assert (tmp_path / "README.md").read_text() == tiny_clip.model_card(card)
    assert not (tmp_path / "stage1" / "README.md").exists()  # one model card, for the final weights
    final = models.load_clip("tiny-shapes", pretrained=str(tmp_path / "tiny-shapes.safetensors"), device="cpu")
    assert final.encode_images(np.zeros((1, 64, 64, 3), np.uint8)).shape == (1, 128)


def test_one_tiny_training_stage_runs_and_writes_its_card(tmp_path):
    """Three steps on a small cache: the trainer's pieces (step, history, card) fit together."""
    card = tiny_clip.train(steps=3, batch_size=8, n_crops=60, n_scenes=12, n_bg=6, eval_every=2, threads=1,
                           save_every=100, out_dir=tmp_path, eval_per_class=(1, 1), late_class_token=True,
                           local_radius=1)
    assert (tmp_path / "tiny-shapes.safetensors").is_file() and (tmp_path / "tiny-shapes.json").is_file()
    assert [h["step"] for h in card["history"]] == [2, 3]
    assert card["recipe"]["mix"]["crops"] + card["recipe"]["mix"]["scenes"] + card["recipe"]["mix"]["backgrounds"] <= 8
    assert card["held_out"]["n"] == 30 and 0.0 <= card["held_out"]["accuracy"] <= 1.0
    assert "local attention, radius 1" in card["architecture"]
