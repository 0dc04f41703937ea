"""Refinement: prompt a promptable segmenter where CLIP is confident, pick masks, resolve overlaps.

``refine(predictor, image, prompts)`` asks the segmenter (:mod:`ogclip_utils.segmenters`) once
per prompt for SAM2's multimask candidates, chooses one mask per prompt, names it, merges
duplicates and resolves pixels claimed twice into one label map. :func:`grid_baseline` is the
blind-grid comparison (SAM2's automatic mask generator style).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from . import dense, prompts as _prompts
from .checks import check_image as _as_image
from .arrays import crop_box, mask_box, masked_crop, resize_rgb
from .vocabulary import background_index
from .segmenters import LOWRES, ClassicalSegmenter, sam2_autocast  # noqa: F401  (ClassicalSegmenter: old import path, moved to segmenters)


MASK_CHOICES = ("score", "agreement")
CLASSIFY = ("auto", "clip", "dense", "prompt")


CLASS_CROPS = ("masked", "box")
FILLS = ("background", "dense")


@dataclass(frozen=True)
class RefineConfig:
    """Settings of refinement, validated once (the CLI flags and the sliders read their defaults here).

    iou_threshold: same-class masks overlapping more than this IoU are merged (0–1).
    mask_choice: how one of SAM's multimask candidates is kept (:data:`MASK_CHOICES`).
    classify: how a kept mask is named (:data:`CLASSIFY`; ``"auto"``: the mode's default).
    fill: unclaimed pixels become ``"background"`` or the ``"dense"`` argmax.
    max_area_fraction: candidates covering more of the image than this are refused (0–1].
    min_class_prob: masks whose class probability is below this are dropped.
    min_area: candidates smaller than this many pixels are refused.
    class_crop: what CLIP sees when naming a mask: the ``"masked"`` object or its padded ``"box"``.
    """

    iou_threshold: float = 0.8
    mask_choice: str = "score"
    classify: str = "auto"
    fill: str = "background"
    max_area_fraction: float = 0.5
    min_class_prob: float = 0.0
    min_area: int = 10
    class_crop: str = "masked"

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.iou_threshold) <= 1.0:
            raise ValueError(f"iou_threshold must be in [0, 1], got {self.iou_threshold!r}")
        if self.mask_choice not in MASK_CHOICES:
            raise ValueError(f"mask_choice must be one of {MASK_CHOICES}, got {self.mask_choice!r}")
        if self.classify not in CLASSIFY:
            raise ValueError(f"classify must be one of {CLASSIFY}, got {self.classify!r}")
        if self.fill not in FILLS:
            raise ValueError(f"fill must be 'background' or 'dense', got {self.fill!r}")
        if not 0.0 < float(self.max_area_fraction) <= 1.0:
            raise ValueError(f"max_area_fraction must be in (0, 1], got {self.max_area_fraction!r}")
        if self.class_crop not in CLASS_CROPS:
            raise ValueError(f"class_crop must be 'masked' or 'box', got {self.class_crop!r}")


_D = RefineConfig()


@dataclass
class Candidate:
    """What the segmenter answered for one prompt.

    ``masks`` (C, H, W) bool, ``scores`` (C,) the segmenter's scores, ``agreement`` (C,)
    IoU of each mask with the prompt's CLIP region, ``chosen`` the index kept by the
    mask-choice rule (-1 when every candidate was rejected, see ``note``).
    """

    prompt_index: int
    class_id: int
    masks: np.ndarray
    scores: np.ndarray
    agreement: np.ndarray
    chosen: int
    note: str = ""

    @property
    def mask(self) -> np.ndarray | None:
        return self.masks[self.chosen] if self.chosen >= 0 else None

    @property
    def score(self) -> float:
        return float(self.scores[self.chosen]) if self.chosen >= 0 else 0.0


@dataclass
class Instance:
    """One refined object: ``mask`` bool H×W, ``class_id`` in the vocabulary, ``score`` the
    segmenter's score, ``class_prob`` the probability of the class (CLIP crop or dense),
    ``confidence`` = score × class_prob (used to resolve overlaps), ``prompts`` the prompt
    indices that produced it (several after duplicate merging)."""

    mask: np.ndarray
    class_id: int
    score: float
    class_prob: float
    prompts: list[int]
    class_name: str = ""

    @property
    def confidence(self) -> float:
        return float(self.score * self.class_prob)

    @property
    def area(self) -> int:
        return int(self.mask.sum())

    @property
    def box(self) -> tuple[float, float, float, float]:
        return mask_box(self.mask)

    def __repr__(self) -> str:
        name = f" {self.class_name!r}" if self.class_name else ""
        return (f"Instance(class {self.class_id}{name}, {self.area} px, score {self.score:.3g}, "
                f"class prob {self.class_prob:.3g}, prompts {self.prompts})")


@dataclass
class Refined:
    """Result of :func:`refine`.

    Attributes:
        label_map: int64 H×W final class ids (``background_id`` where nothing claims a pixel,
            or the dense argmax with ``fill="dense"``).
        instances: the instances after duplicate merging, each mask cut to the pixels it won.
        num_queries: segmenter prompts answered (one per prompt).
        candidates: per prompt, the segmenter's candidates and the chosen one.
        before_overlap: the instances after classification, before merging and pixel
            resolution (masks may overlap).
        claims: int H×W, how many merged instances claimed each pixel (> 1 = contested).
        dropped: (prompt index, reason) for prompts that produced no instance.
    """

    label_map: np.ndarray
    instances: list[Instance]
    num_queries: int
    candidates: list[Candidate] = field(default_factory=list)
    before_overlap: list[Instance] = field(default_factory=list)
    claims: np.ndarray | None = None
    dropped: list[tuple[int, str]] = field(default_factory=list)
    params: dict = field(default_factory=dict)


def classify_masks(clip, image: np.ndarray, masks: Sequence[np.ndarray], names: Sequence[str],
                   padding: float = 0.1, templates: Sequence[str] | None = None,
                   logit_scale: float | None = None, crop: str = "masked") -> np.ndarray:
    """Zero-shot class probabilities (M, C) of each mask's object.

    The crop is the mask's box, padded by ``padding`` × its size and squared
    (``arrays.crop_box``), resized to the model's input size and encoded by CLIP; the class
    texts are the dense stage's (``dense.text_embeddings``: same templates and cache; a class
    scores the best of its ", "-separated synonyms). ``logit_scale`` defaults to the model's
    own. Region-level classification of a whole object is far more reliable than reading
    the class off pixel-level dense maps.

    ``crop="masked"`` is :func:`ogclip_utils.arrays.masked_crop`: every pixel outside the mask
    painted with the median colour of the image outside it (mostly background), so the crop
    shows the segmented object alone — and a mask that covers only background shows only
    background, which CLIP
    then names "background". ``crop="box"`` keeps the plain padded box (neighbours visible).
    """

    if len(masks) == 0:
        return np.zeros((0, len(names)), np.float32)
    if crop not in ("masked", "box"):
        raise ValueError(f"crop must be 'masked' or 'box', got {crop!r}")
    classes, queries, q2c = dense.parse_vocabulary(list(names))
    crops = []
    for m in masks:
        m = np.asarray(m, bool)
        if not m.any():
            raise ValueError("classify_masks: a mask is empty")
        if crop == "masked":
            crops.append(masked_crop(image, m, clip.image_size, padding))
        else:
            crops.append(resize_rgb(crop_box(image, mask_box(m), padding=padding, square=True), clip.image_size, "bicubic"))
    T = dense.text_embeddings(clip, queries, templates).float()
    img_emb = clip.encode_images(np.stack(crops)).float().cpu()
    scale = float(logit_scale) if logit_scale is not None else float(clip.model.logit_scale.exp().item())
    with torch.inference_mode():
        q = (scale * img_emb @ T.T).numpy()  # M × Q
    logits = np.full((len(masks), len(classes)), -np.inf, np.float32)
    for j, c in enumerate(q2c):
        logits[:, c] = np.maximum(logits[:, c], q[:, j])
    logits -= logits.max(1, keepdims=True)
    e = np.exp(logits)
    return (e / e.sum(1, keepdims=True)).astype(np.float32)


def _image_key(img: np.ndarray) -> tuple:
    import hashlib

    return (img.shape, hashlib.sha1(np.ascontiguousarray(img).tobytes()).hexdigest())


def ensure_image(predictor, image: np.ndarray, mode: bool | str = "auto") -> bool:
    """Call ``predictor.set_image(image)`` when ``mode`` is True, or with ``"auto"`` when the
    predictor last saw another image (tracked by a content hash). Returns whether it encoded."""
    if mode not in (True, False, "auto"):
        raise ValueError(f"set_image must be True, False or 'auto', got {mode!r}")
    key = _image_key(image)
    if mode is True or (mode == "auto" and getattr(predictor, "_ogclip_image_key", None) != key):
        with sam2_autocast(predictor):
            predictor.set_image(image)
        predictor._ogclip_image_key = key
        return True
    return False


def _is_sam2(predictor) -> bool:
    return type(predictor).__name__ == "SAM2ImagePredictor"


def _query(predictor, prompts, multimask_output: bool = True) -> list[tuple[np.ndarray, np.ndarray]]:
    """Ask the segmenter once per prompt; SAM2 answers prompts with the same number of
    points in one batched call. Returns [(masks C×H×W bool, scores C)]."""
    out: list = [None] * len(prompts)
    groups: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        groups.setdefault(len(p.points), []).append(i)
    for k, idx in groups.items():
        if _is_sam2(predictor) and len(idx) > 1:
            pts = np.stack([prompts[i].points for i in idx]).astype(np.float32)
            lab = np.stack([prompts[i].labels for i in idx]).astype(np.int32)
            with sam2_autocast(predictor):
                masks, scores, _ = predictor.predict(point_coords=pts, point_labels=lab, multimask_output=multimask_output)
            for j, i in enumerate(idx):
                out[i] = (np.asarray(masks[j]) > 0, np.asarray(scores[j], np.float32).reshape(-1))
        else:
            for i in idx:
                with sam2_autocast(predictor):
                    masks, scores, _ = predictor.predict(point_coords=prompts[i].points, point_labels=prompts[i].labels,
                                                         multimask_output=multimask_output)
                out[i] = (np.asarray(masks) > 0, np.asarray(scores, np.float32).reshape(-1))
    return out


@dataclass
class PromptAnswer:
    """A segmenter's answer to one prompt: ``kind`` ("point" or "box"), the prompt (``point``
    (x, y) or ``box`` (x0, y0, x1, y1), pixels), the candidate ``masks`` (C×H×W bool) and their
    ``scores`` (C,)."""

    kind: str
    prompt: tuple
    masks: np.ndarray
    scores: np.ndarray


def point_and_box(predictor, image: np.ndarray, point: Sequence[float], box: Sequence[float]) -> list[PromptAnswer]:
    """Ask the segmenter about one object twice, on one encoded image: with a positive ``point``
    (x, y) and with a ``box`` (x0, y0, x1, y1), both in pixels, ``multimask_output=True`` each
    (notebook 04's points-or-box figure). ``set_image`` runs once, as SAM2 is meant to be used."""
    img = _as_image(image)
    ensure_image(predictor, img)
    pt = np.asarray(point, np.float32).reshape(1, 2)
    bx = np.asarray(box, np.float32).reshape(4)
    out = []
    for kind, kw, prompt in (("point", dict(point_coords=pt, point_labels=np.array([1], np.int32)), tuple(pt[0].tolist())),
                             ("box", dict(box=bx), tuple(bx.tolist()))):
        with sam2_autocast(predictor):
            masks, scores, _ = predictor.predict(multimask_output=True, **kw)
        out.append(PromptAnswer(kind, prompt, np.asarray(masks) > 0, np.asarray(scores, np.float32).reshape(-1)))
    return out


def choose_mask(masks: np.ndarray, scores: np.ndarray, region: np.ndarray | None, rule: str = "score",
                max_area: int | None = None, min_area: int = 1) -> tuple[int, np.ndarray, str]:
    """Index of the candidate to keep (-1 if none), the agreement IoUs with ``region``, and a note.

    ``rule="score"``: the highest segmenter score; ``"agreement"``: the highest IoU with the
    CLIP region. Masks smaller than ``min_area`` or larger than ``max_area`` pixels are never chosen.
    With ``"score"``, when the best-scoring candidate is smaller than ``min_area`` or larger than
    ``max_area`` the prompt is dropped: the segmenter's best reading of the click is a speck or
    the background, and another, lower-scoring candidate (a piece of the background, or a
    speck together with its neighbour) is not taken instead.
    """
    if rule not in MASK_CHOICES:
        raise ValueError(f"mask_choice must be one of {MASK_CHOICES}, got {rule!r}")
    areas = masks.reshape(len(masks), -1).sum(1)
    if region is not None:
        inter = (masks & region[None]).reshape(len(masks), -1).sum(1)
        union = (masks | region[None]).reshape(len(masks), -1).sum(1)
        agree = np.where(union > 0, inter / np.maximum(union, 1), 0.0).astype(np.float32)
    else:
        agree = np.zeros(len(masks), np.float32)
    if rule == "score":
        best = int(np.argmax(scores))
        if areas[best] < max(1, min_area):
            return -1, agree, f"best candidate smaller than {min_area} px (score {float(scores[best]):.2f})"
        if max_area is not None and areas[best] > max_area:
            return -1, agree, (f"best candidate larger than {max_area} px (background?; score "
                                f"{float(scores[best]):.2f})")
        return best, agree, ""
    ok = areas >= max(1, min_area)
    if max_area is not None:
        ok &= areas <= max_area
    if not ok.any():
        why = (f"all candidates smaller than {min_area} px" if not (areas >= max(1, min_area)).any()
               else f"all candidates larger than {max_area} px (background?)")
        return -1, agree, why
    key = np.where(ok, agree + 1e-3 * scores, -np.inf)
    return int(np.argmax(key)), agree, ""


def merge_duplicates(instances: list[Instance], iou_threshold: float = 0.8) -> list[Instance]:
    """Same-class instances whose masks overlap with IoU > ``iou_threshold`` are one object:
    keep the higher-scoring mask (greedy, by confidence) and record every prompt it absorbed."""
    order = sorted(range(len(instances)), key=lambda i: -instances[i].confidence)
    kept: list[Instance] = []
    for i in order:
        inst = instances[i]
        for k in kept:
            if k.class_id == inst.class_id:
                inter = np.logical_and(k.mask, inst.mask).sum()
                union = np.logical_or(k.mask, inst.mask).sum()
                if union and inter / union > iou_threshold:
                    k.prompts = sorted(set(k.prompts + inst.prompts))
                    break
        else:
            kept.append(Instance(inst.mask.copy(), inst.class_id, inst.score, inst.class_prob, list(inst.prompts),
                                 inst.class_name))
    return kept


def resolve_overlaps(instances: list[Instance], shape: tuple[int, int], background_id: int = 0,
                     fill: np.ndarray | None = None) -> tuple[np.ndarray, list[Instance], np.ndarray]:
    """Give every contested pixel to the instance with the highest confidence (score × class
    probability); unclaimed pixels get ``fill`` (an int H×W map, e.g. the dense argmax) or
    ``background_id``. Returns (label_map int64 H×W, instances cut to the pixels they won
    (empty ones removed), claims int H×W)."""
    H, W = shape
    claims = np.zeros((H, W), np.int32)
    owner = np.full((H, W), -1, np.int64)
    best = np.full((H, W), -np.inf)
    for i, inst in enumerate(instances):
        claims += inst.mask
        win = inst.mask & (inst.confidence > best)
        owner[win] = i
        best[win] = inst.confidence
    label_map = (np.asarray(fill, np.int64).copy() if fill is not None else np.full((H, W), background_id, np.int64))
    out = []
    for i, inst in enumerate(instances):
        m = owner == i
        label_map[m] = inst.class_id
        if m.any():
            out.append(Instance(m, inst.class_id, inst.score, inst.class_prob, inst.prompts, inst.class_name))
    return label_map, out, claims


def ask_segmenter(predictor, prompts: Sequence, mask_choice: str = "score", max_area: int | None = None,
                  min_area: int = 10, multimask_output: bool = True):
    """One query per prompt (the predictor already holds the image); keep one candidate each.

    Returns ``(candidates, chosen, dropped)``: a :class:`Candidate` per prompt, ``(prompt index,
    bool H×W mask, score)`` for every prompt whose candidate was kept, and ``(prompt index,
    reason)`` for the others (:func:`choose_mask` says why)."""
    answers = _query(predictor, prompts, multimask_output) if prompts else []
    candidates, chosen, dropped = [], [], []
    for i, (p, (masks, scores)) in enumerate(zip(prompts, answers)):
        k, agree, note = choose_mask(masks, scores, p.region, mask_choice, max_area, int(min_area))
        candidates.append(Candidate(i, p.class_id, masks, scores, agree, k, note))
        if k < 0:
            dropped.append((i, note))
        else:
            chosen.append((i, masks[k], float(scores[k])))
    return candidates, chosen, dropped


def name_masks(chosen, prompts: Sequence, classify: str, clip, image: np.ndarray, names: Sequence[str],
               probs: np.ndarray | None, background_id: int, min_class_prob: float = 0.0, class_crop: str = "masked"):
    """Give every kept mask a class: CLIP on the masked crop (``"clip"``), the mean dense
    probability under the mask (``"dense"``) or the prompt's own class (``"prompt"``).

    Returns ``(instances, dropped)``: an :class:`Instance` per named mask, and ``(prompt index,
    reason)`` for masks named background (by CLIP or the dense map) or below ``min_class_prob``."""
    if classify == "clip" and chosen:
        cp = classify_masks(clip, image, [m for _, m, _ in chosen], names, crop=class_crop)
    elif classify == "dense" and chosen:
        cp = np.stack([probs[:, m].mean(1) for _, m, _ in chosen])
    else:
        cp = None
    instances, dropped = [], []
    for j, (i, m, s) in enumerate(chosen):
        if cp is not None:
            c = int(np.argmax(cp[j]))
            prob = float(cp[j, c])
        else:
            c, prob = prompts[i].class_id, float(prompts[i].confidence)
        if c == background_id and cp is not None:
            dropped.append((i, f"classified as background ({prob:.2f})"))
            continue
        if prob < min_class_prob:
            dropped.append((i, f"class probability {prob:.2f} < min_class_prob"))
            continue
        instances.append(Instance(m, c, s, prob, [i], names[c] if c < len(names) else ""))
    return instances, dropped


def refine(predictor, image, prompts, iou_threshold: float = _D.iou_threshold, *, mask_choice: str = _D.mask_choice,
           classify: str = _D.classify, clip=None, probs=None, class_names: Sequence[str] | None = None,
           fill: str = _D.fill, background_id: int | None = None, max_area_fraction: float = _D.max_area_fraction,
           min_class_prob: float = _D.min_class_prob, min_area: int = _D.min_area, set_image: bool | str = "auto",
           multimask_output: bool = True, class_crop: str = _D.class_crop) -> Refined:
    """Prompt the segmenter once per prompt, keep one mask each, name it, resolve overlaps.

    Args:
        predictor: anything with SAM2ImagePredictor's ``set_image`` / ``predict``
            (``models.load_segmenter(...)``).
        image: uint8 H×W×3 RGB.
        prompts: a ``PromptExtraction`` or a list of ``prompts.Prompt``.
        iou_threshold: same-class masks with IoU above this merge (higher confidence kept).
        mask_choice: ``"score"`` (segmenter score) or ``"agreement"`` (IoU with the CLIP region).
        classify: where each mask's class comes from: ``"clip"`` — zero-shot classification of
            the mask's padded crop with ``clip`` over ``class_names`` (region-level, the most
            reliable); ``"dense"`` — the mean of ``probs`` inside the mask; ``"prompt"`` — keep
            the prompt's class; ``"auto"`` — clip if given, else dense if ``probs`` given, else prompt.
            Masks classified as background are dropped.
        clip: a ``models.ClipBundle`` (for ``classify="clip"``).
        probs: ``DenseResult`` or C×H×W probabilities (``classify="dense"``, ``fill="dense"``).
        class_names: the vocabulary (default: the names carried by ``probs`` or the prompts).
        fill: unclaimed pixels become ``"background"`` (``background_id``) or the ``"dense"`` argmax.
        background_id: class id of background (default: the class named "background", else 0).
        max_area_fraction: candidates covering more than this fraction of the image are
            rejected as background floods (1.0 disables).
        min_class_prob: drop instances whose class probability is below this.
        min_area: candidates smaller than this many pixels are rejected (edge slivers).
        class_crop: ``"masked"`` or ``"box"`` — what CLIP sees of each mask (see :func:`classify_masks`).
        set_image: call ``predictor.set_image(image)`` first: True, False (it already holds
            this image), or ``"auto"`` — only when the predictor last saw a different image
            (what makes slider re-runs cheap: SAM2's image encoder runs once).

    Returns:
        :class:`Refined` — ``label_map``, ``instances``, ``num_queries`` and every intermediate.
    """

    img = _as_image(image)
    H, W = img.shape[:2]
    plist = list(prompts)
    for p in plist:
        if not isinstance(p, _prompts.Prompt):
            raise ValueError(f"prompts must be prompts.Prompt objects (from extract_prompts), got {type(p).__name__}")
        if p.region.shape != (H, W):
            raise ValueError(f"a prompt's region is {p.region.shape} but the image is {(H, W)}: "
                             "extract prompts from dense maps at the image's resolution")
    RefineConfig(iou_threshold, mask_choice, classify, fill, max_area_fraction, min_class_prob, min_area,
                 class_crop)  # validates the settings (one place for their rules and defaults)
    p_arr, names = (None, [])
    if probs is not None:
        p_arr, names = _prompts.as_probs(probs)
        if p_arr.shape[1:] != (H, W):
            raise ValueError(f"probs are {p_arr.shape[1:]} but the image is {(H, W)}: resize the dense maps first")
    if isinstance(prompts, _prompts.PromptExtraction) and not names:
        names = list(prompts.class_names)
    names = list(class_names) if class_names is not None else names
    if classify == "auto":
        classify = "clip" if (clip is not None and names) else ("dense" if p_arr is not None else "prompt")
    if classify == "clip" and (clip is None or not names):
        raise ValueError("classify='clip' needs clip= (models.load_clip()) and class_names= (the vocabulary)")
    if (classify == "dense" or fill == "dense") and p_arr is None:
        raise ValueError("classify/fill='dense' needs probs= (the DenseResult the prompts came from)")
    if background_id is None:
        found = background_index(names)
        background_id = 0 if found is None else found
    if plist:
        ensure_image(predictor, img, set_image)
    max_area = int(max_area_fraction * H * W) if max_area_fraction < 1.0 else None
    # 1. ask the segmenter once per prompt and keep one of its candidates
    candidates, chosen, dropped = ask_segmenter(predictor, plist, mask_choice, max_area, int(min_area), multimask_output)
    # 2. name each kept mask
    before, unnamed = name_masks(chosen, plist, classify, clip, img, names, p_arr, background_id, min_class_prob, class_crop)
    dropped += unnamed
    # 3. merge duplicates and give every contested pixel to one mask
    merged = merge_duplicates(before, float(iou_threshold))
    fill_map = p_arr.argmax(0) if fill == "dense" else None
    label_map, instances, claims = resolve_overlaps(merged, (H, W), background_id, fill_map)
    params = dict(iou_threshold=float(iou_threshold), mask_choice=mask_choice, classify=classify, fill=fill,
                  background_id=background_id, max_area_fraction=float(max_area_fraction),
                  min_class_prob=float(min_class_prob), min_area=int(min_area), class_crop=class_crop)
    return Refined(label_map, instances, len(plist), candidates, before, claims, dropped, params)


# ============================================================================= blind grid baseline
def grid_points(shape: tuple[int, int], points_per_side: int = 32) -> np.ndarray:
    """(n², 2) xy points on a regular grid at cell centres (SAM's automatic-mask-generator layout)."""
    H, W = shape
    n = int(points_per_side)
    if n < 1:
        raise ValueError(f"points_per_side must be ≥ 1, got {points_per_side!r}")
    xs = (np.arange(n) + 0.5) * W / n - 0.5
    ys = (np.arange(n) + 0.5) * H / n - 0.5
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], 1)


def grid_baseline(predictor, image, points_per_side: int = 32, *, clip=None, class_names: Sequence[str] | None = None,
                  iou_threshold: float = 0.8, max_area_fraction: float = 0.5, min_area: int = 10,
                  background_id: int | None = None, set_image: bool | str = "auto", class_crop: str = "masked") -> Refined:
    """The blind baseline: prompt the segmenter at every point of an N×N grid (N² queries),
    keep each point's best mask, drop duplicates (IoU > ``iou_threshold``, class-agnostic),
    name the survivors with CLIP (when ``clip`` and ``class_names`` are given) and resolve
    overlaps like :func:`refine`. With SAM2 this is ``SAM2AutomaticMaskGenerator``
    (``points_per_side=N``); its masks are named the same way."""
    img = _as_image(image)
    H, W = img.shape[:2]
    names = list(class_names) if class_names is not None else []
    if background_id is None:
        found = background_index(names)
        background_id = 0 if found is None else found
    max_area = int(max_area_fraction * H * W) if max_area_fraction < 1.0 else None
    n = int(points_per_side)
    pts = grid_points((H, W), n)
    found: list[Instance] = []
    if _is_sam2(predictor):
        from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

        gen = SAM2AutomaticMaskGenerator(predictor.model, points_per_side=n, box_nms_thresh=float(iou_threshold))
        with sam2_autocast(predictor):
            records = gen.generate(img)
        for rec in records:
            m = np.asarray(rec["segmentation"], bool)
            if m.sum() >= min_area and (max_area is None or m.sum() <= max_area):
                found.append(Instance(m, -1, float(rec["predicted_iou"]), 1.0, []))
    else:
        ensure_image(predictor, img, set_image)
        for i, p in enumerate(pts):
            masks, scores, _ = predictor.predict(point_coords=p[None], point_labels=np.array([1]), multimask_output=True)
            masks = np.asarray(masks) > 0
            k, _, _ = choose_mask(masks, np.asarray(scores, np.float32).reshape(-1), None, "score", max_area, min_area)
            if k >= 0:
                found.append(Instance(masks[k], -1, float(np.asarray(scores).reshape(-1)[k]), 1.0, [i]))
    found = merge_duplicates(found, float(iou_threshold))  # class -1 for all: class-agnostic
    before: list[Instance] = []
    if clip is not None and names and found:
        cp = classify_masks(clip, img, [f.mask for f in found], names, crop=class_crop)
        for f, pr in zip(found, cp):
            c = int(np.argmax(pr))
            if c != background_id:
                before.append(Instance(f.mask, c, f.score, float(pr[c]), f.prompts, names[c]))
    else:
        before = [Instance(f.mask, background_id + 1, f.score, 1.0, f.prompts) for f in found]
    label_map, instances, claims = resolve_overlaps(before, (H, W), background_id)
    return Refined(label_map, instances, n * n, [], before, claims, [],
                   dict(points_per_side=n, iou_threshold=float(iou_threshold)))
