"""Benchmark: accumulation, outputs, recomputation from saved predictions, torchrun sharding."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ogclip_utils import benchmark, cli, data, datasets, metrics

ROOT = Path(__file__).resolve().parent.parent


def _shifted(image, ds, s, clip, seg):
    """A deterministic stand-in predictor: the ground truth shifted by 3 pixels."""
    i = next(k for k in range(len(ds)) if np.array_equal(ds[k].image, image))
    lab = np.roll(ds[i].label, 3, axis=1)
    return lab, {"dense": 0.001}, 2


def test_evaluate_equals_direct_metrics():
    ds = datasets.load_dataset("shapes", num_samples=4, size=48)
    res = benchmark.run(ds, benchmark.Settings(dataset="shapes"), predictor=_shifted)
    preds = [np.roll(ds[i].label, 3, axis=1) for i in range(4)]
    ref = metrics.segmentation_metrics(preds, [ds[i].label for i in range(4)], 31)
    assert res.miou == pytest.approx(ref["miou"]) and 0 < res.miou < 1
    assert res.pixel_acc == pytest.approx(ref["pixel_acc"])
    np.testing.assert_array_equal(res.confusion, ref["confusion"])
    assert res.mean_queries == 2 and res.num_images == 4
    assert res.mean_times["dense"] == pytest.approx(0.001)
    # defaults resolved from the dataset
    assert res.settings.slide_crop == 64 and res.settings.logit_scale == 40.0


def test_sharded_accumulators_sum_to_the_whole():
    ds = datasets.load_dataset("shapes", num_samples=5, size=48)
    whole, _ = benchmark.evaluate(ds, predictor=_shifted, progress=False)
    parts = [benchmark.evaluate(ds, predictor=_shifted, indices=range(r, 5, 2), progress=False)[0] for r in range(2)]
    np.testing.assert_array_equal(parts[0].confusion + parts[1].confusion, whole.confusion)


def test_bad_method():
    ds = datasets.load_dataset("shapes", num_samples=1, size=48)
    with pytest.raises(ValueError, match="method must be one of"):
        benchmark.run(ds, benchmark.Settings(method="nope"), predictor=_shifted)


def test_missing_dataset_message(tmp_path, capsys):
    rc = cli.cmd_benchmark(["--dataset", "pascal-voc", "--data-dir", str(tmp_path / "voc"), "--output-dir", str(tmp_path)])
    assert rc == 2
    assert "VOCtrainval_11-May-2012.tar" in capsys.readouterr().err


def _torchrun(args, out, nproc=2):
    env = dict(os.environ, OGCLIP_MODE="offline", OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           "-m", "ogclip_utils", "benchmark"]
    r = subprocess.run(cmd + args + ["--output-dir", str(out), "--no-progress"], env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    return json.loads((out / "results.json").read_text())


ARGS = ["--dataset", "shapes", "--num-samples", "5", "--size", "64"]


@pytest.fixture(scope="module")
def single_run(tmp_path_factory):
    """One in-process CLI run (dense SCLIP, tiny-shapes) shared by the tests below."""
    import torch

    out = tmp_path_factory.mktemp("bench1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the torchrun workers, so the float sums are identical
    try:
        assert cli.cmd_benchmark(ARGS + ["--save-vis", "--no-progress", "--output-dir", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    return out, json.loads((out / "results.json").read_text())


def test_cli_results_recomputable_from_predictions(single_run):
    out, res = single_run
    assert res["num_images"] == 5 and res["world_size"] == 1
    preds, gts = [], []
    for i, seed in zip(res["ids"], res["shapes_seeds"]):
        preds.append(np.asarray(Image.open(out / "predictions" / f"{i}.png")).astype(np.int64))
        gts.append(data.make_scene(seed, size=64, num_objects=(1, 4)).labels)
    ref = metrics.segmentation_metrics(preds, gts, res["num_classes"])
    assert res["metrics"]["miou"] == pytest.approx(ref["miou"], abs=1e-12)
    np.testing.assert_array_equal(np.array(res["confusion_matrix"]), ref["confusion"])
    assert (out / "summary.txt").read_text().startswith("Benchmark: shapes")
    assert len(list((out / "visualizations").glob("*.png"))) == 5
    assert res["settings"]["method"] == "sclip" and "dense" in res["mean_time_s"]


@pytest.mark.slow
def test_torchrun_two_processes_equal_one(single_run, tmp_path):
    out1, one = single_run
    two = _torchrun(ARGS, tmp_path)
    assert two["world_size"] == 2 and two["num_images"] == 5
    assert two["confusion_matrix"] == one["confusion_matrix"]
    assert two["metrics"] == one["metrics"]
    for i in one["ids"]:
        a = np.asarray(Image.open(out1 / "predictions" / f"{i}.png"))
        b = np.asarray(Image.open(tmp_path / "predictions" / f"{i}.png"))
        np.testing.assert_array_equal(a, b)


def test_compare_runs_every_pair_and_formats_tables():
    ds = datasets.load_dataset("shapes", num_samples=3, size=48)
    comp = benchmark.compare(ds, methods=("sclip", "vanilla"), variants=("dense", "+ PAMR"), predictor=_shifted)
    assert set(comp.results) == {("sclip", "dense"), ("sclip", "+ PAMR"), ("vanilla", "dense"), ("vanilla", "+ PAMR")}
    assert comp.results[("sclip", "+ PAMR")].settings.use_pamr and not comp.results[("sclip", "dense")].settings.use_pamr
    ref = benchmark.run(ds, predictor=_shifted).miou
    rows = comp.table("miou").splitlines()
    assert "+ PAMR" in rows[0] and rows[1].startswith("---")
    assert rows[2].split() == ["sclip", f"{100 * ref:.1f}", f"{100 * ref:.1f}"]
    assert len(comp.costs().splitlines()) == 5
    assert benchmark.plot_comparison(comp) is not None and benchmark.plot_stage_times(comp) is not None
    with pytest.raises(ValueError, match="variants must be among"):
        benchmark.compare(ds, variants=("dense", "+ CRF"), predictor=_shifted)
    with pytest.raises(ValueError, match="metric must be"):
        comp.table("f1")


def test_prob_thd_sweep_by_hand():
    from types import SimpleNamespace

    # 1×4 image, 2 classes; class-1 probabilities 0.9, 0.6, 0.55, 0.2 ; truth 1, 1, 0, 0
    p1 = np.array([[0.9, 0.6, 0.55, 0.2]], np.float32)
    r = SimpleNamespace(probs=np.stack([1 - p1, p1]), classes=["background", "thing"])
    gt = np.array([[1, 1, 0, 0]])
    curve = benchmark.prob_thd_sweep([r], [gt], [0.0, 0.58, 0.7, 0.95], 2)
    # 0.0: argmax → pred 1,1,1,0 : IoU0 = 1/2, IoU1 = 2/3
    # 0.58: pixel 3 (best 0.55) → 0 : perfect
    # 0.7: pixel 2 (best 0.6) → 0 too : IoU0 = 2/3, IoU1 = 1/2 ; 0.95: everything → 0 : IoU0 = 1/2, IoU1 = 0
    np.testing.assert_allclose(curve, [(1 / 2 + 2 / 3) / 2, 1.0, (2 / 3 + 1 / 2) / 2, 0.25])
    with pytest.raises(ValueError, match="equal length"):
        benchmark.prob_thd_sweep([r], [], [0.1], 2)


def test_the_seeds_benchmark_flags_and_the_model_named_in_results(tmp_path):
    """--no-slide-inference runs whole images (crop 0); results.json and summary.txt name the CLIP that ran."""
    import json as _json

    from ogclip_utils import cli

    out = tmp_path / "b"
    assert cli.main(["benchmark", "--dataset", "shapes", "--num-samples", "2", "--size", "64",
                     "--no-slide-inference", "--model", "tiny-shapes", "--output-dir", str(out), "--no-progress"]) == 0
    res = _json.loads((out / "results.json").read_text())
    assert res["settings"]["slide_crop"] == 0 and res["settings"]["slide_stride"] is None
    assert res["settings"]["clip_model"] == "tiny-shapes"
    summary = (out / "summary.txt").read_text()
    assert "whole image" in summary and "Models: CLIP tiny-shapes" in summary
    assert cli.main(["benchmark", "--dataset", "shapes", "--num-samples", "1", "--no-slide-inference",
                     "--slide-crop", "32", "--output-dir", str(out)]) == 2
