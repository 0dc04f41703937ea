"""The tiny-shapes architecture: open_clip's ``CLIP`` with a conv stem, a late class token and local attention.

The offline CLIP of the course is an ordinary open_clip ``CLIP`` built from
``model_configs/tiny-shapes.json`` through open_clip's factory, changed in three places so it
can learn the shapes world at 64 px and still give SCLIP patch tokens worth reading:

- :func:`install_conv_stem` — three 3×3 stride-2 convolutions instead of the patch projection;
- :func:`install_late_class_token` — the class token joins only in the last block;
- :func:`install_local_attention` — blocks 1…L−1 attend within a small neighbourhood.

:func:`build_tiny_clip` applies them (random init); :func:`ogclip_utils.models.load_clip`
loads the committed weights. State-dict keys stay open_clip's.
"""
from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

from . import paths

CONFIG_DIR = Path(__file__).resolve().parent / "model_configs"
TINY_NAME = "tiny-shapes"
TINY_WEIGHTS = paths.CHECKPOINT_DIR / "tiny-shapes.safetensors"
TINY_IMAGE_SIZE = 64
#: Local-attention radius (grid steps) of the committed tiny-shapes' blocks 1…L−1 (:func:`install_local_attention`).
LOCAL_RADIUS = 1


def register_configs() -> None:
    """Register the project's model configs (``model_configs/*.json``) with open_clip (idempotent)."""
    import open_clip

    if TINY_NAME not in open_clip.list_models():
        open_clip.add_model_config(CONFIG_DIR)


def install_conv_stem(model) -> None:
    """Replace ``visual.conv1`` of a tiny-shapes CLIP by a small convolutional stem.

    One of the tiny model's changes to open_clip's ``CLIP`` (the others are
    :func:`install_late_class_token` and :func:`install_local_attention`), applied here and
    nowhere else: three 3×3 stride-2 convolutions (3→32→64→width, GELU between) instead of the
    8×8 patch projection. 64 px → 32 → 16 → 8, the same 8×8 token grid as patch size 8, so
    positional embeddings, the class token, the transformer blocks, pooling and SCLIP's
    last-block surgery are unchanged. Probes found it lifts shape recognition from ~55 % to
    >95 % at this scale. Code that needs the token width must read it from
    ``visual.transformer.width`` (``conv1.out_channels`` no longer exists). The stem records the
    token grid (gh, gw) of the last images it saw in ``conv1.token_grid.hw``, for the local
    attention blocks (state-dict keys are those of a plain ``nn.Sequential``).
    """
    import torch.nn as nn

    width = model.visual.transformer.width
    model.visual.conv1 = _conv_stem_class()(
        nn.Conv2d(3, 32, 3, 2, 1), nn.GELU(),
        nn.Conv2d(32, 64, 3, 2, 1), nn.GELU(),
        nn.Conv2d(64, width, 3, 2, 1),
    )
    model.visual.conv1.token_grid = TokenGrid()


class TokenGrid:
    """The token grid (gh, gw) of the images a tiny-shapes stem saw last; shared by the stem
    and the local-attention blocks (a plain object, so ``copy.deepcopy`` of the model keeps the
    sharing inside the copy)."""

    hw: tuple[int, int] | None = None


@functools.cache
def _conv_stem_class():
    import torch.nn as nn

    class ConvStem(nn.Sequential):
        """``nn.Sequential`` that records the token grid of its output (B×width×gh×gw)."""

        def forward(self, x):
            out = super().forward(x)
            self.token_grid.hw = tuple(out.shape[-2:])
            return out

    return ConvStem


def install_late_class_token(model) -> None:
    """Keep the class token out of blocks 1…L−1 of the image tower (CaiT-style class attention).

    In those blocks the class token attends only to itself and no patch attends to it, so it
    can gather the image only in the last block's attention — exactly the step SCLIP replaces.
    Whatever the image embedding knows must therefore be in the patch tokens before the last
    block. (With class-token pooling from the start, probes on tiny-shapes found the shape
    only in the class token's own stream: patch tokens pooled over a whole object scored
    shape at chance.) Parameters and state-dict keys are unchanged: the blocks only change
    class (:class:`LateClassTokenBlock`), so ``encode_image``, dense.py and the weights file
    all see the same model.
    """
    tr = model.visual.transformer
    seq_dim = 1 if getattr(tr, "batch_first", True) else 0
    for blk in tr.resblocks[:-1]:
        blk.__class__ = _late_class_token_block()
        blk.seq_dim = seq_dim


def install_local_attention(model, radius: int = LOCAL_RADIUS) -> None:
    """In blocks 1…L−1 each patch attends only to patches at most ``radius`` grid steps away
    (Chebyshev distance; ``radius=1`` is a 3×3 neighbourhood). The last block stays global.

    Why the tiny model needs it (measured): with global attention in every block, background
    patches next to an object learn to carry that object's features — the class token reads the
    image only once, in the last block, so it does not matter *where* a feature sits. SCLIP
    then labels the background around objects as the object (a halo). Local attention keeps
    each patch token about its own neighbourhood, as big CLIP's intermediate tokens are, and
    leaves the last block — the one vanilla, MaskCLIP and SCLIP differ in — unchanged.
    No new parameters; needs :func:`install_conv_stem` (for the grid) and
    :func:`install_late_class_token` first.
    """
    if not isinstance(radius, int) or isinstance(radius, bool) or radius < 1:
        raise ValueError(f"radius must be a positive whole number of grid steps, got {radius!r}")
    grid = getattr(model.visual.conv1, "token_grid", None)
    blocks = model.visual.transformer.resblocks[:-1]
    if grid is None or not all(isinstance(b, _late_class_token_block()) for b in blocks):
        raise ValueError("install_local_attention needs a tiny-shapes model with the conv stem and the late class token")
    for blk in blocks:
        blk.radius = radius
        blk.token_grid = grid


@functools.lru_cache(maxsize=32)
def _local_mask(gh: int, gw: int, radius: int, device, dtype):
    """Additive attention mask (gh·gw)×(gh·gw): 0 within ``radius`` grid steps, −inf beyond."""
    import torch

    with torch.inference_mode(False):  # cached: must stay usable in training after a first call under inference mode
        ys, xs = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
        ys, xs = ys.flatten(), xs.flatten()
        far = torch.maximum((ys[:, None] - ys[None]).abs(), (xs[:, None] - xs[None]).abs()) > radius
        return torch.zeros(far.shape, dtype=dtype, device=device).masked_fill(far.to(device), float("-inf"))


@functools.cache
def _late_class_token_block():
    """The block class, made on first use (open_clip is imported lazily in this module)."""
    import torch
    from open_clip.transformer import ResidualAttentionBlock

    class LateClassTokenBlock(ResidualAttentionBlock):
        """A ``ResidualAttentionBlock`` run separately on the class token and on the patches
        (the patches optionally with local attention: ``radius`` set by :func:`install_local_attention`)."""

        seq_dim = 1  # 0 for sequence-first transformers
        radius: int | None = None
        token_grid: TokenGrid | None = None

        def forward(self, q_x, k_x=None, v_x=None, attn_mask=None):
            if k_x is not None or v_x is not None or attn_mask is not None:
                raise ValueError("LateClassTokenBlock is self-attention without a mask (the image tower's blocks)")
            n = q_x.shape[self.seq_dim]
            cls, patches = q_x.narrow(self.seq_dim, 0, 1), q_x.narrow(self.seq_dim, 1, n - 1)
            mask = None
            if self.radius is not None:
                gh, gw = self.token_grid.hw or (0, 0)
                if gh * gw != n - 1:
                    raise RuntimeError(f"local attention: the stem's last grid {self.token_grid.hw} does not match "
                                       f"{n - 1} patch tokens; run the image tower from its stem (visual.conv1)")
                mask = _local_mask(gh, gw, self.radius, q_x.device, q_x.dtype)
            return torch.cat([super().forward(cls), super().forward(patches, attn_mask=mask)], self.seq_dim)

    return LateClassTokenBlock


def build_tiny_clip(late_class_token: bool = True, local_radius: int | None = LOCAL_RADIUS):
    """A tiny-shapes CLIP at random init, built through open_clip's factory, plus the stem,
    the late class token (``late_class_token=False``: training stage 1) and local attention in
    blocks 1…L−1 (``local_radius=None``: global, training stages 1–3). The defaults are the
    committed model's architecture."""
    import open_clip

    register_configs()
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # open_clip warns "No pretrained weights loaded": ours are loaded right after
    try:
        model = open_clip.create_model(TINY_NAME, pretrained=None)
    finally:
        root.setLevel(level)
    install_conv_stem(model)
    if late_class_token:
        install_late_class_token(model)
        if local_radius is not None:
            install_local_attention(model, local_radius)
    elif local_radius is not None:
        raise ValueError("local_radius needs late_class_token=True; for training stage 1's architecture "
                         "pass late_class_token=False, local_radius=None")
    return model


def tiny_card() -> dict:
    """The recipe and measured accuracies written next to the tiny-shapes checkpoint."""
    path = paths.CHECKPOINT_DIR / "tiny-shapes.json"
    return json.loads(path.read_text()) if path.exists() else {}
