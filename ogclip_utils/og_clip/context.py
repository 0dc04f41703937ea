"""The context task: captions that need the object *and* its surroundings.

Two kinds of scene, both from the shapes world (``data.make_scene`` with fixed classes):

- **relational**: two or more objects of the target's class T (the target and its
  *distractor*), one unique *anchor* A, and sometimes one other object. The caption is
  ``"the {T} {relation} the {A}"`` with the relation from ``data.RELATIONS``, and exactly one
  T stands in that relation to A (as ``data._relation_holds`` decides), so the caption names
  one object while a masked crop of either T looks the same;
- **attribute**: 2–4 objects of different classes, the caption ``"the {T}"``.

Two measures on held-out seeds (:func:`within_scene_accuracy`, and gallery R@K in
:mod:`.guided`): score a caption against every object of its scene (the argmax must be the
target), and text→image retrieval over (image, object) pairs with unique captions.

Every sample carries the ground-truth masks of all objects of its scene; a segmenter's
masks from the objects' interior points can replace them (:func:`segmenter_masks`).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import re

import numpy as np

from ..segmenters import sam2_autocast
from .. import data
from .samples import interior_point, segment_point

KINDS = ("relational", "attribute")
TRAIN_SEED_BASE = 90_000_000  # context-task training scenes
TEST_SEED_BASE = 95_000_000  # held-out: disjoint from training, from tiny-shapes and from the attribute task
#: the mirror images of each relation: a horizontal flip swaps left/right, a vertical one above/below
HFLIP = {"left of": "right of", "right of": "left of", "above": "above", "below": "below"}
VFLIP = {"left of": "left of", "right of": "right of", "above": "below", "below": "above"}


def relational_caption(target: str, relation: str, anchor: str) -> str:
    """``"the {target} {relation} the {anchor}"`` (target/anchor are "colour shape" names)."""
    if relation not in data.RELATIONS:
        raise ValueError(f"relation must be one of {data.RELATIONS}, got {relation!r}")
    return f"the {target} {relation} the {anchor}"


_GRAMMAR = re.compile(r"^the (.+?) (left of|right of|above|below) the (.+)$")


def parse_relation(caption: str) -> str | None:
    """The relation word of a caption in the relational grammar, else None."""
    m = _GRAMMAR.match(caption)
    return m.group(2) if m else None


def with_relation(caption: str, relation: str) -> str:
    """``caption`` (relational grammar) with its relation word replaced by ``relation``."""
    m = _GRAMMAR.match(caption)
    if m is None:
        raise ValueError(f"caption {caption!r} is not 'the <target> <relation> the <anchor>'")
    if relation not in data.RELATIONS:
        raise ValueError(f"relation must be one of {data.RELATIONS}, got {relation!r}")
    return f"the {m.group(1)} {relation} the {m.group(3)}"


def attribute_caption(target: str) -> str:
    """``"the {target}"``."""
    return f"the {target}"


@dataclass
class ContextSample:
    """One caption on one scene.

    image uint8 H×W×3; masks bool K×H×W, one per object of the scene (ground truth unless
    ``mask_source`` says otherwise); names the K class names; target the index of the object
    the caption means; anchor the anchor's index (relational) or None; relation likewise.
    """

    image: np.ndarray
    masks: np.ndarray
    names: list[str]
    target: int
    caption: str
    kind: str
    relation: str | None = None
    anchor: int | None = None
    seed: int = 0
    mask_source: str = "ground_truth"
    gt_masks: np.ndarray | None = field(default=None, repr=False)

    @property
    def distractors(self) -> list[int]:
        """Indices of the other objects of the target's class."""
        return [i for i, n in enumerate(self.names) if n == self.names[self.target] and i != self.target]

    def points(self) -> np.ndarray:
        """K×2 float (x, y): each object's most interior pixel (ground-truth mask)."""
        masks = self.gt_masks if self.gt_masks is not None else self.masks
        return np.asarray([interior_point(m) for m in masks], np.float32)

    def flipped(self, axis: str) -> "ContextSample":
        """The same sample mirrored (``axis`` "h" or "v"), relation word swapped to stay true."""
        if axis not in ("h", "v"):
            raise ValueError(f"axis must be 'h' or 'v', got {axis!r}")
        ax = 1 if axis == "h" else 0
        rel = self.relation and (HFLIP if axis == "h" else VFLIP)[self.relation]
        cap = self.caption if rel is None else with_relation(self.caption, rel)
        flip = (lambda a, k: np.ascontiguousarray(np.flip(a, k)))
        return replace(self, image=flip(self.image, ax), masks=flip(self.masks, ax + 1), caption=cap, relation=rel,
                       gt_masks=None if self.gt_masks is None else flip(self.gt_masks, ax + 1))


def _objects(scene: data.Scene) -> tuple[list[str], np.ndarray]:
    return [o.name for o in scene.objects], np.stack([o.mask for o in scene.objects])


def context_sample(seed: int, kind: str = "relational", size: int | tuple[int, int] = (96, 160),
                   max_tries: int = 200) -> ContextSample:
    """Render one sample of the context task, deterministically from ``seed``.

    Args:
        seed: non-negative integer.
        kind: ``"relational"`` or ``"attribute"``.
        size: scene side in pixels, or an inclusive (min, max) range drawn per seed.
        max_tries: scenes rendered before giving up (a relational scene is kept only when
            exactly one object of the target's class stands in the relation).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    rng = np.random.default_rng([int(seed), 31337])
    classes = data.CLASS_NAMES[1:]
    for k in range(max_tries):
        side = int(rng.integers(size[0], size[1] + 1)) if isinstance(size, tuple) else int(size)
        sub = int(seed) * 1000 + k
        if kind == "attribute":
            n = int(rng.integers(2, 5))
            names = [classes[i] for i in rng.choice(len(classes), n, replace=False)]
            scene = data.make_scene(sub, side, names=names, radius_range=(0.08, 0.2))
            got, masks = _objects(scene) if scene.objects else ([], None)
            if len(got) < 2 or len(set(got)) != len(got):
                continue
            t = int(rng.integers(len(got)))
            return ContextSample(scene.image, masks, got, t, attribute_caption(got[t]), kind, seed=int(seed),
                                 gt_masks=masks)
        t_cls, a_cls, o_cls = (classes[i] for i in rng.choice(len(classes), 3, replace=False))
        names = [t_cls, t_cls, a_cls] + ([o_cls] if rng.random() < 0.6 else [])
        rng.shuffle(names)
        scene = data.make_scene(sub, side, names=names, radius_range=(0.08, 0.2))
        if len(scene.objects) != len(names):
            continue
        got, masks = _objects(scene)
        a = got.index(a_cls)
        ts = [i for i, n in enumerate(got) if n == t_cls]
        for rel in rng.permutation(data.RELATIONS):
            hold = [i for i in ts if data._relation_holds(str(rel), scene.objects[i], scene.objects[a])]
            if len(hold) == 1:
                return ContextSample(scene.image, masks, got, hold[0], relational_caption(t_cls, str(rel), a_cls), kind,
                                     relation=str(rel), anchor=a, seed=int(seed), gt_masks=masks)
    raise RuntimeError(f"no {kind} scene found for seed {seed} in {max_tries} tries")


def _one(args):
    return context_sample(*args)


def context_samples(seeds: Sequence[int], kind: str = "relational", size: int | tuple[int, int] = (96, 160),
                    workers: int = 1, progress: bool = False) -> list[ContextSample]:
    """:func:`context_sample` for every seed (``workers`` > 1 renders in processes)."""
    jobs = [(int(s), kind, size) for s in seeds]
    if workers > 1 and len(jobs) > 50:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(workers) as pool:
            it = pool.imap(_one, jobs, chunksize=32)
            if progress:
                from tqdm.auto import tqdm
                it = tqdm(it, total=len(jobs), desc=f"{kind} scenes")
            return list(it)
    return [_one(j) for j in jobs]


def segmenter_masks(samples: Sequence[ContextSample], segmenter) -> list[ContextSample]:
    """The same samples with each object's mask from ``segmenter`` given its interior point
    (the best of its multimask candidates); ``gt_masks`` keeps the ground truth."""
    out = []
    for s in samples:
        with sam2_autocast(segmenter):
            segmenter.set_image(s.image)
        masks = np.stack([segment_point(segmenter, tuple(p)) for p in s.points()])
        out.append(replace(s, masks=masks, mask_source="segmenter"))
    return out


#: scores this close (relative) to the best are ties (float32 noise is ~1e-7 per cosine)
TIE_TOLERANCE = 1e-5


def within_scene_accuracy(score: Callable[[ContextSample], np.ndarray], samples: Sequence[ContextSample],
                          seed: int = 0) -> float:
    """Fraction of samples whose caption scores highest on its target among the scene's objects.

    ``score(sample) -> K`` scores, one per object. Ties are broken at random (seeded), so a
    method that cannot tell objects apart scores chance among them, not 0 or 1. Scores within
    :data:`TIE_TOLERANCE` (relative) of the best count as tied: the same input encoded at another
    position of a float32 batch differs in the last bits, and differently on another CPU."""
    if len(samples) == 0:
        raise ValueError("samples is empty")
    rng = np.random.default_rng(seed)
    hits = 0
    for s in samples:
        sc = np.asarray(score(s), np.float64)
        if sc.shape != (len(s.names),):
            raise ValueError(f"score must return one value per object ({len(s.names)}), got shape {sc.shape}")
        best = np.flatnonzero(sc >= sc.max() - TIE_TOLERANCE * max(1.0, abs(sc.max())))
        hits += int(rng.choice(best) == s.target)
    return hits / len(samples)


def mirrored(s: ContextSample) -> bool:
    """True when a distractor of a relational sample stands on the other side of the anchor along
    the caption's axis, as the mirrored relation (target left of the anchor, a distractor right of
    it, each mostly along that axis; mask centroids): then only the relation word tells them apart."""
    if s.relation is None or s.anchor is None or not s.distractors:
        return False
    masks = s.gt_masks if s.gt_masks is not None else s.masks

    def centre(k):
        ys, xs = np.nonzero(masks[k])
        return np.array([xs.mean(), ys.mean()])

    a, t = centre(s.anchor), centre(s.target)
    ax = 0 if s.relation in ("left of", "right of") else 1
    side = np.sign(t[ax] - a[ax])
    for d in s.distractors:
        off = centre(d) - a
        if np.sign(off[ax]) == -side and abs(off[ax]) > abs(off[1 - ax]):
            return True
    return False
