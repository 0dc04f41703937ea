"""Tests for ogclip_utils.dense: exactness against a naive SCLIP written here, window grid,
synonyms and post-processing order, thresholds, odd image sizes, positional interpolation,
the text cache, PAMR and bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ogclip_utils import clip as clip_mod
from ogclip_utils import data, dense, evaluation, models, pamr as pamr_mod, perf, viz


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own on-disk text cache and an empty memory cache."""
    monkeypatch.setenv("OGCLIP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(clip_mod, "_TEXT_CACHE", {})
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return models.load_clip("tiny-shapes", pretrained=False, device="cpu")


def _image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ----------------------------------------------------------------------------- naive reference
def _naive_text(clip, names, templates):
    """One template at a time, no batching, no cache (SCLIP's loop)."""
    feats = []
    with torch.no_grad():
        for n in names:
            e = torch.cat([clip.model.encode_text(clip.tokenizer([t.format(n)])) for t in templates])
            e = e / e.norm(dim=-1, keepdim=True)
            e = e.mean(0)
            feats.append(e / e.norm())
    return torch.stack(feats)


def _naive_pos(visual, gh, gw):
    """SCLIP's interpolate_pos_encoding."""
    pos = visual.positional_embedding
    n = pos.shape[0] - 1
    if n == gh * gw and gh == gw:
        return pos
    side = math.sqrt(n)
    dim = pos.shape[-1]
    patch = pos[1:].reshape(1, int(side), int(side), dim).permute(0, 3, 1, 2)
    patch = F.interpolate(patch, scale_factor=((gh + 0.1) / side, (gw + 0.1) / side), mode="bicubic")
    patch = patch.permute(0, 2, 3, 1).reshape(-1, dim)
    return torch.cat([pos[:1], patch])


def _naive_custom_attn(attn_layer, x):
    """SCLIP's custom_attn with csa=True, sequence-first (L×B×D) like the official code."""
    num_heads = attn_layer.num_heads
    _, bsz, embed_dim = x.size()
    head_dim = embed_dim // num_heads
    scale = head_dim ** -0.5
    q, k, v = F.linear(x, attn_layer.in_proj_weight, attn_layer.in_proj_bias).chunk(3, dim=-1)
    q = q.contiguous().view(-1, bsz * num_heads, head_dim).transpose(0, 1)
    k = k.contiguous().view(-1, bsz * num_heads, head_dim).transpose(0, 1)
    v = v.contiguous().view(-1, bsz * num_heads, head_dim).transpose(0, 1)
    q_attn = torch.bmm(q, q.transpose(1, 2)) * scale
    k_attn = torch.bmm(k, k.transpose(1, 2)) * scale
    attn_weights = F.softmax(q_attn, dim=-1) + F.softmax(k_attn, dim=-1)
    out = torch.bmm(attn_weights, v)
    out = out.transpose(0, 1).contiguous().view(-1, bsz, embed_dim)
    return attn_layer.out_proj(out)


def _naive_feature(clip, crop, text):
    v = clip.model.visual
    x = v.conv1(crop)
    b, c, gh, gw = x.shape
    x = x.reshape(b, c, -1).permute(0, 2, 1)
    x = torch.cat([v.class_embedding + torch.zeros(b, 1, c), x], dim=1)
    x = v.ln_pre(x + _naive_pos(v, gh, gw))
    for blk in v.transformer.resblocks[:-1]:
        x = blk(x)
    x = x.permute(1, 0, 2)
    blk = v.transformer.resblocks[-1]
    x = x + _naive_custom_attn(blk.attn, blk.ln_1(x))
    x = x + blk.mlp(blk.ln_2(x))
    x = x.permute(1, 0, 2)
    feats = v.ln_post(x) @ v.proj
    feats = feats / feats.norm(dim=-1, keepdim=True)
    logits = feats[:, 1:] @ text.T
    logits = logits.permute(0, 2, 1).reshape(-1, text.shape[0], gh, gw)
    return F.interpolate(logits, size=crop.shape[-2:], mode="bilinear")


def _naive_sclip(clip, image, vocabulary, templates, crop, stride, logit_scale=40.0, area_thd=None):
    """SCLIP's forward_slide + postprocess_result, one crop at a time."""
    names, idx = [], []
    for i, entry in enumerate(vocabulary):
        for n in entry.split(", "):
            names.append(n)
            idx.append(i)
    text = _naive_text(clip, names, templates)
    img = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0
    img = (img - torch.tensor(clip.mean).view(1, 3, 1, 1)) / torch.tensor(clip.std).view(1, 3, 1, 1)
    _, _, h_img, w_img = img.shape
    h_grids = max(h_img - crop + stride - 1, 0) // stride + 1
    w_grids = max(w_img - crop + stride - 1, 0) // stride + 1
    preds = torch.zeros(1, len(names), h_img, w_img)
    count = torch.zeros(1, 1, h_img, w_img)
    with torch.no_grad():
        for hi in range(h_grids):
            for wi in range(w_grids):
                y1, x1 = hi * stride, wi * stride
                y2, x2 = min(y1 + crop, h_img), min(x1 + crop, w_img)
                y1, x1 = max(y2 - crop, 0), max(x2 - crop, 0)
                out = _naive_feature(clip, img[:, :, y1:y2, x1:x2], text)
                preds += F.pad(out, (x1, preds.shape[3] - x2, y1, preds.shape[2] - y2))
                count[:, :, y1:y2, x1:x2] += 1
    logits = (preds / count)[0]
    seg = (logits * logit_scale).softmax(0)
    num_cls = max(idx) + 1
    if num_cls != len(idx):
        cls_index = F.one_hot(torch.tensor(idx)).T.view(num_cls, len(idx), 1, 1)
        seg = (seg[None] * cls_index).max(1)[0]
    if area_thd is not None:
        pred = F.one_hot(seg.argmax(0), num_cls).to(seg.dtype)
        area = pred[:, :, 1:].sum((0, 1), keepdim=True)
        area = (area > area_thd * area.sum()).to(seg.dtype)
        seg[1:] *= area.transpose(0, -1)
    return logits.numpy(), seg.numpy()


VOCAB = ["background", "red circle, red disc", "blue square", "green star"]


# ----------------------------------------------------------------------------- exactness
@pytest.mark.parametrize("hw", [(100, 150), (64, 64), (50, 90)])
def test_matches_naive_sclip_tiny(tiny, hw):
    image = _image(*hw)
    tpl = ["a {}", "a photo of a {}."]
    ref_logits, ref_probs = _naive_sclip(tiny, image, VOCAB, tpl, 64, 32)
    r = dense.dense_probs(tiny, image, VOCAB, templates=tpl, batch_size=3)
    assert r.probs.shape == (4,) + hw and r.probs.dtype == np.float32
    assert np.abs(r.logits - ref_logits).max() < 1e-5
    assert np.abs(r.probs - ref_probs).max() < 1e-5
    assert r.classes == ["background", "red circle", "blue square", "green star"]
    assert r.queries == ["background", "red circle", "red disc", "blue square", "green star"]


def test_matches_naive_with_area_thd(tiny):
    image = _image(96, 128, seed=3)
    tpl = ["a {}"]
    _, ref = _naive_sclip(tiny, image, VOCAB, tpl, 64, 32, logit_scale=70.0, area_thd=0.3)
    r = dense.dense_probs(tiny, image, VOCAB, templates=tpl, logit_scale=70.0, area_thd=0.3)
    assert np.abs(r.probs - ref).max() < 1e-5


@pytest.mark.slow
def test_vit_b16_random_init_end_to_end():
    """The real-mode architecture (QuickGELU ViT-B/16) at random init against the naive loop,
    with a small crop so the positional embeddings are interpolated (7×7 instead of 14×14)."""
    torch.manual_seed(0)
    clip = models.load_clip("ViT-B-16-quickgelu", pretrained=None, device="cpu")
    image = _image(112, 150, seed=1)
    tpl = ["a photo of a {}.", "a {}"]
    vocab = ["background", "cat, kitten", "dog"]
    ref_logits, ref_probs = _naive_sclip(clip, image, vocab, tpl, 112, 56)
    r = dense.dense_probs(clip, image, vocab, crop=112, stride=56, templates=tpl)
    assert len(r.windows) == 2
    assert np.abs(r.probs - ref_probs).max() < 1e-4
    assert np.abs(r.logits - ref_logits).max() < 1e-5


# ----------------------------------------------------------------------------- window grid
def test_window_grid_counts_and_clamping():
    wins = dense.window_grid(448, 597, 224, 112)
    assert len(wins) == 3 * 5
    assert wins[0] == (0, 0, 224, 224)
    assert wins[-1] == (597 - 224, 448 - 224, 597, 448)  # last one clamped inside
    assert all(x1 - x0 == 224 and y1 - y0 == 224 for x0, y0, x1, y1 in wins)
    covered = np.zeros((448, 597), int)
    for x0, y0, x1, y1 in wins:
        covered[y0:y1, x0:x1] += 1
    assert covered.min() >= 1


def test_window_grid_small_and_exact_images():
    assert dense.window_grid(50, 40, 64, 32) == [(0, 0, 40, 50)]
    assert dense.window_grid(64, 64, 64, 32) == [(0, 0, 64, 64)]
    assert len(dense.window_grid(96, 64, 64, 32)) == 2
    assert dense.window_grid(50, 100, 64, 32) == [(0, 0, 64, 50), (32, 0, 96, 50), (36, 0, 100, 50)]
    with pytest.raises(ValueError, match="stride"):
        dense.window_grid(100, 100, 32, 64)
    with pytest.raises(ValueError, match="positive"):
        dense.window_grid(100, 100, 0, 0)


def test_default_crop_and_stride_follow_the_model(tiny):
    r = dense.dense_probs(tiny, _image(128, 160), VOCAB)
    assert len(r.windows) == 3 * 4  # 64 / 32 on 128×160
    r = dense.dense_probs(tiny, _image(128, 160), VOCAB, crop=0)  # whole image, one forward
    assert r.windows == [(0, 0, 160, 128)] and r.probs.shape == (4, 128, 160)


# ----------------------------------------------------------------------------- post-processing
def test_postprocess_order_softmax_over_queries_then_synonym_max():
    logits = torch.tensor([0.1, 0.3, 0.2, 0.0]).view(4, 1, 1)  # q0 | q1,q2 synonyms of class 1 | q3
    q2c = np.array([0, 1, 1, 2])
    p = dense.logits_to_probs(logits, q2c, 3, logit_scale=10.0)
    soft = torch.softmax(logits.view(-1) * 10.0, 0)
    expected = torch.stack([soft[0], torch.maximum(soft[1], soft[2]), soft[3]])
    assert torch.allclose(p.view(-1), expected)
    assert p.sum() < 1.0  # max over synonyms, not a re-normalised softmax


def test_area_thd_zeroes_small_foreground_classes_only():
    logits = torch.zeros(3, 10, 10)
    logits[0] = 1.0  # background everywhere …
    logits[1, :5] = 2.0  # … class 1 on 50 pixels
    logits[2, 9, 9] = 2.0  # class 2 on one pixel
    q2c = np.arange(3)
    p = dense.logits_to_probs(logits, q2c, 3, logit_scale=5.0, area_thd=0.1)
    assert p[2].abs().max() == 0  # 1 ≤ 0.1 × 51 foreground pixels
    assert p[1, 0, 0] > 0.9 and p[0].max() > 0  # class 1 and background kept
    assert dense.logits_to_probs(logits, q2c, 3, 5.0, area_thd=None)[2, 9, 9] > 0.9


def test_prob_thd_sends_low_confidence_to_class_zero_and_keeps_probs(tiny):
    image = _image(64, 96)
    r0 = dense.dense_probs(tiny, image, VOCAB, logit_scale=5.0)
    r = dense.dense_probs(tiny, image, VOCAB, logit_scale=5.0, prob_thd=0.99)
    np.testing.assert_array_equal(r.probs, r0.probs)
    assert (r.labels == 0).all()
    low = r0.confidence < 0.3
    r3 = r0.postprocess(prob_thd=0.3)
    assert (r3.labels[low] == 0).all()
    np.testing.assert_array_equal(r3.labels[~low], r0.labels[~low])


def test_postprocess_from_cached_logits_equals_a_fresh_call(tiny):
    image = _image(80, 100)
    r = dense.dense_probs(tiny, image, VOCAB)
    fresh = dense.dense_probs(tiny, image, VOCAB, logit_scale=12.0, prob_thd=0.4, area_thd=0.05)
    again = dense.postprocess(r, logit_scale=12.0, prob_thd=0.4, area_thd=0.05)
    np.testing.assert_allclose(again.probs, fresh.probs, atol=1e-6)
    np.testing.assert_array_equal(again.labels, fresh.labels)
    assert again.logits is r.logits  # no re-encoding


def test_all_methods_give_probabilities(tiny):
    image = _image(70, 90)
    for m in dense.METHODS:
        r = dense.dense_probs(tiny, image, ["background", "red circle", "blue square"], method=m)
        assert np.isfinite(r.probs).all()
        np.testing.assert_allclose(r.probs.sum(0), 1.0, atol=1e-5)
        assert r.method == m
    a = dense.dense_probs(tiny, image, VOCAB, method="sclip").logits
    b = dense.dense_probs(tiny, image, VOCAB, method="vanilla").logits
    assert not np.allclose(a, b)


def test_short_side_resizes_and_returns_input_resolution(tiny):
    image = _image(60, 90)
    r = dense.dense_probs(tiny, image, VOCAB, short_side=96)
    assert r.probs.shape == (4, 60, 90) and r.scale == pytest.approx(1.6)
    assert len(r.windows) == 2 * 4  # 96×144 processed
    assert max(w[2] for w in r.windows) == pytest.approx(90)


def test_background_as_a_class_and_shapes_vocabulary(tiny):
    scene = data.make_scene(0, size=96)
    r = dense.dense_probs(tiny, scene.image, data.CLASS_NAMES)
    assert r.probs.shape == (31, 96, 96) and r.classes[0] == "background"
    assert r.labels.min() >= 0 and r.labels.max() < 31


# ----------------------------------------------------------------------------- positional embeddings
def test_pos_embed_interpolation(tiny):
    v = tiny.model.visual
    assert dense.interpolate_pos_embed(v, (8, 8)) is v.positional_embedding
    p = dense.interpolate_pos_embed(v, (6, 11))
    assert p.shape == (1 + 66, v.positional_embedding.shape[1])
    torch.testing.assert_close(p[0], v.positional_embedding[0])
    torch.testing.assert_close(p, _naive_pos(v, 6, 11))
    const = torch.nn.Parameter(torch.ones_like(v.positional_embedding))
    v2 = type("V", (), {"positional_embedding": const})()
    torch.testing.assert_close(dense.interpolate_pos_embed(v2, (12, 5)), torch.ones(61, const.shape[1]))


# ----------------------------------------------------------------------------- text cache
def test_text_cache_memory_disk_and_fingerprint(tiny, monkeypatch):
    names = ["red circle", "a thing"]
    e1 = dense.text_embeddings(tiny, names, ["a {}"])
    torch.testing.assert_close(e1, _naive_text(tiny, names, ["a {}"]).float(), atol=1e-6, rtol=0)
    files = list(dense.text_cache_dir(tiny, ["a {}"]).glob("*.npy"))
    assert len(files) == 2

    def boom(*a, **k):
        raise AssertionError("text was re-encoded")

    monkeypatch.setattr(tiny.model, "encode_text", boom)
    torch.testing.assert_close(dense.text_embeddings(tiny, names, ["a {}"]), e1)  # memory
    monkeypatch.setattr(clip_mod, "_TEXT_CACHE", {})  # a fresh process: disk
    torch.testing.assert_close(dense.text_embeddings(tiny, names[::-1], ["a {}"]), e1.flip(0))
    monkeypatch.undo()

    torch.manual_seed(1)
    other = models.load_clip("tiny-shapes", pretrained=False, device="cpu")  # same weights_id, other weights
    assert other.weights_id == tiny.weights_id
    assert dense.text_cache_dir(other, ["a {}"]) != dense.text_cache_dir(tiny, ["a {}"])
    assert not torch.allclose(dense.text_embeddings(other, names, ["a {}"]), e1)


def test_default_templates():
    assert dense.TINY_TEMPLATES[0] == "a {}"
    t = dense.openai_templates()
    assert len(t) == 80 and all("{}" in s for s in t)


# ----------------------------------------------------------------------------- PAMR
def test_pamr_keeps_distributions_and_follows_edges(tiny):
    image = np.zeros((40, 40, 3), np.uint8)
    image[:, 20:] = 255
    probs = np.full((2, 40, 40), 0.5, np.float32)
    probs[0, :, :18] = 0.9
    probs[1, :, :18] = 0.1
    out = dense.pamr(image, probs, num_iter=10, dilations=(2, 4))
    assert out.shape == probs.shape
    np.testing.assert_allclose(out.sum(0), 1.0, atol=1e-5)
    assert out[0, :, 18:20].mean() > 0.8  # spreads inside the dark half …
    assert abs(out[0, :, 24:].mean() - 0.5) < 0.05  # … not across the edge
    r = dense.dense_probs(tiny, _image(64, 64), VOCAB, use_pamr=True)
    assert r.probs.shape == (4, 64, 64)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("vocab, match", [
    ([], "empty"), ("background, cat", "list"), (["cat", "cat"], "twice"),
    (["cat, dog", "dog"], "twice"), (["cat", 3], "string"), (["cat", ""], "empty name"),
    (["cat, ", "dog"], "empty name"),
])
def test_bad_vocabulary(tiny, vocab, match):
    with pytest.raises(ValueError, match=match):
        dense.dense_probs(tiny, _image(64, 64), vocab)


@pytest.mark.parametrize("image", [
    np.zeros((64, 64, 3), np.float32), np.zeros((64, 64), np.uint8), np.zeros((64, 64, 4), np.uint8),
    [[0, 0, 0]], "image.png",
])
def test_bad_image(tiny, image):
    with pytest.raises(ValueError, match="image"):
        dense.dense_probs(tiny, image, VOCAB)


def test_bad_settings(tiny):
    img = _image(64, 64)
    with pytest.raises(ValueError, match="method"):
        dense.dense_probs(tiny, img, VOCAB, method="sclip2")
    with pytest.raises(ValueError, match="stride"):
        dense.dense_probs(tiny, img, VOCAB, crop=32, stride=48)
    with pytest.raises(ValueError, match="templates"):
        dense.dense_probs(tiny, img, VOCAB, templates="a {}")
    with pytest.raises(ValueError, match="template"):
        dense.dense_probs(tiny, img, VOCAB, templates=["a photo"])
    with pytest.raises(ValueError, match="logit_scale"):
        dense.dense_probs(tiny, img, VOCAB, logit_scale=0)
    with pytest.raises(ValueError, match="prob_thd"):
        dense.dense_probs(tiny, img, VOCAB, prob_thd=1.5)
    with pytest.raises(ValueError, match="area_thd"):
        dense.dense_probs(tiny, img, VOCAB, area_thd=-1)
    with pytest.raises(ValueError, match="short_side"):
        dense.dense_probs(tiny, img, VOCAB, short_side=0)
    with pytest.raises(ValueError, match="clip"):
        dense.dense_probs(object(), img, VOCAB)
    with pytest.raises(ValueError, match="result"):
        dense.postprocess(np.zeros((2, 3, 3)))


# ----------------------------------------------------------------------------- benchmark (smoke)
def test_speed_benchmark_smoke():
    """Runs end to end on the tiny model and a small image; the real run (ViT-B/16, 448×597) is `make bench`."""
    r = perf.speed_benchmark("tiny-shapes", (70, 100), progress=False)
    assert r["windows"] == 2 * 3 and r["max_abs_prob_diff"] < 1e-5
    for k in ("first_call_s", "cached_call_s", "disk_cache_call_s", "per_window_loop_s", "matmul_gflops",
              "dense_gflops", "image_gflop"):
        assert r[k] > 0
    import os
    assert os.environ.get("OGCLIP_CACHE", "").endswith("cache")  # restored


# ----------------------------------------------------------------------------- evaluation and figures
def test_compare_methods_and_figures(tiny):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenes = [data.make_scene(s, size=64) for s in (1, 2)]
    scores = evaluation.compare_methods(tiny, [s.image for s in scenes], [s.labels for s in scenes], data.CLASS_NAMES,
                                   methods=("vanilla", "sclip"))
    assert [s.name for s in scores] == ["vanilla", "sclip"]
    assert all(0 <= s.miou <= 1 for s in scores)
    assert "sclip" in evaluation.format_scores(scores)
    with pytest.raises(ValueError, match="methods"):
        evaluation.compare_methods(tiny, [scenes[0].image], [scenes[0].labels], data.CLASS_NAMES, methods=("x",))
    r = dense.dense_probs(tiny, scenes[0].image, data.CLASS_NAMES)
    maps = dense.attention_maps(tiny, scenes[0].image, (10, 50))
    assert set(maps) == {"vanilla", "sclip", "clearclip", "naclip"}
    assert all(m.shape == (8, 8) and abs(m.sum() - 1) < 1e-4 for m in maps.values())
    for fig in (viz.dense.plot_attention(tiny, scenes[0].image, (10, 50)), viz.dense.plot_windows(scenes[0].image, r.windows),
                viz.dense.plot_class_maps(r, scenes[0].image, ["background", "red circle"]),
                viz.dense.plot_labels(r, scenes[0].image, scenes[0].labels), viz.dense.plot_confidence(r, scenes[0].image),
                viz.dense.plot_postprocessed(r, scenes[0].image, 10.0, 0.5, "background")):
        plt.close(fig)
    with pytest.raises(ValueError, match="vocabulary"):
        viz.dense.plot_class_maps(r, scenes[0].image, ["purple cloud"])


def test_pamr_equals_the_dilated_convolution_formulation():
    """PAMR (Araslanov & Roth) written as in its reference code: 3×3 kernels applied with
    dilated conv2d and replicate padding; ours uses shifted slices and must match."""
    import torch.nn.functional as F

    def local(x, kernel, dilations):
        b, k, h, w = x.shape
        x = x.reshape(b * k, 1, h, w)
        outs = [F.conv2d(F.pad(x, [d] * 4, mode="replicate"), kernel, dilation=d) for d in dilations]
        return torch.cat(outs, 1).reshape(b, k, -1, h, w)

    rng = np.random.default_rng(0)
    img = (rng.random((40, 36, 3)) * 255).astype(np.uint8)
    maps = rng.random((5, 40, 36)).astype(np.float32)
    m = torch.from_numpy(maps)[None]
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    std = local(x, pamr_mod._pamr_kernels("std"), (2, 4)).std(2, keepdim=True)
    aff = torch.softmax((-local(x, pamr_mod._pamr_kernels("diff"), (2, 4)).abs() / (1e-8 + 0.1 * std)).mean(1, keepdim=True), 2)
    for _ in range(3):
        m = (local(m, pamr_mod._pamr_kernels("copy"), (2, 4)) * aff).sum(2)
    np.testing.assert_allclose(dense.pamr(img, maps, num_iter=3, dilations=(2, 4)), m[0].numpy(), atol=1e-5)


def test_background_is_found_by_name_for_prob_thd_and_area_thd(tiny):
    """A vocabulary that puts its background last (every bundled photo's does): low-confidence
    pixels go to *that* class, and area_thd never removes it, while class 0 is a foreground class."""
    assert dense.background_class(["cat", "background, floor, wall"]) == 1
    assert dense.background_class(["background", "cat"]) == 0 and dense.background_class(["cat", "dog"]) == 0
    logits = torch.zeros(3, 10, 10)
    logits[2] = 1.0  # background (last) everywhere …
    logits[1, :5] = 2.0  # … class 1 on 50 pixels
    logits[0, 9, 9] = 2.0  # … class 0, a real class, on one pixel
    p = dense.logits_to_probs(logits, np.arange(3), 3, logit_scale=5.0, area_thd=0.1, background=2)
    assert p[0].abs().max() == 0 and p[2].min() > 0  # the speck of class 0 removed, background kept
    assert (dense.probs_to_labels(p, 0.999, background=2) == 2).all()  # every pixel is below 0.999
    vocab = ["red circle", "blue square", "background"]
    r = dense.dense_probs(tiny, _image(64, 96), vocab, logit_scale=5.0, prob_thd=0.99)
    assert (r.labels == 2).all()  # not class 0 ("red circle")
