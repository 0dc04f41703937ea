"""The dataset folder of ``python -m ogclip_utils train --data-path`` / ``evaluate``: the seeds' JSON samples.

Layout::

    <folder>/samples.json          {"format": "og-clip-samples/1", "samples": [record, ...]}  (a bare list also works)
    <folder>/images/...            the images the records name (any format PIL reads)
    <folder>/masks/...             optional ground-truth masks (PNG, object = non-zero)

One record per object (the seeds' format: image path, points, caption)::

    {"image": "images/000001.png",          # relative to the folder
     "points": [[41.0, 57.5]],              # (x, y) pixels on the object
     "point_labels": [1],                    # optional, 1 = positive (default all 1), 0 = negative
     "caption": "the red circle left of the blue star",   # null: an object of the scene without a caption
     "mask": "masks/000001_0.png",           # optional ground truth (else the segmenter's mask for the points)
     "kind": "relational"}                   # optional; else read from the caption's grammar

Records that share an ``image`` are the objects of one scene: a caption is scored against all
of them (within-scene accuracy), so give every object of a scene a record, with
``"caption": null`` for those no caption names (the distractor, the anchor).
"""
from __future__ import annotations

import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

import numpy as np

from ..segmenters import sam2_autocast
from .. import data
from .context import ContextSample, parse_relation
from .samples import interior_point, polygon_mask, segment_point

FORMAT = "og-clip-samples/1"


class FolderError(ValueError):
    """A dataset folder or one of its records is malformed (the message names the record)."""


def _inside(folder: Path, rel: str, what: str, k: int) -> Path:
    if not isinstance(rel, str) or not rel:
        raise FolderError(f"samples[{k}].{what} must be a path relative to {folder}, got {rel!r}")
    p = (folder / rel).resolve()
    if folder.resolve() not in p.parents:
        raise FolderError(f"samples[{k}].{what} = {rel!r} points outside the dataset folder {folder}")
    if not p.is_file():
        raise FolderError(f"samples[{k}].{what}: file not found: {p}")
    return p


def _check_points(rec: dict, k: int, hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    try:
        pts = np.asarray(rec["points"], np.float32).reshape(-1, 2)
    except (KeyError, ValueError, TypeError) as exc:
        raise FolderError(f"samples[{k}].points must be a list of [x, y] pixel pairs ({exc})") from exc
    lab = np.asarray(rec.get("point_labels", [1] * len(pts)), np.int32).reshape(-1)
    if len(pts) == 0 or len(lab) != len(pts):
        raise FolderError(f"samples[{k}]: {len(pts)} points and {len(lab)} point_labels; give one label per point")
    h, w = hw
    if not np.isfinite(pts).all() or (pts[:, 0] < 0).any() or (pts[:, 1] < 0).any() or (pts[:, 0] >= w).any() \
            or (pts[:, 1] >= h).any():
        raise FolderError(f"samples[{k}].points {pts.tolist()} fall outside the {w}×{h} image")
    return pts, lab


def read_folder(folder: str | os.PathLike, segmenter=None) -> list[ContextSample]:
    """One :class:`ContextSample` per captioned record of ``folder`` (see the module docstring).

    Masks: the record's ``mask`` file when given, else ``segmenter``'s best multimask candidate
    for the record's points (required then); ``gt_masks`` hold the ground truth when every
    object of the scene has one (for mask IoU), else None."""
    folder = Path(folder)
    index = folder / "samples.json"
    if not index.is_file():
        raise FileNotFoundError(f"{index} not found: a dataset folder holds samples.json (see og_clip.folder)")
    try:
        doc = json.loads(index.read_text())
    except json.JSONDecodeError as exc:
        raise FolderError(f"{index} is not valid JSON: {exc}") from exc
    records = doc.get("samples") if isinstance(doc, dict) else doc
    if not isinstance(records, list) or not records:
        raise FolderError(f"{index} must hold a non-empty list of records (or {{'samples': [...]}})")
    scenes: OrderedDict[str, list[tuple[int, dict]]] = OrderedDict()
    for k, rec in enumerate(records):
        if not isinstance(rec, dict) or "image" not in rec or "points" not in rec:
            raise FolderError(f"samples[{k}] must be an object with at least 'image' and 'points'")
        scenes.setdefault(rec["image"], []).append((k, rec))
    out: list[ContextSample] = []
    for n, (rel, recs) in enumerate(scenes.items()):
        image = data.load_image(_inside(folder, rel, "image", recs[0][0]))
        gts, masks, names = [], [], []
        for k, rec in recs:
            pts, lab = _check_points(rec, k, image.shape[:2])
            gt = None
            if rec.get("mask"):
                gt = np.asarray(data.load_image(_inside(folder, rec["mask"], "mask", k)))[..., 0] > 0
                if gt.shape != image.shape[:2]:
                    raise FolderError(f"samples[{k}].mask is {gt.shape}, its image is {image.shape[:2]}")
            gts.append(gt)
            if segmenter is not None:
                with sam2_autocast(segmenter):
                    segmenter.set_image(image)
                    m, sc, _ = segmenter.predict(point_coords=pts, point_labels=lab, multimask_output=True)
                masks.append(np.asarray(m[int(np.argmax(sc))], bool))
            elif gt is not None:
                masks.append(gt)
            else:
                raise FolderError(f"samples[{k}] has no 'mask': pass a segmenter to turn its points into one")
            cap = rec.get("caption")
            if cap is not None and not isinstance(cap, str):
                raise FolderError(f"samples[{k}].caption must be a string or null, got {cap!r}")
            names.append(rec.get("name") or "")
        all_gt = np.stack(gts) if all(g is not None for g in gts) else None
        stacked = np.stack(masks)
        for j, (k, rec) in enumerate(recs):
            cap = rec.get("caption")
            if cap is None:
                continue
            rel = parse_relation(cap)
            kind = rec.get("kind") or ("relational" if rel else "attribute")
            out.append(ContextSample(image, stacked, names, j, cap, kind, relation=rel, seed=n,
                                     mask_source="segmenter" if segmenter is not None else "ground_truth",
                                     gt_masks=all_gt))
    if not out:
        raise FolderError(f"{index}: no record has a caption")
    return out


def write_folder(samples: Sequence[ContextSample], folder: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write ``samples`` (their ground-truth masks) as a dataset folder; returns samples.json's path.

    Refuses to touch a folder that already holds a samples.json unless ``overwrite``."""
    from PIL import Image

    folder = Path(folder)
    index = folder / "samples.json"
    if index.exists() and not overwrite:
        raise FileExistsError(f"{index} exists; choose another --out folder (nothing was written)")
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    records = []
    for n, s in enumerate(samples):
        img = f"images/{n:06d}.png"
        Image.fromarray(s.image).save(folder / img)
        gts = s.gt_masks if s.gt_masks is not None else s.masks
        for j, m in enumerate(gts):
            mp = f"masks/{n:06d}_{j}.png"
            Image.fromarray(np.asarray(m, np.uint8) * 255).save(folder / mp)
            x, y = interior_point(m)
            records.append({"image": img, "points": [[x, y]], "point_labels": [1],
                            "caption": s.caption if j == s.target else None, "mask": mp, "name": s.names[j],
                            **({"kind": s.kind} if j == s.target else {})})
    tmp = index.with_name("samples.json.tmp")
    tmp.write_text(json.dumps({"format": FORMAT, "samples": records}, indent=1))
    os.replace(tmp, index)
    return index


def _coco_usable(coco: dict, min_area: float, min_objects: int) -> list[tuple[dict, list[dict]]]:
    """``(image info, its usable annotations)`` in image-id order: polygon objects (not
    ``iscrowd``) of area ≥ ``min_area``, at least ``min_objects`` of them, one of a category
    unique in the image (so it has an unambiguous caption)."""
    cats = {c["id"]: c["name"] for c in coco["categories"]}
    by_image: dict[int, list[dict]] = {}
    for a in coco["annotations"]:
        if a.get("iscrowd", 0) or a.get("area", 0) < min_area or not isinstance(a.get("segmentation"), list):
            continue
        by_image.setdefault(a["image_id"], []).append(a)
    out = []
    for info in sorted(coco["images"], key=lambda i: i["id"]):
        anns = by_image.get(info["id"], [])
        names = [cats[a["category_id"]] for a in anns]
        if len(anns) >= min_objects and any(names.count(n) == 1 for n in names):
            out.append((info, anns))
    return out


def _read_coco(ann_path: Path) -> dict:
    if not ann_path.is_file():
        raise FileNotFoundError(f"annotation_file not found: {str(ann_path)!r} (COCO instances_*.json)")
    coco = json.loads(ann_path.read_text())
    if not all(k in coco for k in ("images", "annotations", "categories")):
        raise FolderError(f"{ann_path} is not a COCO instances file (needs images, annotations, categories)")
    return coco


def coco_usable_images(annotation_file: str | os.PathLike, min_area: float = 1024.0,
                       min_objects: int = 2) -> list[tuple[int, str]]:
    """``(id, file_name)``, in order, of the images :func:`coco_samples` can use (what ``python -m
    ogclip_utils datasets coco-val2017`` fetches one by one)."""
    return [(int(info["id"]), str(info["file_name"]))
            for info, _ in _coco_usable(_read_coco(Path(annotation_file)), min_area, min_objects)]


def coco_image_ids(annotation_file: str | os.PathLike, min_area: float = 1024.0, min_objects: int = 2) -> list[int]:
    """The ids of :func:`coco_usable_images`."""
    return [i for i, _ in coco_usable_images(annotation_file, min_area, min_objects)]


def coco_samples(annotation_file: str | os.PathLike, image_dir: str | os.PathLike, max_images: int | None = None,
                 min_area: float = 1024.0, min_objects: int = 2, segmenter=None) -> list[ContextSample]:
    """Real-mode attribute samples from COCO instances in the published format
    (``instances_val2017.json`` + an image folder): per image, every polygon-annotated object
    (not ``iscrowd``, area ≥ ``min_area``) is an object of the scene; each whose category is
    unique in the image gets the caption "the {category}". Images with fewer than
    ``min_objects`` objects, or no unique category, are skipped. Masks: the annotation, or
    ``segmenter``'s mask for the annotation's most interior point (``gt_masks`` keep the
    annotations). Images missing from ``image_dir`` are skipped (a downloaded subset)."""
    ann_path, img_dir = Path(annotation_file), Path(image_dir)
    coco = _read_coco(ann_path)
    if not img_dir.is_dir():
        raise FileNotFoundError(f"image_dir not found: {str(img_dir)!r} (the COCO image folder, e.g. val2017/)")
    cats = {c["id"]: c["name"] for c in coco["categories"]}
    out: list[ContextSample] = []
    n_img = 0
    for info, anns in _coco_usable(coco, min_area, min_objects):
        if not (img_dir / info["file_name"]).is_file():
            continue
        names = [cats[a["category_id"]] for a in anns]
        image = data.load_image(img_dir / info["file_name"])
        gts = [polygon_mask(a["segmentation"], image.shape[:2]) for a in anns]
        keep = [i for i, g in enumerate(gts) if g.any()]
        if len(keep) < min_objects:
            continue
        gts, names = np.stack([gts[i] for i in keep]), [names[i] for i in keep]
        masks = gts
        if segmenter is not None:
            with sam2_autocast(segmenter):
                segmenter.set_image(image)
            masks = np.stack([segment_point(segmenter, interior_point(g)) for g in gts])
        for j, n in enumerate(names):
            if names.count(n) == 1:
                out.append(ContextSample(image, masks, names, j, f"the {n}", "attribute", seed=int(info["id"]),
                                         mask_source="ground_truth" if segmenter is None else "segmenter", gt_masks=gts))
        n_img += 1
        if max_images is not None and n_img >= max_images:
            break
    return out
