"""Measuring the context task: within-scene accuracy, gallery retrieval, frozen-CLIP baselines.

- :func:`object_scores` / :func:`within_scene` — a trained :class:`~.guided.GuidedCLIP` on
  prepared :class:`~.guided_train.ContextData`;
- :func:`baseline_scores` — the frozen CLIP with a visual prompt per object (global image, box
  crop, masked crop, blur outside the mask, a red outline — the prompts of ReCLIP and FGVP)
  or notebook 01's pseudo-query rule (each crop described in words, words against caption);
- :func:`context_galleries` / :func:`gallery_retrieval` — text→image R@1 / R@5 / mean rank
  over (image, target) pairs in galleries whose captions are all different;
- :func:`evaluate_methods` — one :class:`ContextReport` per method on the same samples.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from .. import metrics
from ..grounding import pseudo_queries
from ..arrays import crop_box, mask_box, masked_crop, resize_rgb
from .context import TIE_TOLERANCE, ContextSample
from .guided import GuidedCLIP
from .guided_train import ContextData, _by_kind, _object_batch, _Tokens, object_scores, within_scene  # noqa: F401


# ---------------------------------------------------------------------- baselines
def _outline(image: np.ndarray, mask: np.ndarray, size: int, width: int = 2) -> np.ndarray:
    from scipy import ndimage as ndi

    ring = ndi.binary_dilation(mask, iterations=width) & ~mask
    out = image.copy()
    out[ring] = (255, 0, 0)
    return out


def _blur_outside(image: np.ndarray, mask: np.ndarray, size: int, sigma: float = 4.0) -> np.ndarray:
    from scipy import ndimage as ndi

    blurred = ndi.gaussian_filter(image.astype(np.float32), (sigma, sigma, 0))
    return np.where(mask[..., None], image, blurred).astype(np.uint8)


#: the visual prompts of the frozen-CLIP baselines: ``prompt(image, mask, clip input size)`` is
#: the image CLIP sees for one object
VISUAL_PROMPTS: dict[str, Callable[[np.ndarray, np.ndarray, int], np.ndarray]] = {
    "global": lambda im, m, size: im,
    "box crop": lambda im, m, size: crop_box(im, mask_box(m), padding=0.1, square=True),
    "masked crop": lambda im, m, size: masked_crop(im, m, size),
    "blur outside the mask": _blur_outside,
    "red outline": _outline,
}
BASELINES = tuple(VISUAL_PROMPTS) + ("pseudo-query",)


def _baseline_embeddings(clip, samples: Sequence[ContextSample], method: str) -> list[np.ndarray]:
    """Per sample, K×D frozen-CLIP embeddings of each object's visual prompt (one batched pass),
    or for ``"pseudo-query"`` the embeddings of each masked crop's description in words."""
    if method not in BASELINES:
        raise ValueError(f"method must be one of {BASELINES}, got {method!r}")
    prompt = VISUAL_PROMPTS.get(method, VISUAL_PROMPTS["masked crop"])
    S = clip.image_size
    views = [resize_rgb(prompt(s.image, m, S), S, "bicubic") for s in samples for m in s.masks]
    emb = clip.encode_images(np.stack(views)).numpy()
    out, k = [], 0
    for s in samples:
        e = emb[k:k + len(s.masks)]
        k += len(s.masks)
        out.append(pseudo_queries(clip, e, [mask_box(m) for m in s.masks]) if method == "pseudo-query" else e)
    if method == "pseudo-query":  # every distinct description encoded once: equal words, equal vectors
        uniq = sorted({q for qs in out for q in qs})
        table = dict(zip(uniq, clip.encode_texts(uniq).numpy()))
        out = [np.stack([table[q] for q in qs]) for qs in out]
    return out


def _caption_embeddings(clip, samples: Sequence[ContextSample]) -> np.ndarray:
    caps = sorted({s.caption for s in samples})
    table = dict(zip(caps, clip.encode_texts(caps).numpy()))
    return np.stack([table[s.caption] for s in samples])


def baseline_scores(clip, samples: Sequence[ContextSample], method: str) -> list[np.ndarray]:
    """Per sample, K scores from the frozen ``clip``: its visual prompt of each object against
    the caption (``method`` in :data:`VISUAL_PROMPTS`), or ``"pseudo-query"``: each masked crop
    described in words ("the red circle", notebook 01's rule) and compared with the caption."""
    emb = _baseline_embeddings(clip, samples, method)
    txt = _caption_embeddings(clip, samples)
    return [e @ t for e, t in zip(emb, txt)]


# ---------------------------------------------------------------------- galleries
def context_galleries(samples: Sequence[ContextSample], size: int = 16, seed: int = 0) -> list[np.ndarray]:
    """Split sample indices into galleries of at most ``size`` in which every caption is unique
    (seeded shuffle, greedy fill)."""
    rng = np.random.default_rng(seed)
    galleries: list[list[int]] = []
    caps: list[set] = []
    for i in rng.permutation(len(samples)):
        c = samples[i].caption
        for g, cs in zip(galleries, caps):
            if len(g) < size and c not in cs:
                g.append(int(i))
                cs.add(c)
                break
        else:
            galleries.append([int(i)])
            caps.append({c})
    return [np.asarray(g) for g in galleries if len(g) > 1]


def gallery_retrieval(target_emb: np.ndarray, text_emb: np.ndarray, galleries: Sequence[np.ndarray]) -> dict[str, float]:
    """Text→image R@1 / R@5 (percent) and mean rank (1-based) inside each gallery, averaged over
    queries. ``target_emb``/``text_emb`` N×E: each sample's target object and its caption.
    Scores within :data:`~ogclip_utils.og_clip.context.TIE_TOLERANCE` of the true pair's are ties
    (counted against the query)."""
    r1, r5, rank, n = 0.0, 0.0, 0.0, 0
    for g in galleries:
        m = metrics.retrieval_metrics(target_emb[g] @ text_emb[g].T, tie_tolerance=TIE_TOLERANCE)
        r1 += m["t2i_r1"] * len(g)
        r5 += m["t2i_r5"] * len(g)
        rank += m["t2i_mean_rank"] * len(g)
        n += len(g)
    return {"t2i_r1": r1 / n, "t2i_r5": r5 / n, "t2i_mean_rank": rank / n}


@dataclass
class ContextReport:
    """One method on one sample set: within-scene accuracy (fractions) and gallery retrieval."""

    method: str
    relational: float
    attribute: float
    t2i_r1: float
    t2i_r5: float
    t2i_mean_rank: float

    def as_dict(self) -> dict:
        return asdict(self)


def _report(name, scores, target_emb, text_emb, samples, galleries, seed) -> ContextReport:
    acc = _by_kind(scores, samples, seed)
    ret = gallery_retrieval(target_emb, text_emb, galleries)
    return ContextReport(name, acc.get("relational", float("nan")), acc.get("attribute", float("nan")), **ret)


def evaluate_model(model: GuidedCLIP, d: ContextData, galleries=None, name: str = "OG-CLIP", seed: int = 0) -> ContextReport:
    """:class:`ContextReport` of a trained model on prepared data."""
    galleries = context_galleries(d.samples, seed=seed) if galleries is None else galleries
    scores = object_scores(model, d)
    dev = model.logit_scale.device
    with torch.no_grad():
        inputs, _ = _object_batch(d, range(len(d)), [0] * len(d), dev, only_target=True)
        tgt = model.fused(**inputs).cpu().numpy()
        txt = model.text(_Tokens(model.bundle.tokenizer)([c[0] for c in d.captions]).to(dev)).cpu().numpy()
    return _report(name, scores, tgt, txt, d.samples, galleries, seed)


def evaluate_baseline(clip, samples: Sequence[ContextSample], method: str, galleries=None, seed: int = 0) -> ContextReport:
    """:class:`ContextReport` of a frozen-CLIP baseline (:data:`BASELINES`)."""
    galleries = context_galleries(samples, seed=seed) if galleries is None else galleries
    emb = _baseline_embeddings(clip, samples, method)
    txt = _caption_embeddings(clip, samples)
    scores = [e @ t for e, t in zip(emb, txt)]
    tgt = np.stack([e[s.target] for e, s in zip(emb, samples)])
    return _report(method, scores, tgt, txt, samples, galleries, seed)


def mask_quality(samples: Sequence[ContextSample]) -> dict[str, float] | None:
    """How well the masks the model was given match the ground truth, over every object of every
    distinct scene: ``mask_iou`` (mean IoU) and ``box_acc50`` (fraction whose mask's box has IoU
    ≥ 0.5 with the true box — the object is localised). None when the masks are the ground truth."""
    ious, hits, seen = [], [], set()
    for s in samples:
        if s.mask_source == "ground_truth" or s.gt_masks is None or id(s.image) in seen:
            continue
        seen.add(id(s.image))
        for m, g in zip(s.masks, s.gt_masks):
            ious.append(metrics.mask_iou(m, g))
            hits.append(bool(m.any()) and metrics.box_iou(mask_box(m), mask_box(g)) >= 0.5)
    if not ious:
        return None
    return {"mask_iou": float(np.mean(ious)), "box_acc50": float(np.mean(hits)), "objects": len(ious)}
