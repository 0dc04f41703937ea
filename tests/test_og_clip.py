"""Tests for ogclip_utils.og_clip: model branches, loss, retrieval protocol, trainer, checkpoints, data."""
import itertools
import json
import math

import numpy as np
import pytest
import torch

from ogclip_utils import metrics, og_clip

torch.set_num_threads(1)
N, B, G, D = 4, 32, 8, 128


def _inputs(n=N, b=B, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 3, b, b, generator=g)
    masks = (torch.rand(n, 1, b, b, generator=g) > 0.5).float()
    tokens = torch.randn(n, G, G, D, generator=g)
    return images, masks, tokens


def _fake_feats(n_scenes=6, per_scene=2, seed=0) -> og_clip.FeatureCache:
    rng = np.random.default_rng(seed)
    n = n_scenes * per_scene
    caps = [f"a {c} circle" for c in ("red", "green", "blue", "yellow", "purple", "orange")]
    cap_ids = np.asarray([(s + k) % len(caps) for s in range(n_scenes) for k in range(per_scene)])
    text = rng.normal(size=(len(caps), D)).astype(np.float32)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    return og_clip.FeatureCache(
        images=rng.normal(size=(n, 3, B, B)).astype(np.float32),
        masks=(rng.random((n, 1, B, B)) > 0.5).astype(np.float32),
        tokens=rng.normal(size=(n, G, G, D)).astype(np.float32),
        global_emb=text[cap_ids], crop_emb=text[cap_ids], text_emb=text[cap_ids], caption_ids=cap_ids,
        captions=caps, scene_ids=np.repeat(np.arange(n_scenes), per_scene), mask_iou=np.full(n, np.nan, np.float32))


# ----------------------------------------------------------------------------- model
COMBOS = [c for c in itertools.product([True, False], repeat=3) if any(c)]


@pytest.mark.parametrize("fusion", ["conv", "attention"])
@pytest.mark.parametrize("use_object,use_mask,use_clip", COMBOS)
def test_shapes_and_gradients_every_branch_combination(use_object, use_mask, use_clip, fusion):
    torch.manual_seed(0)
    model = og_clip.ObjectGuidedCLIP(clip_dim=D, embed_dim=64, grid=G, use_object=use_object, use_mask=use_mask,
                                     use_clip=use_clip, fusion=fusion, text_projection=True)
    images, masks, tokens = _inputs()
    out = model(images, masks, tokens)
    assert out.shape == (N, 64)
    assert torch.allclose(out.norm(dim=1), torch.ones(N), atol=1e-5)
    txt = model.encode_text(torch.randn(N, 64))
    loss = og_clip.contrastive_loss(out, txt, model.logit_scale)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"no gradient reaches {name}"
    assert hasattr(model, "object_conv") == use_object
    assert hasattr(model, "mask_conv") == use_mask


def test_mask_changes_the_embedding():
    torch.manual_seed(0)
    model = og_clip.ObjectGuidedCLIP(clip_dim=D, grid=G).eval()
    images, masks, tokens = _inputs(n=1)
    other = 1.0 - masks
    a, b = model(images, masks, tokens), model(images, other, tokens)
    assert not torch.allclose(a, b)


def test_bad_inputs_raise_clear_errors():
    model = og_clip.ObjectGuidedCLIP(clip_dim=D, grid=G)
    images, masks, tokens = _inputs()
    with pytest.raises(ValueError, match="does not match image size"):
        model(images, masks[:, :, :16, :16], tokens)
    with pytest.raises(ValueError, match="masks"):
        model(images, None, tokens)
    with pytest.raises(ValueError, match="tokens"):
        model(images, masks, tokens[:, :4])
    with pytest.raises(ValueError, match="at least one branch"):
        og_clip.ObjectGuidedCLIP(use_object=False, use_mask=False, use_clip=False)
    with pytest.raises(ValueError, match="fusion"):
        og_clip.ObjectGuidedCLIP(fusion="sum")
    with pytest.raises(ValueError, match="temperature"):
        og_clip.ObjectGuidedCLIP(temperature=0.0)
    with pytest.raises(ValueError, match="text embeddings"):
        model.encode_text(torch.randn(3, 7))


def test_temperature_initialised_at_0_07():
    model = og_clip.ObjectGuidedCLIP()
    assert math.isclose(float(model.logit_scale.detach().exp()), 1 / 0.07, rel_tol=1e-5)


# ----------------------------------------------------------------------------- loss
def test_loss_matches_hand_computation_3x3():
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    txt = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    scale = 2.0
    # S = scale · img @ txtᵀ, written out by hand
    S = [[2.0, 1.2, 0.0],
         [0.0, 1.6, 2.0],
         [1.2, 2.0, 1.6]]

    def ce(row, k):
        return -(row[k] - math.log(sum(math.exp(v) for v in row)))

    i2t = sum(ce(S[i], i) for i in range(3)) / 3
    t2i = sum(ce([S[r][j] for r in range(3)], j) for j in range(3)) / 3
    expected = 0.5 * (i2t + t2i)
    got = og_clip.contrastive_loss(img, txt, torch.tensor(math.log(scale)))
    assert math.isclose(float(got), expected, rel_tol=1e-6)
    # distinct caption ids give the same loss; shared ids spread the target over both positives
    assert math.isclose(float(og_clip.contrastive_loss(img, txt, torch.tensor(math.log(scale)), [0, 1, 2])),
                        expected, rel_tol=1e-6)
    shared = og_clip.contrastive_loss(img, txt, torch.tensor(math.log(scale)), [0, 1, 1])

    def soft(row, ks):
        lse = math.log(sum(math.exp(v) for v in row))
        return -sum(row[k] - lse for k in ks) / len(ks)

    pos = [[0], [1, 2], [1, 2]]
    i2t_s = sum(soft(S[i], pos[i]) for i in range(3)) / 3
    t2i_s = sum(soft([S[r][j] for r in range(3)], pos[j]) for j in range(3)) / 3
    assert math.isclose(float(shared), 0.5 * (i2t_s + t2i_s), rel_tol=1e-6)


def test_loss_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="N×D"):
        og_clip.contrastive_loss(torch.zeros(3, 2), torch.zeros(2, 2), torch.tensor(0.0))


# ----------------------------------------------------------------------------- retrieval
def test_retrieval_metrics_hand_case():
    s = np.array([[0.9, 0.1, 0.3],
                  [0.8, 0.7, 0.1],
                  [0.2, 0.3, 0.1]])
    m = metrics.retrieval_metrics(s)
    # i2t ranks: row0 → 1, row1 → 2 (0.8 > 0.7), row2 → 3 (0.2, 0.3 ≥ 0.1)
    # t2i ranks: col0 → 1, col1 → 1 (0.7 is the column max), col2 → 3 (0.3 > 0.1 and a tie counts against)
    assert m["i2t_r1"] == pytest.approx(100 / 3)
    assert m["t2i_r1"] == pytest.approx(200 / 3)
    assert m["i2t_mean_rank"] == pytest.approx(2.0)
    assert m["t2i_mean_rank"] == pytest.approx(5 / 3)


def test_evaluate_retrieval_hand_case_and_gallery_average():
    e = np.eye(4)
    txt = e.copy()
    img = e.copy()
    img[3] = e[2]  # sample 3's image looks like text 2: i2t rank 2 for it, t2i ranks 2 for text 2
    rep = og_clip.evaluate_retrieval(img, txt, [np.array([0, 1]), np.array([2, 3])], np.array([0, 1, 2, 2]))
    assert rep.n_queries == 4 and rep.n_galleries == 2 and rep.gallery_size == 2
    # gallery 2: image 2 → text 2 (rank 1), image 3 → text 2 beats text 3 (rank 2);
    # text 2 ties between images 2 and 3 (both 1.0) → broken at random; text 3 → images score 0, 0 → tie
    assert rep.i2t_r1 == pytest.approx(75.0)
    assert 50.0 <= rep.t2i_r1 <= 100.0
    with pytest.raises(ValueError, match="galleries"):
        og_clip.evaluate_retrieval(img, txt, [])
    with pytest.raises(ValueError, match="N×D"):
        og_clip.evaluate_retrieval(img[:3], txt, [np.array([0, 1])])


def test_global_embedding_scores_chance_within_scene():
    feats = _fake_feats(n_scenes=40, per_scene=2)
    same_image = feats.text_emb.copy()
    same_image[1::2] = same_image[0::2]  # both samples of a scene get one (global) embedding
    gal = og_clip.make_galleries(feats, size=8)
    rep = og_clip.evaluate_retrieval(same_image, feats.text_emb, gal, feats.scene_ids, seed=0)
    assert 25.0 < rep.t2i_scene_r1 < 75.0  # a coin flip between the two prompts of an image
    perfect = og_clip.evaluate_retrieval(feats.text_emb, feats.text_emb, gal, feats.scene_ids)
    assert perfect.t2i_r1 == 100.0 and perfect.t2i_scene_r1 == 100.0 and perfect.mean_rank == 1.0


def test_make_galleries_whole_scenes_unique_captions():
    feats = _fake_feats(n_scenes=12, per_scene=2)
    gals = og_clip.make_galleries(feats, size=6, seed=3)
    assert gals
    for g in gals:
        assert len(g) <= 6
        assert len(set(feats.caption_ids[g].tolist())) == len(g)
        for s in set(feats.scene_ids[g].tolist()):  # whole scenes only
            assert set(np.nonzero(feats.scene_ids == s)[0]) <= set(g.tolist())
    with pytest.raises(ValueError):
        og_clip.make_galleries(feats, size=1)


# ----------------------------------------------------------------------------- trainer + checkpoints
def test_trainer_learns_and_checkpoint_round_trip(tmp_path):
    feats = _fake_feats(n_scenes=12, per_scene=2)
    torch.manual_seed(0)
    model = og_clip.model_for(feats, hidden=32)
    ck = tmp_path / "og.safetensors"
    cfg = og_clip.TrainConfig(epochs=12, batch_size=8, lr=3e-3, progress=False, checkpoint=str(ck))
    hist = og_clip.Trainer(model, feats, feats, cfg).fit()
    assert len(hist.loss) == 12 and len(hist.val_r1) == 12
    assert hist.loss[-1] < hist.loss[0]
    assert hist.best_val_r1 == max(hist.val_r1)
    assert ck.exists()
    # the best checkpoint reloads into an identical model
    best = og_clip.load_checkpoint(ck)
    assert best.config == model.config
    path2 = og_clip.save_checkpoint(model, tmp_path / "last.safetensors")
    again = og_clip.load_checkpoint(path2)
    a, _ = og_clip.embed(model, feats)
    b, _ = og_clip.embed(again, feats)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_training_is_deterministic():
    feats = _fake_feats(n_scenes=6, per_scene=2)
    outs = []
    for _ in range(2):
        torch.manual_seed(1)
        m = og_clip.model_for(feats, hidden=16)
        og_clip.Trainer(m, feats, None, og_clip.TrainConfig(epochs=2, batch_size=4, progress=False, seed=1)).fit()
        outs.append(og_clip.embed(m, feats)[0])
    np.testing.assert_array_equal(outs[0], outs[1])


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        og_clip.load_checkpoint(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="safetensors"):
        og_clip.load_checkpoint(bad)


def test_trainer_rejects_bad_config():
    feats = _fake_feats()
    with pytest.raises(ValueError, match="epochs"):
        og_clip.Trainer(og_clip.model_for(feats), feats, None, og_clip.TrainConfig(epochs=0))


# ----------------------------------------------------------------------------- data
def test_shapes_samples_one_per_object_with_segmenter_masks():
    from ogclip_utils import models

    seg = models.load_segmenter("classical")
    samples = og_clip.shapes_samples(range(og_clip.TEST_SEED_BASE, og_clip.TEST_SEED_BASE + 4), size=64, segmenter=seg)
    assert samples
    scenes = {}
    for s in samples:
        scenes.setdefault(s.scene_id, []).append(s)
        x, y = s.point
        assert s.gt_mask[int(y), int(x)]  # the point lies on the object
        assert s.mask.shape == s.image.shape[:2] and s.mask.dtype == bool
        assert s.mask_source == "segmenter"
        assert s.caption.startswith("a ")
    for group in scenes.values():
        assert len(group) >= 2  # ambiguous without the prompt
        assert len({s.caption for s in group}) == len(group)
    gt = og_clip.shapes_samples([og_clip.TEST_SEED_BASE], size=64, mask_source="ground_truth")
    assert all(s.mask_source == "ground_truth" and (s.mask == s.gt_mask).all() for s in gt)


def test_shapes_samples_bad_input():
    with pytest.raises(ValueError, match="mask_source"):
        og_clip.shapes_samples([1], mask_source="oracle")
    with pytest.raises(ValueError, match="seeds is empty"):
        og_clip.shapes_samples([])
    with pytest.raises(ValueError, match="non-empty"):
        og_clip.interior_point(np.zeros((5, 5), bool))


def test_segment_point_bad_point():
    from ogclip_utils import models

    seg = models.load_segmenter("classical")
    seg.set_image(np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(ValueError, match="point"):
        og_clip.segment_point(seg, (float("nan"), 2.0))
    with pytest.raises(ValueError, match="point"):
        og_clip.segment_point(seg, ())


def test_precompute_features_shapes_random_clip():
    from ogclip_utils import models

    clip = models.load_clip("tiny-shapes", pretrained=False, device="cpu")
    samples = og_clip.shapes_samples([og_clip.TEST_SEED_BASE, og_clip.TEST_SEED_BASE + 1], size=64,
                                     mask_source="ground_truth")
    f = og_clip.precompute_features(samples, clip)
    n = len(samples)
    assert f.images.shape == (n, 3, 32, 32) and f.masks.shape == (n, 1, 32, 32)
    assert f.tokens.shape == (n, 8, 8, 128)
    assert f.global_emb.shape == f.crop_emb.shape == f.text_emb.shape == (n, 128)
    assert np.allclose(f.mask_iou, 1.0)
    assert f.mask_source == "ground_truth"
    sub = f.subset([0, 1])
    assert len(sub) == 2
    model = og_clip.model_for(f)
    img, txt = og_clip.embed(model, f)
    assert img.shape == txt.shape == (n, 128)
    bad = og_clip.ObjectSample(samples[0].image, (1.0, 1.0), "a red circle", np.zeros((3, 3), bool), 0)
    with pytest.raises(ValueError, match="mask shape"):
        og_clip.precompute_features([bad], clip)
    with pytest.raises(ValueError, match="empty"):
        og_clip.precompute_features([], clip)


def _write_coco_fixture(root):
    from PIL import Image

    (root / "val2017").mkdir()
    img = np.full((60, 80, 3), 120, np.uint8)
    img[10:30, 10:30] = (220, 30, 30)  # a red square
    img[35:55, 45:70] = (30, 60, 220)  # a blue rectangle
    Image.fromarray(img).save(root / "val2017" / "000000000001.jpg", quality=95)
    Image.fromarray(img[:, :40]).save(root / "val2017" / "000000000002.jpg", quality=95)
    sq = [10, 10, 30, 10, 30, 30, 10, 30]
    rect = [45, 35, 70, 35, 70, 55, 45, 55]
    coco = {
        "images": [{"id": 1, "file_name": "000000000001.jpg", "height": 60, "width": 80},
                   {"id": 2, "file_name": "000000000002.jpg", "height": 60, "width": 40}],
        "categories": [{"id": 1, "name": "stop sign", "supercategory": "x"}, {"id": 2, "name": "car", "supercategory": "x"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [sq], "area": 400, "bbox": [10, 10, 20, 20], "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 2, "segmentation": [rect], "area": 500, "bbox": [45, 35, 25, 20], "iscrowd": 0},
            {"id": 3, "image_id": 2, "category_id": 1, "segmentation": [sq], "area": 400, "bbox": [10, 10, 20, 20], "iscrowd": 0},
        ],
    }
    (root / "annotations").mkdir()
    path = root / "annotations" / "instances_val2017.json"
    path.write_text(json.dumps(coco))
    return path


def test_coco_object_samples_fixture(tmp_path):
    from ogclip_utils import models

    ann = _write_coco_fixture(tmp_path)
    samples = og_clip.coco_object_samples(ann, tmp_path / "val2017", segmenter=models.load_segmenter("classical"),
                                          min_area=100)
    assert [s.caption for s in samples] == ["a stop sign", "a car"]  # image 2 has one object only
    for s in samples:
        assert s.mask.shape == (60, 80) and s.mask_source == "segmenter"
        assert metrics.mask_iou(s.mask, s.gt_mask) > 0.6  # JPEG edges and polygon rasterisation
    gt = og_clip.coco_object_samples(ann, tmp_path / "val2017", mask_source="ground_truth", min_area=100)
    assert all(s.mask_source == "ground_truth" for s in gt)
    with pytest.raises(FileNotFoundError, match="annotation_file"):
        og_clip.coco_object_samples(tmp_path / "nope.json", tmp_path)
    with pytest.raises(FileNotFoundError, match="image_dir"):
        og_clip.coco_object_samples(ann, tmp_path / "nope")
    with pytest.raises(ValueError, match="segmenter"):
        og_clip.coco_object_samples(ann, tmp_path / "val2017", min_area=100)
