"""CLIP precisions (``models.load_clip(precision=...)``): what "auto" chooses, and bf16 against fp32."""
import numpy as np
import pytest
import torch

from ogclip_utils import data, dense, models, og_clip, segmenters, tiny_clip


def test_auto_chooses_by_device_and_model(monkeypatch):
    monkeypatch.delenv("OGCLIP_PRECISION", raising=False)
    monkeypatch.setattr(models, "cpu_has_amx", lambda: False)
    assert models.resolve_precision("auto", "cpu", "ViT-B-16") == "fp32"
    monkeypatch.setattr(models, "cpu_has_amx", lambda: True)
    assert models.resolve_precision("auto", "cpu", "ViT-B-16") == "bf16"
    assert models.resolve_precision("auto", "cpu", models.TINY_NAME) == "fp32"  # offline numbers never depend on it
    assert models.resolve_precision("auto", "mps", "ViT-B-16") == "fp32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert models.resolve_precision("auto", "cuda", "ViT-B-16") == "amp-bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert models.resolve_precision("auto", "cuda", "ViT-B-16") == "amp-fp16"
    assert models.resolve_precision("fp16", "cuda") == "amp-fp16" and models.resolve_precision("bf16", "cpu") == "bf16"
    monkeypatch.setenv("OGCLIP_PRECISION", "bf16")
    assert models.resolve_precision("auto", "cpu", models.TINY_NAME) == "bf16"
    assert models.resolve_precision("fp32", "cpu") == "fp32"  # an explicit precision wins over the variable
    monkeypatch.setenv("OGCLIP_PRECISION", "half")
    with pytest.raises(ValueError, match="OGCLIP_PRECISION"):
        models.resolve_precision("auto", "cpu")


def test_bad_precisions_are_refused_with_the_choices():
    with pytest.raises(ValueError, match="precision must be one of"):
        models.load_clip(models.TINY_NAME, precision="int8")
    with pytest.raises(ValueError, match="needs a CUDA device"):
        models.resolve_precision("fp16", "cpu")


@pytest.fixture(scope="module")
def tiny_pair():
    return (models.load_clip(models.TINY_NAME, device="cpu", precision="fp32"),
            models.load_clip(models.TINY_NAME, device="cpu", precision="bf16"))


def test_bf16_weights_keep_the_answers_of_fp32(tiny_pair):
    """Fidelity of bf16 weights on the trained tiny-shapes: zero-shot labels and probabilities."""
    f32, b16 = tiny_pair
    assert f32.precision == "fp32" and b16.precision == "bf16" and b16.dtype == torch.bfloat16
    assert b16.weights_id != f32.weights_id  # separate text-embedding caches
    imgs, ys = tiny_clip.eval_crops(4)
    texts = [f"a {n}" for n in data.CLASS_NAMES[1:]]
    p32 = (100 * f32.encode_images(imgs) @ f32.encode_texts(texts).T).softmax(-1)
    p16 = (100 * b16.encode_images(imgs) @ b16.encode_texts(texts).T).softmax(-1)
    assert p16.dtype == torch.float32  # embeddings are float32 whatever the weights
    agree = float((p32.argmax(-1) == p16.argmax(-1)).float().mean())
    assert agree >= 0.95, agree
    assert float((p32 - p16).abs().max()) < 0.25
    scene = data.make_scene(5, size=96)
    d32 = dense.dense_probs(f32, scene.image, data.CLASS_NAMES)
    d16 = dense.dense_probs(b16, scene.image, data.CLASS_NAMES)
    assert float((d32.labels == d16.labels).mean()) >= 0.9


def test_vit_b16_bf16_matches_fp32_at_random_init():
    torch.manual_seed(0)
    f32 = models.load_clip("ViT-B-16", device="cpu", precision="fp32")
    b16 = models.load_clip("ViT-B-16", device="cpu", precision="bf16")
    b16.model.load_state_dict({k: v.to(torch.bfloat16) for k, v in f32.model.state_dict().items()})
    img = np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    cos_i = (f32.encode_images(img) * b16.encode_images(img)).sum(-1)
    cos_t = (f32.encode_texts(["a cat", "a dog"]) * b16.encode_texts(["a cat", "a dog"])).sum(-1)
    assert float(cos_i.min()) > 0.99 and float(cos_t.min()) > 0.99, (cos_i, cos_t)


def test_object_guided_clip_trains_on_a_bf16_clip(tiny_pair):
    """The frozen CLIP may hold bf16 weights (real mode on an AMX CPU); the trained parts stay fp32."""
    _, b16 = tiny_pair
    samples = og_clip.context_samples(range(og_clip.TEST_SEED_BASE, og_clip.TEST_SEED_BASE + 4), "relational")
    for fusion in ("late", "early"):
        cfg = og_clip.GuidedConfig(fusion=fusion)
        d = og_clip.prepare_data(samples, b16, tokens=fusion == "late", full=fusion == "early")
        run = og_clip.train_run(b16, d, None, cfg, og_clip.TrainSettings(steps=2, batch=4, eval_every=2), progress=False)
        s = samples[0]
        emb = run.model.encode_objects([s.image], [s.masks[s.target]])
        assert emb.dtype == torch.float32 and torch.isfinite(emb).all()


def test_sam2_precision_resolves_per_device():
    from ogclip_utils import env

    native = bool(env.cpu_flags() & {"avx512_bf16", "amx_bf16"})
    assert segmenters.resolve_sam2_precision("auto", "cpu") == ("amp-bf16" if native else "fp32")
    assert segmenters.resolve_sam2_precision("auto", "mps") == "fp32"
    assert segmenters.resolve_sam2_precision("amp-bf16", "cpu") == "amp-bf16"
    with pytest.raises(ValueError, match="needs a CUDA device"):
        segmenters.resolve_sam2_precision("amp-fp16", "cpu")
    with pytest.raises(ValueError, match="one of"):
        segmenters.resolve_sam2_precision("half", "cpu")
    if torch.cuda.is_available():
        assert segmenters.resolve_sam2_precision("auto", "cuda").startswith("amp-")


def test_sam2_bf16_autocast_matches_fp32_at_random_init():
    """The same random-init SAM2.1-tiny, fp32 vs bf16 autocast (the CUDA default, here on the CPU):
    mask logits stay close and the thresholded masks agree on almost every pixel."""
    from ogclip_utils import refine

    torch.manual_seed(0)
    p32 = models.load_segmenter("sam2.1-hiera-tiny", checkpoint="random", device="cpu", precision="fp32")
    p16 = models.load_segmenter("sam2.1-hiera-tiny", checkpoint="random", device="cpu", precision="amp-bf16")
    p16.model.load_state_dict(p32.model.state_dict())
    assert (p32.ogclip_precision, p16.ogclip_precision) == ("fp32", "amp-bf16")
    img = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    pts, lab = np.array([[40.0, 50.0]], np.float32), np.array([1], np.int32)
    out = []
    for p in (p32, p16):
        refine.ensure_image(p, img, True)
        with segmenters.sam2_autocast(p):
            out.append(p.predict(point_coords=pts, point_labels=lab, multimask_output=True, return_logits=True))
    (m32, s32, _), (m16, s16, _) = out
    assert m16.dtype == np.float32 and m16.shape == m32.shape
    corr = np.corrcoef(m32.ravel(), m16.ravel())[0, 1]
    agree = float(((m32 > 0) == (m16 > 0)).mean())
    print(f"SAM2.1-tiny random init, bf16 autocast vs fp32: logit correlation {corr:.5f}, mask agreement {agree:.4f}")
    assert corr > 0.99 and agree > 0.97, (corr, agree)
