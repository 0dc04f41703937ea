"""The 18-step explainer: one segmentation shown step by step as figures, data and a small HTML viewer.

``explain(result, output)`` turns one :class:`pipeline.SegmentationResult` into

- ``steps/01_raw_image.png … 18_comparison_grid.png`` — one figure per pipeline step;
- ``index.html`` — a one-page viewer (step buttons, previous/next, ← → keys, a description per
  step, per-class statistics, the parameters used); every user string is HTML-escaped;
- ``per_class/class_<i>_<safe name>.png`` with ``per_class_details=True``;
- ``data/confidences.npy`` (float32 C×H×W), ``data/prompts.json``, ``data/statistics.json``.

Colours come from :func:`viz.palette` (golden-ratio hues): class ``k`` has one colour in every figure.
The explainer only *reads* the result; it never re-runs a stage.
"""
from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from . import viz
from .paths import safe_name
from .pipeline import target_mask  # noqa: F401  (old import path: explain.target_mask)

GRID_SIDE = 64  # the blind-grid baseline the query count is compared with (64×64 points)

#: (file slug, title, description) of the 18 steps, in order.
STEPS: list[tuple[str, str, str]] = [
    ("raw_image", "Raw image", "The input image, as loaded (uint8 RGB). Everything that follows is computed from it and the vocabulary."),
    ("text_prompts", "Text prompts", "Each vocabulary entry becomes one class; synonyms ('a, b') become extra text queries whose best "
     "similarity counts for the class. Every query is wrapped in prompt templates and encoded by CLIP's text tower."),
    ("sclip_patches", "SCLIP sliding-window patches", "The image is cut into overlapping windows of the model's input size "
     "(stride half of it). Each window is encoded once; overlapping predictions are averaged."),
    ("similarity", "Visual–text similarity", "Cosine similarity between every patch feature (SCLIP's correlative self-attention "
     "in the last block) and each class's text embedding, before the logit scale and softmax."),
    ("confidence_maps", "Per-class confidence maps", "Softmax over classes of logit_scale × cosine: the probability of each class "
     "at every pixel (the most likely classes are shown)."),
    ("dense_prediction", "Dense prediction", "The argmax class per pixel — SCLIP's training-free segmentation. Boundaries are "
     "blocky because CLIP sees patches, not pixels."),
    ("prediction_confidences", "Prediction confidences", "Left: the best probability per pixel. Middle: pixels below "
     "min_confidence (red) — where CLIP is unsure. Right: class colours with opacity proportional to confidence."),
    ("thresholding", "Confidence thresholding", "Pixels whose best probability is at least min_confidence keep their class; "
     "the rest (and skipped classes such as background) are dropped."),
    ("connected_components", "Connected components", "Each class's confident pixels are split into 8-connected regions; "
     "every region is a candidate object."),
    ("size_filter", "Minimum region size", "Regions smaller than min_region_size pixels are dropped as noise (left: before, right: after)."),
    ("positive_prompts", "Positive point prompts", "Points guaranteed inside each region (the centroid when it lies inside, "
     "else the most interior pixel; more points by farthest-point sampling)."),
    ("negative_prompts", "Negative point prompts", "Points on other classes' confident pixels, away from the region, that tell the "
     "segmenter what the object is not."),
    ("all_prompts", "All prompts", "Everything the segmenter is asked: green stars are positive, red crosses negative points. "
     "One query per region — instead of a blind grid of points."),
    ("candidates", "Segmenter candidates", "For every prompt the segmenter returns three nested masks (small, medium, large) "
     "with a quality score."),
    ("mask_selection", "Best-mask selection", "The candidate kept for each prompt (highest score, or best agreement with the CLIP region)."),
    ("overlap_resolution", "Overlap resolution", "Left: the chosen masks before resolution (white = pixels claimed more than once). "
     "Right: duplicates merged, each contested pixel given to the more confident mask."),
    ("final_segmentation", "Final segmentation", "The refined label map: segmenter boundaries, CLIP names."),
    ("comparison_grid", "Comparison", "Raw image | SCLIP dense prediction | confidences | final refined segmentation."),
]


# ----------------------------------------------------------------------------- helpers
def _mpl_text(s: str) -> str:
    """Escape a user string for matplotlib text ('$' would start mathtext)."""
    return str(s).replace("$", r"\$")


def _first(objs: Sequence[object], *names: str, default=None):
    for o in objs:
        if o is None:
            continue
        for n in names:
            v = getattr(o, n, None)
            if v is not None:
                return v
    return default


@dataclass
class View:
    """Everything the explainer draws, gathered from a ``SegmentationResult``."""

    image: np.ndarray
    classes: list[str]
    probs: np.ndarray  # C×H×W float32
    logits: np.ndarray | None  # Q×H×W cosine similarities
    queries: list[str]
    query_to_class: np.ndarray
    windows: list
    logit_scale: float
    argmax: np.ndarray
    max_prob: np.ndarray
    thresholded: np.ndarray  # int H×W, -1 = dropped
    components: np.ndarray
    kept: np.ndarray
    component_class: list[int]
    prompts: list
    candidates: list
    before: list
    instances: list
    label_map: np.ndarray
    num_queries: int
    timings: dict
    params: dict = field(default_factory=dict)
    templates: list[str] = field(default_factory=list)


def view_of(result, image: np.ndarray | None = None, params: dict | None = None) -> View:
    """Collect the explainer's inputs from a ``pipeline.SegmentationResult`` (or anything with
    the same attributes: ``dense``, the prompt extraction, ``candidates``, ``instances``, …)."""
    dense = getattr(result, "dense", None)
    if dense is None or getattr(dense, "probs", None) is None:
        raise ValueError("result has no dense probabilities (.dense.probs); pass a pipeline.SegmentationResult")
    ext = _first([result], "extraction", "prompt_extraction")
    if ext is None and hasattr(getattr(result, "prompts", None), "thresholded"):
        ext = result.prompts
    refined = _first([result], "refined")
    srcs = [result, ext, refined]
    img = image if image is not None else _first([result], "image")
    if img is None:
        raise ValueError("the result carries no image; pass image=")
    probs = np.asarray(dense.probs, np.float32)
    classes = [str(c) for c in (getattr(dense, "classes", None) or [f"class {i}" for i in range(len(probs))])]
    argmax = np.asarray(_first([ext], "argmax", default=probs.argmax(0)))
    max_prob = np.asarray(_first([ext], "max_prob", default=probs.max(0)))
    thr = _first([result, ext], "thresholded")
    comps = _first([result, ext], "components")
    kept = _first([result, ext], "kept", "size_filtered")
    if thr is None or comps is None or kept is None:
        raise ValueError("result lacks the prompt-extraction intermediates (thresholded, components, kept)")
    prompts = list(_first([ext, result], "prompts", default=[]))
    cands = list(_first([result, refined], "candidates", default=[]))
    before = list(_first([result, refined], "before_overlap", default=[]))
    inst = list(_first([result, refined], "instances", default=[]))
    lm = np.asarray(_first([result, refined], "label_map"))
    p = dict(_first([result], "params", default={}) or {})
    p.update(params or {})
    return View(
        image=np.asarray(img), classes=classes, probs=probs,
        logits=None if getattr(dense, "logits", None) is None else np.asarray(dense.logits, np.float32),
        queries=list(getattr(dense, "queries", classes)), query_to_class=np.asarray(getattr(dense, "query_to_class", np.arange(len(classes)))),
        windows=list(getattr(dense, "windows", []) or []), logit_scale=float(getattr(dense, "logit_scale", 40.0)),
        argmax=argmax, max_prob=max_prob, thresholded=np.asarray(thr), components=np.asarray(comps), kept=np.asarray(kept),
        component_class=list(_first([ext, result], "component_class", default=[])),
        prompts=prompts, candidates=cands, before=before, instances=inst, label_map=lm,
        num_queries=int(_first(srcs, "num_queries", default=len(cands))),
        timings=dict(_first([result], "timings", default={}) or {}), params=p,
        templates=list(_first([result, dense], "templates", default=[]) or []),
    )


# ----------------------------------------------------------------------------- statistics and data
def statistics(v: View) -> dict:
    """Per class: regions (size-filtered components), prompts, final pixels, mean confidence
    (mean best probability where the dense argmax is the class); plus totals."""
    kept_ids = [int(i) for i in np.unique(v.kept) if i > 0]
    per = []
    for c, name in enumerate(v.classes):
        regions = sum(1 for i in kept_ids if (v.component_class[i - 1] if i - 1 < len(v.component_class)
                                              else int(np.bincount(v.argmax[v.kept == i]).argmax())) == c)
        sel = v.argmax == c
        per.append({"id": c, "name": name, "regions": int(regions),
                    "prompts": int(sum(1 for p in v.prompts if int(p.class_id) == c)),
                    "pixels": int((v.label_map == c).sum()),
                    "dense_pixels": int(sel.sum()),
                    "mean_confidence": round(float(v.max_prob[sel].mean()), 4) if sel.any() else None})
    H, W = v.label_map.shape
    return {"image_size": [int(H), int(W)], "classes": per, "num_prompts": len(v.prompts),
            "num_queries": v.num_queries, "grid_queries": GRID_SIDE * GRID_SIDE,
            "num_instances": len(v.instances), "timings": {k: round(float(t), 4) for k, t in v.timings.items()},
            "params": {k: (x if isinstance(x, (int, float, str, bool, type(None))) else str(x)) for k, x in v.params.items()}}


def prompts_json(v: View) -> list[dict]:
    out = []
    for i, p in enumerate(v.prompts):
        c = int(p.class_id)
        out.append({"index": i, "class_id": c, "class_name": v.classes[c] if c < len(v.classes) else str(c),
                    "points": np.asarray(p.points, float).round(2).tolist(), "labels": np.asarray(p.labels).astype(int).tolist(),
                    "confidence": round(float(p.confidence), 4), "area": int(np.asarray(p.region).sum())})
    return out


# ----------------------------------------------------------------------------- figures
def _fig(ncols: int = 1, nrows: int = 1, size: float = 3.6, title: str | None = None):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.4 if title else 0)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    if title:
        fig.suptitle(_mpl_text(title), fontsize=11)
    return fig, axes


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _legend(ax, v: View, ids) -> None:
    ids = [int(i) for i in ids if 0 <= int(i) < len(v.classes)]
    if ids:
        handles = viz.legend_patches([_mpl_text(n) for n in v.classes], ids)
        ax.legend(handles=handles, fontsize=7, loc="lower left", framealpha=0.8)


def _top_classes(v: View, k: int = 8) -> list[int]:
    score = v.probs.reshape(len(v.probs), -1).max(1)
    return [int(i) for i in np.argsort(-score, kind="stable")[:k]]


def _colour_ids(ids: np.ndarray, n: int) -> np.ndarray:
    """H×W×3 colours for arbitrary region ids (0 black), stable per id."""
    pal = viz.palette(max(int(n) + 2, 3))
    out = pal[np.clip(ids, 0, len(pal) - 1) + 1]
    out[ids <= 0] = 0
    return out


def _class_img(v: View, lm: np.ndarray) -> np.ndarray:
    out = viz.colorize(np.where(lm < 0, 0, lm), len(v.classes))
    out[lm < 0] = 0
    return out


def _masks_overlay(v: View, items, alpha: float = 0.55) -> np.ndarray:
    img = v.image.astype(np.float32).copy()
    pal = viz.palette(max(len(v.classes), 2))
    for it in items:
        m = np.asarray(it.mask, bool)
        img[m] = img[m] * (1 - alpha) + pal[int(it.class_id) % len(pal)] * alpha
    return img.round().astype(np.uint8)


def render_steps(v: View, out_dir: Path) -> list[Path]:
    """Write the 18 step figures into ``out_dir`` (created); return their paths in order."""
    import matplotlib.pyplot as plt  # figures are saved and closed: any backend works (no backend switch,
    # which would silence a notebook's inline figures)

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    names = [f"{i + 1:02d}_{s[0]}.png" for i, s in enumerate(STEPS)]
    pal = viz.palette(max(len(v.classes), 2))
    p = v.params
    min_conf = p.get("min_confidence")
    present = sorted({int(c) for c in np.unique(v.argmax)})

    # 1 raw image
    fig, ax = _fig(title=f"Raw image ({v.image.shape[1]}×{v.image.shape[0]})")
    ax[0, 0].imshow(v.image)
    paths.append(_save(fig, out_dir / names[0]))

    # 2 text prompts
    import matplotlib.pyplot as plt  # noqa: F811

    n = len(v.classes)
    fig = plt.figure(figsize=(7, max(2.5, 0.32 * (n + 6))))
    ax = fig.add_subplot(111)
    ax.axis("off")
    ax.set_title("Vocabulary → text queries → prompt templates", fontsize=11)
    rows = len(v.classes) + 4
    for c, name in enumerate(v.classes):
        syn = [q for q, k in zip(v.queries, v.query_to_class) if int(k) == c]
        y = 1 - (c + 1) / rows
        ax.add_patch(plt.Rectangle((0.0, y - 0.015), 0.03, 0.03, color=pal[c] / 255, transform=ax.transAxes))
        ax.text(0.05, y, _mpl_text(f"{c}: {name}" + (f"   (queries: {', '.join(syn)})" if syn and syn != [name] else "")),
                transform=ax.transAxes, fontsize=8, va="center")
    tpl = v.templates[:3] or ["(the model's default templates)"]
    first = v.queries[0] if v.queries else ""
    ax.text(0.0, 1.5 / rows, _mpl_text("templates: " + " | ".join(t.replace("{}", first) if "{}" in t else t for t in tpl)
                                     + (f"  … ({len(v.templates)} in all)" if len(v.templates) > 3 else "")),
            transform=ax.transAxes, fontsize=8, va="center", style="italic")
    paths.append(_save(fig, out_dir / names[1]))

    # 3 sliding windows
    fig, ax = _fig(title=f"Sliding windows: {len(v.windows)}")
    ax[0, 0].imshow(v.image)
    for k, b in enumerate(v.windows):
        viz.show_box(ax[0, 0], b, color=("yellow", "cyan", "magenta", "lime")[k % 4], lw=1.2)
    paths.append(_save(fig, out_dir / names[2]))

    # 4 similarity (cosine, best synonym per class) and 5 confidence maps
    top = _top_classes(v)
    if v.logits is not None and len(v.logits) == len(v.query_to_class):
        cos = np.stack([v.logits[v.query_to_class == c].max(0) if (v.query_to_class == c).any() else np.zeros(v.logits.shape[1:])
                        for c in range(len(v.classes))])
        lo, hi = float(cos[top].min()), float(cos[top].max())
        label = "cosine similarity"
    else:  # without raw similarities: log p / scale = cosine − per-pixel constant
        cos = np.log(np.clip(v.probs, 1e-8, 1)) / v.logit_scale
        lo, hi = float(cos[top].min()), 0.0
        label = "log p / logit_scale (cosine up to a per-pixel constant)"
    for step, maps, vmin, vmax, cmap, what in ((3, cos, lo, hi, "magma", label), (4, v.probs, 0.0, 1.0, "viridis", "probability")):
        k = len(top)
        ncols = min(4, k)
        fig, axes = _fig(ncols, int(np.ceil(k / ncols)), size=2.4, title=f"{STEPS[step][1]} ({what})")
        for j, c in enumerate(top):
            a = axes.flat[j]
            im = a.imshow(maps[c], cmap=cmap, vmin=vmin, vmax=vmax)
            a.set_title(_mpl_text(v.classes[c][:28]), fontsize=8, color=pal[c] / 255 if c else "black")
        fig.colorbar(im, ax=list(axes.flat), fraction=0.03)
        fig.savefig(out_dir / names[step], dpi=90)
        plt.close(fig)
        paths.append(out_dir / names[step])

    # 6 dense prediction
    fig, ax = _fig(2, title="SCLIP dense prediction (argmax)")
    ax[0, 0].imshow(viz.colorize(v.argmax, len(v.classes)))
    ax[0, 1].imshow(viz.overlay(v.image, v.argmax, num_classes=len(v.classes)))
    _legend(ax[0, 1], v, present[:12])
    paths.append(_save(fig, out_dir / names[5]))

    # 7 prediction confidences
    fig, ax = _fig(3, title=f"Confidences (min_confidence = {min_conf})")
    im = ax[0, 0].imshow(v.max_prob, cmap="viridis", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax[0, 0], fraction=0.046)
    ax[0, 0].set_title("best probability", fontsize=9)
    unsure = v.max_prob < (min_conf if min_conf is not None else 0.5)
    ax[0, 1].imshow(viz.mask_overlay(v.image, unsure, color=(230, 30, 30), alpha=0.6))
    ax[0, 1].set_title(f"uncertain: {100 * unsure.mean():.1f}% of pixels", fontsize=9)
    col = viz.colorize(v.argmax, len(v.classes)).astype(np.float32)
    a = v.max_prob[..., None]
    ax[0, 2].imshow((v.image * (1 - a) + col * a).round().astype(np.uint8))
    ax[0, 2].set_title("colour weighted by confidence", fontsize=9)
    paths.append(_save(fig, out_dir / names[6]))

    # 8 thresholding
    fig, ax = _fig(2, title=f"Thresholding at min_confidence = {min_conf}")
    ax[0, 0].imshow(_class_img(v, v.thresholded))
    ax[0, 0].set_title(f"kept: {100 * (v.thresholded >= 0).mean():.1f}% of pixels", fontsize=9)
    ax[0, 1].imshow(viz.mask_overlay(v.image, v.thresholded >= 0, color=(255, 255, 255), alpha=0.45))
    _legend(ax[0, 0], v, sorted({int(c) for c in np.unique(v.thresholded) if c >= 0})[:12])
    paths.append(_save(fig, out_dir / names[7]))

    # 9 connected components
    ncomp = int(v.components.max()) if v.components.size else 0
    fig, ax = _fig(title=f"Connected components: {ncomp}")
    ax[0, 0].imshow(_colour_ids(v.components, ncomp))
    paths.append(_save(fig, out_dir / names[8]))

    # 10 size filter
    nkept = len([i for i in np.unique(v.kept) if i > 0])
    fig, ax = _fig(2, title=f"min_region_size = {p.get('min_region_size')}: {ncomp} → {nkept} regions")
    ax[0, 0].imshow(_colour_ids(v.components, ncomp))
    ax[0, 0].set_title("before", fontsize=9)
    ax[0, 1].imshow(_colour_ids(v.kept, ncomp))
    ax[0, 1].set_title("after", fontsize=9)
    paths.append(_save(fig, out_dir / names[9]))

    # 11, 12, 13 prompts
    npos = sum(int((np.asarray(q.labels) == 1).sum()) for q in v.prompts)
    nneg = sum(int((np.asarray(q.labels) == 0).sum()) for q in v.prompts)
    for step, which, title in ((10, 1, f"Positive points: {npos}"), (11, 0, f"Negative points: {nneg}"),
                               (12, None, f"All prompts: {npos} positive, {nneg} negative, {len(v.prompts)} queries")):
        fig, ax = _fig(title=title)
        base = v.image.copy()
        if which == 1:
            base = _masks_overlay(v, [type("R", (), {"mask": q.region, "class_id": q.class_id}) for q in v.prompts], 0.35)
        ax[0, 0].imshow(base)
        for q in v.prompts:
            pts, lab = np.asarray(q.points, float).reshape(-1, 2), np.asarray(q.labels).reshape(-1)
            sel = np.ones(len(lab), bool) if which is None else lab == which
            if sel.any():
                viz.show_points(ax[0, 0], pts[sel], lab[sel], size=90)
        paths.append(_save(fig, out_dir / names[step]))

    # 14 candidates
    shown = v.candidates[:6]
    k = max((len(c.masks) for c in shown), default=3)
    fig, axes = _fig(k, max(1, len(shown)), size=2.2, title=f"Candidates (first {len(shown)} of {len(v.candidates)} prompts)")
    for r, cand in enumerate(shown):
        q = v.prompts[cand.prompt_index] if 0 <= cand.prompt_index < len(v.prompts) else None
        for j in range(len(cand.masks)):
            a = axes[r, j]
            a.imshow(viz.mask_overlay(v.image, cand.masks[j], color=pal[int(cand.class_id) % len(pal)]))
            if q is not None:
                viz.show_points(a, q.points, q.labels, size=40)
            star = " ✓" if j == cand.chosen else ""
            a.set_title(f"prompt {cand.prompt_index} · #{j}: {float(cand.scores[j]):.3f}{star}", fontsize=8,
                        color="green" if j == cand.chosen else "black")
    paths.append(_save(fig, out_dir / names[13]))

    # 15 best masks
    chosen = [type("C", (), {"mask": c.masks[c.chosen], "class_id": c.class_id}) for c in v.candidates if c.chosen >= 0]
    fig, ax = _fig(title=f"Chosen masks: {len(chosen)} of {len(v.candidates)} prompts")
    ax[0, 0].imshow(_masks_overlay(v, chosen))
    paths.append(_save(fig, out_dir / names[14]))

    # 16 overlap resolution
    claims = sum((np.asarray(b.mask, bool).astype(int) for b in v.before), np.zeros(v.label_map.shape, int))
    fig, ax = _fig(2, title=f"Overlap resolution: {len(v.before)} masks → {len(v.instances)} instances")
    left = _masks_overlay(v, v.before)
    left[claims > 1] = 255
    ax[0, 0].imshow(left)
    ax[0, 0].set_title(f"before ({int((claims > 1).sum())} contested px)", fontsize=9)
    ax[0, 1].imshow(_masks_overlay(v, v.instances))
    ax[0, 1].set_title("after", fontsize=9)
    paths.append(_save(fig, out_dir / names[15]))

    # 17 final
    final_ids = sorted({int(c) for c in np.unique(v.label_map)})
    fig, ax = _fig(2, title="Final segmentation")
    ax[0, 0].imshow(viz.colorize(v.label_map, len(v.classes)))
    ax[0, 1].imshow(viz.overlay(v.image, v.label_map, num_classes=len(v.classes)))
    _legend(ax[0, 1], v, final_ids[:12])
    paths.append(_save(fig, out_dir / names[16]))

    # 18 comparison
    fig, ax = _fig(4, size=3.0, title=f"Comparison — {v.num_queries} segmenter queries (a {GRID_SIDE}×{GRID_SIDE} grid: {GRID_SIDE ** 2})")
    for a, im, t in zip(ax[0], (v.image, viz.overlay(v.image, v.argmax, num_classes=len(v.classes)), v.max_prob,
                                 viz.overlay(v.image, v.label_map, num_classes=len(v.classes))),
                        ("raw", "SCLIP", "confidences", "final")):
        a.imshow(im, cmap="viridis" if im.ndim == 2 else None, vmin=0 if im.ndim == 2 else None, vmax=1 if im.ndim == 2 else None)
        a.set_title(t, fontsize=9)
    paths.append(_save(fig, out_dir / names[17]))
    return paths


def render_per_class(v: View, out_dir: Path) -> list[Path]:
    """``class_<i>_<safe name>.png`` for every class the dense map or the final map contains."""

    out_dir.mkdir(parents=True, exist_ok=True)
    pal = viz.palette(max(len(v.classes), 2))
    paths = []
    ids = sorted({int(c) for c in np.unique(v.argmax)} | {int(c) for c in np.unique(v.label_map)})
    for c in ids:
        if not 0 <= c < len(v.classes):
            continue
        fig, ax = _fig(4, 2, size=2.4, title=f"class {c}: {v.classes[c]}")
        ax[0, 0].imshow(v.probs[c], cmap="viridis", vmin=0, vmax=1)
        ax[0, 0].set_title("confidence", fontsize=8)
        ax[0, 1].imshow(_colour_ids(np.where(v.thresholded == c, v.components, 0), int(v.components.max())))
        ax[0, 1].set_title("components", fontsize=8)
        ax[0, 2].imshow(viz.mask_overlay(v.image, (v.kept > 0) & (v.thresholded == c), color=pal[c]))
        ax[0, 2].set_title("filtered regions", fontsize=8)
        ax[0, 3].imshow(v.image)
        for q in v.prompts:
            if int(q.class_id) == c:
                viz.show_points(ax[0, 3], q.points, q.labels, size=50)
        ax[0, 3].set_title("prompts", fontsize=8)
        cands = [cd for cd in v.candidates if int(cd.class_id) == c][:2]
        for j, cd in enumerate(cands):
            union = np.zeros(v.label_map.shape, float)
            for m in cd.masks:
                union += np.asarray(m, float)
            ax[1, j].imshow(union, cmap="gray", vmin=0, vmax=max(1, len(cd.masks)))
            ax[1, j].set_title(f"candidates (prompt {cd.prompt_index})", fontsize=8)
        ax[1, 2].imshow(viz.mask_overlay(v.image, v.label_map == c, color=pal[c]))
        ax[1, 2].set_title(f"final mask: {int((v.label_map == c).sum())} px", fontsize=8)
        hax = ax[1, 3]
        hax.axis("on")
        hax.hist(v.probs[c].ravel(), bins=20, range=(0, 1), color=pal[c] / 255)
        hax.set_title("confidence histogram", fontsize=8)
        hax.tick_params(labelsize=6)
        paths.append(_save(fig, out_dir / f"class_{c}_{safe_name(v.classes[c])}.png"))
    return paths


# ----------------------------------------------------------------------------- HTML
_CSS = """
body{font-family:system-ui,sans-serif;margin:0;background:#f4f5f7;color:#222}
header{background:#223;color:#fff;padding:12px 20px}header h1{margin:0;font-size:1.3em}
main{display:flex;flex-wrap:wrap;gap:16px;padding:16px}
#viewer{flex:3 1 520px;min-width:0}#side{flex:1 1 260px;min-width:0}
nav#steps{display:flex;flex-wrap:wrap;gap:4px;margin-bottom:10px}
nav#steps button{min-width:2.4em;padding:4px 6px;border:1px solid #99a;background:#fff;border-radius:4px;cursor:pointer}
nav#steps button.active{background:#3465a4;color:#fff;border-color:#3465a4}
section.step{display:none;background:#fff;border-radius:6px;padding:12px;box-shadow:0 1px 3px #0002}
section.step.active{display:block}section.step img{max-width:100%;height:auto}
.controls{display:flex;justify-content:space-between;margin-top:10px}
.controls button{padding:6px 14px}
table{border-collapse:collapse;width:100%;background:#fff;font-size:.85em;margin-bottom:12px}
td,th{border:1px solid #ccd;padding:3px 6px;text-align:left;word-break:break-word}
.swatch{display:inline-block;width:.9em;height:.9em;margin-right:4px;vertical-align:middle;border:1px solid #0003}
"""

_JS = """
(function(){
  var steps=document.querySelectorAll('section.step'), buttons=document.querySelectorAll('nav#steps button');
  var current=0;
  function show(i){
    if(i<0||i>=steps.length)return; current=i;
    steps.forEach(function(s,k){s.classList.toggle('active',k===i);});
    buttons.forEach(function(b,k){b.classList.toggle('active',k===i);});
    document.getElementById('counter').textContent=(i+1)+' / '+steps.length;
  }
  buttons.forEach(function(b,k){b.addEventListener('click',function(){show(k);});});
  document.getElementById('prev').addEventListener('click',function(){show(current-1);});
  document.getElementById('next').addEventListener('click',function(){show(current+1);});
  document.addEventListener('keydown',function(e){
    if(e.key==='ArrowRight'){show(current+1);}else if(e.key==='ArrowLeft'){show(current-1);}
  });
  show(0);
})();
"""


def _fmt_conf(x) -> str:
    return "–" if x is None else f"{x:.3f}"


def write_html(path: Path, step_files: Sequence[Path], stats: dict, title: str, per_class: Sequence[Path] = ()) -> Path:
    """The one-page viewer. Every user-supplied string (title, class names, parameters) goes
    through ``html.escape``; image paths are relative to ``path``'s folder."""
    e = html.escape
    pal = viz.palette(max(len(stats["classes"]), 2))
    root = path.parent
    buttons = "".join(f'<button type="button" data-step="{i + 1}" title="{e(t)}">{i + 1}</button>'
                      for i, (_, t, _) in enumerate(STEPS))
    sections = []
    for i, ((_, t, d), f) in enumerate(zip(STEPS, step_files)):
        rel = Path(f).resolve().relative_to(root.resolve()).as_posix()
        sections.append(f'<section class="step" id="step-{i + 1}"><h2>Step {i + 1}: {e(t)}</h2>'
                        f'<p class="description">{e(d)}</p><img src="{e(rel)}" alt="{e(t)}"></section>')
    rows = "".join(
        f'<tr><td><span class="swatch" style="background:rgb{tuple(int(x) for x in pal[c["id"]])}"></span>'
        f'<span class="class-name">{e(c["name"])}</span></td><td>{c["regions"]}</td><td>{c["prompts"]}</td>'
        f'<td>{c["pixels"]}</td><td>{_fmt_conf(c["mean_confidence"])}</td></tr>'
        for c in stats["classes"])
    params = "".join(f"<tr><td>{e(str(k))}</td><td>{e(str(x))}</td></tr>" for k, x in stats["params"].items())
    timings = "".join(f"<tr><td>{e(str(k))}</td><td>{x:.3f} s</td></tr>" for k, x in stats["timings"].items())
    details = "".join(f'<li><a href="{e(Path(p).resolve().relative_to(root.resolve()).as_posix())}">{e(Path(p).name)}</a></li>'
                      for p in per_class)
    doc = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)}</title><style>{_CSS}</style></head>
<body><header><h1>{e(title)}</h1>
<div>{stats['num_prompts']} prompts · {stats['num_queries']} segmenter queries (a {GRID_SIDE}×{GRID_SIDE} grid: {stats['grid_queries']}) · {stats['num_instances']} instances</div></header>
<main><div id="viewer"><nav id="steps">{buttons}</nav>{''.join(sections)}
<div class="controls"><button type="button" id="prev">← previous</button><span id="counter"></span><button type="button" id="next">next →</button></div></div>
<aside id="side"><h3>Statistics per class</h3>
<table id="stats"><thead><tr><th>class</th><th>regions</th><th>prompts</th><th>pixels</th><th>mean conf.</th></tr></thead><tbody>{rows}</tbody></table>
<h3>Parameters</h3><table id="params"><tbody>{params}</tbody></table>
<h3>Timings</h3><table id="timings"><tbody>{timings}</tbody></table>
{f'<h3>Per-class details</h3><ul>{details}</ul>' if details else ''}
<p>Data: <a href="data/confidences.npy">confidences.npy</a>, <a href="data/prompts.json">prompts.json</a>, <a href="data/statistics.json">statistics.json</a></p>
</aside></main><script>{_JS}</script></body></html>
"""
    path.write_text(doc, encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- entry point
@dataclass
class ExplainOutput:
    """Paths written by :func:`explain`."""

    output: Path
    steps: list[Path]
    html: Path | None
    per_class: list[Path]
    data: dict[str, Path]
    statistics: dict


def explain(result, output: str | Path, image: np.ndarray | None = None, params: dict | None = None,
            create_html: bool = True, per_class_details: bool = False, title: str = "Object-guided segmentation, step by step") -> ExplainOutput:
    """Write the 18 step figures, the data files and (by default) ``index.html`` for one result."""
    v = view_of(result, image=image, params=params)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    steps = render_steps(v, out / "steps")
    per = render_per_class(v, out / "per_class") if per_class_details else []
    d = out / "data"
    d.mkdir(exist_ok=True)
    np.save(d / "confidences.npy", v.probs.astype(np.float32))
    (d / "prompts.json").write_text(json.dumps(prompts_json(v), indent=1), encoding="utf-8")
    stats = statistics(v)
    (d / "statistics.json").write_text(json.dumps(stats, indent=1), encoding="utf-8")
    page = write_html(out / "index.html", steps, stats, title, per) if create_html else None
    return ExplainOutput(out, steps, page, per, {"confidences": d / "confidences.npy", "prompts": d / "prompts.json",
                                                 "statistics": d / "statistics.json"}, stats)


def show_steps(out: ExplainOutput, steps: Sequence[int] = (6, 13, 14, 18), ncols: int = 2, size: float = 4.2):
    """A matplotlib figure of some of the written step images (1-based step numbers, as in
    ``steps/NN_*.png``), titled with the step names — a preview of ``index.html`` in a notebook."""
    from PIL import Image


    bad = [s for s in steps if not (isinstance(s, (int, np.integer)) and 1 <= s <= len(out.steps))]
    if bad:
        raise ValueError(f"steps must be step numbers between 1 and {len(out.steps)}, got {bad}")
    images = [np.asarray(Image.open(out.steps[s - 1]).convert("RGB")) for s in steps]
    titles = [f"step {s}: {STEPS[s - 1][1]}" for s in steps]
    return viz.image_grid(images, titles, ncols=ncols, size=size)
