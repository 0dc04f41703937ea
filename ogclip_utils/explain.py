"""The 18-step explainer: one segmentation shown step by step as figures, data and a small HTML viewer.

``explain(result, output)`` turns one :class:`pipeline.SegmentationResult` into

- ``steps/01_raw_image.png … 18_comparison_grid.png`` — one figure per pipeline step, and
  ``NN_slug_p2.png``, … where a step needs more pages to show every class (steps 4–5) or prompt (14);
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
from typing import Callable, NamedTuple, Sequence

import matplotlib.pyplot as plt
import numpy as np

from . import viz
from .viz import explain as vx
from .paths import safe_name
from .pipeline import target_mask  # noqa: F401  (old import path: explain.target_mask)

GRID_SIDE = vx.GRID_SIDE  # the blind-grid baseline the query count is compared with (64×64 points)

class Step(NamedTuple):
    """One step of the explainer: file slug, title, description (shown in the viewer) and the figure."""

    slug: str
    title: str
    description: str
    draw: Callable  # View -> Figure (ogclip_utils.viz.explain); with ``pages``: (View, page) -> Figure
    tight: bool = True  # tight_layout before saving (not with a colorbar shared by a grid of axes)
    pages: Callable | None = None  # View -> how many figures the step needs (every class / prompt)


#: The 18 steps, in order: what the viewer shows, and the viz function that draws each.
STEPS: list[Step] = [
    Step('raw_image', 'Raw image',
         'The input image, as loaded (uint8 RGB). Everything that follows is computed from it and the vocabulary.',
         vx.step_raw_image),
    Step('text_prompts', 'Text prompts',
         "Each vocabulary entry becomes one class; synonyms ('a, b') become extra text queries whose best similarity counts for the class. Every query is wrapped in prompt templates and encoded by CLIP's text tower.",
         vx.step_text_prompts),
    Step('sclip_patches', 'SCLIP sliding-window patches',
         "The image is cut into overlapping windows of the model's input size (stride half of it). Each window is encoded once; overlapping predictions are averaged.",
         vx.step_sliding_windows),
    Step('similarity', 'Visual–text similarity',
         "Cosine similarity between every patch feature (SCLIP's correlative self-attention in the last block) and each class's text embedding, before the logit scale and softmax.",
         vx.step_similarity, tight=False, pages=vx.class_pages),
    Step('confidence_maps', 'Per-class confidence maps',
         'Softmax over classes of logit_scale × cosine: the probability of each class at every pixel (every class, the most likely first; several pages when there are many).',
         vx.step_confidence_maps, tight=False, pages=vx.class_pages),
    Step('dense_prediction', 'Dense prediction',
         "The argmax class per pixel — SCLIP's training-free segmentation. Boundaries are blocky because CLIP sees patches, not pixels.",
         vx.step_dense_prediction),
    Step('prediction_confidences', 'Prediction confidences',
         'Left: the best probability per pixel. Middle: pixels below min_confidence (red) — where CLIP is unsure. Right: class colours with opacity proportional to confidence.',
         vx.step_prediction_confidences),
    Step('thresholding', 'Confidence thresholding',
         'Pixels whose best probability is at least min_confidence keep their class; the rest (and skipped classes such as background) are dropped.',
         vx.step_thresholding),
    Step('connected_components', 'Connected components',
         "Each class's confident pixels are split into 8-connected regions; every region is a candidate object.",
         vx.step_connected_components),
    Step('size_filter', 'Minimum region size',
         'Regions smaller than min_region_size pixels are dropped as noise (left: before, right: after).',
         vx.step_size_filter),
    Step('positive_prompts', 'Positive point prompts',
         'Points guaranteed inside each region (the centroid when it lies inside, else the most interior pixel; more points by farthest-point sampling).',
         vx.step_positive_prompts),
    Step('negative_prompts', 'Negative point prompts',
         "Points on other classes' confident pixels, away from the region, that tell the segmenter what the object is not.",
         vx.step_negative_prompts),
    Step('sam_prompting', 'SAM prompting: all prompts',
         'Everything the segmenter is asked: green stars are positive, red crosses negative points. One query per region — instead of a blind grid of points.',
         vx.step_all_prompts),
    Step('sam_candidates', 'SAM candidates',
         'For every prompt the segmenter returns three nested masks with a quality score (SAM2: a part, the object and the whole, scored by its predicted IoU; the classical stand-in: the piece around the click, the flat-colour region and that region with whatever touches it, scored by the stability of the region times the IoU of each candidate with the region).',
         vx.step_candidates, pages=vx.prompt_pages),
    Step('mask_selection', 'Best-mask selection',
         'The candidate kept for each prompt (highest score, or best agreement with the CLIP region).',
         vx.step_mask_selection),
    Step('overlap_resolution', 'Overlap resolution',
         'Left: the chosen masks before resolution (white = pixels claimed more than once). Right: duplicates merged, each contested pixel given to the more confident mask.',
         vx.step_overlap_resolution),
    Step('final_segmentation', 'Final segmentation',
         'The refined label map: segmenter boundaries, CLIP names.',
         vx.step_final_segmentation),
    Step('comparison_grid', 'Comparison',
         'Raw image | SCLIP dense prediction | confidences | final refined segmentation.',
         vx.step_comparison),
]

# ----------------------------------------------------------------------------- helpers
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
def _save(fig, path: Path, tight: bool = True) -> Path:
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def render_steps(v: View, out_dir: Path) -> list[list[Path]]:
    """Write the step figures (:data:`STEPS`) into ``out_dir`` (created): ``NN_slug.png`` per step
    and, for a step with several pages (every class of steps 4–5, every prompt of step 14),
    ``NN_slug_p2.png``, …; return each step's files in order (first page first).

    Figures are saved and closed, so any matplotlib backend works (no backend switch, which
    would silence a notebook's inline figures)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for i, step in enumerate(STEPS):
        n = step.pages(v) if step.pages else 1
        names = [f"{i + 1:02d}_{step.slug}.png"] + [f"{i + 1:02d}_{step.slug}_p{k + 1}.png" for k in range(1, n)]
        figs = (step.draw(v, page=k) for k in range(n)) if step.pages else iter([step.draw(v)])
        files.append([_save(f, out_dir / name, step.tight) for f, name in zip(figs, names)])
    return files


def render_per_class(v: View, out_dir: Path) -> list[Path]:
    """``class_<i>_<safe name>.png`` for every class the dense map or the final map contains."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ids = sorted({int(c) for c in np.unique(v.argmax)} | {int(c) for c in np.unique(v.label_map)})
    return [_save(vx.per_class(v, c), out_dir / f"class_{c}_{safe_name(v.classes[c])}.png")
            for c in ids if 0 <= c < len(v.classes)]


# ----------------------------------------------------------------------------- HTML
_CSS = """
body{font-family:system-ui,sans-serif;margin:0;background:#f4f5f7;color:#222}
header{background:#223;color:#fff;padding:12px 20px}header h1{margin:0;font-size:1.3em}
main{display:flex;flex-wrap:wrap;gap:16px;padding:16px}
#viewer{flex:4 1 640px;min-width:0}#side{flex:1 1 260px;min-width:0;max-width:420px}
nav#steps{display:flex;flex-wrap:wrap;gap:4px;margin-bottom:10px}
nav#steps button{min-width:2.4em;padding:4px 6px;border:1px solid #99a;background:#fff;border-radius:4px;cursor:pointer}
nav#steps button.active{background:#3465a4;color:#fff;border-color:#3465a4}
section.step{display:none;background:#fff;border-radius:6px;padding:12px;box-shadow:0 1px 3px #0002}
section.step.active{display:block;animation:stepin .28s ease-out}
@keyframes stepin{from{opacity:.25;transform:translateX(12px)}to{opacity:1;transform:none}}
@media (prefers-reduced-motion:reduce){section.step.active{animation:none}}
section.step img{display:block;width:100%;max-width:1400px;height:auto;margin:0 auto}
figure.page{margin:0 0 14px}figure.page figcaption{text-align:center;font-size:.85em;color:#556}
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


def write_html(path: Path, step_files: Sequence, stats: dict, title: str, per_class: Sequence[Path] = ()) -> Path:
    """The one-page viewer. ``step_files``: per step one path, or its pages' paths (shown one
    under the other). Every user-supplied string (title, class names, parameters) goes
    through ``html.escape``; image paths are relative to ``path``'s folder."""
    e = html.escape
    pal = viz.class_colours(list(stats["classes"]))
    root = path.parent
    buttons = "".join(f'<button type="button" data-step="{i + 1}" title="{e(t)}">{i + 1}</button>'
                      for i, (_, t, *_) in enumerate(STEPS))
    sections = []
    for i, ((_, t, d, *_), f) in enumerate(zip(STEPS, step_files)):
        pages = [f] if isinstance(f, (str, Path)) else list(f)
        rels = [Path(p).resolve().relative_to(root.resolve()).as_posix() for p in pages]
        if len(rels) == 1:
            body = f'<img src="{e(rels[0])}" alt="{e(t)}">'
        else:
            body = "".join(f'<figure class="page"><img src="{e(r)}" alt="{e(t)}, page {k + 1}">'
                           f'<figcaption>page {k + 1} of {len(rels)}</figcaption></figure>' for k, r in enumerate(rels))
        sections.append(f'<section class="step" id="step-{i + 1}"><h2>Step {i + 1}: {e(t)}</h2>'
                        f'<p class="description">{e(d)}</p>{body}</section>')
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
    steps: list[Path]  # the first figure of each of the 18 steps
    html: Path | None
    per_class: list[Path]
    data: dict[str, Path]
    statistics: dict
    pages: list[list[Path]] = field(default_factory=list)  # every figure of each step (steps 4, 5, 14 may have several)


def explain(result, output: str | Path, image: np.ndarray | None = None, params: dict | None = None,
            create_html: bool = True, per_class_details: bool = False, title: str = "Object-guided segmentation, step by step") -> ExplainOutput:
    """Write the 18 step figures, the data files and (by default) ``index.html`` for one result."""
    v = view_of(result, image=image, params=params)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    pages = render_steps(v, out / "steps")
    steps = [p[0] for p in pages]
    per = render_per_class(v, out / "per_class") if per_class_details else []
    d = out / "data"
    d.mkdir(exist_ok=True)
    np.save(d / "confidences.npy", v.probs.astype(np.float32))
    (d / "prompts.json").write_text(json.dumps(prompts_json(v), indent=1), encoding="utf-8")
    stats = statistics(v)
    (d / "statistics.json").write_text(json.dumps(stats, indent=1), encoding="utf-8")
    page = write_html(out / "index.html", pages, stats, title, per) if create_html else None
    return ExplainOutput(out, steps, page, per, {"confidences": d / "confidences.npy", "prompts": d / "prompts.json",
                                                 "statistics": d / "statistics.json"}, stats, pages)


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
