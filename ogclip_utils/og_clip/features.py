"""Object-Guided CLIP's frozen features: CLIP patch tokens, global and masked-crop embeddings, computed once."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .. import metrics
from ..arrays import masked_crop, resize_float, resize_rgb
from .samples import ObjectSample


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
    images = clip.preprocess(small).cpu().numpy()[img_idx]
    masks = np.stack([np.clip(resize_float(s.mask, B), 0.0, 1.0) for s in samples])[:, None]
    miou = np.asarray([metrics.mask_iou(s.mask, s.gt_mask) if s.gt_mask is not None else np.nan for s in samples],
                      np.float32)
    sources = {s.mask_source for s in samples}
    return FeatureCache(images.astype(np.float32), masks.astype(np.float32), tokens.astype(np.float32),
                        glob.astype(np.float32), crop_emb.astype(np.float32), text.astype(np.float32), cap_ids,
                        captions, np.asarray([s.scene_id for s in samples], np.int64), miou,
                        "+".join(sorted(sources)))


def feature_tensors(feats: FeatureCache, idx, device) -> tuple:
    """(images, masks, tokens, text embeddings) of rows ``idx`` of ``feats`` as tensors on ``device``."""
    return (torch.from_numpy(feats.images[idx]).to(device), torch.from_numpy(feats.masks[idx]).to(device),
            torch.from_numpy(feats.tokens[idx]).to(device), torch.from_numpy(feats.text_emb[idx]).to(device))
