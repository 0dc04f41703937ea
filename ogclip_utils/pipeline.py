"""The whole chain on one image: dense CLIP map → prompts → segmenter → label map.

``segment(image, vocabulary)`` runs every stage once and returns a :class:`SegmentationResult`
holding every intermediate and per-stage timings. ``result.rerun(min_confidence=0.5)``
re-runs only the cheap stages (prompt extraction and refinement) on the cached dense map and
the segmenter's cached image encoding — what the notebooks' sliders call.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import Any, Sequence

import numpy as np

from . import data, dense, models, prompts as _prompts, refine as _refine
from .vocabulary import background_index, parse_vocabulary

# The keyword arguments of each stage are the fields of its settings dataclass (one list of names).
DENSE_KEYS = tuple(f.name for f in fields(dense.DenseConfig))
PROMPT_KEYS = tuple(f.name for f in fields(_prompts.PromptConfig))
REFINE_KEYS = tuple(f.name for f in fields(_refine.RefineConfig))


@dataclass
class SegmentationResult:
    """Everything one run of :func:`segment` produced.

    Attributes:
        image: uint8 H×W×3.
        vocabulary: class names (index = class id).
        dense: the ``DenseResult`` (probs float32 C×H×W).
        extraction: ``prompts.PromptExtraction`` (thresholded map, components, size filter, prompts).
        refined: ``refine.Refined`` (candidates, chosen masks, before/after overlap resolution).
        label_map: int64 H×W final class ids (only ``target`` and background when a target is set).
        timings: seconds per stage (``dense``, ``prompts``, ``refine``, ``total``).
        params: the parameters of every stage.
        target: the class id kept (``target=`` of :func:`segment`), or None.
    """

    image: np.ndarray
    vocabulary: list[str]
    dense: Any
    extraction: _prompts.PromptExtraction
    refined: _refine.Refined
    label_map: np.ndarray
    timings: dict
    params: dict
    target: int | None = None
    clip: Any = field(default=None, repr=False)
    segmenter: Any = field(default=None, repr=False)

    # shortcuts to the intermediates
    @property
    def probs(self) -> np.ndarray:
        return self.dense.probs

    @property
    def dense_label_map(self) -> np.ndarray:
        """int64 H×W argmax of the dense probabilities."""
        return np.asarray(self.dense.probs).argmax(0).astype(np.int64)

    @property
    def prompts(self) -> list:
        return self.extraction.prompts

    @property
    def candidates(self) -> list:
        return self.refined.candidates

    @property
    def instances(self) -> list:
        return self.refined.instances

    @property
    def num_queries(self) -> int:
        return self.refined.num_queries

    def largest_object(self) -> tuple[str, np.ndarray]:
        """``(class name, bool H×W mask)`` of the largest refined instance — what an edit works
        on. When refinement kept nothing (every mask was named background), the largest
        confident CLIP region stands in (``"<class> (CLIP region)"``), and without any prompt
        the dense argmax of the foreground class that covers most pixels
        (``"<class> (dense argmax)"``); a map that is background everywhere is a ValueError
        that says what to change."""
        if self.instances:
            inst = max(self.instances, key=lambda i: i.area)
            return self.vocabulary[inst.class_id], self.label_map == inst.class_id
        if self.prompts:
            p = max(self.prompts, key=lambda q: int(q.region.sum()))
            return f"{self.vocabulary[p.class_id]} (CLIP region)", np.asarray(p.region, dtype=bool)
        counts = np.bincount(self.dense_label_map.ravel(), minlength=len(self.vocabulary))
        bg = background_index(self.vocabulary)
        if bg is not None:
            counts[bg] = 0
        if counts.max() == 0:
            raise ValueError("nothing was segmented: the dense map is background everywhere. Add the object's "
                             "name to the vocabulary, or check that the image shows it")
        c = int(counts.argmax())
        return f"{self.vocabulary[c]} (dense argmax)", self.dense_label_map == c

    def summary(self) -> str:
        """One line: prompts, queries, instances and the classes found (no timings)."""
        found = sorted({self.vocabulary[i.class_id] for i in self.instances})
        return (f"{len(self.prompts)} prompts → {self.num_queries} segmenter queries → "
                f"{len(self.instances)} instances: {', '.join(found) if found else 'none'}")

    def rerun(self, **params) -> "SegmentationResult":
        """Re-run prompt extraction and refinement with changed parameters on the cached dense
        map (and the segmenter's cached image encoding). Dense parameters cannot change here."""
        bad = [k for k in params if k in DENSE_KEYS]
        if bad:
            raise ValueError(f"{bad} change the dense stage: call pipeline.segment(...) again instead of rerun")
        merged = {**self.params, **params}
        return _run_cheap(self.image, self.vocabulary, self.dense, self.clip, self.segmenter, merged,
                          self.target, {"dense": self.timings.get("dense", 0.0)})


def default_models(mode: str | None = None, device: str | None = None):
    """``(clip, segmenter)`` for the mode (:func:`ogclip_utils.models.default_models`)."""
    return models.default_models(mode, device)


def _check_vocabulary(vocabulary) -> list[str]:
    if isinstance(vocabulary, str):
        raise ValueError("vocabulary must be a list of class names (e.g. data.CLASS_NAMES), not one string; "
                         "use ['a', 'b'] — a comma inside one entry lists synonyms")
    try:
        vocab = list(vocabulary)
    except TypeError:
        raise ValueError(f"vocabulary must be a list of class names, got {type(vocabulary).__name__}") from None
    if not vocab:
        raise ValueError("vocabulary is empty: pass at least one class name (offline: data.CLASS_NAMES)")
    if not all(isinstance(v, str) and v.strip() for v in vocab):
        raise ValueError("every vocabulary entry must be a non-empty string")
    return vocab


def _target_id(target, vocab: list[str]) -> int | None:
    if target is None:
        return None
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        if not 0 <= int(target) < len(vocab):
            raise ValueError(f"target={target} is out of range for a vocabulary of {len(vocab)} classes")
        return int(target)
    if isinstance(target, str):
        t = target.strip().lower()
        low = [v.strip().lower() for v in vocab]
        if t in low:
            return low.index(t)
        for i, v in enumerate(low):  # a synonym of an "a, b" entry names that class too
            if t in [x.strip() for x in v.split(",")]:
                return i
        raise ValueError(f"target {target!r} is not in the vocabulary; add it, or use one of {vocab[:8]}…")
    raise ValueError(f"target must be a class name or id, got {target!r}")


def _split(params: dict) -> tuple[dict, dict, dict]:
    unknown = [k for k in params if k not in DENSE_KEYS + PROMPT_KEYS + REFINE_KEYS]
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}; dense: {DENSE_KEYS}; prompts: {PROMPT_KEYS}; "
                         f"refine: {REFINE_KEYS}")
    pick = lambda keys: {k: v for k, v in params.items() if k in keys}  # noqa: E731
    return pick(DENSE_KEYS), pick(PROMPT_KEYS), pick(REFINE_KEYS)


def _run_cheap(image, vocab, dense_result, clip, segmenter, params, target, timings) -> SegmentationResult:
    _, pp, rp = _split(params)
    t = time.perf_counter()
    ex = _prompts.extract_prompts(dense_result, classes=None if target is None else [target], **pp)
    timings["prompts"] = time.perf_counter() - t
    t = time.perf_counter()
    rp = dict(rp)
    if rp.get("classify", "auto") == "auto":
        rp["classify"] = models.mode_defaults().classify
    ref = _refine.refine(segmenter, image, ex, clip=clip, probs=dense_result, class_names=vocab, **rp)
    timings["refine"] = time.perf_counter() - t
    label_map = ref.label_map
    if target is not None:  # keep one class: other instances go, their pixels become background
        bg = ref.params["background_id"]
        label_map = np.where(label_map == target, target, bg).astype(np.int64)
        ref.instances = [i for i in ref.instances if i.class_id == target]
    timings["total"] = sum(timings[k] for k in ("dense", "prompts", "refine"))
    return SegmentationResult(image, vocab, dense_result, ex, ref, label_map, timings, dict(params), target,
                              clip, segmenter)


def segment(image, vocabulary: Sequence[str], clip=None, segmenter=None, *, target=None,
            **params) -> SegmentationResult:
    """Segment ``image`` into the classes of ``vocabulary``: dense CLIP map → prompts → refinement.

    Args:
        image: path, PIL image or array (anything ``data.load_image`` accepts).
        vocabulary: class names; index 0 is usually "background" (``data.CLASS_NAMES`` offline).
        clip: a ``models.ClipBundle`` (default: the mode's model, see :func:`default_models`).
        segmenter: a promptable segmenter (default: the mode's; ``models.load_segmenter``).
        target: keep only this class (name or id): prompts are extracted for it alone and the
            final label map holds only it and background (the CLI's ``--prompt``).
        **params: dense (``method``, ``logit_scale``, ``crop``, ``stride``, …), prompt
            (``min_confidence``, ``min_region_size``, ``points_per_cluster``,
            ``negative_points_per_cluster``, ``negative_confidence_threshold``, …) and refine
            (``iou_threshold``, ``mask_choice``, ``classify``, ``fill``, ``max_area_fraction``, …)
            parameters. ``classify`` defaults to CLIP crop classification offline and to the
            dense probabilities in real mode.

    Returns:
        :class:`SegmentationResult`.
    """
    img = data.load_image(image)
    vocab = _check_vocabulary(vocabulary)
    tid = _target_id(target, vocab)
    dp, _, _ = _split(params)
    clip = models.default_clip() if clip is None else clip
    segmenter = models.default_segmenter() if segmenter is None else segmenter
    t = time.perf_counter()
    dres = dense.dense_probs(clip, img, vocab, **dp)
    timings = {"dense": time.perf_counter() - t}
    return _run_cheap(img, vocab, dres, clip, segmenter, params, tid, timings)


def rerun(result: SegmentationResult, **params) -> SegmentationResult:
    """``result.rerun(**params)``: only the prompt and refine stages, on cached results."""
    return result.rerun(**params)


def target_mask(result, vocabulary: Sequence[str], target: str) -> np.ndarray:
    """bool H×W: the pixels of the final label map belonging to class ``target`` (a name or a synonym)."""
    classes, queries, q2c = parse_vocabulary(list(vocabulary))
    if target in classes:
        cid = classes.index(target)
    elif target in queries:
        cid = int(q2c[queries.index(target)])
    else:
        raise ValueError(f"--prompt {target!r} is not in the vocabulary {classes}; use one of its names")
    return np.asarray(result.label_map) == cid
