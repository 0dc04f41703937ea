"""Object-Guided CLIP's frozen features: the patch tokens of an open_clip ViT, at its output or before its last block."""
from __future__ import annotations

import math

import numpy as np
import torch

#: where :func:`clip_tokens` reads the patch tokens
TOKEN_SOURCES = ("output", "block_input")


def token_dim(clip, source: str = "block_input") -> int:
    """Channels D of :func:`clip_tokens` for ``clip`` and ``source``."""
    vis = clip.model.visual
    if source == "block_input":
        return int(vis.transformer.width)
    return int(vis.proj.shape[-1]) if getattr(vis, "proj", None) is not None else int(vis.output_dim)


def clip_tokens(clip, images_u8: np.ndarray, batch_size: int = 128, source: str = "block_input") -> np.ndarray:
    """Patch tokens N×G×G×D of a frozen open_clip ViT for uint8 N×S×S×3 images at its input size.

    ``source="output"``: after ``ln_post``, projected with ``visual.proj`` (the joint space; D =
    embed dim). ``source="block_input"``: the residual stream entering the last Transformer
    block (D = width). The last block's global attention mixes every patch with every other —
    the reason SCLIP replaces it — so its output has lost much of *where* things are; the
    stream before it keeps it."""
    if source not in TOKEN_SOURCES:
        raise ValueError(f"source must be one of {TOKEN_SOURCES}, got {source!r}")
    vis = clip.model.visual
    G = int(vis.grid_size[0])
    out = []
    if source == "block_input":
        seen = {}
        hook = vis.transformer.resblocks[-1].register_forward_pre_hook(lambda mod, args: seen.__setitem__("x", args[0]))
        try:
            with torch.inference_mode():
                for i in range(0, len(images_u8), batch_size):
                    vis(clip.preprocess(images_u8[i:i + batch_size]))
                    x = seen["x"] if getattr(vis.transformer, "batch_first", True) else seen["x"].transpose(0, 1)
                    tok = x[:, -G * G:]  # patch tokens (a class token, if any, comes first)
                    out.append(tok.float().reshape(tok.shape[0], G, G, -1).cpu().numpy())
        finally:
            hook.remove()
        return np.concatenate(out)
    old = vis.output_tokens
    vis.output_tokens = True
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
