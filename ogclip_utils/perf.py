"""Speed and cost measurements (``make bench``): one JSON and a table, ratios measured in one run.

``python -m ogclip_utils.perf --out outputs/bench.json`` (``python -m ogclip_utils.bench``
still works) collects, each in its own section:

- ``dense_speed``: :func:`speed_benchmark` (batched sliding windows vs the per-window loop,
  the text cache, effective GFLOP/s against a matrix multiply);
- ``guided_vs_grid``: segmenter queries and seconds per image of the CLIP-guided pipeline
  (``pipeline.segment``) against the blind N×N grid (``refine.grid_baseline``) on shapes
  scenes, with both mIoUs;
- ``real_pipeline``: :func:`real_pipeline_speed` — ``pipeline.segment`` in real mode
  (ViT-B/16 + SAM2.1-tiny) per stage and SAM2's ``SAM2AutomaticMaskGenerator`` N×N grid
  (named with the same CLIP) on the same photo and device; with random-init stand-ins
  when the official weights are not in the cache (speeds only, then);
- ``notebooks``: wall time of executing each ``notebooks/NN_*.ipynb`` (a temporary copy,
  via ``nbtools.execute``, offline);
- ``memory``: peak resident memory of this process and of the notebook kernels (MiB), and
  peak CUDA memory when a GPU was used.

A part that is missing (a module not written yet, a failing notebook) is reported with its
error message in the JSON and the table; the other parts still run. Ratios are measured in
one run on one machine: compare them, not absolute seconds, across machines.
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from . import clip as clip_mod
from . import data, datasets, dense, env, evaluation, models, nbtools, pipeline, refine, standins, weights
from .paths import NOTEBOOK_DIR


def _part(name: str, fn: Callable[[], dict]) -> dict:
    """Run one section; on failure return ``{"error": ...}`` instead of stopping the run."""
    t = time.perf_counter()
    try:
        out = fn()
        out["seconds"] = round(time.perf_counter() - t, 3)
        return out
    except Exception as exc:  # noqa: BLE001 - one missing part must not stop the others
        msg = f"{type(exc).__name__}: {exc}"
        print(f"[bench] {name} unavailable: {msg}", file=sys.stderr)
        return {"error": msg, "traceback": traceback.format_exc(limit=3)}


def _forward_flops(clip, crop_hw: tuple[int, int], method: str) -> float:
    """FLOPs of one window's image forward (torch's FlopCounterMode: 2 × multiply-adds)."""
    from torch.utils.flop_counter import FlopCounterMode

    c = clip_mod.as_bundle(clip)
    x = torch.zeros(1, 3, *crop_hw, device=c.device)
    with torch.inference_mode(), FlopCounterMode(display=False) as fc:
        dense.patch_features(c.model.visual, x, method)
    return float(fc.get_total_flops())


def _matmul_gflops(n: int = 2048, repeats: int = 3) -> float:
    """Best GFLOP/s of an n×n float32 matrix multiply on this CPU (the compute ceiling)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def speed_benchmark(model: str = "ViT-B-16-quickgelu", image_hw: tuple[int, int] = (448, 597),
                    vocabulary: Sequence[str] = ("background", "person", "cat", "dog", "car"),
                    templates: Sequence[str] | None = None, method: str = "sclip", seed: int = 0,
                    progress: bool = True) -> dict:
    """Time :func:`dense_probs` against the per-window loop, on one image, in one run.

    Builds ``model`` at random init (``"tiny-shapes"`` or an open_clip name), renders a random
    ``image_hw`` image, and measures: the first call with an empty text cache (OpenAI's 80
    templates by default), a call reusing the on-disk cache (a new process), a cached call,
    the per-window loop (one crop per forward, batch 1, same maths), the effective GFLOP/s of
    both against a large matrix multiply timed in the same run, and the largest probability
    difference between the two. Returns a flat dict (the ``make bench`` JSON entry)."""
    rng = env.seed_everything(seed)
    clip = models.load_clip(model, pretrained=False if model == models.TINY_NAME else None)
    image = rng.integers(0, 256, (*image_hw, 3), dtype=np.uint8)
    tpl = clip_mod._template_strings(templates) if templates is not None else clip_mod.default_templates(clip)
    steps = tqdm(total=6, desc="dense speed benchmark", disable=not progress, leave=False)
    out: dict = {"model": model, "image_hw": list(image_hw), "method": method, "num_names": len(vocabulary),
                 "num_templates": len(tpl), "threads": torch.get_num_threads(), "device": str(clip_mod.as_bundle(clip).device)}
    with tempfile.TemporaryDirectory() as tmp, clip_mod.isolated_text_cache(tmp):
        t = time.perf_counter()
        first = dense.dense_probs(clip, image, list(vocabulary), method=method, templates=tpl)
        out["first_call_s"] = time.perf_counter() - t
        out["first_call_text_s"] = first.timings["text"]
        steps.update()
        clip_mod.clear_memory_cache()  # what a new process sees: only the disk cache
        t = time.perf_counter()
        dense.dense_probs(clip, image, list(vocabulary), method=method, templates=tpl)
        out["disk_cache_call_s"] = time.perf_counter() - t
        steps.update()
        t = time.perf_counter()
        cached = dense.dense_probs(clip, image, list(vocabulary), method=method, templates=tpl)
        out["cached_call_s"] = time.perf_counter() - t
        out["cached_call_text_s"] = cached.timings["text"]
        steps.update()
        text = clip_mod.text_embeddings(clip, cached.queries, tpl)
        t = time.perf_counter()
        logits, windows, _ = dense.dense_logits(clip, image, text, method, batch_size=1)
        out["per_window_loop_s"] = time.perf_counter() - t
        steps.update()
        naive = dense.logits_to_probs(logits, cached.query_to_class, len(cached.classes))
        out["max_abs_prob_diff"] = float(np.abs(naive.numpy() - cached.probs).max())
    w = windows[0]
    flops = _forward_flops(clip, (w[3] - w[1], w[2] - w[0]), method) * len(windows)
    steps.update()
    out["matmul_gflops"] = _matmul_gflops()
    steps.update()
    steps.close()
    image_s = out["cached_call_s"] - out["cached_call_text_s"]
    out.update(windows=len(windows), image_gflop=flops / 1e9,
               dense_gflops=flops / 1e9 / image_s, per_window_gflops=flops / 1e9 / out["per_window_loop_s"],
               speedup_vs_per_window=out["per_window_loop_s"] / out["cached_call_s"],
               text_cache_speedup=out["first_call_s"] / out["cached_call_s"])
    out["dense_vs_matmul"] = out["dense_gflops"] / out["matmul_gflops"]
    out["per_window_vs_matmul"] = out["per_window_gflops"] / out["matmul_gflops"]
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()}


def precision_speed(model: str = "ViT-B-16", crops: int = 8, repeats: int = 3, seed: int = 0) -> dict:
    """ViT-B/16 (random init) image encoding of ``crops`` 224 px crops in fp32 and with bf16
    weights on this CPU (best of ``repeats``), the cosine between the two embeddings, and what
    ``precision="auto"`` chooses here. GPU runs use autocast instead (not measured here)."""
    rng = env.seed_everything(seed)
    f32 = models.load_clip(model, device="cpu", precision="fp32")
    b16 = models.load_clip(model, device="cpu", precision="bf16")
    b16.model.load_state_dict({k: v.to(torch.bfloat16) for k, v in f32.model.state_dict().items()})
    x = rng.integers(0, 256, (crops, f32.image_size, f32.image_size, 3), dtype=np.uint8)
    out: dict = {"model": model, "crops": crops, "threads": torch.get_num_threads(),
                 "auto_chooses": models.resolve_precision("auto", "cpu", model), "cpu_has_amx": models.cpu_has_amx()}
    embs = {}
    for name, c in (("fp32", f32), ("bf16", b16)):
        c.encode_images(x[:1])  # warm-up
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            embs[name] = c.encode_images(x)
            best = min(best, time.perf_counter() - t)
        out[f"{name}_s"] = round(best, 4)
    out["bf16_speedup"] = round(out["fp32_s"] / out["bf16_s"], 3)
    out["min_cosine"] = round(float((embs["fp32"] * embs["bf16"]).sum(-1).min()), 5)
    return out


def real_pipeline_speed(photo: str = "chelsea", points_per_side: int = 32, segmenter: str = "sam2.1-hiera-tiny",
                        device: str | None = None, warmup: bool = True) -> dict:
    """Real mode's guided pipeline against SAM2's automatic mask generator on one bundled photo.

    ``pipeline.segment`` (ViT-B/16 + ``segmenter``, the photo's vocabulary, text embeddings
    warmed up first) seconds per stage and segmenter queries, then ``refine.grid_baseline``
    (``SAM2AutomaticMaskGenerator`` with ``points_per_side``², its masks named by the same CLIP)
    on the same image and device. Official weights from ``$OGCLIP_CACHE`` when present, else
    random-init stand-ins written into a temporary cache (``"weights"`` says which): the
    seconds are then real, the masks meaningless. ``warmup=False`` skips the first, untimed
    run (tests): the guided seconds then include encoding the vocabulary."""
    import os

    vocab = data.PHOTO_VOCABULARIES[photo]
    image = data.load_photo(photo)
    dev = str(device or env.get_device())
    ck = weights.checkpoint_path("clip-vit-b-16-openai")
    real = ck.exists() and not standins.is_standin(ck) and weights.checkpoint_path(segmenter).exists()
    old = os.environ.get("OGCLIP_CACHE")
    tmp = None if real else tempfile.mkdtemp(prefix="ogclip-bench-cache-")
    try:
        if tmp:
            os.environ["OGCLIP_CACHE"] = tmp
            standins.write_all(["clip", "sam2"])
        clip = models.load_clip("ViT-B-16", pretrained="openai", device=dev)
        seg = models.load_segmenter(segmenter, device=dev)
        if warmup:
            pipeline.segment(image, vocab, clip=clip, segmenter=seg)  # text embeddings, kernels
        t = time.perf_counter()
        res = pipeline.segment(image, vocab, clip=clip, segmenter=seg)
        guided_s = time.perf_counter() - t
        t = time.perf_counter()
        grid = refine.grid_baseline(seg, image, points_per_side, clip=clip, class_names=vocab)
        grid_s = time.perf_counter() - t
    finally:
        if tmp:
            if old is None:
                os.environ.pop("OGCLIP_CACHE", None)
            else:
                os.environ["OGCLIP_CACHE"] = old
            shutil.rmtree(tmp, ignore_errors=True)
    return {"photo": photo, "image_hw": list(image.shape[:2]), "device": dev, "clip": clip.name,
            "clip_precision": getattr(clip, "precision", "fp32"), "segmenter": segmenter,
            "segmenter_precision": getattr(seg, "ogclip_precision", "fp32"),
            "weights": "official" if real else "random-init stand-ins (speeds only)", "threads": torch.get_num_threads(),
            "warmed_up": bool(warmup),
            "guided": {"seconds": round(guided_s, 3), "stages_s": {k: round(float(v), 3) for k, v in res.timings.items()},
                       "queries": int(res.num_queries)},
            "grid": {"points_per_side": int(points_per_side), "seconds": round(grid_s, 3), "queries": int(grid.num_queries)},
            "time_ratio_grid_over_guided": round(grid_s / max(guided_s, 1e-9), 1)}


def dense_speed() -> dict:
    """:func:`speed_benchmark` with its defaults (ViT-B/16 at random init on a 448×597 image)."""
    return speed_benchmark()


def guided_vs_grid(num_scenes: int = 4, size: int = 128, points_per_side: int = 32, seed_offset: int = 0,
                   clip=None, segmenter=None) -> dict:
    """Guided pipeline vs blind grid on ``num_scenes`` shapes-benchmark scenes: queries, seconds, mIoU
    (:func:`ogclip_utils.evaluation.guided_vs_grid`, as the JSON dict ``make bench`` writes).

    ``clip`` / ``segmenter`` default to the run mode's."""
    seeds = list(datasets.SHAPES_SEEDS[seed_offset:seed_offset + num_scenes])
    return evaluation.guided_vs_grid(seeds, size, points_per_side, clip=clip, segmenter=segmenter).as_dict()


def notebook_runtimes(pattern: str = "[0-9][0-9]_*.ipynb", timeout: int = 900) -> dict:
    """Execute each notebook (a temporary copy next to the originals, so relative paths behave
    the same; the committed notebook is never touched) and time it."""
    paths = sorted(NOTEBOOK_DIR.glob(pattern))
    if not paths:
        raise FileNotFoundError(f"no notebooks matching {pattern} in {NOTEBOOK_DIR}")
    out: dict = {}
    tmpdir = Path(tempfile.mkdtemp(prefix="ogclip-bench-"))
    try:
        for p in paths:
            tmp = p.with_name(f".bench_{p.name}")
            shutil.copyfile(p, tmp)
            try:
                out[p.name] = {"seconds": round(nbtools.execute(tmp, tmpdir / p.name, timeout=timeout), 2)}
            except Exception as exc:  # noqa: BLE001 - report and go on
                out[p.name] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
            finally:
                tmp.unlink(missing_ok=True)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return {"notebooks": out}


def peak_memory() -> dict:
    """Peak resident set size (MiB) of this process and of finished children (notebook kernels)."""
    kib = 1024.0 if sys.platform != "darwin" else 1024.0 * 1024.0  # ru_maxrss: KiB on Linux, bytes on macOS
    out = {"self_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / kib,
           "children_peak_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / kib}
    import torch

    if torch.cuda.is_available():
        out["cuda_peak_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def table(report: dict) -> str:
    """A flat two-column text table of the report (nested keys joined with '.')."""
    rows: list[tuple[str, str]] = []

    def walk(prefix: str, v) -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                if k not in ("traceback", "seeds"):
                    walk(f"{prefix}.{k}" if prefix else str(k), x)
        elif isinstance(v, (list, tuple)) and len(v) > 6:
            rows.append((prefix, f"[{len(v)} values]"))
        else:
            rows.append((prefix, _fmt(v)))

    walk("", report)
    w = max(len(k) for k, _ in rows) if rows else 10
    return "\n".join(f"{k:<{w}}  {v}" for k, v in rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ogclip_utils.perf", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="outputs/bench.json")
    p.add_argument("--scenes", type=int, default=4, help="shapes scenes for guided vs grid")
    p.add_argument("--size", type=int, default=128, help="scene size in pixels")
    p.add_argument("--grid", type=int, default=32, help="points per side of the blind grid")
    p.add_argument("--skip-notebooks", action="store_true")
    p.add_argument("--skip-real", action="store_true", help="skip the real-mode pipeline vs SAM2 automatic-mask-generator part")
    p.add_argument("--real-grid", type=int, default=32, help="points per side of SAM2's automatic mask generator")
    p.add_argument("--notebooks", default="[0-9][0-9]_*.ipynb", help="glob of notebooks to time")
    a = p.parse_args(argv)
    if a.scenes < 1 or a.grid < 1 or a.size < 16:
        p.error("--scenes and --grid must be ≥ 1 and --size ≥ 16")
    import os

    os.environ.setdefault("OGCLIP_MODE", "offline")
    info = env.describe()
    report: dict = {"env": {"mode": info.mode, "device": info.device, "python": info.python, "torch": info.torch,
                            "open_clip": info.open_clip, "cpu_threads": _threads()},
                    "dense_speed": _part("dense_speed", dense_speed),
                    "precision": _part("precision", precision_speed),
                    "guided_vs_grid": _part("guided_vs_grid", lambda: guided_vs_grid(a.scenes, a.size, a.grid))}
    report["real_pipeline"] = ({"skipped": True} if a.skip_real
                               else _part("real_pipeline", lambda: real_pipeline_speed(points_per_side=a.real_grid)))
    report["notebooks"] = ({"skipped": True} if a.skip_notebooks
                           else _part("notebooks", lambda: notebook_runtimes(a.notebooks)))
    report["memory"] = peak_memory()
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=_json_default))
    print(table(report))
    print(f"\nwrote {out}")
    return 0


def _threads() -> int:
    import torch

    return int(torch.get_num_threads())


def _json_default(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    return str(o)


if __name__ == "__main__":
    sys.exit(main())
