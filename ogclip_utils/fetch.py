"""The project's own downloads of real datasets into ``$OGCLIP_CACHE/datasets/`` (``python -m ogclip_utils datasets``).

``coco-val2017``: COCO val2017's instance annotations (``annotations_trainval2017.zip``,
241 MB, downloaded once; only ``instances_val2017.json`` is unpacked) and then a fixed list of
val2017 images fetched **one by one** — the first ``--images`` images, in id order, that
notebook 05's real mode can use (``og_clip.folder.coco_usable_images``: at least two polygon objects
of ≥ 1024 px², one of a unique category) — instead of the 0.8 GB image archive. Every file goes
through :func:`ogclip_utils.weights.download` (progress bar, resume of a ``.part`` file with an
HTTP Range request, atomic rename). COCO publishes no checksums, so the first download records
each file's size and sha256 in ``manifest.json`` and every later run verifies them (a changed or
truncated file is reported, never silently reused).

The layout written is COCO's own (``annotations/instances_val2017.json``, ``val2017/*.jpg``),
which is what :func:`ogclip_utils.og_clip.coco_val2017` looks for. Nothing here runs unless asked.
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import paths, weights
from .og_clip.folder import coco_usable_images

COCO_ANNOTATIONS_URL = "http://images.cocodataset.org/annotations/annotations_trainval2017.zip"
COCO_ANNOTATIONS_MB = 241  # the zip's size as cocodataset.org lists it
COCO_IMAGE_URL = "http://images.cocodataset.org/val2017/{file_name}"
COCO_IMAGE_KB = 160  # mean size of a val2017 JPEG (0.78 GB / 5,000 images)
MANIFEST = "manifest.json"


@dataclass
class FetchReport:
    """What :func:`fetch_coco_val2017` did. root: the dataset folder; images: image files now on
    disk for the selection; downloaded: files fetched in this run; verified: files checked
    against the manifest."""

    root: Path
    images: int
    downloaded: int
    verified: int

    def __str__(self) -> str:
        return (f"COCO val2017 subset in {self.root}: {self.images} images on disk "
                f"({self.downloaded} files downloaded now, {self.verified} verified against {MANIFEST})")


def coco_root() -> Path:
    """``$OGCLIP_CACHE/datasets/coco`` (the folder notebook 05's real mode reads)."""
    return paths.dataset_dir("coco")


def plan_coco_val2017(images: int) -> str:
    """One line with what :func:`fetch_coco_val2017` will download, before it starts."""
    return (f"COCO val2017 subset: annotations_trainval2017.zip ({COCO_ANNOTATIONS_MB} MB, once; "
            f"instances_val2017.json is kept) + {images} images fetched one by one "
            f"(about {images * COCO_IMAGE_KB / 1000:.0f} MB) into {coco_root()}")


def _manifest(root: Path) -> dict:
    p = root / MANIFEST
    if not p.is_file():
        return {}
    try:
        return json.loads(p.read_text())
    except ValueError as exc:
        raise weights.CheckpointError(f"{p} is not valid JSON ({exc}); delete it to re-record the checksums") from exc


def _record(root: Path, manifest: dict, rel: str) -> None:
    f = root / rel
    manifest[rel] = {"size": f.stat().st_size, "sha256": weights.sha256_file(f)}
    tmp = root / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    tmp.replace(root / MANIFEST)


def _get(root: Path, manifest: dict, rel: str, url: str, progress: bool, timeout: float) -> bool:
    """Download ``url`` to ``root/rel`` unless it is there; verify against the manifest. True if fetched now."""
    dest = root / rel
    known = manifest.get(rel)
    if dest.exists():
        if known:
            weights.verify(dest, known["size"], known["sha256"])
        else:
            _record(root, manifest, rel)
        return False
    weights.download(url, dest, sha256=known["sha256"] if known else None, size=known["size"] if known else None,
                     progress=progress, timeout=timeout)
    _record(root, manifest, rel)
    return True


def fetch_coco_val2017(images: int = 200, progress: bool = True, timeout: float = 30.0,
                       annotations_url: str = COCO_ANNOTATIONS_URL, image_url: str = COCO_IMAGE_URL,
                       log: Callable[[str], None] = print) -> FetchReport:
    """Download the COCO val2017 subset notebook 05 measures on (see the module docstring).

    Args:
        images: how many usable val2017 images to fetch (≥ 1), in image-id order.
        annotations_url / image_url: the sources (``image_url`` has a ``{file_name}`` field);
            tests point them at a local server.
    Raises:
        ValueError: ``images`` < 1. CheckpointError: offline, truncated or changed files (the
            message says what to do; run again to resume).
    """
    if not isinstance(images, int) or isinstance(images, bool) or images < 1:
        raise ValueError(f"images must be a positive integer (how many val2017 images to fetch), got {images!r}")
    root = coco_root()
    root.mkdir(parents=True, exist_ok=True)
    log(plan_coco_val2017(images))
    manifest = _manifest(root)
    ann = root / "annotations" / "instances_val2017.json"
    fetched = verified = 0
    if not ann.is_file():
        zip_rel = "annotations_trainval2017.zip"
        fetched += _get(root, manifest, zip_rel, annotations_url, progress, timeout)
        try:
            with zipfile.ZipFile(root / zip_rel) as z:
                member = "annotations/instances_val2017.json"
                if member not in z.namelist():
                    raise weights.CheckpointError(f"{root / zip_rel} holds no {member}: not COCO's annotation archive; "
                                                  "delete it and run again")
                z.extract(member, root)
        except zipfile.BadZipFile as exc:
            raise weights.CheckpointError(f"{root / zip_rel} is not a zip file ({exc}); delete it and run again") from exc
        (root / zip_rel).unlink()  # 241 MB we no longer need; the manifest keeps its checksum
    usable = coco_usable_images(ann)[:images]
    ids, files = [i for i, _ in usable], dict(usable)
    from tqdm.auto import tqdm

    for image_id in tqdm(ids, desc="val2017 images", disable=not progress):
        rel = f"val2017/{files[image_id]}"
        was_there = (root / rel).exists()
        fetched += _get(root, manifest, rel, image_url.format(file_name=files[image_id]), False, timeout)
        verified += was_there
    report = FetchReport(root, sum((root / f"val2017/{files[i]}").is_file() for i in ids), fetched, verified)
    log(str(report))
    return report


#: the datasets ``python -m ogclip_utils datasets`` can fetch: name → (fetch function, what it is)
FETCHERS: dict[str, tuple[Callable[..., FetchReport], str]] = {
    "coco-val2017": (fetch_coco_val2017, "COCO val2017 instance annotations + the first N usable images (notebook 05)"),
}
