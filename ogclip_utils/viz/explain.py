"""Figures of the 18-step explainer: one function per step, each drawing one ``explain.View`` into a Figure.

Every ``step_*`` function takes the explainer's :class:`ogclip_utils.explain.View` (or anything
with its fields) and returns an open matplotlib ``Figure``; :data:`ogclip_utils.explain.STEPS`
lists them in order with their titles and descriptions, and ``explain.render_steps`` saves
them. :func:`per_class` draws one class's journey through the pipeline.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from . import draw

GRID_SIDE = 64  # the blind-grid baseline the query count is compared with (64×64 points)


# ----------------------------------------------------------------------------- helpers
def mpl_text(s: str) -> str:
    """Escape a user string for matplotlib text ('$' would start mathtext)."""
    return str(s).replace("$", r"\$")


def _fig(ncols: int = 1, nrows: int = 1, size: float = 3.6, title: str | None = None):
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.4 if title else 0)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    if title:
        fig.suptitle(mpl_text(title), fontsize=11)
    return fig, axes


def _legend(ax, v, ids) -> None:
    ids = [int(i) for i in ids if 0 <= int(i) < len(v.classes)]
    if ids:
        handles = draw.legend_patches([mpl_text(n) for n in v.classes], ids)
        ax.legend(handles=handles, fontsize=7, loc="lower left", framealpha=0.8)


def _palette(v) -> np.ndarray:
    return draw.class_colours(list(v.classes))


def _present(v) -> list[int]:
    return sorted({int(c) for c in np.unique(v.argmax)})


def _top_classes(v, k: int = 8) -> list[int]:
    score = v.probs.reshape(len(v.probs), -1).max(1)
    return [int(i) for i in np.argsort(-score, kind="stable")[:k]]


def _colour_ids(ids: np.ndarray, n: int) -> np.ndarray:
    """H×W×3 colours for arbitrary region ids (0 black), stable per id."""
    pal = draw.palette(max(int(n) + 2, 3))
    out = pal[np.clip(ids, 0, len(pal) - 1) + 1]
    out[ids <= 0] = 0
    return out


def _class_img(v, lm: np.ndarray) -> np.ndarray:
    out = draw.colorize(np.where(lm < 0, 0, lm), list(v.classes))
    out[lm < 0] = 0
    return out


def _masks_overlay(v, items, alpha: float = 0.55) -> np.ndarray:
    img = v.image.astype(np.float32).copy()
    pal = _palette(v)
    for it in items:
        m = np.asarray(it.mask, bool)
        img[m] = img[m] * (1 - alpha) + pal[int(it.class_id) % len(pal)] * alpha
    return img.round().astype(np.uint8)


def _n_components(v) -> int:
    return int(v.components.max()) if v.components.size else 0


# ----------------------------------------------------------------------------- steps 1–7: the dense map
def step_raw_image(v):
    fig, ax = _fig(title=f"Raw image ({v.image.shape[1]}×{v.image.shape[0]})")
    ax[0, 0].imshow(v.image)
    return fig


def step_text_prompts(v):
    pal = _palette(v)
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
        ax.text(0.05, y, mpl_text(f"{c}: {name}" + (f"   (queries: {', '.join(syn)})" if syn and syn != [name] else "")),
                transform=ax.transAxes, fontsize=8, va="center")
    tpl = v.templates[:3] or ["(the model's default templates)"]
    first = v.queries[0] if v.queries else ""
    ax.text(0.0, 1.5 / rows, mpl_text("templates: " + " | ".join(t.replace("{}", first) if "{}" in t else t for t in tpl)
                                    + (f"  … ({len(v.templates)} in all)" if len(v.templates) > 3 else "")),
            transform=ax.transAxes, fontsize=8, va="center", style="italic")
    return fig


def step_sliding_windows(v):
    fig, ax = _fig(title=f"Sliding windows: {len(v.windows)}")
    ax[0, 0].imshow(v.image)
    for k, b in enumerate(v.windows):
        draw.show_box(ax[0, 0], b, color=("yellow", "cyan", "magenta", "lime")[k % 4], lw=1.2)
    return fig


#: classes per page of the per-class steps (4 and 5) and prompts per page of step 14: a step
#: with more is written as several figures (``NN_slug.png``, ``NN_slug_p2.png``, …)
CLASSES_PER_PAGE = 8
PROMPTS_PER_PAGE = 6


def class_pages(v) -> int:
    """How many figures steps 4 and 5 need to show every class (:data:`CLASSES_PER_PAGE` each)."""
    return max(1, -(-len(v.classes) // CLASSES_PER_PAGE))


def prompt_pages(v) -> int:
    """How many figures step 14 needs to show every prompt's candidates (:data:`PROMPTS_PER_PAGE` each)."""
    return max(1, -(-len(v.candidates) // PROMPTS_PER_PAGE))


def _page(page: int, n_pages: int) -> int:
    if not 0 <= int(page) < n_pages:
        raise ValueError(f"page must lie in [0, {n_pages}), got {page!r}")
    return int(page)


def _class_maps(v, maps, vmin, vmax, cmap, title, page: int = 0):
    """One panel per class of page ``page`` (classes ordered by their peak value, highest first),
    one colour scale for every page."""
    pal = _palette(v)
    n_pages = class_pages(v)
    page = _page(page, n_pages)
    order = _top_classes(v, len(v.classes))
    top = order[page * CLASSES_PER_PAGE:(page + 1) * CLASSES_PER_PAGE]
    if n_pages > 1:
        title = f"{title} — page {page + 1} of {n_pages} (classes {page * CLASSES_PER_PAGE + 1}–" \
                f"{page * CLASSES_PER_PAGE + len(top)} of {len(order)}, highest peak first)"
    k = len(top)
    ncols = min(4, k)
    fig, axes = _fig(ncols, int(np.ceil(k / ncols)), size=2.4, title=title)
    for j, c in enumerate(top):
        a = axes.flat[j]
        im = a.imshow(maps[c], cmap=cmap, vmin=vmin, vmax=vmax)
        a.set_title(mpl_text(v.classes[c][:28]), fontsize=8, color=pal[c] / 255 if c else "black")
    fig.colorbar(im, ax=list(axes.flat), fraction=0.03)
    return fig


def step_similarity(v, page: int = 0):
    """Cosine similarity of the best synonym per class (or log p / scale without raw similarities);
    every class over :func:`class_pages` pages, one colour scale."""
    top = list(range(len(v.classes)))
    if v.logits is not None and len(v.logits) == len(v.query_to_class):
        cos = np.stack([v.logits[v.query_to_class == c].max(0) if (v.query_to_class == c).any() else np.zeros(v.logits.shape[1:])
                        for c in range(len(v.classes))])
        lo, hi = float(cos[top].min()), float(cos[top].max())
        label = "cosine similarity"
    else:  # without raw similarities: log p / scale = cosine − per-pixel constant
        cos = np.log(np.clip(v.probs, 1e-8, 1)) / v.logit_scale
        lo, hi = float(cos[top].min()), 0.0
        label = "log p / logit_scale (cosine up to a per-pixel constant)"
    return _class_maps(v, cos, lo, hi, "magma", f"Visual–text similarity ({label})", page)


def step_confidence_maps(v, page: int = 0):
    """Every class's probability map over :func:`class_pages` pages."""
    return _class_maps(v, v.probs, 0.0, 1.0, "viridis", "Per-class confidence maps (probability)", page)


def step_dense_prediction(v):
    fig, ax = _fig(2, title="SCLIP dense prediction (argmax)")
    ax[0, 0].imshow(draw.colorize(v.argmax, list(v.classes)))
    ax[0, 1].imshow(draw.overlay(v.image, v.argmax, vocabulary=list(v.classes)))
    _legend(ax[0, 1], v, _present(v)[:12])
    return fig


def step_prediction_confidences(v):
    min_conf = v.params.get("min_confidence")
    fig, ax = _fig(3, title=f"Confidences (min_confidence = {min_conf})")
    im = ax[0, 0].imshow(v.max_prob, cmap="viridis", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax[0, 0], fraction=0.046)
    ax[0, 0].set_title("best probability", fontsize=9)
    unsure = v.max_prob < (min_conf if min_conf is not None else 0.5)
    ax[0, 1].imshow(draw.mask_overlay(v.image, unsure, color=(230, 30, 30), alpha=0.6))
    ax[0, 1].set_title(f"uncertain: {100 * unsure.mean():.1f}% of pixels", fontsize=9)
    col = draw.colorize(v.argmax, list(v.classes)).astype(np.float32)
    a = v.max_prob[..., None]
    ax[0, 2].imshow((v.image * (1 - a) + col * a).round().astype(np.uint8))
    ax[0, 2].set_title("colour weighted by confidence", fontsize=9)
    return fig


# ----------------------------------------------------------------------------- steps 8–13: prompts
def step_thresholding(v):
    min_conf = v.params.get("min_confidence")
    fig, ax = _fig(2, title=f"Thresholding at min_confidence = {min_conf}")
    ax[0, 0].imshow(_class_img(v, v.thresholded))
    ax[0, 0].set_title(f"kept: {100 * (v.thresholded >= 0).mean():.1f}% of pixels", fontsize=9)
    ax[0, 1].imshow(draw.mask_overlay(v.image, v.thresholded >= 0, color=(255, 255, 255), alpha=0.45))
    _legend(ax[0, 0], v, sorted({int(c) for c in np.unique(v.thresholded) if c >= 0})[:12])
    return fig


def step_connected_components(v):
    ncomp = _n_components(v)
    fig, ax = _fig(title=f"Connected components: {ncomp}")
    ax[0, 0].imshow(_colour_ids(v.components, ncomp))
    return fig


def step_size_filter(v):
    ncomp = _n_components(v)
    nkept = len([i for i in np.unique(v.kept) if i > 0])
    fig, ax = _fig(2, title=f"min_region_size = {v.params.get('min_region_size')}: {ncomp} → {nkept} regions")
    ax[0, 0].imshow(_colour_ids(v.components, ncomp))
    ax[0, 0].set_title("before", fontsize=9)
    ax[0, 1].imshow(_colour_ids(v.kept, ncomp))
    ax[0, 1].set_title("after", fontsize=9)
    return fig


def _points(v, which: int | None, title: str):
    """The image (regions tinted for positives) with the prompt points whose label is ``which`` (None: all)."""
    fig, ax = _fig(title=title)
    base = v.image.copy()
    if which == 1:
        base = _masks_overlay(v, [type("R", (), {"mask": q.region, "class_id": q.class_id}) for q in v.prompts], 0.35)
    ax[0, 0].imshow(base)
    for q in v.prompts:
        pts, lab = np.asarray(q.points, float).reshape(-1, 2), np.asarray(q.labels).reshape(-1)
        sel = np.ones(len(lab), bool) if which is None else lab == which
        if sel.any():
            draw.show_points(ax[0, 0], pts[sel], lab[sel], size=90)
    return fig


def _count_points(v, label: int) -> int:
    return sum(int((np.asarray(q.labels) == label).sum()) for q in v.prompts)


def step_positive_prompts(v):
    return _points(v, 1, f"Positive points: {_count_points(v, 1)}")


def step_negative_prompts(v):
    return _points(v, 0, f"Negative points: {_count_points(v, 0)}")


def step_all_prompts(v):
    return _points(v, None, f"All prompts: {_count_points(v, 1)} positive, {_count_points(v, 0)} negative, "
                            f"{len(v.prompts)} queries")


# ----------------------------------------------------------------------------- steps 14–18: the segmenter
def step_candidates(v, page: int = 0):
    """Every prompt's candidates (outlined, the image outside dimmed), :data:`PROMPTS_PER_PAGE`
    prompts per page (:func:`prompt_pages`)."""
    page = _page(page, prompt_pages(v))
    first = page * PROMPTS_PER_PAGE
    shown = v.candidates[first:first + PROMPTS_PER_PAGE]
    k = max((len(c.masks) for c in shown), default=3)
    what = (f"prompts {first + 1}–{first + len(shown)} of {len(v.candidates)}" if shown else "no prompts")
    fig, axes = _fig(k, max(1, len(shown)), size=2.2, title=f"Candidates ({what})")
    for r, cand in enumerate(shown):
        q = v.prompts[cand.prompt_index] if 0 <= cand.prompt_index < len(v.prompts) else None
        for j in range(len(cand.masks)):
            a = axes[r, j]
            draw.show_mask(a, v.image, cand.masks[j])
            if q is not None:
                draw.show_points(a, q.points, q.labels, size=40)
            star = " ✓" if j == cand.chosen else ""
            a.set_title(f"prompt {cand.prompt_index} · #{j}: {float(cand.scores[j]):.3f}{star}", fontsize=8,
                        color="green" if j == cand.chosen else "black")
    return fig


def step_mask_selection(v):
    chosen = [type("C", (), {"mask": c.masks[c.chosen], "class_id": c.class_id}) for c in v.candidates if c.chosen >= 0]
    fig, ax = _fig(title=f"Chosen masks: {len(chosen)} of {len(v.candidates)} prompts")
    ax[0, 0].imshow(_masks_overlay(v, chosen))
    return fig


def step_overlap_resolution(v):
    claims = sum((np.asarray(b.mask, bool).astype(int) for b in v.before), np.zeros(v.label_map.shape, int))
    fig, ax = _fig(2, title=f"Overlap resolution: {len(v.before)} masks → {len(v.instances)} instances")
    left = _masks_overlay(v, v.before)
    left[claims > 1] = 255
    ax[0, 0].imshow(left)
    ax[0, 0].set_title(f"before ({int((claims > 1).sum())} contested px)", fontsize=9)
    ax[0, 1].imshow(_masks_overlay(v, v.instances))
    ax[0, 1].set_title("after", fontsize=9)
    return fig


def step_final_segmentation(v):
    final_ids = sorted({int(c) for c in np.unique(v.label_map)})
    fig, ax = _fig(2, title="Final segmentation")
    ax[0, 0].imshow(draw.colorize(v.label_map, list(v.classes)))
    ax[0, 1].imshow(draw.overlay(v.image, v.label_map, vocabulary=list(v.classes)))
    _legend(ax[0, 1], v, final_ids[:12])
    return fig


def step_comparison(v):
    fig, ax = _fig(4, size=3.0, title=f"Comparison — {v.num_queries} segmenter queries (a {GRID_SIDE}×{GRID_SIDE} grid: {GRID_SIDE ** 2})")
    for a, im, t in zip(ax[0], (v.image, draw.overlay(v.image, v.argmax, vocabulary=list(v.classes)), v.max_prob,
                                 draw.overlay(v.image, v.label_map, vocabulary=list(v.classes))),
                        ("raw", "SCLIP", "confidences", "final")):
        a.imshow(im, cmap="viridis" if im.ndim == 2 else None, vmin=0 if im.ndim == 2 else None, vmax=1 if im.ndim == 2 else None)
        a.set_title(t, fontsize=9)
    return fig


# ----------------------------------------------------------------------------- one class
def per_class(v, c: int):
    """Class ``c`` through the pipeline: confidence, components, regions, prompts, candidates, final mask, histogram."""
    pal = _palette(v)
    fig, ax = _fig(5, 2, size=2.4, title=f"class {c}: {v.classes[c]}")
    ax[0, 0].imshow(v.probs[c], cmap="viridis", vmin=0, vmax=1)
    ax[0, 0].set_title("confidence", fontsize=8)
    ax[0, 1].imshow(_colour_ids(np.where(v.thresholded == c, v.components, 0), int(v.components.max())))
    ax[0, 1].set_title("components", fontsize=8)
    ax[0, 2].imshow(draw.mask_overlay(v.image, (v.kept > 0) & (v.thresholded == c), color=pal[c]))
    ax[0, 2].set_title("filtered regions", fontsize=8)
    ax[0, 3].imshow(v.image)
    for q in v.prompts:
        if int(q.class_id) == c:
            draw.show_points(ax[0, 3], q.points, q.labels, size=50)
    ax[0, 3].set_title("prompts", fontsize=8)
    cands = [cd for cd in v.candidates if int(cd.class_id) == c][:2]
    for j, cd in enumerate(cands):
        union = np.zeros(v.label_map.shape, float)
        for m in cd.masks:
            union += np.asarray(m, float)
        ax[1, j].imshow(union, cmap="gray", vmin=0, vmax=max(1, len(cd.masks)))
        ax[1, j].set_title(f"candidates (prompt {cd.prompt_index})", fontsize=8)
    ax[1, 2].imshow(draw.mask_overlay(v.image, v.label_map == c, color=pal[c]))
    ax[1, 2].set_title(f"final mask: {int((v.label_map == c).sum())} px", fontsize=8)
    hax = ax[1, 3]
    hax.axis("on")
    hax.hist(v.probs[c].ravel(), bins=20, range=(0, 1), color=pal[c] / 255)
    hax.set_title("confidence histogram", fontsize=8)
    hax.tick_params(labelsize=6)
    sax = ax[0, 4]
    sax.axis("on")
    sizes = np.sort(region_sizes(v, c))[::-1]
    if len(sizes):
        sax.bar(np.arange(len(sizes)), sizes, color=pal[c] / 255)
        sax.set_yscale("log")
    else:
        sax.text(0.5, 0.5, "no confident region", ha="center", va="center", fontsize=8, transform=sax.transAxes)
    floor = v.params.get("min_region_size")
    if floor is not None:
        sax.axhline(float(floor), ls="--", color="black", lw=1, label=f"min_region_size {floor}")
        sax.legend(fontsize=6)
    sax.set_title(f"region sizes (px): {len(sizes)} region(s)", fontsize=8)
    sax.set_xlabel("region, largest first", fontsize=7)
    sax.tick_params(labelsize=6)
    return fig


def region_sizes(v, c: int) -> np.ndarray:
    """Pixel counts (int64, one per region) of class ``c``'s connected components of confident
    pixels, before the size filter (``v.components`` where ``v.thresholded == c``)."""
    ids = v.components[(v.thresholded == c) & (v.components > 0)]
    if not ids.size:
        return np.zeros(0, np.int64)
    counts = np.bincount(ids.astype(np.int64))
    return counts[counts > 0].astype(np.int64)
