"""Object-Guided CLIP's frozen features: the patch tokens of an open_clip ViT."""
from __future__ import annotations

import math

import numpy as np
import torch



def clip_tokens(clip, images_u8: np.ndarray, batch_size: int = 128) -> np.ndarray:
    """Patch tokens N×G×G×D of a frozen open_clip ViT (after ``ln_post``, projected with
    ``visual.proj`` when it exists) for uint8 N×S×S×3 images at the CLIP input size."""

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
