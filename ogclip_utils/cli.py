"""Command line: ``python -m ogclip_utils <command> [options]`` — every command's arguments, in one place.

Each command parses its flags here and calls the package's public functions; ``--help`` on
any command lists its options.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from . import benchmark, data, datasets, dense, detectors, env, explain, grounding, models, og_clip, paths, pipeline
from . import edit as edit_mod
from . import prompts, refine, tiny_clip, viz, weights


# ----------------------------------------------------------------------------- segment / explain
def _common_args(p: argparse.ArgumentParser) -> None:
    pc, rc = prompts.PromptConfig(), refine.RefineConfig()  # the defaults, written once
    p.add_argument("--image", required=True, help="input image (PNG/JPEG/…)")
    p.add_argument("--vocabulary", nargs="+", required=True, metavar="NAME",
                   help='class names; "a, b" lists synonyms of one class; include "background"')
    p.add_argument("--min-confidence", type=float, default=pc.min_confidence,
                   help=f"probability a pixel needs to join a region (default {pc.min_confidence})")
    p.add_argument("--min-region-size", type=int, default=pc.min_region_size,
                   help=f"regions smaller than this many pixels are dropped (default {pc.min_region_size})")
    p.add_argument("--points-per-cluster", type=int, default=pc.points_per_cluster,
                   help=f"positive points per region (default {pc.points_per_cluster})")
    p.add_argument("--negative-points-per-cluster", type=int, default=pc.negative_points_per_cluster,
                   help=f"negative points per region (default {pc.negative_points_per_cluster})")
    p.add_argument("--negative-confidence-threshold", type=float, default=pc.negative_confidence_threshold,
                   help=f"other classes' pixels serve as negatives above this probability (default {pc.negative_confidence_threshold})")
    p.add_argument("--iou-threshold", type=float, default=rc.iou_threshold,
                   help=f"same-class masks above this IoU merge (default {rc.iou_threshold})")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    p.add_argument("--mode", default=None, choices=("offline", "real", "auto"), help="default $OGCLIP_MODE or auto")
    p.add_argument("--model", dest="clip_model", default=None,
                   help="CLIP: tiny-shapes or ViT-B/16 (OpenAI weights); default by mode")
    p.add_argument("--segmenter", default=None,
                   help="classical or sam2.1-hiera-{tiny,small,base_plus,large}; default by mode (SAM2.1 tiny on CPU)")
    p.add_argument("--checkpoint", default=None, help="SAM2 checkpoint path (real mode; default: the registry's)")
    p.add_argument("--model-cfg", default=None, help="SAM2 config name, e.g. configs/sam2.1/sam2.1_hiera_t.yaml")


def _params(a) -> dict:
    return {"min_confidence": a.min_confidence, "min_region_size": a.min_region_size, "points_per_cluster": a.points_per_cluster,
            "negative_points_per_cluster": a.negative_points_per_cluster,
            "negative_confidence_threshold": a.negative_confidence_threshold, "iou_threshold": a.iou_threshold}


def _run(a, target: str | None = None):
    """Load the image and the models for the mode, run ``pipeline.segment``; return (image, result, params, mode)."""
    image = data.load_image(a.image)
    mode = env.get_mode(a.mode)
    clip = models.clip_by_name(a.clip_model, mode, device=a.device)
    seg = models.segmenter_by_name(a.segmenter, mode, device=a.device, checkpoint=a.checkpoint, model_cfg=a.model_cfg)
    params = _params(a)
    kw = dict(params)
    if target is not None:
        kw["target"] = target
    res = pipeline.segment(image, list(a.vocabulary), clip=clip, segmenter=seg, **kw)
    if not res.prompts:
        print(f"note: no prompts found (no region reached --min-confidence {a.min_confidence} over "
              f"--min-region-size {a.min_region_size} px) — lower --min-confidence", file=sys.stderr)
    return image, res, {**params, "clip": f"{clip.name} ({clip.weights_id})", "segmenter": _segmenter_name(seg, a)}, mode


def _segmenter_name(seg, a) -> str:
    """The segmenter a run used, for summaries: "classical" or the SAM2 name."""
    if a.segmenter:
        return a.segmenter
    return "classical" if type(seg).__name__ == "ClassicalSegmenter" else models.default_segmenter_name(a.mode, a.device)


def cmd_explain(argv: list[str] | None = None) -> int:
    """``python -m ogclip_utils explain --image PATH --vocabulary NAME… --output DIR [options]``."""
    p = argparse.ArgumentParser(prog="python -m ogclip_utils explain",
                                description="Write the 18-step explanation (figures, index.html, data) of one segmentation.")
    _common_args(p)
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--create-html", action=argparse.BooleanOptionalAction, default=True, help="write index.html (default on)")
    p.add_argument("--per-class-details", action="store_true", help="also write per_class/class_<i>_<name>.png")
    a = p.parse_args(argv)
    try:
        t = time.perf_counter()
        image, res, params, mode = _run(a)
        params = {"mode": mode, "image": Path(a.image).name, **params}
        out = explain.explain(res, a.output, image=image, params=params, create_html=a.create_html, per_class_details=a.per_class_details,
                      title=f"{Path(a.image).name}: object-guided segmentation, step by step")
    except (ValueError, FileNotFoundError, weights.CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(out.steps)} step figures, {len(out.per_class)} per-class figures and data to {out.output} "
          f"({time.perf_counter() - t:.1f} s)")
    if out.html:
        print(f"open {out.html.resolve()}")
    return 0


def cmd_segment(argv: list[str] | None = None) -> int:
    """``python -m ogclip_utils segment --image PATH --vocabulary NAME… [--prompt NAME] [--edit …] --output FILE``."""
    p = argparse.ArgumentParser(prog="python -m ogclip_utils segment", description="Segment (and optionally edit) one image.")
    _common_args(p)
    p.add_argument("--prompt", default=None, help="target class to segment/edit (default: all classes)")
    p.add_argument("--edit", default="segment", choices=("segment", "remove", "replace"),
                   help="segment: overlay; remove: blacken or inpaint the target; replace: its mask, or generate --edit-prompt in it")
    p.add_argument("--use-inpainting", action="store_true", help="inpaint for remove/replace (SD in real mode, OpenCV offline for remove)")
    p.add_argument("--edit-prompt", default="", help="what to paint inside the mask with --edit replace --use-inpainting")
    p.add_argument("--dilate", type=int, default=6, help="pixels to grow the edit mask by (default 6)")
    p.add_argument("--output", default="segmented.png", help="output image file")
    p.add_argument("-v", "--verbose", action="store_true", help="print prompts, instances and timings")
    a = p.parse_args(argv)
    if a.edit != "segment" and not a.prompt:
        print("error: --edit remove/replace needs --prompt NAME (the class to edit)", file=sys.stderr)
        return 2
    try:
        image, res, params, mode = _run(a, target=a.prompt)
        if a.edit == "segment":
            lm = np.asarray(res.label_map)
            if a.prompt:  # only the target's pixels are coloured (-1: left untouched, whatever class 0 is)
                lm = np.where(pipeline.target_mask(res, a.vocabulary, a.prompt), lm, -1)
            out_img = viz.overlay(image, lm, vocabulary=list(res.dense.classes))
        else:
            mask = pipeline.target_mask(res, a.vocabulary, a.prompt)
            if not mask.any():
                print(f"note: no pixels of {a.prompt!r} were found; the image is unchanged", file=sys.stderr)
            out_img = edit_mod.edit(image, mask, a.edit, use_inpainting=a.use_inpainting, prompt=a.edit_prompt,
                                    mode=mode, device=a.device, dilate=a.dilate).image
    except edit_mod.InpaintingUnavailable as exc:
        print(f"error: {exc}. Without --use-inpainting, --edit replace writes the mask.", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, weights.CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    Path(a.output).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(out_img).save(a.output)
    nq = int(res.num_queries)
    print(f"{mode} mode, {params['clip']} + {params['segmenter']}: {nq} segmenter queries (a {explain.GRID_SIDE}×{explain.GRID_SIDE} grid would use {explain.GRID_SIDE ** 2}: "
          f"{explain.GRID_SIDE ** 2 / max(nq, 1):.0f}× fewer); wrote {a.output}")
    if a.verbose:
        for q in res.prompts:
            print(" ", q)
        for inst in res.instances:
            print(" ", inst)
        for k, t in (getattr(res, "timings", {}) or {}).items():
            print(f"  {k}: {t:.3f} s")
    return 0


# ----------------------------------------------------------------------------- ground
def cmd_ground(argv: list[str] | None = None) -> int:
    """``python -m ogclip_utils ground [--scenes N] [--seed-base S]``: print the Acc@0.5 table."""
    p = argparse.ArgumentParser(prog="python -m ogclip_utils ground",
                                description="Acc@0.5 of baseline grounding variants on shapes-world expressions.")
    p.add_argument("--scenes", type=int, default=80)
    p.add_argument("--seed-base", type=int, default=grounding.EVAL_SEED_BASE)
    p.add_argument("--detector", default="shapes", choices=detectors.DETECTORS)
    p.add_argument("--context", type=float, default=0.15)
    p.add_argument("--json", default=None, help="also write the table as JSON here")
    a = p.parse_args(argv)
    env.seed_everything(0)
    clip = models.load_clip("tiny-shapes")
    ev = grounding.evaluate(clip, range(a.seed_base, a.seed_base + a.scenes), detector=a.detector, context=a.context,
                  progress=True)
    print(f"{ev.n_scenes} scenes, seeds {a.seed_base}…{a.seed_base + a.scenes - 1}, weights {clip.weights_id}")
    print(ev.format())
    if a.json:
        Path(a.json).write_text(json.dumps({"table": ev.table, "detector_recall": ev.detector_recall,
                                            "weights": clip.weights_id, "scenes": a.scenes,
                                            "seed_base": a.seed_base}, indent=1))
    return 0


# ----------------------------------------------------------------------------- benchmark
def benchmark_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ogclip_utils benchmark", description=benchmark.__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=datasets.DATASETS, default="shapes")
    p.add_argument("--data-dir", default=None, help="dataset folder (default data/benchmarks/<dataset>)")
    p.add_argument("--num-samples", type=int, default=None, help="first N images (default all)")
    p.add_argument("--size", type=int, default=160, help="shapes scene size in pixels")
    p.add_argument("--method", choices=dense.METHODS, default="sclip", help="dense feature method")
    p.add_argument("--use-sam", action="store_true", help="refine with the promptable segmenter (pipeline.segment)")
    p.add_argument("--use-pamr", action="store_true", help="PAMR post-processing of the dense probabilities")
    p.add_argument("--slide-inference", action=argparse.BooleanOptionalAction, default=True,
                   help="sliding windows (default, SCLIP's); --no-slide-inference runs the whole image in one "
                        "forward with interpolated positional embeddings (--slide-crop 0)")
    p.add_argument("--slide-crop", type=int, default=None, help="sliding-window crop in pixels")
    p.add_argument("--slide-stride", type=int, default=None, help="sliding-window stride in pixels")
    p.add_argument("--logit-scale", type=float, default=None)
    p.add_argument("--prob-thd", type=float, default=None)
    p.add_argument("--area-thd", type=float, default=None)
    p.add_argument("--short-side", type=int, default=None, help="resize short side (default: the dataset's)")
    p.add_argument("--model", dest="clip_model", default=None, help="CLIP model (default by mode)")
    p.add_argument("--segmenter", default=None, help="segmenter (default by mode)")
    p.add_argument("--device", default=None)
    p.add_argument("--output-dir", default="outputs/benchmark")
    p.add_argument("--save-vis", action="store_true", help="write visualizations/<id>.png")
    p.add_argument("--no-progress", action="store_true")
    return p


def cmd_benchmark(argv: list[str] | None = None) -> int:
    """``python -m ogclip_utils benchmark --dataset NAME …``: evaluate and write results.json, summary.txt, predictions/."""
    a = benchmark_parser().parse_args(argv)
    st = benchmark.Settings(**{k: getattr(a, k) for k in benchmark.Settings.__dataclass_fields__})
    if not a.slide_inference:
        if a.slide_crop not in (None, 0) or a.slide_stride is not None:
            print("error: --no-slide-inference runs the whole image at once; drop --slide-crop/--slide-stride", file=sys.stderr)
            return 2
        st.slide_crop = 0
    try:
        ds = datasets.load_dataset(a.dataset, a.data_dir, a.num_samples, size=a.size)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    benchmark.run_to_folder(ds, st, a.output_dir, save_vis=a.save_vis, progress=not a.no_progress, device=a.device)
    return 0


# ----------------------------------------------------------------------------- Object-Guided CLIP
def _og_shapes_feats(first_seed: int, n: int, mask_source: str, clip):
    samples = og_clip.shapes_samples(range(first_seed, first_seed + n), mask_source=mask_source)
    return og_clip.precompute_features(samples, clip)


def cmd_train(argv: list[str] | None = None) -> int:
    """``python -m ogclip_utils train``: train OG-CLIP on shapes-world scenes, save the best checkpoint."""

    p = argparse.ArgumentParser(prog="python -m ogclip_utils train", description=cmd_train.__doc__)
    p.add_argument("--train-scenes", type=int, default=400, help="number of training scenes (seeds from 70,000,000)")
    p.add_argument("--val-scenes", type=int, default=100, help="validation scenes (held-out seeds from 80,000,000)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fusion", choices=("conv", "attention"), default="conv")
    for b in ("object", "mask", "clip"):
        p.add_argument(f"--no-{b}", action="store_true", help=f"switch the {b} branch off (ablation)")
    p.add_argument("--mask-source", choices=og_clip.MASK_SOURCES, default="segmenter",
                   help="segmenter (default) or ground_truth (ablation only)")
    p.add_argument("--out", default="outputs/og_clip.safetensors", help="best checkpoint (safetensors)")
    a = p.parse_args(argv)
    if min(a.train_scenes, a.val_scenes) < 2:
        p.error("--train-scenes and --val-scenes must be ≥ 2")
    env.seed_everything(a.seed)
    clip = models.load_clip("tiny-shapes")
    train = _og_shapes_feats(og_clip.TRAIN_SEED_BASE, a.train_scenes, a.mask_source, clip)
    val = _og_shapes_feats(og_clip.TEST_SEED_BASE + 1_000_000, a.val_scenes, a.mask_source, clip)
    model = og_clip.model_for(train, use_object=not a.no_object, use_mask=not a.no_mask, use_clip=not a.no_clip, fusion=a.fusion)
    cfg = og_clip.TrainConfig(epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, seed=a.seed, checkpoint=a.out)
    hist = og_clip.Trainer(model, train, val, cfg).fit()
    print(f"best validation text→image R@1 {hist.best_val_r1:.1f} % at epoch {hist.best_epoch + 1}; saved {a.out}")
    Path(a.out).with_suffix(".history.json").write_text(json.dumps(dataclasses.asdict(hist)))
    return 0


def cmd_evaluate(argv: list[str] | None = None) -> int:
    """``python -m ogclip_utils evaluate``: retrieval of a checkpoint and the frozen-CLIP baselines on held-out scenes."""

    p = argparse.ArgumentParser(prog="python -m ogclip_utils evaluate", description=cmd_evaluate.__doc__)
    p.add_argument("--checkpoint", default="outputs/og_clip.safetensors")
    p.add_argument("--test-scenes", type=int, default=200, help="held-out scenes (seeds from 80,000,000)")
    p.add_argument("--mask-source", choices=og_clip.MASK_SOURCES, default="segmenter")
    p.add_argument("--seed", type=int, default=0, help="gallery order and tie-breaking")
    p.add_argument("--json", default=None, help="also write the reports here")
    a = p.parse_args(argv)
    if a.test_scenes < 2:
        p.error("--test-scenes must be ≥ 2")
    model = og_clip.load_checkpoint(a.checkpoint)
    clip = models.load_clip("tiny-shapes")
    test = _og_shapes_feats(og_clip.TEST_SEED_BASE, a.test_scenes, a.mask_source, clip)
    gal = og_clip.make_galleries(test, seed=a.seed)
    reps = {"CLIP global (frozen)": og_clip.evaluate_baseline(test, "global", gal, a.seed),
            "CLIP masked crop (frozen)": og_clip.evaluate_baseline(test, "masked_crop", gal, a.seed),
            "OG-CLIP": og_clip.evaluate_model(model, test, gal, a.seed)}
    print(f"{len(test)} queries, {len(gal)} galleries of ~{reps['OG-CLIP'].gallery_size:.1f}, masks: {test.mask_source}")
    print(f"{'method':28s} {'t2i R@1':>8s} {'t2i R@5':>8s} {'i2t R@1':>8s} {'scene R@1':>9s} {'mean rank':>9s}")
    for name, r in reps.items():
        print(f"{name:28s} {r.t2i_r1:8.1f} {r.t2i_r5:8.1f} {r.i2t_r1:8.1f} {r.t2i_scene_r1:9.1f} {r.mean_rank:9.2f}")
    if a.json:
        Path(a.json).write_text(json.dumps({k: v.as_dict() for k, v in reps.items()}, indent=1))
    return 0


# ----------------------------------------------------------------------------- tiny-shapes
def cmd_train_tiny_clip(argv: list[str] | None = None) -> int:
    """``python -m ogclip_utils train-tiny-clip``: retrain tiny-shapes with every stage of ``tiny_clip.RECIPE``."""
    p = argparse.ArgumentParser(prog="python -m ogclip_utils train-tiny-clip", description=tiny_clip.__doc__.split("\n")[0])
    p.add_argument("--out", default="checkpoints", help="output folder (default: checkpoints/)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--stage1", default=None,
                   help="skip stage 1: start the later stages from these weights (their .json card beside them)")
    a = p.parse_args(argv)
    if a.stage1 and not Path(a.stage1).with_suffix(".json").exists():
        p.error(f"--stage1 {a.stage1}: no card {Path(a.stage1).with_suffix('.json')} beside the weights; "
                "run without --stage1 to train stage 1 too")
    if a.threads < 1:
        p.error("--threads must be ≥ 1")
    tiny_clip.train_recipe(a.out, a.threads, a.stage1)
    return 0


# ----------------------------------------------------------------------------- checkpoints
def cmd_checkpoints(argv: list[str] | None = None) -> int:
    """``python -m ogclip_utils checkpoints [NAME…] [--list]``: download real-mode weights."""
    p = argparse.ArgumentParser(prog="python -m ogclip_utils checkpoints",
                                description="Download official weights for real mode into $OGCLIP_CACHE/checkpoints.")
    p.add_argument("names", nargs="*", default=["clip-vit-b-16-openai", "sam2.1-hiera-tiny"],
                   help=f"registry names (default: CLIP ViT-B/16 and SAM2.1 tiny); known: {', '.join(sorted(weights.REGISTRY))}")
    p.add_argument("--list", action="store_true", help="list the registry and what is on disk")
    a = p.parse_args(argv)
    if a.list:
        for ck in weights.REGISTRY.values():
            path = paths.cache_dir("checkpoints") / ck.filename
            print(f"{ck.name:28s} {'on disk' if path.exists() else 'missing':8s} {ck.url}")
        return 0
    for n in a.names:
        ck = weights.entry(n)
        if ck.kind == "inpainting":
            print(f"{n}: fetched by diffusers on first use (see edit.py); skipping")
            continue
        print(f"{n} -> {weights.download(n)}")
    return 0

COMMANDS: dict[str, tuple] = {
    # name: (function, one-line help)
    "segment": (cmd_segment, "segment / edit one image with a vocabulary"),
    "explain": (cmd_explain, "write the 18-step explanatory HTML viewer"),
    "ground": (cmd_ground, "baseline grounding: referring expression -> box, Acc@0.5"),
    "benchmark": (cmd_benchmark, "evaluate dense / refined segmentation on a dataset"),
    "train": (cmd_train, "train Object-Guided CLIP"),
    "evaluate": (cmd_evaluate, "evaluate Object-Guided CLIP retrieval"),
    "train-tiny-clip": (cmd_train_tiny_clip, "retrain the offline tiny-shapes CLIP"),
    "checkpoints": (cmd_checkpoints, "download real-mode weights"),
}


def usage() -> str:
    lines = ["usage: python -m ogclip_utils <command> [options]", "", "commands:"]
    lines += [f"  {n:16s} {h}" for n, (_, h) in COMMANDS.items()]
    lines += ["", "`python -m ogclip_utils <command> --help` shows a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        print(f"unknown command {cmd!r}\n\n{usage()}", file=sys.stderr)
        return 2
    fn, _ = COMMANDS[cmd]
    return int(fn(rest) or 0)
