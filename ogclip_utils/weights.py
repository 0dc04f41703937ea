"""The checkpoint registry and the downloader: every official weight file, where it goes, how it comes.

- :data:`REGISTRY`: name → :class:`Checkpoint` (URL, file name, size/sha256 where known, kind).
- :func:`checkpoint_path`: ``$OGCLIP_CACHE/checkpoints/<registry file name>``.
- :func:`download`: progress bar, resume of a ``.part`` file, size/sha256 checks, atomic
  rename, clear errors. Nothing is ever downloaded at import time.
- :func:`real_weights_available`: what ``OGCLIP_MODE=auto`` asks (:mod:`ogclip_utils.env`).
"""
from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from . import paths


class CheckpointError(RuntimeError):
    """A checkpoint could not be downloaded, verified or loaded; the message says what to do."""


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
    params_m: float | None = None  # parameters (millions): our stand-in's count, or the publisher's model card

    @property
    def approx_mb(self) -> float | None:
        """The download's size in MB: exact where ``size`` is known, else an upper estimate from
        ``params_m`` at 4 bytes per parameter (a file stored in fp16 is about half)."""
        if self.size is not None:
            return self.size / 1e6
        return None if self.params_m is None else self.params_m * 4.0


SAM2_BASE = "https://dl.fbaipublicfiles.com/segment_anything_2/092824"
REGISTRY: dict[str, Checkpoint] = {
    # open_clip's conversion of OpenAI's ViT-B/16 (QuickGELU) to safetensors, as hosted by timm/open_clip
    "clip-vit-b-16-openai": Checkpoint(
        "clip-vit-b-16-openai",
        "https://huggingface.co/timm/vit_base_patch16_clip_224.openai/resolve/main/open_clip_model.safetensors",
        "vit_b_16_openai.safetensors",
        kind="clip",
        extra={"arch": "ViT-B-16-quickgelu"},
        params_m=149.6,  # open_clip ViT-B-16-quickgelu (the stand-in's count)
    ),
    **{
        f"sam2.1-hiera-{size}": Checkpoint(
            f"sam2.1-hiera-{size}",
            f"{SAM2_BASE}/sam2.1_hiera_{size}.pt",
            f"sam2.1_hiera_{size}.pt",
            kind="sam2",
            extra={"config": f"configs/sam2.1/sam2.1_hiera_{short}.yaml"},
            params_m=params,  # SAM2's model table
        )
        for size, short, params in (("tiny", "t", 38.9), ("small", "s", 46.0), ("base_plus", "b+", 80.8),
                                    ("large", "l", 224.4))
    },
    # a diffusers folder: every file of the Hub repository's main branch that from_pretrained reads,
    # fetched one by one by download() into $OGCLIP_CACHE/diffusers/<filename>/
    "sd2-inpainting": Checkpoint(
        "sd2-inpainting",
        "https://huggingface.co/stabilityai/stable-diffusion-2-inpainting/resolve/main",
        "stable-diffusion-2-inpainting",
        size=5_200_000_000,
        kind="inpainting",
        extra={"hf_repo": "stabilityai/stable-diffusion-2-inpainting", "files": (
            "scheduler/scheduler_config.json", "feature_extractor/preprocessor_config.json",
            "text_encoder/config.json", "text_encoder/model.safetensors",
            "tokenizer/merges.txt", "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json",
            "tokenizer/vocab.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
            "vae/config.json", "vae/diffusion_pytorch_model.safetensors",
            "model_index.json")},  # last: its presence marks a complete folder
    ),
    # torchvision's COCO Faster R-CNN (MobileNetV3-Large FPN): a plain state dict, as torchvision publishes it
    "fasterrcnn-mobilenet-v3-large-fpn": Checkpoint(
        "fasterrcnn-mobilenet-v3-large-fpn",
        "https://download.pytorch.org/models/fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth",
        "fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth",
        kind="detector",
        extra={"format": "torchvision state dict"},
        params_m=19.4,  # torchvision's model table
    ),
    "yolo11n": Checkpoint(
        "yolo11n",
        "https://github.com/ultralytics/assets/releases/download/v8.3.0/yolo11n.pt",
        "yolo11n.pt",
        kind="detector",
        params_m=2.6,  # ultralytics' model table
    ),
}
SAM2_ALIASES = {"sam2.1-hiera-base-plus": "sam2.1-hiera-base_plus", "sam2.1-hiera-b+": "sam2.1-hiera-base_plus",
                "sam2.1-hiera-t": "sam2.1-hiera-tiny", "sam2.1-hiera-s": "sam2.1-hiera-small",
                "sam2.1-hiera-l": "sam2.1-hiera-large"}


def checkpoint_path(name: str) -> Path:
    """Where ``name`` lives (or will live) in the cache: ``$OGCLIP_CACHE/checkpoints/<file>``."""
    ck = entry(name)
    return paths.cache_dir("checkpoints") / ck.filename


def entry(name: str) -> Checkpoint:
    """The registry entry for ``name`` (aliases such as ``sam2.1-hiera-b+`` accepted); ``ValueError`` lists the known names."""
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


def local_file(name: str, checkpoint: str | os.PathLike | None = None) -> Path:
    """The weight file a loader should open: ``checkpoint`` when given (it must exist), else the
    registry file in the cache, downloaded there once by :func:`download` when missing."""
    if checkpoint:
        path = Path(checkpoint)
        if not path.exists():
            raise FileNotFoundError(f"checkpoint not found: {path}")
        return path
    path = checkpoint_path(name)
    return path if path.exists() else download(name)


def folder_path(name: str) -> Path:
    """Where a folder checkpoint (kind ``"inpainting"``) lives: ``$OGCLIP_CACHE/diffusers/<filename>/``."""
    ck = entry(name)
    if "files" not in ck.extra:
        raise ValueError(f"{name!r} is a single file, not a folder: use checkpoint_path")
    return paths.cache_dir("diffusers") / ck.filename


def download_folder(name: str, progress: bool = True, timeout: float = 30.0) -> Path:
    """Fetch every file of a folder checkpoint through :func:`download` (resume, atomic rename),
    skipping files already there, ``model_index.json`` last (so a folder that has it is complete); returns the folder, ready for ``from_pretrained(folder,
    local_files_only=True)``."""
    ck = entry(name)
    folder = folder_path(name)
    for rel in ck.extra["files"]:
        dest = folder / rel
        if not dest.exists():
            download(f"{ck.url}/{rel}", dest, progress=progress, timeout=timeout)
    return folder


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
        ck = entry(name_or_url)
        url, sha256, size = ck.url, sha256 or ck.sha256, size or ck.size
        dest = Path(dest) if dest else checkpoint_path(ck.name)
    else:
        url = name_or_url
        if "://" not in url:
            raise ValueError(f"{name_or_url!r} is neither a registry name ({sorted(REGISTRY)}) nor a URL")
        dest = Path(dest) if dest else paths.cache_dir("checkpoints") / Path(url.split("?")[0]).name
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


def verify(path: str | os.PathLike, size: int | None = None, sha256: str | None = None) -> None:
    """Raise :class:`CheckpointError` (saying what to do) when the file at ``path`` does not have
    ``size`` bytes or the ``sha256`` hex digest, where given; the file is left in place."""
    _verify(Path(path), size, sha256, remove=False)


def _verify(path: Path, size: int | None, sha256: str | None, remove: bool) -> None:
    actual = path.stat().st_size
    if size is not None and actual != size:
        if remove:
            path.unlink()
        raise CheckpointError(
            f"{path} has {actual} bytes, expected {size}: the file is truncated or corrupt"
            + ("; it was removed, download again" if remove else "; delete it and download again")
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


