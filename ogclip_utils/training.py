"""Contrastive training pieces shared by tiny-shapes and Object-Guided CLIP: loss, schedule, weight-decay groups.

- :func:`contrastive_loss` — CLIP's bidirectional InfoNCE, with soft targets when a batch
  holds the same caption twice;
- :func:`infonce_at_scales` — that loss for fixed embeddings at several scales (notebook 00's
  temperature toy);
- :func:`warmup_cosine` — the learning-rate factor: linear warm-up, then cosine to 0;
- :func:`param_groups` — AdamW groups: weight decay on weight matrices only.

Written by hand because they are what the training lessons are about (a dozen lines each).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F


def contrastive_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor,
                     caption_ids: Sequence[int] | torch.Tensor | None = None,
                     max_scale: float | None = None) -> torch.Tensor:
    """Bidirectional InfoNCE: mean of image→text and text→image cross-entropy over
    ``s · image_emb @ text_emb.T`` (N×N; both inputs L2-normalised N×D), ``s = exp(logit_scale)``
    (clamped at ``max_scale`` when given, as CLIP clamps at 100).

    Matching pairs are on the diagonal. With ``caption_ids`` (N ints), pairs with the same
    caption also count as positives (soft targets spread uniformly over them), so identical
    captions in one batch are not pushed apart."""
    if image_emb.shape != text_emb.shape or image_emb.ndim != 2:
        raise ValueError(f"image and text embeddings must both be N×D, got {tuple(image_emb.shape)} and {tuple(text_emb.shape)}")
    scale = logit_scale.exp()
    if max_scale is not None:
        scale = scale.clamp(max=max_scale)
    logits = scale * image_emb @ text_emb.t()
    n = logits.shape[0]
    if caption_ids is None:
        target = torch.arange(n, device=logits.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))
    ids = torch.as_tensor(caption_ids, device=logits.device)
    if ids.shape != (n,):
        raise ValueError(f"caption_ids must hold one id per pair ({n}), got shape {tuple(ids.shape)}")
    pos = (ids[:, None] == ids[None, :]).float()
    tgt = pos / pos.sum(1, keepdim=True)
    l_i2t = -(tgt * F.log_softmax(logits, 1)).sum(1).mean()
    l_t2i = -(tgt * F.log_softmax(logits.t(), 1)).sum(1).mean()
    return 0.5 * (l_i2t + l_t2i)


def infonce_at_scales(image_emb: torch.Tensor, text_emb: torch.Tensor, scales: Sequence[float]) -> list[float]:
    """:func:`contrastive_loss` of matched, L2-normalised N×D embeddings (pair i = row i) at each
    fixed logit scale ``s`` in ``scales`` (s = 1/temperature, > 0); one loss (nats) per scale.
    At s → 0 every loss tends to log N (chance); it falls as s grows only if the diagonal wins."""
    if any(not float(x) > 0 for x in scales):
        raise ValueError(f"scales must all be positive (s = 1/temperature), got {list(scales)}")
    img, txt = torch.as_tensor(image_emb).float(), torch.as_tensor(text_emb).float()
    return [float(contrastive_loss(img, txt, torch.tensor(math.log(float(x))))) for x in scales]


def warmup_cosine(step: int, total: int, warmup: int) -> float:
    """Learning-rate factor at ``step`` (0-based) of ``total``: ``(step+1)/warmup`` for the first
    ``warmup`` steps, then a cosine from 1 to 0 at ``total``."""
    warmup = max(1, int(warmup))
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def no_weight_decay(name: str, param: torch.Tensor) -> bool:
    """True for parameters AdamW should not decay: vectors (biases, norm scales), embeddings
    (token, positional, class) and the logit scale."""
    return param.ndim < 2 or "embedding" in name or "logit_scale" in name or ".ln" in name or name.endswith(".bias")


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW parameter groups: trainable weight matrices with ``weight_decay``, the rest
    (:func:`no_weight_decay`) without; frozen parameters are left out."""
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if no_weight_decay(n, p) else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
