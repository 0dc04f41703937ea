"""The Object-Guided CLIP model: object, mask and CLIP branches fused into one embedding; its checkpoints."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from .features import FeatureCache


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
