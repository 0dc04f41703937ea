"""Tests for ogclip_utils.og_clip's data pieces: the loss it re-exports, points, COCO, the dataset folder, the commands."""
import json
import math

import numpy as np
import pytest
import torch

from ogclip_utils import metrics, models, og_clip

torch.set_num_threads(1)


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


# ----------------------------------------------------------------------------- points, COCO
def test_segment_point_bad_point():
    from ogclip_utils import models

    seg = models.load_segmenter("classical")
    seg.set_image(np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(ValueError, match="point"):
        og_clip.segment_point(seg, (float("nan"), 2.0))
    with pytest.raises(ValueError, match="point"):
        og_clip.segment_point(seg, ())


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


def test_interior_point_bad_input():
    with pytest.raises(ValueError, match="non-empty"):
        og_clip.interior_point(np.zeros((5, 5), bool))


def test_coco_samples_fixture(tmp_path):
    ann = _write_coco_fixture(tmp_path)
    samples = og_clip.coco_samples(ann, tmp_path / "val2017", min_area=100, segmenter=models.load_segmenter("classical"))
    assert [s.caption for s in samples] == ["the stop sign", "the car"]  # image 2 has one object only
    for s in samples:
        assert s.masks.shape == (2, 60, 80) and s.mask_source == "segmenter" and s.kind == "attribute"
        assert metrics.mask_iou(s.masks[s.target], s.gt_masks[s.target]) > 0.6  # JPEG edges, polygon rasterisation
    gt = og_clip.coco_samples(ann, tmp_path / "val2017", min_area=100)
    assert all(s.mask_source == "ground_truth" and (s.masks == s.gt_masks).all() for s in gt)
    with pytest.raises(FileNotFoundError, match="annotation_file"):
        og_clip.coco_samples(tmp_path / "nope.json", tmp_path)
    with pytest.raises(FileNotFoundError, match="image_dir"):
        og_clip.coco_samples(ann, tmp_path / "nope")


# ----------------------------------------------------------------------------- the dataset folder
def test_folder_round_trip_and_segmenter_masks(tmp_path):
    samples = og_clip.recipe.test_samples(3, 2)
    og_clip.write_folder(samples, tmp_path / "ds")
    with pytest.raises(FileExistsError, match="nothing was written"):
        og_clip.write_folder(samples, tmp_path / "ds")
    back = og_clip.read_folder(tmp_path / "ds")
    assert [s.caption for s in back] == [s.caption for s in samples]
    for a, b in zip(samples, back):
        assert np.array_equal(a.image, b.image) and np.array_equal(a.masks, b.masks)
        assert b.target == a.target and b.kind == a.kind and b.relation == a.relation
    seg = og_clip.read_folder(tmp_path / "ds", segmenter=models.load_segmenter("classical"))
    q = og_clip.mask_quality(seg)
    assert q is not None and q["objects"] == sum(len(s.names) for s in samples) and q["mask_iou"] > 0.7
    assert og_clip.mask_quality(back) is None  # ground truth: nothing to measure


def _write_index(folder, records):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "samples.json").write_text(json.dumps(records))


def test_folder_errors_name_the_record(tmp_path):
    from PIL import Image

    with pytest.raises(FileNotFoundError, match="samples.json"):
        og_clip.read_folder(tmp_path)
    d = tmp_path / "d"
    d.mkdir()
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(d / "a.png")
    cases = [
        ([{"image": "a.png"}], r"samples\[0\] must be an object"),
        ([{"image": "../x.png", "points": [[1, 1]], "caption": "c"}], "outside the dataset folder"),
        ([{"image": "b.png", "points": [[1, 1]], "caption": "c"}], "file not found"),
        ([{"image": "a.png", "points": [[40, 1]], "caption": "c"}], "outside the 30×20 image"),
        ([{"image": "a.png", "points": [[1, 1]], "point_labels": [1, 0], "caption": "c"}], "one label per point"),
        ([{"image": "a.png", "points": [[1, 1]], "caption": "c"}], "no 'mask'"),
        ([], "non-empty list"),
    ]
    for records, msg in cases:
        _write_index(d, records)
        with pytest.raises(og_clip.FolderError, match=msg):
            og_clip.read_folder(d)
    (d / "samples.json").write_text("{not json")
    with pytest.raises(og_clip.FolderError, match="not valid JSON"):
        og_clip.read_folder(d)


# ----------------------------------------------------------------------------- commands
def test_train_and_evaluate_commands_on_a_folder(tmp_path, capsys):
    from ogclip_utils import cli

    assert cli.main(["export-context", "--out", str(tmp_path / "ds"), "--relational-scenes", "6",
                     "--attribute-scenes", "3"]) == 0
    assert cli.main(["export-context", "--out", str(tmp_path / "ds")]) == 2  # never overwrites
    out = tmp_path / "run"
    assert cli.main(["train", "--data-path", str(tmp_path / "ds"), "--output-dir", str(out), "--steps", "3",
                     "--batch", "4", "--eval-every", "3"]) == 0
    assert (out / "og-clip.safetensors").is_file() and (out / "og-clip.history.json").is_file()
    with pytest.raises(SystemExit):  # refuses to overwrite a checkpoint
        cli.main(["train", "--data-path", str(tmp_path / "ds"), "--output-dir", str(out), "--steps", "1"])
    capsys.readouterr()
    js = tmp_path / "r.json"
    assert cli.main(["evaluate", "--checkpoint", str(out / "og-clip.safetensors"), "--data-path", str(tmp_path / "ds"),
                     "--segmenter", "classical", "--baselines", "masked crop", "--json", str(js)]) == 0
    text = capsys.readouterr().out
    assert "9 captions (6 relational, 3 attribute)" in text and "frozen CLIP · masked crop" in text
    assert "mask quality (classical)" in text
    rep = json.loads(js.read_text())
    assert set(rep["table"]) == {"frozen CLIP · masked crop", "OG-CLIP (og-clip.safetensors)"}
    assert cli.main(["evaluate", "--checkpoint", str(tmp_path / "missing.safetensors")]) == 2
