"""Object-Guided CLIP: a point-prompted object embedding trained contrastively against text.

A global CLIP embedding of a scene with several objects cannot say which object a caption
means. Object-Guided CLIP takes the image, a point on one object and the mask a promptable
segmenter returns for that point, and fuses three branches into one embedding in CLIP's
text space::

    image ──► frozen CLIP image encoder ──► patch tokens (G×G×C) ──┐
    image × mask ──► object conv (2 layers) ──► pooled to G×G ─────┼─► concat ─► 1×1 conv ─► GAP
    mask ──► mask conv (2 layers) ──► pooled to G×G ────────────────┘     (or attention pooling)
                                                                           ─► projection head ─► embedding
    caption ──► frozen CLIP text encoder (+ optional linear projection) ─► embedding

Every branch can be switched off (ablations). Training uses the bidirectional InfoNCE loss
with a learnable temperature (initialised at 0.07); frozen CLIP features are computed once
(:func:`precompute_features`) so many short runs fit on a CPU.

Data: :func:`shapes_samples` (offline: one sample per (scene, object) with a point on the
object and its caption "a red circle") and :func:`coco_object_samples` (real mode: COCO
``instances_*.json`` object–category pairs). Masks come from the segmenter given the point
(``mask_source="segmenter"``); ``mask_source="ground_truth"`` exists for ablations only and
is labelled as such in every result.

Evaluation protocol (:func:`make_galleries`, :func:`evaluate_retrieval`): captions repeat
across scenes ("a red circle" appears in many), so R@1 over one big gallery would punish a
model for ties no model can break. We split the held-out samples into galleries of whole
scenes in which every caption is unique, and compute R@K and mean rank inside each gallery
(:func:`metrics.retrieval_metrics`), averaged over queries. Because whole scenes go into a
gallery, every gallery holds several samples of the *same image* with different prompts —
the case a global embedding cannot separate. Exact score ties are broken at random (seeded),
so a method that cannot tell two samples apart scores chance between them, not zero.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import data, env, metrics, models, training
from .arrays import masked_crop, resize_float, resize_rgb  # noqa: F401  (masked_crop: also og_clip.masked_crop, as before)
from .training import contrastive_loss  # noqa: F401  (also og_clip.contrastive_loss, as before)

TRAIN_SEED_BASE = 70_000_000  # offline OG-CLIP training scenes
TEST_SEED_BASE = 80_000_000  # held-out scenes: seeds disjoint from training and from tiny-shapes
MASK_SOURCES = ("segmenter", "ground_truth")


# ----------------------------------------------------------------------------- data
@dataclass
class ObjectSample:
    """One (image, object) pair.

    image uint8 H×W×3; point (x, y) in pixels on the object; caption text; mask bool H×W
    (from ``mask_source``); gt_mask bool H×W or None; scene_id groups samples of one image.
    """

    image: np.ndarray
    point: tuple[float, float]
    caption: str
    mask: np.ndarray
    scene_id: int
    mask_source: str = "segmenter"
    gt_mask: np.ndarray | None = None
    box: tuple[float, float, float, float] | None = None


def interior_point(mask: np.ndarray) -> tuple[float, float]:
    """(x, y) of the most interior pixel of a bool H×W mask (distance-transform maximum)."""
    from scipy import ndimage as ndi

    m = np.asarray(mask, bool)
    if m.ndim != 2 or not m.any():
        raise ValueError("mask must be a non-empty bool H×W array to place a point on it")
    dt = ndi.distance_transform_edt(np.pad(m, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dt)), dt.shape)
    return float(x), float(y)


def segment_point(segmenter, point: tuple[float, float]) -> np.ndarray:
    """Best-scoring multimask candidate (bool H×W) for one positive point (x, y) in pixels;
    call ``segmenter.set_image`` first."""
    pt = np.asarray(point, np.float64).reshape(-1)
    if pt.shape != (2,) or not np.isfinite(pt).all():
        raise ValueError(f"point must be one finite (x, y) pair in pixels, got {point!r}")
    masks, scores, _ = segmenter.predict(point_coords=pt[None].astype(np.float32),
                                         point_labels=np.asarray([1], np.int32), multimask_output=True)
    return np.asarray(masks[int(np.argmax(scores))], bool)


def _check_mask_source(mask_source: str) -> None:
    if mask_source not in MASK_SOURCES:
        raise ValueError(f"mask_source must be one of {MASK_SOURCES} ('ground_truth' is for ablations only), "
                         f"got {mask_source!r}")


def shapes_samples(seeds: Sequence[int], size: int = 96, num_objects: tuple[int, int] = (2, 4),
                   segmenter=None, mask_source: str = "segmenter", min_objects: int = 2) -> list[ObjectSample]:
    """Offline samples: one per (scene, object), with a point on the object and "a {colour} {shape}".

    Objects whose class occurs twice in their scene are skipped (their caption would name two
    objects); scenes left with fewer than ``min_objects`` objects are skipped, so every kept
    scene is ambiguous without the prompt. The mask comes from ``segmenter`` (default
    ``models.load_segmenter("classical")``) given the point, unless
    ``mask_source="ground_truth"`` (ablation only).
    """
    _check_mask_source(mask_source)
    if len(seeds) == 0:
        raise ValueError("seeds is empty: pass the scene seeds to render, e.g. range(80_000_000, 80_000_200)")
    if mask_source == "segmenter" and segmenter is None:

        segmenter = models.load_segmenter("classical")
    out: list[ObjectSample] = []
    for seed in seeds:
        sc = data.make_scene(int(seed), size=size, num_objects=num_objects)
        names = [o.name for o in sc.objects]
        objs = [o for o in sc.objects if names.count(o.name) == 1 and o.area >= 9]
        if len(objs) < min_objects:
            continue
        if mask_source == "segmenter":
            segmenter.set_image(sc.image)
        for o in objs:
            pt = interior_point(o.mask)
            mask = segment_point(segmenter, pt) if mask_source == "segmenter" else o.mask.copy()
            out.append(ObjectSample(sc.image, pt, f"a {o.name}", mask, int(seed), mask_source, o.mask, o.box))
    return out


def _polygon_mask(polys: list, hw: tuple[int, int]) -> np.ndarray:
    from PIL import Image, ImageDraw

    canvas = Image.new("L", (hw[1], hw[0]), 0)
    draw = ImageDraw.Draw(canvas)
    for p in polys:
        if len(p) >= 6:
            draw.polygon([(float(p[i]), float(p[i + 1])) for i in range(0, len(p) - 1, 2)], fill=1)
    return np.asarray(canvas, bool)


def coco_object_samples(annotation_file: str | os.PathLike, image_dir: str | os.PathLike, segmenter=None,
                        mask_source: str = "segmenter", max_images: int | None = None, min_area: float = 1024.0,
                        min_objects: int = 2, template: str = "a {}") -> list[ObjectSample]:
    """Real-mode samples from COCO instances in the published format (``instances_val2017.json``
    + an image folder): one sample per polygon-annotated object (not ``iscrowd``, area ≥
    ``min_area``) whose category is unique in its image, images with ≥ ``min_objects`` such
    objects. The point is the annotation's most interior pixel; caption ``template`` of the
    category name; the mask comes from ``segmenter`` (e.g. SAM2.1) unless
    ``mask_source="ground_truth"`` (ablation only)."""
    _check_mask_source(mask_source)
    ann_path, img_dir = Path(annotation_file), Path(image_dir)
    if not ann_path.is_file():
        raise FileNotFoundError(f"annotation_file not found: {str(ann_path)!r} (COCO instances_*.json)")
    if not img_dir.is_dir():
        raise FileNotFoundError(f"image_dir not found: {str(img_dir)!r} (the COCO image folder, e.g. val2017/)")
    coco = json.loads(ann_path.read_text())
    if not all(k in coco for k in ("images", "annotations", "categories")):
        raise ValueError(f"{ann_path} is not a COCO instances file (needs images, annotations, categories)")
    cats = {c["id"]: c["name"] for c in coco["categories"]}
    by_image: dict[int, list[dict]] = {}
    for a in coco["annotations"]:
        if a.get("iscrowd", 0) or a.get("area", 0) < min_area or not isinstance(a.get("segmentation"), list):
            continue
        by_image.setdefault(a["image_id"], []).append(a)
    if mask_source == "segmenter" and segmenter is None:
        raise ValueError("coco_object_samples needs a segmenter (models.load_segmenter('sam2.1-hiera-tiny')) "
                         "or mask_source='ground_truth' (ablation only)")
    out: list[ObjectSample] = []
    n_img = 0
    for info in sorted(coco["images"], key=lambda i: i["id"]):
        anns = by_image.get(info["id"], [])
        names = [cats[a["category_id"]] for a in anns]
        anns = [a for a in anns if names.count(cats[a["category_id"]]) == 1]
        if len(anns) < min_objects:
            continue
        image = data.load_image(img_dir / info["file_name"])
        hw = image.shape[:2]
        if mask_source == "segmenter":
            segmenter.set_image(image)
        for a in anns:
            gt = _polygon_mask(a["segmentation"], hw)
            if not gt.any():
                continue
            pt = interior_point(gt)
            mask = segment_point(segmenter, pt) if mask_source == "segmenter" else gt
            x, y, w, h = a["bbox"]
            out.append(ObjectSample(image, pt, template.format(cats[a["category_id"]]), mask, int(info["id"]),
                                    mask_source, gt, (x, y, x + w, y + h)))
        n_img += 1
        if max_images is not None and n_img >= max_images:
            break
    return out


# ----------------------------------------------------------------------------- frozen features
@dataclass
class FeatureCache:
    """Everything the model and the baselines need, computed once with the frozen CLIP.

    images N×3×B×B float32 (CLIP-normalised, B = branch size); masks N×1×B×B float32 in
    [0, 1]; tokens N×G×G×D float32 (CLIP patch tokens projected to the joint space);
    global_emb, crop_emb, text_emb N×D float32 (L2-normalised: whole image, masked crop of the
    predicted mask, caption); caption_ids N int64 (index into ``captions``); scene_ids N;
    mask_iou N float32 (predicted vs ground-truth mask, NaN when unknown).
    """

    images: np.ndarray
    masks: np.ndarray
    tokens: np.ndarray
    global_emb: np.ndarray
    crop_emb: np.ndarray
    text_emb: np.ndarray
    caption_ids: np.ndarray
    captions: list[str]
    scene_ids: np.ndarray
    mask_iou: np.ndarray
    mask_source: str = "segmenter"

    def __len__(self) -> int:
        return len(self.caption_ids)

    def subset(self, idx) -> "FeatureCache":
        idx = np.asarray(idx)
        return FeatureCache(self.images[idx], self.masks[idx], self.tokens[idx], self.global_emb[idx],
                            self.crop_emb[idx], self.text_emb[idx], self.caption_ids[idx], self.captions,
                            self.scene_ids[idx], self.mask_iou[idx], self.mask_source)


def clip_tokens(clip, images_u8: np.ndarray, batch_size: int = 128) -> np.ndarray:
    """Patch tokens N×G×G×D of a frozen open_clip ViT (after ``ln_post``, projected with
    ``visual.proj`` when it exists) for uint8 N×S×S×3 images at the CLIP input size."""
    import torch

    vis = clip.model.visual
    old = vis.output_tokens
    vis.output_tokens = True
    out = []
    try:
        with torch.inference_mode():
            for i in range(0, len(images_u8), batch_size):
                _, tok = vis(clip.preprocess(images_u8[i:i + batch_size]))
                if getattr(vis, "proj", None) is not None:
                    tok = tok @ vis.proj
                g = int(round(math.sqrt(tok.shape[1])))
                out.append(tok.float().reshape(tok.shape[0], g, g, -1).cpu().numpy())
    finally:
        vis.output_tokens = old
    return np.concatenate(out)


def precompute_features(samples: Sequence[ObjectSample], clip, branch_size: int | None = None) -> FeatureCache:
    """Run the frozen CLIP once over ``samples`` (images, masked crops, captions).

    Images are resized to ``clip.image_size`` for CLIP (each distinct image encoded once) and
    to ``branch_size`` (default 4 × the token grid: 32 px for tiny-shapes, 56 px for
    ViT-B/16) for the object and mask branches, whose two stride-2 convolutions then land
    on the token grid."""
    if len(samples) == 0:
        raise ValueError("samples is empty: build them with shapes_samples(...) or coco_object_samples(...)")
    S = clip.image_size
    mean = np.asarray(clip.mean, np.float32)[:, None, None]
    std = np.asarray(clip.std, np.float32)[:, None, None]
    # distinct images, by object identity (samples of one scene share the array)
    key_of: dict[int, int] = {}
    uniq: list[np.ndarray] = []
    img_idx = []
    for s in samples:
        if s.mask.shape != s.image.shape[:2]:
            raise ValueError(f"sample mask shape {s.mask.shape} differs from its image {s.image.shape[:2]}")
        k = id(s.image)
        if k not in key_of:
            key_of[k] = len(uniq)
            uniq.append(resize_rgb(s.image, S))
        img_idx.append(key_of[k])
    uniq_u8 = np.stack(uniq)
    img_idx = np.asarray(img_idx)
    tokens = clip_tokens(clip, uniq_u8)[img_idx]
    glob = clip.encode_images(uniq_u8).cpu().numpy()[img_idx]
    crops = np.stack([masked_crop(s.image, s.mask, S) for s in samples])
    crop_emb = clip.encode_images(crops).cpu().numpy()
    captions = sorted({s.caption for s in samples})
    cap_ids = np.asarray([captions.index(s.caption) for s in samples], np.int64)
    text = clip.encode_texts(captions).cpu().numpy()[cap_ids]
    B = int(branch_size) if branch_size else 4 * tokens.shape[1]
    if B < 4:
        raise ValueError(f"branch_size must be ≥ 4 pixels, got {branch_size}")
    small = np.stack([resize_rgb(u, B) for u in uniq_u8])
    images = ((small.astype(np.float32).transpose(0, 3, 1, 2) / 255.0 - mean) / std)[img_idx]
    masks = np.stack([np.clip(resize_float(s.mask, B), 0.0, 1.0) for s in samples])[:, None]
    miou = np.asarray([metrics.mask_iou(s.mask, s.gt_mask) if s.gt_mask is not None else np.nan for s in samples],
                      np.float32)
    sources = {s.mask_source for s in samples}
    return FeatureCache(images.astype(np.float32), masks.astype(np.float32), tokens.astype(np.float32),
                        glob.astype(np.float32), crop_emb.astype(np.float32), text.astype(np.float32), cap_ids,
                        captions, np.asarray([s.scene_id for s in samples], np.int64), miou,
                        "+".join(sorted(sources)))


# ----------------------------------------------------------------------------- model
def _to_grid(x: torch.Tensor, G: int) -> torch.Tensor:
    """N×C×h×w conv features → N×G×G×C (average-pooled when h, w ≠ G)."""
    if x.shape[-2:] != (G, G):
        x = F.adaptive_avg_pool2d(x, G)
    return x.permute(0, 2, 3, 1)


class ObjectGuidedCLIP(nn.Module):
    """Fuse object, mask and CLIP patch-token branches into one embedding.

    Args:
        clip_dim: channels D of the CLIP patch tokens (tiny-shapes: 128; ViT-B/16: 512).
        embed_dim: output embedding size (= CLIP's text embedding size).
        grid: G, the CLIP token grid side (tiny-shapes: 8; ViT-B/16 at 224 px: 14).
        use_object, use_mask, use_clip: switch each branch on/off (at least one on).
        fusion: ``"conv"`` (1×1 conv + global average pooling) or ``"attention"``
            (1×1 conv + softmax attention pooling over the G×G cells).
        hidden: channels after the 1×1 fusion conv.
        text_projection: learn a linear map on the frozen text embeddings (identity init).
        temperature: initial softmax temperature (learnable, as log of 1/τ).

    ``forward(images N×3×S×S, masks N×1×S×S, tokens N×G×G×D) -> N×embed_dim`` (L2-normalised).
    """

    def __init__(self, clip_dim: int = 128, embed_dim: int = 128, grid: int = 8, use_object: bool = True,
                 use_mask: bool = True, use_clip: bool = True, fusion: str = "conv", hidden: int = 128,
                 text_projection: bool = False, temperature: float = 0.07):
        super().__init__()
        if not (use_object or use_mask or use_clip):
            raise ValueError("at least one branch must be on: use_object, use_mask or use_clip")
        if fusion not in ("conv", "attention"):
            raise ValueError(f"fusion must be 'conv' or 'attention', got {fusion!r}")
        if not 0 < temperature < 1:
            raise ValueError(f"temperature must be in (0, 1), got {temperature}")
        for name, v in (("clip_dim", clip_dim), ("embed_dim", embed_dim), ("grid", grid), ("hidden", hidden)):
            if int(v) < 1:
                raise ValueError(f"{name} must be a positive integer, got {v}")
        self.config = dict(clip_dim=int(clip_dim), embed_dim=int(embed_dim), grid=int(grid),
                           use_object=bool(use_object), use_mask=bool(use_mask), use_clip=bool(use_clip),
                           fusion=fusion, hidden=int(hidden), text_projection=bool(text_projection),
                           temperature=float(temperature))
        c = 0
        if use_object:
            self.object_conv = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.GELU(), nn.Conv2d(16, 32, 3, 2, 1), nn.GELU())
            c += 32
        if use_mask:
            self.mask_conv = nn.Sequential(nn.Conv2d(1, 8, 3, 2, 1), nn.GELU(), nn.Conv2d(8, 16, 3, 2, 1), nn.GELU())
            c += 16
        if use_clip:
            c += clip_dim
        # the 1×1 convolution over the concatenated G×G maps, written as a Linear on
        # channels-last cells (the same operation; faster on CPU)
        self.fuse = nn.Sequential(nn.Linear(c, hidden), nn.GELU())
        if fusion == "attention":
            self.attn = nn.Linear(hidden, 1)
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, embed_dim))
        self.text_proj = nn.Linear(embed_dim, embed_dim) if text_projection else None
        if self.text_proj is not None:
            with torch.no_grad():
                self.text_proj.weight.copy_(torch.eye(embed_dim))
                self.text_proj.bias.zero_()
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))

    def _check(self, images, masks, tokens):
        n = None
        cfg = self.config
        if cfg["use_object"] or cfg["use_mask"]:
            if masks is None:
                raise ValueError("masks (N×1×S×S) are required when the object or mask branch is on")
            if masks.ndim != 4 or masks.shape[1] != 1:
                raise ValueError(f"masks must be N×1×S×S, got shape {tuple(masks.shape)}")
            n = masks.shape[0]
        if cfg["use_object"]:
            if images is None or images.ndim != 4 or images.shape[1] != 3:
                raise ValueError(f"images must be N×3×S×S, got {None if images is None else tuple(images.shape)}")
            if images.shape[0] != n or images.shape[-2:] != masks.shape[-2:]:
                raise ValueError(f"mask size {tuple(masks.shape)} does not match image size {tuple(images.shape)}")
        if cfg["use_clip"]:
            G, D = cfg["grid"], cfg["clip_dim"]
            if tokens is None or tokens.ndim != 4 or tuple(tokens.shape[1:]) != (G, G, D):
                raise ValueError(f"tokens must be N×{G}×{G}×{D} CLIP patch tokens, got "
                                 f"{None if tokens is None else tuple(tokens.shape)}")
            if n is not None and tokens.shape[0] != n:
                raise ValueError(f"{tokens.shape[0]} token maps for {n} masks")

    def forward(self, images=None, masks=None, tokens=None):
        self._check(images, masks, tokens)
        G = self.config["grid"]
        parts = []  # channels-last N×G×G×C maps
        if self.config["use_object"]:
            parts.append(_to_grid(self.object_conv(images * masks), G))
        if self.config["use_mask"]:
            parts.append(_to_grid(self.mask_conv(masks), G))
        if self.config["use_clip"]:
            parts.append(tokens)
        x = self.fuse(torch.cat(parts, -1)).flatten(1, 2)  # N×G²×hidden
        if self.config["fusion"] == "attention":
            w = torch.softmax(self.attn(x), dim=1)  # N×G²×1, weights over the cells
            x = (x * w).sum(1)
        else:
            x = x.mean(1)  # global average pooling
        return F.normalize(self.head(x), dim=-1)

    def encode_text(self, text_emb):
        """N×embed_dim frozen CLIP text embeddings → L2-normalised (optionally projected)."""
        if text_emb.ndim != 2 or text_emb.shape[1] != self.config["embed_dim"]:
            raise ValueError(f"text embeddings must be N×{self.config['embed_dim']}, got {tuple(text_emb.shape)}")
        t = self.text_proj(text_emb) if self.text_proj is not None else text_emb
        return F.normalize(t, dim=-1)


def model_for(feats: FeatureCache, **kwargs):
    """An :class:`ObjectGuidedCLIP` sized for ``feats`` (clip_dim, grid, embed_dim)."""
    return ObjectGuidedCLIP(clip_dim=feats.tokens.shape[-1], grid=feats.tokens.shape[1], embed_dim=feats.text_emb.shape[1], **kwargs)


# ----------------------------------------------------------------------------- loss
# ----------------------------------------------------------------------------- training
@dataclass
class TrainConfig:
    """Trainer settings. ``hard_negatives``: batches are made of whole scenes, so the other
    objects of the same image are in-batch negatives. ``amp``: bfloat16 autocast on CUDA only."""

    epochs: int = 30
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup: float = 0.05  # fraction of steps
    grad_clip: float = 1.0
    seed: int = 0
    hard_negatives: bool = True
    amp: bool = True
    progress: bool = True
    eval_every: int = 1  # epochs
    checkpoint: str | None = None  # best model (val t2i R@1) saved here when set


@dataclass
class History:
    """Per-epoch mean training loss and validation text→image R@1 (%); the best epoch."""

    loss: list[float] = field(default_factory=list)
    val_r1: list[float] = field(default_factory=list)
    best_epoch: int = -1
    best_val_r1: float = float("nan")

    def plot(self, ax=None):
        """Loss and validation R@1 against the epoch (matplotlib)."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3))
        ax.plot(range(1, len(self.loss) + 1), self.loss, color="tab:blue", label="train loss")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss", color="tab:blue")
        if self.val_r1:
            ax2 = ax.twinx()
            ax2.plot(range(1, len(self.val_r1) + 1), self.val_r1, color="tab:red", label="val t2i R@1")
            ax2.set_ylabel("val text→image R@1 (%)", color="tab:red")
        return ax


def _batches(feats: FeatureCache, cfg: TrainConfig, rng: np.random.Generator) -> list[np.ndarray]:
    if not cfg.hard_negatives:
        perm = rng.permutation(len(feats))
        return [perm[i:i + cfg.batch_size] for i in range(0, len(perm), cfg.batch_size)]
    scenes = np.unique(feats.scene_ids)
    rng.shuffle(scenes)
    by_scene = {s: np.nonzero(feats.scene_ids == s)[0] for s in scenes}
    out, cur = [], []
    for s in scenes:
        cur.extend(by_scene[s].tolist())
        if len(cur) >= cfg.batch_size:
            out.append(np.asarray(cur))
            cur = []
    if cur:
        out.append(np.asarray(cur))
    return out


def _to_tensors(feats: FeatureCache, idx, device):
    return (torch.from_numpy(feats.images[idx]).to(device), torch.from_numpy(feats.masks[idx]).to(device),
            torch.from_numpy(feats.tokens[idx]).to(device), torch.from_numpy(feats.text_emb[idx]).to(device))


class Trainer:
    """AdamW, linear warm-up + cosine decay, gradient clipping, seeded data order, bfloat16
    autocast on CUDA, progress bar, history, best checkpoint (safetensors) by validation R@1.

    ``Trainer(model, train_feats, val_feats=None, config=TrainConfig()).fit() -> History``."""

    def __init__(self, model, train: FeatureCache, val: FeatureCache | None = None, config: TrainConfig | None = None,
                 device=None):

        self.cfg = config or TrainConfig()
        if len(train) < 2:
            raise ValueError("train needs at least 2 samples")
        if self.cfg.epochs < 1 or self.cfg.batch_size < 2 or not self.cfg.lr > 0:
            raise ValueError(f"need epochs ≥ 1, batch_size ≥ 2, lr > 0; got {self.cfg}")
        self.device = env.get_device(device) if device is None or isinstance(device, str) else device
        self.model = model.to(self.device)
        self.train_feats, self.val_feats = train, val
        self.history = History()
        self.val_galleries = make_galleries(val, seed=self.cfg.seed) if val is not None else None

    def fit(self) -> History:
        from tqdm.auto import tqdm

        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        opt = torch.optim.AdamW(training.param_groups(self.model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)
        steps_per_epoch = len(_batches(self.train_feats, cfg, np.random.default_rng(0)))
        total = cfg.epochs * steps_per_epoch
        warm = max(1, int(cfg.warmup * total))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: training.warmup_cosine(step, total, warm))
        use_amp = cfg.amp and self.device.type == "cuda"
        step = 0
        bar = tqdm(range(cfg.epochs), desc="OG-CLIP", disable=not cfg.progress)
        for epoch in bar:
            self.model.train()
            losses = []
            for idx in _batches(self.train_feats, cfg, rng):
                img, msk, tok, txt = _to_tensors(self.train_feats, idx, self.device)
                ids = torch.from_numpy(self.train_feats.caption_ids[idx]).to(self.device)
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=use_amp):
                    emb = self.model(img, msk, tok)
                    loss = contrastive_loss(emb.float(), self.model.encode_text(txt).float(),
                                            self.model.logit_scale, ids)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                opt.step()
                sched.step()
                with torch.no_grad():
                    self.model.logit_scale.clamp_(0, math.log(100))
                losses.append(float(loss.detach()))
                step += 1
            self.history.loss.append(float(np.mean(losses)))
            if self.val_feats is not None and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs):
                r1 = evaluate_model(self.model, self.val_feats, self.val_galleries, seed=cfg.seed).t2i_r1
                self.history.val_r1.append(r1)
                if not r1 <= self.history.best_val_r1:  # first epoch (NaN) or better
                    self.history.best_epoch, self.history.best_val_r1 = epoch, r1
                    if cfg.checkpoint:
                        save_checkpoint(self.model, cfg.checkpoint)
                bar.set_postfix(loss=f"{losses[-1]:.3f}", val_r1=f"{r1:.1f}")
        if cfg.checkpoint and self.val_feats is None:
            save_checkpoint(self.model, cfg.checkpoint)
        return self.history


# ----------------------------------------------------------------------------- checkpoints
def save_checkpoint(model, path: str | os.PathLike) -> Path:
    """Write ``model`` as safetensors (config in the metadata), atomically (temp file + rename)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata={"ogclip_config": json.dumps(model.config)})
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | os.PathLike, device=None):
    """Rebuild an :class:`ObjectGuidedCLIP` from :func:`save_checkpoint`'s safetensors file."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {str(path)!r}; train one with `python -m ogclip_utils train`")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - re-raised with advice
        raise ValueError(f"{path} is not a safetensors checkpoint written by og_clip.save_checkpoint ({exc})") from exc
    if "ogclip_config" not in meta:
        raise ValueError(f"{path} has no ogclip_config metadata; it was not written by og_clip.save_checkpoint")
    model = ObjectGuidedCLIP(**json.loads(meta["ogclip_config"]))
    model.load_state_dict(state)
    return model.to(device or "cpu").eval()


# ----------------------------------------------------------------------------- evaluation
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
            img, msk, tok, txt = _to_tensors(feats, np.arange(i, min(i + batch_size, len(feats))), dev)
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


# ----------------------------------------------------------------------------- experiment
VARIANTS: dict[str, dict] = {
    "OG-CLIP": {},
    "no mask branch": {"use_mask": False},
    "no object branch": {"use_object": False},
    "no CLIP branch": {"use_clip": False},
}


@dataclass
class Experiment:
    """Reports per method and seed (``reports[method][i]``), trained models of the last seed, histories."""

    reports: dict[str, list[RetrievalReport]]
    histories: dict[str, list[History]]
    models: dict
    seeds: tuple[int, ...]

    def table(self, keys: Sequence[str] = ("t2i_r1", "t2i_r5", "i2t_r1", "t2i_scene_r1", "mean_rank")) -> str:
        """Markdown table of mean ± std over seeds (one decimal)."""
        head = "| method | " + " | ".join(keys) + " |"
        lines = [head, "|" + "---|" * (len(keys) + 1)]
        for name, reps in self.reports.items():
            cells = []
            for k in keys:
                v = np.asarray([getattr(r, k) for r in reps])
                cells.append(f"{v.mean():.1f} ± {v.std():.1f}" if len(v) > 1 else f"{v.mean():.1f}")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def mean(self, method: str, key: str = "t2i_r1") -> float:
        return float(np.mean([getattr(r, key) for r in self.reports[method]]))


def run_experiment(train: FeatureCache, test: FeatureCache, seeds: Sequence[int] = (0, 1, 2),
                   variants: dict[str, dict] | None = None, config: TrainConfig | None = None,
                   baselines: bool = True, **model_kwargs) -> Experiment:
    """Train every variant for every seed on ``train``, evaluate on ``test`` (same galleries for
    all methods), and evaluate the frozen-CLIP baselines. Deterministic for given seeds."""
    variants = VARIANTS if variants is None else variants
    config = config or TrainConfig()
    reports: dict[str, list[RetrievalReport]] = {}
    histories: dict[str, list[History]] = {}
    models: dict = {}
    galleries = make_galleries(test, seed=0)
    if baselines:
        reports["CLIP global (frozen)"] = [evaluate_baseline(test, "global", galleries, seed=s) for s in seeds]
        reports["CLIP masked crop (frozen)"] = [evaluate_baseline(test, "masked_crop", galleries, seed=s) for s in seeds]
    for name, kw in variants.items():
        for s in seeds:
            torch.manual_seed(s)
            model = model_for(train, **{**model_kwargs, **kw})
            cfg = TrainConfig(**{**asdict(config), "seed": int(s)})
            hist = Trainer(model, train, None, cfg).fit()
            reports.setdefault(name, []).append(evaluate_model(model, test, galleries, seed=s))
            histories.setdefault(name, []).append(hist)
            models[name] = model
    return Experiment(reports, histories, models, tuple(int(s) for s in seeds))


# ----------------------------------------------------------------------------- CLI


