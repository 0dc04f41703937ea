"""Edits: mask dilation/feathering, OpenCV removal offline, and the diffusers inpainting path
with tiny randomly initialised components (no downloads)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from ogclip_utils import data, edit


@pytest.fixture(scope="module")
def scene():
    return data.make_scene(3, size=96, num_objects=2)


def test_dilate_and_feather():
    m = np.zeros((40, 40), bool)
    m[18:22, 18:22] = True
    g = edit.dilate_mask(m, 3)
    assert g[m].all() and g.sum() > m.sum()
    assert not g[18, 14] and g[18, 15]  # a disk of radius 3
    a = edit.feather_mask(g, 2)
    assert a.dtype == np.float32 and a.min() == 0.0 and a.max() == 1.0
    assert (a[~g] == 0).all() and (a[m] == 1).all()  # soft only near the border of the dilated mask
    assert 0 < a[g].min() < 1


def test_remove_changes_only_inside_dilated_mask(scene):
    obj = scene.objects[0]
    res = edit.remove(scene.image, obj.mask, dilate=4, feather=3)
    assert res.image.shape == scene.image.shape and res.image.dtype == np.uint8
    changed = (res.image != scene.image).any(axis=2)
    assert changed.any()
    assert not changed[~res.mask].any()
    # the removed object's colour is gone: the inpainted core looks like its surroundings
    ring = edit.dilate_mask(res.mask, 3) & ~res.mask & (scene.labels == 0)
    core = obj.mask & ~edit.dilate_mask(~obj.mask, 1)
    before = np.abs(scene.image[core].astype(float).mean(0) - scene.image[ring].astype(float).mean(0)).sum()
    after = np.abs(res.image[core].astype(float).mean(0) - scene.image[ring].astype(float).mean(0)).sum()
    assert after < 0.5 * before


def test_blacken_and_mask_view(scene):
    m = scene.objects[0].mask
    res = edit.edit(scene.image, m, "remove", use_inpainting=False, dilate=0)
    assert (res.image[m] == 0).all() and (res.image[~m] == scene.image[~m]).all()
    mv = edit.edit(scene.image, m, "replace", use_inpainting=False)
    assert (mv.image[m] == 255).all() and (mv.image[~m] == 0).all()


def test_offline_replace_says_it_needs_the_real_model(scene):
    with pytest.raises(edit.InpaintingUnavailable, match="real"):
        edit.edit(scene.image, scene.objects[0].mask, "replace", use_inpainting=True, prompt="a sunset", mode="offline")
    with pytest.raises(edit.InpaintingUnavailable, match="OGCLIP_MODE=real"):
        edit.load_inpainter(mode="offline")


def test_bad_input(scene):
    with pytest.raises(ValueError, match="mask has shape"):
        edit.remove(scene.image, np.zeros((5, 5), bool))
    with pytest.raises(ValueError, match="uint8"):
        edit.remove(scene.image.astype(float), scene.objects[0].mask)
    with pytest.raises(ValueError, match="method"):
        edit.remove(scene.image, scene.objects[0].mask, method="magic")
    with pytest.raises(ValueError, match="action"):
        edit.edit(scene.image, scene.objects[0].mask, "recolour")
    with pytest.raises(ValueError, match="edit-prompt"):
        edit.edit(scene.image, scene.objects[0].mask, "replace", use_inpainting=True, prompt=" ")


def test_model_size_multiples_of_8():
    assert edit.model_size((96, 96), 8, 512) == (512, 512)
    h, w = edit.model_size((100, 37), 8, 64)
    assert h % 8 == 0 and w % 8 == 0 and h == 64 and w == 24


# ----------------------------------------------------------------------------- diffusers, tiny random components
@pytest.fixture(scope="module")
def tiny_pipe(tmp_path_factory):
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionInpaintPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("tok")
    words = "a b c d e f g h i j k l m n o p q r s t u v w x y z".split()
    vocab = {"<|startoftext|>": 0, "!": 1, "<|endoftext|>": 2}
    for i, w in enumerate(words):
        vocab[w] = 3 + i
        vocab[w + "</w>"] = 3 + len(words) + i
    (d / "vocab.json").write_text(json.dumps(vocab))
    (d / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer(str(d / "vocab.json"), str(d / "merges.txt"), model_max_length=16)
    text = CLIPTextModel(CLIPTextConfig(bos_token_id=0, eos_token_id=2, pad_token_id=1, vocab_size=len(vocab),
                                        hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                                        max_position_embeddings=16))
    unet = UNet2DConditionModel(block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=9, out_channels=4,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                                attention_head_dim=(2, 4))
    vae = AutoencoderKL(block_out_channels=(32, 32, 32, 32), in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        layers_per_block=1)
    pipe = StableDiffusionInpaintPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet,
                                          scheduler=DDIMScheduler(steps_offset=1), safety_checker=None,
                                          feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.vae_scale_factor == 8 and pipe.unet.config.in_channels == 9
    return pipe


@pytest.mark.slow
def test_diffusers_inpaint_shapes_and_mask_handling(tiny_pipe, scene, monkeypatch):
    img = scene.image[:, :80]  # 96×80: not square, resized to multiples of 8 and back
    mask = scene.objects[0].mask[:, :80]
    calls = []
    real_call = type(tiny_pipe).__call__

    def spy(self, *args, **kw):
        calls.append(kw)
        return real_call(self, *args, **kw)

    monkeypatch.setattr(type(tiny_pipe), "__call__", spy)
    res = edit.inpaint(tiny_pipe, img, mask, "a red sky", steps=2, guidance_scale=1.0, dilate=3, feather=2, max_side=64)
    kw = calls[0]
    assert (kw["height"], kw["width"]) == (64, 56)  # 96×80 → long side 64, multiples of 8
    assert kw["image"].size == (56, 64) and kw["mask_image"].size == (56, 64)
    assert np.asarray(kw["mask_image"]).max() == 255
    assert res.image.shape == img.shape and res.image.dtype == np.uint8 and res.method == "diffusers"
    changed = (res.image != img).any(axis=2)
    assert changed[mask].mean() > 0.5  # random weights paint noise inside the object …
    assert not changed[~res.mask].any()  # … and nothing outside the dilated mask
    again = edit.inpaint(tiny_pipe, img, mask, "a red sky", steps=2, guidance_scale=1.0, dilate=3, feather=2, max_side=64)
    assert np.array_equal(res.image, again.image)  # seeded


@pytest.mark.slow
def test_edit_uses_given_pipe_for_replace(tiny_pipe, scene):
    res = edit.edit(scene.image, scene.objects[0].mask, "replace", use_inpainting=True, prompt="a blue star",
                    pipe=tiny_pipe, mode="offline", steps=1, guidance_scale=1.0, max_side=32)
    assert res.method == "diffusers" and res.prompt == "a blue star"
    assert not (res.image != scene.image).any(axis=2)[~res.mask].any()
