"""Retrieval evaluation of object embeddings: caption-unique galleries, R@K, mean rank, frozen baselines."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import torch

from .. import metrics
from .features import FeatureCache, feature_tensors


@dataclass
class RetrievalReport:
    """Retrieval inside caption-unique galleries (percent; mean rank 1-based), averaged over
    queries. ``t2i_scene_r1``: text→image R@1 among the samples of the query's own scene only
    (same image, different prompts: the disambiguation a global embedding cannot do)."""

    i2t_r1: float
    i2t_r5: float
    t2i_r1: float
    t2i_r5: float
    mean_rank: float
    t2i_scene_r1: float
    n_queries: int
    n_galleries: int
    gallery_size: float

    def as_dict(self) -> dict:
        return asdict(self)


def make_galleries(feats: FeatureCache, size: int = 16, seed: int = 0) -> list[np.ndarray]:
    """Split samples into galleries of whole scenes (≤ ``size`` samples) with unique captions.

    Scenes are visited in a seeded order; each goes into the first open gallery with room and
    no caption in common, else opens a new one. Galleries with fewer than 2 scenes are dropped."""
    if size < 2:
        raise ValueError(f"gallery size must be ≥ 2, got {size}")
    rng = np.random.default_rng([seed, 11])
    scenes = np.unique(feats.scene_ids)
    rng.shuffle(scenes)
    gals: list[dict] = []
    for s in scenes:
        idx = np.nonzero(feats.scene_ids == s)[0]
        caps = set(feats.caption_ids[idx].tolist())
        if len(caps) != len(idx) or len(idx) > size:
            continue
        for g in gals:
            if len(g["idx"]) + len(idx) <= size and not (g["caps"] & caps):
                g["idx"].extend(idx.tolist())
                g["caps"] |= caps
                g["scenes"] += 1
                break
        else:
            gals.append({"idx": idx.tolist(), "caps": set(caps), "scenes": 1})
    return [np.asarray(g["idx"]) for g in gals if g["scenes"] >= 2]


def evaluate_retrieval(image_emb: np.ndarray, text_emb: np.ndarray, galleries: Sequence[np.ndarray],
                       scene_ids: np.ndarray | None = None, seed: int = 0) -> RetrievalReport:
    """R@1/R@5 (i2t, t2i) and mean rank of N×D image/text embeddings (row i of each is pair i)
    inside each gallery (index arrays, see :func:`make_galleries`), averaged over queries.

    Exact ties are broken at random (seeded noise of 1e-6, far below any real score gap)."""
    img = np.asarray(image_emb, np.float64)
    txt = np.asarray(text_emb, np.float64)
    if img.ndim != 2 or img.shape != txt.shape:
        raise ValueError(f"image_emb and text_emb must both be N×D, got {img.shape} and {txt.shape}")
    if len(galleries) == 0:
        raise ValueError("no galleries: need ≥ 2 scenes whose captions do not collide (see make_galleries)")
    rng = np.random.default_rng([seed, 12])
    keys = ("i2t_r1", "i2t_r5", "t2i_r1", "t2i_r5", "mean_rank")
    acc = {k: 0.0 for k in keys}
    n = 0
    scene_hits: list[float] = []
    for g in galleries:
        g = np.asarray(g)
        sim = img[g] @ txt[g].T + 1e-6 * rng.random((len(g), len(g)))
        m = metrics.retrieval_metrics(sim)
        for k in keys:
            acc[k] += m[k] * len(g)
        n += len(g)
        if scene_ids is not None:
            sid = np.asarray(scene_ids)[g]
            for j in range(len(g)):  # text j against the images of its own scene
                same = sid == sid[j]
                scene_hits.append(float(np.argmax(np.where(same, sim[:, j], -np.inf)) == j))
    return RetrievalReport(*(acc[k] / n for k in keys),
                           t2i_scene_r1=100.0 * float(np.mean(scene_hits)) if scene_hits else float("nan"),
                           n_queries=n, n_galleries=len(galleries), gallery_size=n / len(galleries))


def embed(model, feats: FeatureCache, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(image N×D, text N×D) numpy embeddings of ``feats`` under ``model`` (eval mode, no grad)."""
    model.eval()
    dev = next(model.parameters()).device
    ims, txs = [], []
    with torch.inference_mode():
        for i in range(0, len(feats), batch_size):
            img, msk, tok, txt = feature_tensors(feats, np.arange(i, min(i + batch_size, len(feats))), dev)
            ims.append(model(img, msk, tok).float().cpu().numpy())
            txs.append(model.encode_text(txt).float().cpu().numpy())
    model.train()
    return np.concatenate(ims), np.concatenate(txs)


def evaluate_model(model, feats: FeatureCache, galleries=None, seed: int = 0) -> RetrievalReport:
    """:func:`evaluate_retrieval` of ``model`` on ``feats`` (galleries from :func:`make_galleries`)."""
    galleries = make_galleries(feats, seed=seed) if galleries is None else galleries
    img, txt = embed(model, feats)
    return evaluate_retrieval(img, txt, galleries, feats.scene_ids, seed=seed)


def evaluate_baseline(feats: FeatureCache, kind: str = "global", galleries=None, seed: int = 0) -> RetrievalReport:
    """Frozen-CLIP baselines: ``"global"`` (whole-image embedding, the same for every object of
    a scene) or ``"masked_crop"`` (CLIP on the crop of the predicted mask)."""
    if kind not in ("global", "masked_crop"):
        raise ValueError(f"kind must be 'global' or 'masked_crop', got {kind!r}")
    galleries = make_galleries(feats, seed=seed) if galleries is None else galleries
    img = feats.global_emb if kind == "global" else feats.crop_emb
    return evaluate_retrieval(img, feats.text_emb, galleries, feats.scene_ids, seed=seed)
