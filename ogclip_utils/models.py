"""Model loaders and the checkpoint registry — the only module that knows where weights live.

- ``load_clip("tiny-shapes")``: the project's own small open_clip ``CLIP`` trained on the
  shapes world (committed in ``checkpoints/``); ``load_clip("ViT-B-16", pretrained="openai")``:
  the official weights (downloaded by :func:`download`); ``pretrained=None`` builds any
  open_clip architecture at random init (how real-mode code is tested without weights).
- ``load_segmenter("classical")`` / ``load_segmenter("sam2.1-hiera-tiny")``: promptable
  segmenters with SAM2ImagePredictor's interface.
- ``download(name)``: progress bar, resume, atomic rename, size/sha256 checks, clear errors.
  Nothing is ever downloaded at import time.

Checkpoints are loaded safely: safetensors, or ``torch.load(..., weights_only=True)``.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import env

CONFIG_DIR = Path(__file__).resolve().parent / "model_configs"
CHECKPOINT_DIR = env.REPO_ROOT / "checkpoints"
TINY_NAME = "tiny-shapes"
TINY_WEIGHTS = CHECKPOINT_DIR / "tiny-shapes.safetensors"
#: Local-attention radius (grid steps) of the committed tiny-shapes' blocks 1…L−1 (:func:`install_local_attention`).
LOCAL_RADIUS = 1


class CheckpointError(RuntimeError):
    """A checkpoint could not be downloaded, verified or loaded; the message says what to do."""


# ----------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class Checkpoint:
    """One downloadable weight file."""

    name: str
    url: str
    filename: str
    size: int | None = None  # bytes, where known
    sha256: str | None = None  # where known
    kind: str = "clip"  # clip | sam2 | detector | inpainting
    extra: dict = field(default_factory=dict)


SAM2_BASE = "https://dl.fbaipublicfiles.com/segment_anything_2/092824"
REGISTRY: dict[str, Checkpoint] = {
    # open_clip's conversion of OpenAI's ViT-B/16 (QuickGELU) to safetensors, as hosted by timm/open_clip
    "clip-vit-b-16-openai": Checkpoint(
        "clip-vit-b-16-openai",
        "https://huggingface.co/timm/vit_base_patch16_clip_224.openai/resolve/main/open_clip_model.safetensors",
        "vit_b_16_openai.safetensors",
        kind="clip",
        extra={"arch": "ViT-B-16-quickgelu"},
    ),
    **{
        f"sam2.1-hiera-{size}": Checkpoint(
            f"sam2.1-hiera-{size}",
            f"{SAM2_BASE}/sam2.1_hiera_{size}.pt",
            f"sam2.1_hiera_{size}.pt",
            kind="sam2",
            extra={"config": f"configs/sam2.1/sam2.1_hiera_{short}.yaml"},
        )
        for size, short in (("tiny", "t"), ("small", "s"), ("base_plus", "b+"), ("large", "l"))
    },
    "sd2-inpainting": Checkpoint(
        "sd2-inpainting",
        "https://huggingface.co/stabilityai/stable-diffusion-2-inpainting",
        "stable-diffusion-2-inpainting",
        kind="inpainting",
        extra={"hf_repo": "stabilityai/stable-diffusion-2-inpainting", "note": "fetched with diffusers.from_pretrained"},
    ),
    "yolo11n": Checkpoint(
        "yolo11n",
        "https://github.com/ultralytics/assets/releases/download/v8.3.0/yolo11n.pt",
        "yolo11n.pt",
        kind="detector",
    ),
}
SAM2_ALIASES = {"sam2.1-hiera-base-plus": "sam2.1-hiera-base_plus", "sam2.1-hiera-b+": "sam2.1-hiera-base_plus",
                "sam2.1-hiera-t": "sam2.1-hiera-tiny", "sam2.1-hiera-s": "sam2.1-hiera-small",
                "sam2.1-hiera-l": "sam2.1-hiera-large"}


def checkpoint_path(name: str) -> Path:
    """Where ``name`` lives (or will live) in the cache: ``$OGCLIP_CACHE/checkpoints/<file>``."""
    ck = _entry(name)
    return env.cache_dir("checkpoints") / ck.filename


def _entry(name: str) -> Checkpoint:
    name = SAM2_ALIASES.get(name, name)
    if name not in REGISTRY:
        raise ValueError(f"unknown checkpoint {name!r}; known: {sorted(REGISTRY)}")
    return REGISTRY[name]


def real_weights_available() -> bool:
    """True when the official CLIP weights are on disk already (what ``OGCLIP_MODE=auto`` checks)."""
    try:
        return checkpoint_path("clip-vit-b-16-openai").exists()
    except OSError:
        return False


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def download(name_or_url: str, dest: str | os.PathLike | None = None, *, sha256: str | None = None,
             size: int | None = None, progress: bool = True, timeout: float = 30.0) -> Path:
    """Download a registry checkpoint (or any URL) to the cache; return its path.

    Resumes a previous ``.part`` file with an HTTP Range request, shows a progress bar,
    verifies size and sha256 where known, and renames atomically into place, so a half
    download never looks complete. An existing verified file is returned untouched.

    Raises:
        CheckpointError: offline / unreachable host (with proxy advice), truncated or
            corrupt file, or wrong hash.
    """
    if name_or_url in REGISTRY or name_or_url in SAM2_ALIASES:
        ck = _entry(name_or_url)
        url, sha256, size = ck.url, sha256 or ck.sha256, size or ck.size
        dest = Path(dest) if dest else checkpoint_path(ck.name)
    else:
        url = name_or_url
        if "://" not in url:
            raise ValueError(f"{name_or_url!r} is neither a registry name ({sorted(REGISTRY)}) nor a URL")
        dest = Path(dest) if dest else env.cache_dir("checkpoints") / Path(url.split("?")[0]).name
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        _verify(dest, size, sha256, remove=False)
        return dest
    part = dest.with_name(dest.name + ".part")
    start = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "ogclip-utils"})
    if start:
        req.add_header("Range", f"bytes={start}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:  # the .part is already complete
            resp = None
        else:
            raise CheckpointError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise CheckpointError(
            f"cannot reach {url} ({getattr(exc, 'reason', exc)}). You may be offline: use OGCLIP_MODE=offline, "
            f"or set HTTPS_PROXY, or download the file by hand and place it at {dest}"
        ) from exc
    if resp is not None:
        with resp:
            status = getattr(resp, "status", None) or resp.getcode()
            mode = "ab" if (start and status == 206) else "wb"
            if mode == "wb":
                start = 0
            total = resp.headers.get("Content-Length")
            total = int(total) + start if total is not None else size
            from tqdm.auto import tqdm

            with open(part, mode) as f, tqdm(total=total, initial=start, unit="B", unit_scale=True,
                                             desc=dest.name, disable=not progress) as bar:
                while True:
                    try:
                        block = resp.read(1 << 20)
                    except OSError as exc:
                        raise CheckpointError(
                            f"download of {url} was interrupted ({exc}); run the same command again to resume"
                        ) from exc
                    if not block:
                        break
                    f.write(block)
                    bar.update(len(block))
            if total is not None and part.stat().st_size < total:
                raise CheckpointError(
                    f"download of {url} is truncated ({part.stat().st_size} of {total} bytes); run again to resume"
                )
    _verify(part, size, sha256, remove=True)
    os.replace(part, dest)  # atomic on the same filesystem
    return dest


def _verify(path: Path, size: int | None, sha256: str | None, remove: bool) -> None:
    actual = path.stat().st_size
    if size is not None and actual != size:
        if remove:
            path.unlink()
        raise CheckpointError(
            f"{path} has {actual} bytes, expected {size}: the file is truncated or corrupt"
            + ("; it was removed, download again" if remove else f"; delete it and download again")
        )
    if sha256 is not None:
        got = sha256_file(path)
        if got.lower() != sha256.lower():
            if remove:
                path.unlink()
            raise CheckpointError(
                f"{path} has sha256 {got}, expected {sha256}: the file is corrupt or not the published one"
                + ("; it was removed, download again" if remove else "; delete it and download again")
            )


def cli_checkpoints(argv: list[str] | None = None) -> int:
    """``python -m ogclip_utils checkpoints [NAME…] [--list]``: download real-mode weights."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m ogclip_utils checkpoints",
                                description="Download official weights for real mode into $OGCLIP_CACHE/checkpoints.")
    p.add_argument("names", nargs="*", default=["clip-vit-b-16-openai", "sam2.1-hiera-tiny"],
                   help=f"registry names (default: CLIP ViT-B/16 and SAM2.1 tiny); known: {', '.join(sorted(REGISTRY))}")
    p.add_argument("--list", action="store_true", help="list the registry and what is on disk")
    a = p.parse_args(argv)
    if a.list:
        for ck in REGISTRY.values():
            path = env.cache_dir("checkpoints") / ck.filename
            print(f"{ck.name:28s} {'on disk' if path.exists() else 'missing':8s} {ck.url}")
        return 0
    for n in a.names:
        ck = _entry(n)
        if ck.kind == "inpainting":
            print(f"{n}: fetched by diffusers on first use (see edit.py); skipping")
            continue
        print(f"{n} -> {download(n)}")
    return 0


# ----------------------------------------------------------------------------- CLIP
@dataclass
class ClipBundle:
    """A CLIP model with what is needed to feed it.

    ``model`` is an ``open_clip.CLIP`` in eval mode; ``tokenizer(list[str]) -> LongTensor``;
    ``mean``/``std`` are per-channel RGB normalisation constants (0–1 scale);
    ``image_size`` is the model's input side in pixels; ``weights_id`` identifies the weights
    (used as a cache key for text embeddings).
    """

    model: Any
    tokenizer: Any
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    name: str
    image_size: int
    weights_id: str
    device: Any = None

    @property
    def patch_size(self) -> int:
        """Pixels per patch-grid cell (input size / grid size)."""
        return self.image_size // self.model.visual.grid_size[0]

    def preprocess(self, images) -> "torch.Tensor":  # noqa: F821
        """uint8 N×H×W×3 (or H×W×3) numpy/torch → normalised float N×3×H×W on the model's device
        (no resizing: resize beforehand)."""
        import numpy as np
        import torch

        x = torch.as_tensor(np.asarray(images))
        if x.ndim == 3:
            x = x[None]
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return ((x - mean) / std).to(self.device or "cpu")

    def encode_images(self, images, batch_size: int = 256) -> "torch.Tensor":  # noqa: F821
        """L2-normalised image embeddings (N×D) of uint8 N×S×S×3 images (S = image_size; others are resized)."""
        import numpy as np
        import torch
        import torch.nn.functional as F

        arr = np.asarray(images)
        if arr.ndim == 3:
            arr = arr[None]
        out = []
        with torch.inference_mode():
            for i in range(0, len(arr), batch_size):
                x = self.preprocess(arr[i:i + batch_size])
                if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
                    x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear",
                                      align_corners=False, antialias=True)
                out.append(F.normalize(self.model.encode_image(x).float(), dim=-1))
        return torch.cat(out) if out else torch.zeros(0, self.model.text_projection.shape[-1] if hasattr(self.model, "text_projection") else 0)

    def encode_texts(self, texts: list[str], batch_size: int = 512) -> "torch.Tensor":  # noqa: F821
        """L2-normalised text embeddings (N×D)."""
        import torch
        import torch.nn.functional as F

        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise ValueError("texts must be a list of strings")
        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), batch_size):
                tok = self.tokenizer(list(texts[i:i + batch_size])).to(self.device or "cpu")
                out.append(F.normalize(self.model.encode_text(tok).float(), dim=-1))
        return torch.cat(out)


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

    import logging

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


def load_clip(name: str = TINY_NAME, pretrained: str | bool | None = None, device: str | None = None) -> ClipBundle:
    """Load a CLIP model through open_clip's factory.

    Args:
        name: ``"tiny-shapes"`` (offline) or any open_clip model name (``"ViT-B-16"``…).
        pretrained: for tiny-shapes: None → the committed checkpoint, ``False`` → random
            init, or a path to a ``.safetensors`` file. For open_clip models: None → random
            init (the architecture only), ``"openai"`` → the official weights (downloaded
            once into the cache), or a local file path.
        device: torch device; default cuda → mps → cpu.
    """
    import open_clip
    import torch

    dev = env.get_device(device)
    register_configs()
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a model name such as 'tiny-shapes' or 'ViT-B-16', got {name!r}")
    if name == TINY_NAME:
        model = build_tiny_clip()
        if pretrained is False:
            weights_id = "tiny-shapes:random"
        else:
            path = Path(pretrained) if pretrained else TINY_WEIGHTS
            if not path.exists():
                raise CheckpointError(
                    f"tiny-shapes weights not found at {path}; they are committed in checkpoints/ "
                    "(git lfs is not used) — re-clone, or retrain with `python -m ogclip_utils train-tiny-clip`"
                )
            from safetensors.torch import load_file

            state = {k: v.float() for k, v in load_file(str(path)).items()}
            missing, unexpected = model.load_state_dict(state, strict=False)
            if missing or unexpected:
                raise CheckpointError(f"{path} does not match the tiny-shapes architecture "
                                      f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
            weights_id = f"tiny-shapes:{sha256_file(path)[:16]}"
        image_size = 64
    else:
        if name not in open_clip.list_models():
            raise ValueError(f"unknown CLIP model {name!r}; use 'tiny-shapes' or one of open_clip.list_models()")
        arch = name
        if pretrained is None or pretrained is False:
            model = open_clip.create_model(arch, pretrained=None)
            weights_id = f"{arch}:random"
        elif pretrained == "openai" and name.startswith("ViT-B-16"):
            path = checkpoint_path("clip-vit-b-16-openai")
            if not path.exists():
                if env.get_mode() == "offline" and os.environ.get("OGCLIP_MODE", "").lower() == "offline":
                    raise CheckpointError("OGCLIP_MODE=offline: official CLIP weights are not downloaded in offline mode; "
                                          "unset OGCLIP_MODE or run `make checkpoints` on a machine with internet")
                path = download("clip-vit-b-16-openai")
            arch = "ViT-B-16-quickgelu"  # OpenAI's weights were trained with QuickGELU
            model = open_clip.create_model(arch, pretrained=str(path))
            weights_id = f"{arch}:openai"
        else:
            p = Path(str(pretrained))
            if p.exists():
                model = open_clip.create_model(arch, pretrained=str(p))  # safetensors or weights_only=True
                weights_id = f"{arch}:{sha256_file(p)[:16]}"
            else:
                raise ValueError(
                    f"pretrained={pretrained!r} is not supported offline-safely here: use None (random init), "
                    "'openai' for ViT-B-16, or a path to a local .safetensors/.pt file"
                )
        image_size = model.visual.image_size
        image_size = image_size[0] if isinstance(image_size, (tuple, list)) else int(image_size)
    model = model.to(dev).eval()
    tokenizer = open_clip.get_tokenizer(TINY_NAME if name == TINY_NAME else name)
    pp = getattr(model.visual, "preprocess_cfg", {}) or {}
    mean = tuple(pp.get("mean", open_clip.OPENAI_DATASET_MEAN))
    std = tuple(pp.get("std", open_clip.OPENAI_DATASET_STD))
    return ClipBundle(model, tokenizer, mean, std, name, int(image_size), weights_id, dev)


def tiny_card() -> dict:
    """The recipe and measured accuracies written next to the tiny-shapes checkpoint."""
    path = CHECKPOINT_DIR / "tiny-shapes.json"
    return json.loads(path.read_text()) if path.exists() else {}


# ----------------------------------------------------------------------------- segmenters
def load_segmenter(name: str = "classical", checkpoint: str | None = None, device: str | None = None,
                   model_cfg: str | None = None, **kwargs):
    """A promptable segmenter with ``set_image(img)`` and
    ``predict(point_coords, point_labels, box=None, multimask_output=True) -> (masks C×H×W bool, scores C, logits)``.

    ``"classical"``: :class:`ogclip_utils.refine.ClassicalSegmenter` (offline, no weights).
    ``"sam2.1-hiera-{tiny,small,base_plus,large}"``: SAM2.1 through the official ``sam2``
    package; ``checkpoint=None`` downloads the official file, ``checkpoint="random"`` builds
    the architecture at random init (tests), or a local path.
    """
    if name == "classical":
        from .refine import ClassicalSegmenter

        return ClassicalSegmenter(**kwargs)
    key = SAM2_ALIASES.get(name, name)
    if key not in REGISTRY or REGISTRY[key].kind != "sam2":
        raise ValueError(f"unknown segmenter {name!r}; use 'classical' or one of "
                         f"{[k for k, v in REGISTRY.items() if v.kind == 'sam2']}")
    return load_sam2(key, checkpoint=checkpoint, device=device, model_cfg=model_cfg)


def load_sam2(name: str = "sam2.1-hiera-tiny", checkpoint: str | None = None, device: str | None = None,
              model_cfg: str | None = None):
    """Build SAM2.1 with ``build_sam2`` (package-relative config names) and wrap it in
    ``SAM2ImagePredictor``. Weights are loaded by us with ``weights_only=True``."""
    import torch

    try:
        from sam2.build_sam import build_sam2
        from sam2.sam2_image_predictor import SAM2ImagePredictor
    except ImportError as exc:
        raise CheckpointError("the `sam2` package is not installed: pip install sam2") from exc
    ck = _entry(name)
    cfg = model_cfg or ck.extra["config"]
    dev = env.get_device(device)
    model = build_sam2(cfg, ckpt_path=None, device=str(dev), mode="eval")
    if checkpoint != "random":
        path = Path(checkpoint) if checkpoint else checkpoint_path(ck.name)
        if not path.exists():
            if checkpoint:
                raise FileNotFoundError(f"SAM2 checkpoint not found: {path}")
            path = download(ck.name)
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - re-raised with advice
            raise CheckpointError(f"{path} could not be loaded as a SAM2 checkpoint ({exc}); delete it and download again") from exc
        sd = sd.get("model", sd)
        missing, unexpected = model.load_state_dict(sd, strict=False)
        if missing or unexpected:
            raise CheckpointError(f"{path} does not match {cfg}: missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]}; "
                                  "pass the matching --model-cfg")
    model = model.to(dev).eval()
    return SAM2ImagePredictor(model)
