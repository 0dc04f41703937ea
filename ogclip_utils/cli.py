"""Command line: ``python -m ogclip_utils <command> [options]`` — every command's arguments, in one place.

Each command parses its flags here and calls the package's public functions; ``--help`` on
any command lists its options.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from . import benchmark, data, datasets, dense, detectors, env, explain, grounding, models, og_clip, paths, pipeline
from . import edit as edit_mod
from . import fetch, prompts, refine, tiny_clip, viz, weights
from .og_clip import context_eval, folder, recipe


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
    p.add_argument("--data-dir", default=None, help="dataset folder (default $OGCLIP_CACHE/datasets/<dataset>, else data/benchmarks/<dataset>)")
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
def _og_samples(path: str | None, relational: int, attribute: int, first_seed: int, segmenter_name: str | None):
    """A dataset folder's samples, or the offline context task rendered from ``first_seed``."""

    seg = models.segmenter_by_name(segmenter_name) if segmenter_name else None
    if path:
        return folder.read_folder(path, segmenter=seg)
    samples = (recipe.train_samples(relational, attribute, first_seed, progress=True) if first_seed < og_clip.context.TEST_SEED_BASE
               else recipe.test_samples(relational, attribute, first_seed))
    return og_clip.segmenter_masks(samples, seg) if seg is not None else samples


def cmd_train(argv: list[str] | None = None) -> int:
    """``python -m ogclip_utils train``: train Object-Guided CLIP on the context task (or a dataset folder)."""

    r = recipe.RECIPE
    p = argparse.ArgumentParser(prog="python -m ogclip_utils train", description=cmd_train.__doc__)
    p.add_argument("--data-path", default=None,
                   help="dataset folder with samples.json (og_clip.folder); default: render the offline context task")
    p.add_argument("--val-path", default=None, help="validation folder (default: held-out rendered scenes offline)")
    p.add_argument("--output-dir", default="outputs/og_clip", help="writes og-clip.safetensors and og-clip.history.json")
    p.add_argument("--relational-scenes", type=int, default=r["relational_scenes"])
    p.add_argument("--attribute-scenes", type=int, default=r["attribute_scenes"])
    p.add_argument("--steps", type=int, default=r["steps"])
    p.add_argument("--batch", type=int, default=r["batch"])
    p.add_argument("--lr", type=float, default=r["lr"])
    p.add_argument("--lr-text", type=float, default=r["lr_text"])
    p.add_argument("--lr-tokens", type=float, default=r["lr_tokens"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variant", choices=list(recipe.VARIANTS), default="OG-CLIP (late fusion)",
                   help="an ablation of the full model")
    p.add_argument("--model", default=None, help="CLIP to build on (default: the mode's; tiny-shapes offline)")
    p.add_argument("--segmenter", default=None, help="masks from this segmenter given the points (default: ground truth)")
    p.add_argument("--eval-every", type=int, default=300)
    a = p.parse_args(argv)
    if a.steps < 1 or a.batch < 2:
        p.error("--steps must be ≥ 1 and --batch ≥ 2")
    out = Path(a.output_dir)
    if (out / "og-clip.safetensors").exists():
        p.error(f"{out / 'og-clip.safetensors'} exists; choose another --output-dir (nothing was overwritten)")
    try:
        train = _og_samples(a.data_path, a.relational_scenes, a.attribute_scenes, og_clip.context.TRAIN_SEED_BASE + a.seed * 0,
                            a.segmenter)
        val = _og_samples(a.val_path, 200, 150, og_clip.context.TEST_SEED_BASE + 2_000_000, a.segmenter) \
            if (a.val_path or not a.data_path) else None
    except (FileNotFoundError, folder.FolderError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    clip = models.clip_by_name(a.model)
    cfg = og_clip.GuidedConfig(**recipe.VARIANTS[a.variant])
    full = cfg.fusion == "early"
    dtr = og_clip.prepare_data(train, clip, tokens=not full, full=full, progress=True)
    dval = og_clip.prepare_data(val, clip, tokens=not full, full=full) if val else None
    st = og_clip.TrainSettings(steps=a.steps, batch=min(a.batch, len(train)), lr=a.lr, lr_text=a.lr_text,
                               lr_tokens=a.lr_tokens, seed=a.seed, eval_every=a.eval_every)
    run = recipe.train_run(clip, dtr, dval, cfg, st)
    path = recipe.save_run(run, out, variant=a.variant, data=a.data_path or "offline context task",
                           scenes=len(train))
    last = run.history.rows[-1] if run.history.rows else {}
    print(f"{a.variant}: {run.minutes:.1f} min; validation within-scene "
          + ", ".join(f"{k} {100 * v:.1f} %" for k, v in last.items() if k in ("relational", "attribute"))
          + f"; saved {path}")
    return 0


def cmd_ablate(argv: list[str] | None = None) -> int:
    """``python -m ogclip_utils ablate``: train every ablation of ``og_clip.VARIANTS`` and write their table."""

    p = argparse.ArgumentParser(prog="python -m ogclip_utils ablate", description=cmd_ablate.__doc__)
    p.add_argument("--steps", type=int, default=300, help="training steps per variant (the recipe's schedule, shortened)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variant", action="append", choices=list(recipe.VARIANTS), default=None,
                   help="only this variant (repeatable; default: all)")
    p.add_argument("--relational-scenes", type=int, default=recipe.RECIPE["relational_scenes"])
    p.add_argument("--attribute-scenes", type=int, default=recipe.RECIPE["attribute_scenes"])
    p.add_argument("--output-dir", default="outputs/og_clip_ablations",
                   help=f"writes {recipe.ABLATIONS} (the committed one is in checkpoints/)")
    a = p.parse_args(argv)
    if a.steps < 1 or a.relational_scenes < 1 or a.attribute_scenes < 1:
        p.error("--steps, --relational-scenes and --attribute-scenes must be ≥ 1")
    out = Path(a.output_dir)
    if (out / recipe.ABLATIONS).exists():
        p.error(f"{out / recipe.ABLATIONS} exists; choose another --output-dir (nothing was overwritten)")
    out.mkdir(parents=True, exist_ok=True)
    result = recipe.ablate(a.steps, a.seed, a.variant, (a.relational_scenes, a.attribute_scenes))
    path = recipe.save_ablations(result, out)
    table, _ = recipe.load_ablations(path)
    print(table.format())
    print(f"saved {path}")
    return 0


def cmd_evaluate(argv: list[str] | None = None) -> int:
    """``python -m ogclip_utils evaluate``: a checkpoint against the frozen-CLIP baselines on held-out samples."""

    p = argparse.ArgumentParser(prog="python -m ogclip_utils evaluate", description=cmd_evaluate.__doc__)
    p.add_argument("--checkpoint", default=str(paths.CHECKPOINT_DIR / og_clip.guided.PRETRAINED))
    p.add_argument("--data-path", default=None, help="dataset folder (default: the held-out rendered scenes)")
    p.add_argument("--relational-scenes", type=int, default=recipe.TEST_SCENES["relational"])
    p.add_argument("--attribute-scenes", type=int, default=recipe.TEST_SCENES["attribute"])
    p.add_argument("--segmenter", default=None,
                   help="turn each object's points into its mask with this segmenter (classical, sam2.1-hiera-*) and "
                        "report mask quality; default: the ground-truth masks")
    p.add_argument("--baselines", nargs="*", default=list(context_eval.BASELINES), choices=context_eval.BASELINES)
    p.add_argument("--seed", type=int, default=0, help="gallery order and tie-breaking")
    p.add_argument("--json", default=None, help="also write the reports here")
    a = p.parse_args(argv)
    try:
        model = og_clip.load_guided(a.checkpoint)
        samples = _og_samples(a.data_path, a.relational_scenes, a.attribute_scenes, og_clip.context.TEST_SEED_BASE,
                              a.segmenter)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    table = recipe.baseline_table(model.bundle, samples, a.baselines, seed=a.seed)
    recipe.evaluate_run([model], og_clip.prepare_data(samples, model), f"OG-CLIP ({Path(a.checkpoint).name})",
                        seed=a.seed, table=table)
    kinds = {k: sum(s.kind == k for s in samples) for k in og_clip.KINDS}
    print(f"{len(samples)} captions ({kinds['relational']} relational, {kinds['attribute']} attribute); "
          f"masks: {samples[0].mask_source}; CLIP {model.bundle.name}")
    print(table.format())
    quality = context_eval.mask_quality(samples)
    if quality is not None:
        print(f"mask quality ({a.segmenter}): mean IoU {100 * quality['mask_iou']:.1f} %, "
              f"objects localised (box IoU ≥ 0.5) {100 * quality['box_acc50']:.1f} %")
    if a.json:
        Path(a.json).write_text(json.dumps({"table": {k: [r.as_dict() for r in v] for k, v in table.reports.items()},
                                            "mask_quality": quality, "checkpoint": a.checkpoint}, indent=1))
    return 0


def cmd_export_context(argv: list[str] | None = None) -> int:
    """``python -m ogclip_utils export-context``: write held-out context-task scenes as a dataset folder."""

    p = argparse.ArgumentParser(prog="python -m ogclip_utils export-context", description=cmd_export_context.__doc__)
    p.add_argument("--out", required=True, help="new folder (samples.json, images/, masks/)")
    p.add_argument("--relational-scenes", type=int, default=40)
    p.add_argument("--attribute-scenes", type=int, default=20)
    p.add_argument("--first-seed", type=int, default=og_clip.context.TEST_SEED_BASE)
    a = p.parse_args(argv)
    try:
        path = folder.write_folder(recipe.test_samples(a.relational_scenes, a.attribute_scenes, a.first_seed), a.out)
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
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
    def mb(ck) -> str:
        return "size unknown" if ck.approx_mb is None else f"~{ck.approx_mb:,.0f} MB"

    if a.list:
        for ck in weights.REGISTRY.values():
            path = paths.cache_dir("checkpoints") / ck.filename
            print(f"{ck.name:28s} {'on disk' if path.exists() else 'missing':8s} {mb(ck):>11s}  {ck.url}")
        return 0
    todo = [weights.entry(n) for n in a.names]
    todo = [ck for ck in todo if ck.kind != "inpainting" and not weights.checkpoint_path(ck.name).exists()]
    if todo:
        total = sum(ck.approx_mb or 0 for ck in todo)
        print(f"to download into {paths.cache_dir('checkpoints')}: " + ", ".join(f"{ck.name} ({mb(ck)})" for ck in todo)
              + f"; about {total:,.0f} MB at most (sizes from parameter counts at 4 bytes each)")
    for n in a.names:
        ck = weights.entry(n)
        if ck.kind == "inpainting":
            print(f"{n}: fetched by diffusers on first use (see edit.py); skipping")
            continue
        print(f"{n} -> {weights.download(n)}")
    return 0

def cmd_datasets(argv: list[str] | None = None) -> int:
    """``python -m ogclip_utils datasets NAME [--images N] [--list]``: download a real dataset subset."""
    p = argparse.ArgumentParser(prog="python -m ogclip_utils datasets",
                                description="Download a real dataset (or a fixed subset of it) into $OGCLIP_CACHE/datasets.")
    p.add_argument("name", nargs="?", choices=sorted(fetch.FETCHERS), help="what to fetch")
    p.add_argument("--images", type=int, default=200, help="how many images (default 200)")
    p.add_argument("--list", action="store_true", help="list what can be fetched")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    if a.list or not a.name:
        for n, (_, what) in fetch.FETCHERS.items():
            print(f"{n:14s} {what}")
        print("PASCAL VOC, COCO-Stuff and RefCOCOg are not fetched for you (2-13 GB): "
              "`python -m ogclip_utils benchmark --dataset pascal-voc` prints where to put them.")
        return 0
    if a.images < 1:
        p.error(f"--images must be at least 1, got {a.images}")
    try:
        fetch.FETCHERS[a.name][0](images=a.images, progress=not a.no_progress)
    except weights.CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


COMMANDS: dict[str, tuple] = {
    # name: (function, one-line help)
    "segment": (cmd_segment, "segment / edit one image with a vocabulary"),
    "explain": (cmd_explain, "write the 18-step explanatory HTML viewer"),
    "ground": (cmd_ground, "baseline grounding: referring expression -> box, Acc@0.5"),
    "benchmark": (cmd_benchmark, "evaluate dense / refined segmentation on a dataset"),
    "train": (cmd_train, "train Object-Guided CLIP (context task or a dataset folder)"),
    "ablate": (cmd_ablate, "train every Object-Guided CLIP ablation and write their table"),
    "evaluate": (cmd_evaluate, "Object-Guided CLIP against the frozen-CLIP baselines"),
    "export-context": (cmd_export_context, "write context-task scenes as a dataset folder"),
    "train-tiny-clip": (cmd_train_tiny_clip, "retrain the offline tiny-shapes CLIP"),
    "checkpoints": (cmd_checkpoints, "download real-mode weights"),
    "datasets": (cmd_datasets, "download real data (a COCO val2017 subset) into the cache"),
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
