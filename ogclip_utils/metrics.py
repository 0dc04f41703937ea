"""Metrics with the published definitions.

Segmentation follows mmsegmentation: one confusion matrix accumulated over the whole
dataset (not averaged per image), ignore-label pixels dropped, IoU per class,
mIoU = nanmean over classes with a non-empty union, pixel accuracy, mean accuracy.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np


def confusion_matrix(pred: np.ndarray, gt: np.ndarray, num_classes: int, ignore_index: int = 255) -> np.ndarray:
    """num_classes×num_classes int64 counts, rows = ground truth, columns = prediction.

    ``pred`` and ``gt`` are integer H×W arrays of the same shape; ``gt == ignore_index``
    pixels are dropped; predictions outside [0, num_classes) raise."""
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground-truth shape {gt.shape}")
    if not (np.issubdtype(pred.dtype, np.integer) and np.issubdtype(gt.dtype, np.integer)):
        raise ValueError(f"predictions and ground truth must be integer label maps, got {pred.dtype} and {gt.dtype}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be ≥ 1, got {num_classes}")
    keep = gt != ignore_index
    p, g = pred[keep].astype(np.int64), gt[keep].astype(np.int64)
    if p.size and (p.min() < 0 or p.max() >= num_classes):
        raise ValueError(f"predicted labels must lie in [0, {num_classes}), got [{p.min()}, {p.max()}]")
    if g.size and (g.min() < 0 or g.max() >= num_classes):
        raise ValueError(f"ground-truth labels must lie in [0, {num_classes}) or equal ignore_index={ignore_index}, "
                         f"got [{g.min()}, {g.max()}]")
    return np.bincount(g * num_classes + p, minlength=num_classes**2).reshape(num_classes, num_classes)


def metrics_from_confusion(cm: np.ndarray) -> dict:
    """{miou, pixel_acc, mean_acc, per_class_iou (array, NaN where the union is empty), per_class_acc}."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    gt_sum, pred_sum = cm.sum(1), cm.sum(0)
    union = gt_sum + pred_sum - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        acc = np.where(gt_sum > 0, tp / gt_sum, np.nan)
    total = cm.sum()
    return {
        "miou": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
        "pixel_acc": float(tp.sum() / total) if total else float("nan"),
        "mean_acc": float(np.nanmean(acc)) if np.isfinite(acc).any() else float("nan"),
        "per_class_iou": iou,
        "per_class_acc": acc,
    }


def segmentation_metrics(preds: Iterable[np.ndarray] | np.ndarray, gts: Iterable[np.ndarray] | np.ndarray,
                         num_classes: int, ignore_index: int = 255) -> dict:
    """Dataset-level metrics over paired label maps (lists, or a single H×W pair)."""
    if isinstance(preds, np.ndarray) and preds.ndim == 2:
        preds, gts = [preds], [gts]
    cm = np.zeros((num_classes, num_classes), np.int64)
    n = 0
    for p, g in zip(preds, gts, strict=True):
        cm += confusion_matrix(p, g, num_classes, ignore_index)
        n += 1
    if n == 0:
        raise ValueError("segmentation_metrics got no images")
    out = metrics_from_confusion(cm)
    out["confusion"] = cm
    return out


def retrieval_metrics(similarity: np.ndarray, ks: Sequence[int] = (1, 5), tie_tolerance: float = 0.0) -> dict:
    """Retrieval metrics of an images×texts similarity matrix whose matching pairs are on the diagonal.

    Returns percentages ``i2t_r1, i2t_r5, t2i_r1, t2i_r5`` and ``mean_rank`` (1-based rank of the
    true match, averaged over both directions) plus ``i2t_mean_rank``/``t2i_mean_rank``.
    Ties count against the query (the true item ranks after every item with an equal score);
    scores within ``tie_tolerance`` (relative, at least absolute) of the true one count as equal —
    the same embedding at another row of a float32 matrix product differs in the last bits, and
    differently on another CPU."""
    s = np.asarray(similarity, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] != s.shape[1] or s.shape[0] == 0:
        raise ValueError(f"similarity must be a non-empty square images×texts matrix, got shape {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("similarity contains NaN or infinite values")
    if not tie_tolerance >= 0:
        raise ValueError(f"tie_tolerance must be >= 0, got {tie_tolerance!r}")
    d = np.diag(s)
    eps = tie_tolerance * np.maximum(1.0, np.abs(d))
    i2t_rank = (s >= (d - eps)[:, None]).sum(1)  # rank of the true text for each image (1 = best)
    t2i_rank = (s >= (d - eps)[None, :]).sum(0)
    out = {}
    for k in ks:
        out[f"i2t_r{k}"] = float(100.0 * (i2t_rank <= k).mean())
        out[f"t2i_r{k}"] = float(100.0 * (t2i_rank <= k).mean())
    out["i2t_mean_rank"] = float(i2t_rank.mean())
    out["t2i_mean_rank"] = float(t2i_rank.mean())
    out["mean_rank"] = float((i2t_rank.mean() + t2i_rank.mean()) / 2)
    return out


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two (x0, y0, x1, y1) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two bool masks of the same shape (0 when both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if a.shape != b.shape:
        raise ValueError(f"mask shapes differ: {a.shape} vs {b.shape}")
    u = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / u) if u else 0.0


def grounding_accuracy(pred_boxes: Sequence, gt_boxes: Sequence, kinds: Sequence[str] | None = None,
                       threshold: float = 0.5) -> dict:
    """Acc@IoU≥threshold overall and per expression kind (percentages)."""
    if len(pred_boxes) != len(gt_boxes):
        raise ValueError(f"{len(pred_boxes)} predicted boxes but {len(gt_boxes)} ground-truth boxes")
    hits = np.array([box_iou(p, g) >= threshold for p, g in zip(pred_boxes, gt_boxes)], bool)
    out = {"all": float(100 * hits.mean()) if len(hits) else float("nan"), "n": int(len(hits))}
    if kinds is not None:
        kinds = list(kinds)
        for k in sorted(set(kinds)):
            sel = np.array([x == k for x in kinds])
            out[k] = float(100 * hits[sel].mean())
    return out
