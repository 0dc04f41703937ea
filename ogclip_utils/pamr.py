"""PAMR: pixel-adaptive mask refinement of dense class maps by local colour affinity (Araslanov & Roth, 2020).

Each iteration replaces every pixel's class scores by an affinity-weighted average of its 8
neighbours at several dilations, where the affinity is a softmax over the neighbours of
−|I(p) − I(q)| / σ_local — so scores spread along regions of similar colour and stop at edges.
Written by hand with shifted slices (no 1-channel dilated convolutions: 17× faster on CPU).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .checks import check_image as _check_image


#: PAMR's 8 neighbours as (row, column) in a 3×3 window, in the order of its kernels.
_PAMR_NEIGHBOURS = ((0, 0), (0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1), (2, 2))


def _pamr_kernels(kind: str) -> torch.Tensor:
    """3×3 kernels of PAMR: "diff" centre − neighbour (8), "copy" neighbour (8), "std" all 9 pixels."""
    pos = list(_PAMR_NEIGHBOURS)
    if kind == "std":
        pos = pos[:4] + [(1, 1)] + pos[4:]
    w = torch.zeros(len(pos), 1, 3, 3)
    for i, (a, b) in enumerate(pos):
        w[i, 0, a, b] = -1.0 if kind == "diff" else 1.0
    if kind == "diff":
        w[:, 0, 1, 1] = 1.0
    return w


def _local(x: torch.Tensor, kernel: torch.Tensor, dilations: Sequence[int]) -> torch.Tensor:
    """B×K×H×W → B×K×(P·len(dilations))×H×W: the 3×3 ``kernel`` bank (P×1×3×3, one ±1 tap per
    position and an optional +1 centre) applied at each dilation with replicate padding.
    Done with shifted slices of the padded map — the same numbers as a dilated conv2d, many
    times faster on CPU (dilated 1-channel convolutions are slow there)."""
    b, k, h, w = x.shape
    outs = []
    for d in dilations:
        xp = F.pad(x.reshape(b * k, 1, h, w), [d] * 4, mode="replicate").reshape(b, k, h + 2 * d, w + 2 * d)
        for kern in kernel[:, 0]:
            acc = None
            for (a, c) in torch.nonzero(kern).tolist():
                t = xp[..., a * d:a * d + h, c * d:c * d + w] * float(kern[a, c])
                acc = t if acc is None else acc + t
            outs.append(acc)
    return torch.stack(outs, 2)


def pamr(image: np.ndarray, maps: np.ndarray | torch.Tensor, num_iter: int = 10,
         dilations: Sequence[int] = (8, 16)) -> np.ndarray:
    """Pixel-adaptive mask refinement (Araslanov & Roth 2020), as SCLIP applies it.

    image: uint8 H×W×3; maps: C×H×W (logits or probabilities, resized to the image if needed).
    Returns float32 C×H×W: ``num_iter`` steps of averaging each map over a colour-affinity
    weighted neighbourhood at the given dilations."""
    image = _check_image(image)
    m = torch.as_tensor(np.asarray(maps) if not isinstance(maps, torch.Tensor) else maps).float()
    if m.ndim != 3:
        raise ValueError(f"maps must be C×H×W, got shape {tuple(m.shape)}")
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float().div(255.0)
    m = m[None]
    if m.shape[-2:] != x.shape[-2:]:
        m = F.interpolate(m, size=x.shape[-2:], mode="bilinear", align_corners=True)
    std = _local(x, _pamr_kernels("std"), dilations).std(2, keepdim=True)
    aff = -_local(x, _pamr_kernels("diff"), dilations).abs() / (1e-8 + 0.1 * std)
    aff = torch.softmax(aff.mean(1, keepdim=True), 2)
    # m ← Σ_j aff_j · (m shifted to neighbour j): the "copy" kernels, accumulated in place
    shifts = [(d, a, c) for d in dilations for (a, c) in _PAMR_NEIGHBOURS]
    aff = aff[:, 0]  # 1×J×H×W
    h, w = m.shape[-2:]
    for _ in range(int(num_iter)):
        pads = {d: F.pad(m, [d] * 4, mode="replicate") for d in dilations}
        out = torch.zeros_like(m)
        for j, (d, a, c) in enumerate(shifts):
            out.addcmul_(pads[d][..., a * d:a * d + h, c * d:c * d + w], aff[:, j:j + 1])
        m = out
    return m[0].numpy().astype(np.float32)
