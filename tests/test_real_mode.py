"""Real mode with the network off: random-init stand-ins in the official formats, in a fresh cache.

``standins.write_all`` writes ViT-B/16 (open_clip safetensors), SAM2.1 tiny (``{"model": …}``
.pt), torchvision's Faster R-CNN (state dict) and a tiny diffusers inpainting folder into a
temporary ``$OGCLIP_CACHE``; every socket connection then fails. What runs here is the real
code path a Colab student takes, only with weights that carry no knowledge, so the checks are
about shapes, plumbing and "no download was attempted", never about quality.
"""
import socket

import numpy as np
import pytest

from ogclip_utils import cli, data, detectors, edit, grounding, models, pipeline, standins, weights


class NetworkDisabled(OSError):
    pass


@pytest.fixture(scope="module")
def real_cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    cache = tmp_path_factory.mktemp("ogclip-cache")
    mp.setenv("OGCLIP_CACHE", str(cache))
    mp.setenv("OGCLIP_MODE", "real")
    mp.setenv("HF_HUB_OFFLINE", "1")
    # as in the smoke run: one prompt template per class (80 templates x the vocabulary through a
    # random-init ViT-B/16 text tower took 32 of this module's 58 s pipeline test, and teach nothing here)
    mp.setenv("OGCLIP_SMOKE", "1")
    written = standins.write_all()

    def refuse(*a, **k):
        raise NetworkDisabled("the network is disabled in this test: real mode tried to download something")

    mp.setattr(socket.socket, "connect", refuse)
    mp.setattr(socket, "create_connection", refuse)
    yield cache, written
    mp.undo()


@pytest.fixture(scope="module")
def real_models(real_cache):
    return models.default_models(device="cpu")


def test_stand_ins_sit_where_the_loaders_look(real_cache):
    cache, written = real_cache
    assert written["clip"] == weights.checkpoint_path("clip-vit-b-16-openai") and written["clip"].is_file()
    assert written["sam2"] == weights.checkpoint_path("sam2.1-hiera-tiny")
    assert written["detector"] == weights.checkpoint_path("fasterrcnn-mobilenet-v3-large-fpn")
    assert (written["inpainting"] / "model_index.json").is_file()
    assert all(str(p).startswith(str(cache)) for p in written.values())


def test_auto_mode_chooses_real_when_the_weights_are_there(real_cache, monkeypatch):
    from ogclip_utils import env

    monkeypatch.setenv("OGCLIP_MODE", "auto")
    assert env.get_mode() == "real"


def test_default_models_are_vit_b16_and_sam2_from_the_cache(real_models):
    clip, seg = real_models
    assert clip.name == "ViT-B-16" and clip.image_size == 224 and clip.weights_id == "ViT-B-16-quickgelu:openai"
    assert type(seg).__name__ == "SAM2ImagePredictor"
    assert models.clip_by_name("ViT-B/16", device="cpu").name == "ViT-B-16", "the seeds' spelling is accepted"


def test_encode_images_takes_photos_of_different_sizes(real_models):
    clip, _ = real_models
    photos = [data.load_image(data.photo_path(n)) for n in ("chelsea", "coffee")]
    assert photos[0].shape != photos[1].shape
    emb = clip.encode_images(photos)
    assert emb.shape == (2, 512)
    np.testing.assert_allclose(emb.norm(dim=-1).numpy(), 1.0, rtol=1e-5)


def test_pipeline_segments_a_photo_with_sam2(real_models):
    clip, seg = real_models
    image = data.load_image(data.photo_path("chelsea"))
    # no background class: at random init every pixel then belongs to an object class, so SAM2 is queried
    res = pipeline.segment(image, ["cat", "floor", "wall"], clip=clip, segmenter=seg, min_confidence=0.0)
    assert res.label_map.shape == image.shape[:2]
    assert res.dense.probs.shape[0] == 3
    assert res.num_queries >= 1


def test_the_torchvision_detector_loads_from_the_cache(real_cache):
    det = detectors.TorchvisionDetector(device="cpu")
    image = data.load_image(data.photo_path("coffee"))
    out = grounding.detect(image, det)
    assert isinstance(out, list) and len(det.categories) == 91


def test_inpainting_loads_the_diffusers_folder_and_edits_only_inside_the_mask(real_cache):
    pipe = edit.load_inpainter(device="cpu")
    image = data.load_image(data.photo_path("chelsea"))[:96, :128]
    mask = np.zeros(image.shape[:2], bool)
    mask[30:60, 40:80] = True
    res = edit.inpaint(pipe, image, mask, "a red ball", steps=2, max_side=64)
    assert res.image.shape == image.shape
    assert np.array_equal(res.image[~res.mask], image[~res.mask]), "pixels outside the grown mask never change"


@pytest.mark.parametrize("command", [
    ["segment", "--image", str(data.photo_path("chelsea")), "--vocabulary", "cat", "background, floor, wall",
     "--segmenter", "sam2.1-hiera-tiny", "--model", "ViT-B/16"],
    ["explain", "--image", str(data.photo_path("chelsea")), "--vocabulary", "cat", "background, floor, wall",
     "--no-create-html"],
])
def test_readme_commands_in_real_mode(real_cache, tmp_path, capsys, command):
    out = tmp_path / ("out.png" if command[0] == "segment" else "explain")
    assert cli.main([*command, "--output", str(out), "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert out.exists()
    if command[0] == "segment":
        assert "real mode, ViT-B-16" in text and "sam2.1-hiera-tiny" in text


def test_lesson_example_in_real_mode_is_a_photo_with_the_real_models(real_models):
    from ogclip_utils import lessons

    clip, seg = real_models
    ex = lessons.example(clip=clip, segmenter=seg)
    assert ex.mode == "real" and not ex.has_truth and ex.objects == []
    assert ex.vocabulary == data.PHOTO_VOCABULARIES["chelsea"] and ex.image.shape == data.load_photo("chelsea").shape
    assert "no ground truth" in ex.describe() and ex.truth(np.ones(ex.image.shape[:2], bool)) == "no ground truth"
    r = pipeline.segment(ex.image, ex.vocabulary, clip=ex.clip, segmenter=ex.segmenter)
    assert ex.miou(r.label_map) is None and ex.score(r.label_map).startswith("mIoU: no ground truth")


def test_make_bench_times_the_real_pipeline_against_sam2s_mask_generator(real_cache):
    """``perf.real_pipeline_speed``: guided pipeline vs SAM2AutomaticMaskGenerator on one photo (a 2×2 grid here)."""
    from ogclip_utils import perf

    cache, written = real_cache
    assert standins.is_standin(written["clip"])
    r = perf.real_pipeline_speed(points_per_side=2, device="cpu", warmup=False)
    assert r["weights"].startswith("random-init") and r["clip"] == "ViT-B-16" and r["image_hw"] == [300, 451]
    assert {"dense", "prompts", "refine", "total"} <= set(r["guided"]["stages_s"]) and r["grid"]["queries"] == 4
    assert r["grid"]["seconds"] > 0 and r["guided"]["seconds"] > 0
