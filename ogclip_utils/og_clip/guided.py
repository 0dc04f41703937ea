"""Object-Guided CLIP for the context task: the mask says *which* object, the whole image says *where*.

Late fusion (the seeds' design, the default)::

    image (64 px) ──► frozen CLIP image tower ──► patch tokens G×G×D entering its last block ─┐
    image × mask (32 px) ──► object conv (2 × stride 2) ──► G×G×64 ───────────────┼─► sum of linear maps
    [mask, dx, dy] (32 px) ──► mask conv (2 × stride 2) ──► G×G×32 ───────────────┘   + position embedding
                  ─► 2 Transformer layers (every cell sees every cell: the anchor is in the context)
                  ─► attention pooling ─► projection ─► (+ α · frozen masked-crop embedding) ─► object embedding
    caption ──► CLIP's word embeddings ─► a fresh text Transformer (CLIP's shape) ─► end token + mean ─► text embedding

``dx, dy`` are each pixel's offset from the mask's centroid (in image widths), so "left of"
is a direction the Transformer can read off any cell. The text side keeps CLIP's word
embeddings and re-initialises its text Transformer (``text_init="scratch"``): the tiny
CLIP's trained text tower, fine-tuned, never told "left of" from "right of" (cosine 0.9994
between the two captions after 2,400 steps; its first block's residual stream is 50–100× the
word embeddings, so a word it never saw hardly moves the output), while a fresh one learns
the grammar within a few hundred steps (see the ablations in notebook 05). The masked-crop residual (``use_crop``,
α learned from 0) keeps the frozen CLIP's reading of the object's own pixels, which is the
best possible input for attribute captions.

Early fusion (``fusion="early"``, Alpha-CLIP's design) instead adds the mask as a fourth
input channel of CLIP's own patch embedding through a zero-initialised convolution and
fine-tunes the image tower at a small learning rate; it cannot use cached tokens, so each
training step runs the image tower.

Every branch switches off for ablations (``use_clip``, ``use_object``, ``use_mask``,
``use_coords``, ``use_crop``, ``train_text``). Checkpoints store only what training changed
(the fusion head, the text tower, the token-embedding rows of the words it saw) on top of
the committed tiny-shapes weights, as safetensors.
"""
from __future__ import annotations

import copy
import json
import math
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..segmenters import sam2_autocast
from .. import paths
from .. import models
from ..arrays import masked_crop, resize_float, resize_rgb
from .features import TOKEN_SOURCES, clip_tokens, token_dim

FUSIONS = ("late", "early")
#: caption pooling: CLIP's end-of-text token, or that plus the mean over every token
#: (a direct path from each word — "left", "right" — to the caption embedding)
TEXT_POOLS = ("eot", "eot+mean")
#: the committed offline checkpoint of :func:`load_pretrained`
PRETRAINED = "og-clip-context.safetensors"


@dataclass
class GuidedConfig:
    """Architecture switches of :class:`GuidedCLIP` (all stored in its checkpoints).

    fusion: ``"late"`` (cached CLIP tokens + object/mask convs + Transformer) or ``"early"``
    (mask channel into CLIP's patch embedding); width / layers / heads: the fusion Transformer;
    branch: side of the object and mask branch inputs in pixels (None: 4 × the token grid, so the
    two stride-2 convolutions land on it — 32 for tiny-shapes, 56 for ViT-B/16)."""

    fusion: str = "late"
    use_clip: bool = True
    use_object: bool = True
    use_mask: bool = True
    use_coords: bool = True
    use_crop: bool = True
    train_text: bool = True
    tokens: str = "block_input"
    text_pool: str = "eot+mean"
    text_init: str = "scratch"
    width: int = 192
    layers: int = 2
    heads: int = 4
    branch: int | None = None
    temperature: float = 0.07

    def __post_init__(self):
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {self.fusion!r}")
        if self.text_pool not in TEXT_POOLS:
            raise ValueError(f"text_pool must be one of {TEXT_POOLS}, got {self.text_pool!r}")
        if self.tokens not in TOKEN_SOURCES:
            raise ValueError(f"tokens must be one of {TOKEN_SOURCES}, got {self.tokens!r}")
        if self.text_init not in ("pretrained", "scratch"):
            raise ValueError(f"text_init must be 'pretrained' or 'scratch', got {self.text_init!r}")
        if not self.train_text and self.text_init == "scratch":
            raise ValueError("a frozen text tower must be the pretrained one: pass text_init='pretrained' with train_text=False")
        if self.fusion == "late" and not (self.use_clip or self.use_object or self.use_mask):
            raise ValueError("late fusion needs at least one of use_clip, use_object, use_mask")
        if self.fusion == "early" and not self.use_mask:
            raise ValueError("early fusion without the mask channel is the global CLIP; use the 'global' baseline")
        for name in ("width", "layers", "heads", "branch"):
            if getattr(self, name) is not None and int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.width % self.heads:
            raise ValueError(f"width ({self.width}) must be a multiple of heads ({self.heads})")
        if not 0 < self.temperature < 1:
            raise ValueError(f"temperature must be in (0, 1), got {self.temperature}")


def mask_channels(masks: torch.Tensor) -> torch.Tensor:
    """N×1×B×B soft masks → N×3×B×B [mask, dx, dy]: dx, dy are each pixel's offset from the
    mask's centroid in units of the image side (an empty mask gives the image centre)."""
    n, _, h, w = masks.shape
    ys = (torch.arange(h, dtype=masks.dtype, device=masks.device) + 0.5) / h
    xs = (torch.arange(w, dtype=masks.dtype, device=masks.device) + 0.5) / w
    tot = masks.sum((2, 3)).clamp_min(1e-6)
    cx = (masks.sum(2) * xs).sum(-1) / tot  # N×1
    cy = (masks.sum(3) * ys).sum(-1) / tot
    cx = torch.where(masks.sum((2, 3)) > 1e-6, cx, torch.full_like(cx, 0.5))
    cy = torch.where(masks.sum((2, 3)) > 1e-6, cy, torch.full_like(cy, 0.5))
    dx = xs.view(1, 1, 1, w) - cx.view(n, 1, 1, 1)
    dy = ys.view(1, 1, h, 1) - cy.view(n, 1, 1, 1)
    return torch.cat([masks, dx.expand(n, 1, h, w), dy.expand(n, 1, h, w)], 1)


class _Fusion(nn.Module):
    """The late-fusion head: N×G×G×D tokens, N×3×B×B images, N×1×B×B masks → N×E (not normalised)."""

    def __init__(self, cfg: GuidedConfig, clip_dim: int, embed_dim: int, grid: int):
        super().__init__()
        W, self.cfg, self.grid = cfg.width, cfg, grid
        if cfg.use_clip:
            self.clip_in = nn.Sequential(nn.LayerNorm(clip_dim), nn.Linear(clip_dim, W))
        if cfg.use_object:
            self.object_conv = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1), nn.GELU(), nn.Conv2d(32, 64, 3, 2, 1), nn.GELU())
            self.object_in = nn.Linear(64, W)
        if cfg.use_mask:
            self.mask_conv = nn.Sequential(nn.Conv2d(3 if cfg.use_coords else 1, 16, 3, 2, 1), nn.GELU(),
                                           nn.Conv2d(16, 32, 3, 2, 1), nn.GELU())
            self.mask_in = nn.Linear(32, W)
        self.pos = nn.Parameter(torch.randn(grid * grid, W) * 0.02)
        layer = nn.TransformerEncoderLayer(W, cfg.heads, 2 * W, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.ln = nn.LayerNorm(W)
        self.pool = nn.Linear(W, 1)
        self.proj = nn.Linear(W, embed_dim)

    def _grid(self, x: torch.Tensor) -> torch.Tensor:  # N×C×h×w → N×G²×C
        if x.shape[-1] != self.grid:
            x = F.adaptive_avg_pool2d(x, self.grid)
        return x.flatten(2).transpose(1, 2)

    def forward(self, tokens, images, masks) -> torch.Tensor:
        cfg = self.cfg
        x = self.pos.unsqueeze(0)
        if cfg.use_clip:
            x = x + self.clip_in(tokens.flatten(1, 2))
        if cfg.use_object:
            x = x + self.object_in(self._grid(self.object_conv(images * masks)))
        if cfg.use_mask:
            m = mask_channels(masks) if cfg.use_coords else masks
            x = x + self.mask_in(self._grid(self.mask_conv(m)))
        x = self.ln(self.blocks(x))
        w = torch.softmax(self.pool(x), dim=1)  # N×G²×1 attention over the cells
        return self.proj((x * w).sum(1))


class GuidedCLIP(nn.Module):
    """Object-Guided CLIP around a CLIP bundle (tiny-shapes offline, ViT-B/16 in real mode).

    ``encode_objects(images, masks) -> N×E`` and ``encode_texts(texts) -> N×E`` (both
    L2-normalised; compare by dot product). The bundle's image tower stays frozen in late
    fusion; the text tower is a trained copy (re-initialised with ``text_init="scratch"``) when
    ``config.train_text``.
    """

    def __init__(self, clip, config: GuidedConfig | None = None):
        super().__init__()
        self.config = cfg = config or GuidedConfig()
        self.bundle = copy.copy(clip)
        # the text tower (and, early, the image tower) train: a float32 copy even of a bf16 CLIP
        self.bundle.model = copy.deepcopy(clip.model).float()
        if getattr(clip, "precision", "fp32") == "bf16":
            self.bundle.precision = "fp32"
            self.bundle.weights_id = str(clip.weights_id).removesuffix(":bf16")
        self.clip = self.bundle.model
        for p in self.clip.parameters():
            p.requires_grad_(False)
        if cfg.train_text:
            for n, p in self.clip.named_parameters():
                if not n.startswith("visual."):
                    p.requires_grad_(True)
        if cfg.text_init == "scratch":  # a fresh text Transformer (the word embeddings are kept)
            for n, mod in self.clip.transformer.named_modules():
                if isinstance(mod, nn.Linear):
                    nn.init.normal_(mod.weight, std=0.02)
                    nn.init.zeros_(mod.bias) if mod.bias is not None else None
                elif isinstance(mod, nn.LayerNorm):
                    nn.init.ones_(mod.weight)
                    nn.init.zeros_(mod.bias)
            for n, p in self.clip.transformer.named_parameters():
                if "in_proj_weight" in n:
                    nn.init.normal_(p, std=0.02)
                elif "in_proj_bias" in n:
                    nn.init.zeros_(p)
        vis = self.clip.visual
        self.grid = int(vis.grid_size[0])
        if cfg.branch is None:
            self.config = cfg = replace(cfg, branch=4 * self.grid)
        self.embed_dim = int(self.clip.text_projection.shape[-1])
        clip_dim = token_dim(clip, cfg.tokens)
        if cfg.fusion == "late":
            self.fusion = _Fusion(cfg, clip_dim, self.embed_dim, self.grid)
        else:
            self._install_mask_channel()
        self.crop_alpha = nn.Parameter(torch.zeros(())) if cfg.use_crop else None
        self.text_mix = nn.Parameter(torch.tensor(0.5)) if cfg.text_pool == "eot+mean" else None
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / cfg.temperature)))

    # ------------------------------------------------------------------ early fusion
    def _install_mask_channel(self):
        """Alpha-CLIP's change: a zero-initialised conv of the mask channel beside the patch embedding."""
        vis = self.clip.visual
        conv = vis.conv1 if isinstance(vis.conv1, nn.Conv2d) else None
        stem_out = vis.conv1[-1].out_channels if conv is None else conv.out_channels
        k = vis.patch_size[0] if hasattr(vis, "patch_size") else self.clip.visual.image_size[0] // self.grid
        self.mask_embed = nn.Conv2d(1, stem_out, k, k, bias=False)
        nn.init.zeros_(self.mask_embed.weight)
        for p in vis.parameters():
            p.requires_grad_(True)
        stem = vis.conv1
        mask_embed = self.mask_embed
        holder = {"mask": None}

        class _WithMask(nn.Module):
            def __init__(self):
                super().__init__()
                self.stem = stem

            def forward(self, x):
                y = self.stem(x)
                m = holder["mask"]
                if m is not None:
                    y = y + F.interpolate(mask_embed(m * 2 - 1), size=y.shape[-2:], mode="nearest")
                return y

        vis.conv1 = _WithMask()
        self._mask_holder = holder

    def _early(self, images_full: torch.Tensor, masks_full: torch.Tensor) -> torch.Tensor:
        self._mask_holder["mask"] = masks_full
        try:
            return self.clip.encode_image(images_full)
        finally:
            self._mask_holder["mask"] = None

    # ------------------------------------------------------------------ both
    def fused(self, tokens=None, images=None, masks=None, crop_emb=None, images_full=None, masks_full=None):
        """Object embeddings N×E (L2-normalised) from prepared tensors (see :func:`prepare`)."""
        if self.config.fusion == "late":
            z = self.fusion(tokens, images, masks)
        else:
            z = self._early(images_full, masks_full)
        if self.crop_alpha is not None:
            z = F.normalize(z, dim=-1) + self.crop_alpha * crop_emb
        return F.normalize(z, dim=-1)

    def text(self, tokens: torch.Tensor) -> torch.Tensor:
        """N×E L2-normalised caption embeddings of tokenised captions (N×context)."""
        if self.text_mix is None:
            return F.normalize(self.clip.encode_text(tokens), dim=-1)
        c = self.clip
        L = max(1, int((tokens != 0).sum(1).max()))  # trailing padding changes nothing under the causal mask
        tokens = tokens[:, :L]
        x = c.token_embedding(tokens) + c.positional_embedding[:L]
        x = c.ln_final(c.transformer(x, attn_mask=c.attn_mask[:L, :L]))  # N×L×width
        eot = x[torch.arange(x.shape[0]), tokens.argmax(-1)]
        valid = (tokens != 0).to(x.dtype).unsqueeze(-1)  # start, words and end token; not padding
        mean = (x * valid).sum(1) / valid.sum(1).clamp_min(1)
        return F.normalize((eot + self.text_mix * mean) @ c.text_projection, dim=-1)

    def prepare(self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> dict:
        """The tensors :meth:`fused` reads, for uint8 H×W×3 images and bool H×W masks (one mask per
        image; repeat an image for several objects)."""
        if len(images) != len(masks):
            raise ValueError(f"{len(images)} images but {len(masks)} masks: pass one mask per image")
        S, B = self.bundle.image_size, self.config.branch
        imgs, ms, crops = [], [], []
        for k, (im, m) in enumerate(zip(images, masks)):
            im, m = np.asarray(im), np.asarray(m)
            if im.ndim != 3 or im.shape[-1] != 3 or im.dtype != np.uint8:
                raise ValueError(f"images[{k}] must be uint8 H×W×3 RGB, got {im.dtype} {im.shape}")
            if m.shape != im.shape[:2]:
                raise ValueError(f"masks[{k}] has shape {m.shape}, its image is {im.shape[:2]}: masks must be H×W")
            imgs.append(im)
            ms.append(m.astype(bool))
            crops.append(masked_crop(im, m.astype(bool), S))
        dev = self.logit_scale.device
        first: dict[int, int] = {}  # each distinct image is resized and encoded once
        which = torch.as_tensor([first.setdefault(id(im), len(first)) for im in imgs])
        uniq = list({id(im): im for im in imgs}.values())
        full = np.stack([resize_rgb(im, S) for im in uniq])
        out = {"crop_emb": self.bundle.encode_images(np.stack(crops)).to(dev) if self.crop_alpha is not None else None}
        if self.config.fusion == "late":
            out["tokens"] = torch.from_numpy(clip_tokens(self.bundle, full, source=self.config.tokens)).to(dev)[which]
            out["images"] = self.bundle.preprocess(np.stack([resize_rgb(im, B) for im in uniq])).to(dev)[which]
            out["masks"] = torch.from_numpy(np.stack([np.clip(resize_float(m, B), 0, 1) for m in ms])[:, None]).to(dev)
        else:
            out["images_full"] = self.bundle.preprocess(full).to(dev)[which]
            out["masks_full"] = torch.from_numpy(np.stack([np.clip(resize_float(m, S), 0, 1) for m in ms])[:, None]).to(dev)
        return out

    @torch.no_grad()
    def encode_objects(self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray], batch_size: int = 256) -> torch.Tensor:
        """N×E L2-normalised object embeddings: ``images`` uint8 H×W×3, ``masks`` bool H×W (one each)."""
        was = self.training
        self.eval()
        try:
            out = [self.fused(**self.prepare(images[i:i + batch_size], masks[i:i + batch_size]))
                   for i in range(0, len(images), batch_size)]
        finally:
            self.train(was)
        return torch.cat(out) if out else torch.zeros(0, self.embed_dim)

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """N×E L2-normalised caption embeddings."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise ValueError("texts must be a list of strings")
        return self.text(self.bundle.tokenizer(list(texts)).to(self.logit_scale.device))

    def score(self, image: np.ndarray, masks: Sequence[np.ndarray], caption: str) -> np.ndarray:
        """K scores: ``caption`` against each of the K object masks of one image."""
        obj = self.encode_objects([image] * len(masks), list(masks))
        return (obj @ self.encode_texts([caption])[0]).cpu().numpy()


# ---------------------------------------------------------------------- the seeds' interface
class PointPromptedCLIP(nn.Module):
    """The seeds' interface: ``model(image, text, point_coords, point_labels) -> (image_features,
    text_features)``. A promptable segmenter (SAM2 in real mode, the classical one offline)
    turns the points into a mask — its best-scoring multimask candidate — and
    :class:`GuidedCLIP` embeds the object under that mask and the caption.

    ``image`` uint8 H×W×3 or a list of them; ``text`` a caption or a list (one per image);
    ``point_coords`` P×2 (x, y) pixels and ``point_labels`` P (1 positive, 0 negative), or
    lists of them. Returns two N×E L2-normalised tensors. The last masks are kept in
    ``self.last_masks`` (N×H×W bool) for inspection."""

    def __init__(self, guided: GuidedCLIP, segmenter):
        super().__init__()
        self.guided, self.segmenter = guided, segmenter
        self.last_masks: list[np.ndarray] = []

    def masks_for(self, image: np.ndarray, point_coords, point_labels) -> np.ndarray:
        """bool H×W: the segmenter's best candidate for these points on ``image``."""
        pts = np.asarray(point_coords, np.float32).reshape(-1, 2)
        lab = np.asarray(point_labels, np.int32).reshape(-1)
        if len(pts) == 0 or len(pts) != len(lab):
            raise ValueError(f"point_coords (P×2) and point_labels (P) must be non-empty and of one length, "
                             f"got {len(pts)} and {len(lab)}")
        if not (lab == 1).any():
            raise ValueError("point_labels must contain at least one positive point (label 1) on the object")
        with sam2_autocast(self.segmenter):
            self.segmenter.set_image(image)
            masks, scores, _ = self.segmenter.predict(point_coords=pts, point_labels=lab, multimask_output=True)
        return np.asarray(masks[int(np.argmax(scores))], bool)

    def forward(self, image, text, point_coords, point_labels):
        single = isinstance(image, np.ndarray) and image.ndim == 3
        images = [image] if single else list(image)
        texts = [text] if isinstance(text, str) else list(text)
        coords = [point_coords] if single else list(point_coords)
        labels = [point_labels] if single else list(point_labels)
        if not (len(images) == len(texts) == len(coords) == len(labels)):
            raise ValueError(f"one caption and one set of points per image: got {len(images)} images, {len(texts)} "
                             f"captions, {len(coords)} point sets, {len(labels)} label sets")
        self.last_masks = [self.masks_for(im, c, lab) for im, c, lab in zip(images, coords, labels)]
        return self.guided.encode_objects(images, self.last_masks), self.guided.encode_texts(texts)


def create_object_guided_clip(clip=None, segmenter=None, config: GuidedConfig | None = None,
                              checkpoint: str | os.PathLike | None = None, device=None) -> PointPromptedCLIP:
    """The seeds' factory. With ``checkpoint`` (or nothing at all offline: the committed
    :func:`load_pretrained` model) a trained model, else a new one on ``clip`` with ``config``;
    ``segmenter`` defaults to the mode's (``models.default_segmenter``)."""

    if checkpoint is not None:
        guided = load_guided(checkpoint, clip=clip, device=device)
    elif clip is None and config is None:
        guided = load_pretrained(device=device)
    else:
        guided = GuidedCLIP(clip or models.default_clip(device=device), config).to(device or "cpu")
    return PointPromptedCLIP(guided, segmenter or models.default_segmenter(device=device))


# ---------------------------------------------------------------------- checkpoints
def _changed_state(model: GuidedCLIP, base: dict) -> dict:
    """What training changed: every trainable tensor except the token embedding, plus the rows
    of the token embedding that differ from ``base`` (saved as ``…token_embedding.rows`` / ``.ids``)."""
    out = {}
    for n, p in model.named_parameters():
        if not p.requires_grad and not n.startswith("mask_embed"):
            continue
        if n == "clip.token_embedding.weight":
            ref = base["token_embedding.weight"].to(p.dtype)
            ids = torch.nonzero((p.detach().cpu() != ref).any(1)).flatten()
            out["clip.token_embedding.ids"] = ids.to(torch.int64)
            out["clip.token_embedding.rows"] = p.detach().cpu()[ids].contiguous()
        else:
            out[n] = p.detach().cpu().contiguous()
    return out


def save_guided(model: GuidedCLIP, path: str | os.PathLike, base_weights: str | os.PathLike | None = None,
                metadata: dict | None = None, half: bool = False) -> Path:
    """Write what training changed as safetensors (config and ``metadata`` as JSON metadata),
    atomically; ``base_weights`` are the CLIP weights it was trained from (default: the
    committed tiny-shapes); ``half`` stores float tensors as float16 (half the size; loading
    casts back to float32)."""
    from safetensors.torch import load_file, save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    base = load_file(str(base_weights or paths.CHECKPOINT_DIR / "tiny-shapes.safetensors"))
    state = _changed_state(model, base)
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    meta = {"og_clip_guided": json.dumps(asdict(model.config)), "clip": model.bundle.name,
            "metadata": json.dumps(metadata or {})}
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata=meta)
    os.replace(tmp, path)
    return path


def load_guided(path: str | os.PathLike, clip=None, device=None) -> GuidedCLIP:
    """Rebuild a :class:`GuidedCLIP` from :func:`save_guided`'s file on top of ``clip``
    (default: the CLIP named in the file, tiny-shapes offline)."""
    from safetensors import safe_open
    from safetensors.torch import load_file


    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {str(path)!r}; train one with `python -m ogclip_utils train-context`")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - re-raised with advice
        raise ValueError(f"{path} is not a safetensors checkpoint written by og_clip.save_guided ({exc})") from exc
    if "og_clip_guided" not in meta:
        raise ValueError(f"{path} has no og_clip_guided metadata; it was not written by og_clip.save_guided")
    clip = clip or models.load_clip(meta.get("clip", models.TINY_NAME), device=device)
    model = GuidedCLIP(clip, GuidedConfig(**json.loads(meta["og_clip_guided"])))
    ids, rows = state.pop("clip.token_embedding.ids", None), state.pop("clip.token_embedding.rows", None)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected:
        raise ValueError(f"{path}: unexpected tensors {unexpected[:5]} for this configuration")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad} - {"clip.token_embedding.weight"}
    lost = sorted(trainable & set(missing))
    if lost:
        raise ValueError(f"{path}: tensors missing from the checkpoint: {lost[:5]}")
    if ids is not None:
        with torch.no_grad():
            model.clip.token_embedding.weight[ids] = rows.to(model.clip.token_embedding.weight.dtype)
    model.metadata = json.loads(meta.get("metadata", "{}"))
    return model.to(device or "cpu").eval()


def load_pretrained(device=None, seed: int = 0) -> GuidedCLIP:
    """The committed offline Object-Guided CLIP (late fusion on tiny-shapes), training seed ``seed``.

    ``model.encode_objects(images, masks) -> N×E`` and ``model.encode_texts(texts) -> N×E``,
    L2-normalised torch tensors comparable by dot product."""
    return load_guided(pretrained_path(seed), device=device)


def pretrained_path(seed: int = 0) -> Path:
    """``checkpoints/og-clip-context.safetensors`` (seed 0) or ``…-seed{seed}.safetensors``."""
    return paths.CHECKPOINT_DIR / (PRETRAINED if seed == 0 else PRETRAINED.replace(".safetensors", f"-seed{seed}.safetensors"))
