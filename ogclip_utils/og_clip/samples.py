"""Object-Guided CLIP's data: one sample per (image, object) with a point, the segmenter's mask and a caption."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import data, models, paths


TRAIN_SEED_BASE = 70_000_000  # offline OG-CLIP training scenes
TEST_SEED_BASE = 80_000_000  # held-out scenes: seeds disjoint from training and from tiny-shapes
MASK_SOURCES = ("segmenter", "ground_truth")


@dataclass
class ObjectSample:
    """One (image, object) pair.

    image uint8 H×W×3; point (x, y) in pixels on the object; caption text; mask bool H×W
    (from ``mask_source``); gt_mask bool H×W or None; scene_id groups samples of one image.
    """

    image: np.ndarray
    point: tuple[float, float]
    caption: str
    mask: np.ndarray
    scene_id: int
    mask_source: str = "segmenter"
    gt_mask: np.ndarray | None = None
    box: tuple[float, float, float, float] | None = None


def interior_point(mask: np.ndarray) -> tuple[float, float]:
    """(x, y) of the most interior pixel of a bool H×W mask (distance-transform maximum)."""
    from scipy import ndimage as ndi

    m = np.asarray(mask, bool)
    if m.ndim != 2 or not m.any():
        raise ValueError("mask must be a non-empty bool H×W array to place a point on it")
    dt = ndi.distance_transform_edt(np.pad(m, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dt)), dt.shape)
    return float(x), float(y)


def segment_point(segmenter, point: tuple[float, float]) -> np.ndarray:
    """Best-scoring multimask candidate (bool H×W) for one positive point (x, y) in pixels;
    call ``segmenter.set_image`` first."""
    pt = np.asarray(point, np.float64).reshape(-1)
    if pt.shape != (2,) or not np.isfinite(pt).all():
        raise ValueError(f"point must be one finite (x, y) pair in pixels, got {point!r}")
    masks, scores, _ = segmenter.predict(point_coords=pt[None].astype(np.float32),
                                         point_labels=np.asarray([1], np.int32), multimask_output=True)
    return np.asarray(masks[int(np.argmax(scores))], bool)


def _check_mask_source(mask_source: str) -> None:
    if mask_source not in MASK_SOURCES:
        raise ValueError(f"mask_source must be one of {MASK_SOURCES} ('ground_truth' is for ablations only), "
                         f"got {mask_source!r}")


def shapes_samples(seeds: Sequence[int], size: int = 96, num_objects: tuple[int, int] = (2, 4),
                   segmenter=None, mask_source: str = "segmenter", min_objects: int = 2) -> list[ObjectSample]:
    """Offline samples: one per (scene, object), with a point on the object and "a {colour} {shape}".

    Objects whose class occurs twice in their scene are skipped (their caption would name two
    objects); scenes left with fewer than ``min_objects`` objects are skipped, so every kept
    scene is ambiguous without the prompt. The mask comes from ``segmenter`` (default
    ``models.load_segmenter("classical")``) given the point, unless
    ``mask_source="ground_truth"`` (ablation only).
    """
    _check_mask_source(mask_source)
    if len(seeds) == 0:
        raise ValueError("seeds is empty: pass the scene seeds to render, e.g. range(80_000_000, 80_000_200)")
    if mask_source == "segmenter" and segmenter is None:

        segmenter = models.load_segmenter("classical")
    out: list[ObjectSample] = []
    for seed in seeds:
        sc = data.make_scene(int(seed), size=size, num_objects=num_objects)
        names = [o.name for o in sc.objects]
        objs = [o for o in sc.objects if names.count(o.name) == 1 and o.area >= 9]
        if len(objs) < min_objects:
            continue
        if mask_source == "segmenter":
            segmenter.set_image(sc.image)
        for o in objs:
            pt = interior_point(o.mask)
            mask = segment_point(segmenter, pt) if mask_source == "segmenter" else o.mask.copy()
            out.append(ObjectSample(sc.image, pt, f"a {o.name}", mask, int(seed), mask_source, o.mask, o.box))
    return out


def _polygon_mask(polys: list, hw: tuple[int, int]) -> np.ndarray:
    from PIL import Image, ImageDraw

    canvas = Image.new("L", (hw[1], hw[0]), 0)
    draw = ImageDraw.Draw(canvas)
    for p in polys:
        if len(p) >= 6:
            draw.polygon([(float(p[i]), float(p[i + 1])) for i in range(0, len(p) - 1, 2)], fill=1)
    return np.asarray(canvas, bool)


def coco_val2017() -> tuple[Path, Path] | None:
    """(annotation file, image folder) of COCO val2017 in its published layout under
    ``$OGCLIP_CACHE/datasets/coco/`` (``annotations/instances_val2017.json``, ``val2017/``),
    or None when it is not there (then :data:`COCO_HOWTO` says how to get it)."""
    root = paths.cache_dir("datasets") / "coco"
    ann, img = root / "annotations" / "instances_val2017.json", root / "val2017"
    return (ann, img) if ann.is_file() and img.is_dir() else None


COCO_HOWTO = ("COCO val2017 is not in $OGCLIP_CACHE/datasets/coco/. Real-mode R@K needs "
              "annotations/instances_val2017.json (from annotations_trainval2017.zip, 241 MB, "
              "http://images.cocodataset.org/annotations/annotations_trainval2017.zip) and the images "
              "val2017/ (http://images.cocodataset.org/zips/val2017.zip, about 0.8 GB), unpacked into that folder.")


def coco_object_samples(annotation_file: str | os.PathLike, image_dir: str | os.PathLike, segmenter=None,
                        mask_source: str = "segmenter", max_images: int | None = None, min_area: float = 1024.0,
                        min_objects: int = 2, template: str = "a {}") -> list[ObjectSample]:
    """Real-mode samples from COCO instances in the published format (``instances_val2017.json``
    + an image folder): one sample per polygon-annotated object (not ``iscrowd``, area ≥
    ``min_area``) whose category is unique in its image, images with ≥ ``min_objects`` such
    objects. The point is the annotation's most interior pixel; caption ``template`` of the
    category name; the mask comes from ``segmenter`` (e.g. SAM2.1) unless
    ``mask_source="ground_truth"`` (ablation only)."""
    _check_mask_source(mask_source)
    ann_path, img_dir = Path(annotation_file), Path(image_dir)
    if not ann_path.is_file():
        raise FileNotFoundError(f"annotation_file not found: {str(ann_path)!r} (COCO instances_*.json)")
    if not img_dir.is_dir():
        raise FileNotFoundError(f"image_dir not found: {str(img_dir)!r} (the COCO image folder, e.g. val2017/)")
    coco = json.loads(ann_path.read_text())
    if not all(k in coco for k in ("images", "annotations", "categories")):
        raise ValueError(f"{ann_path} is not a COCO instances file (needs images, annotations, categories)")
    cats = {c["id"]: c["name"] for c in coco["categories"]}
    by_image: dict[int, list[dict]] = {}
    for a in coco["annotations"]:
        if a.get("iscrowd", 0) or a.get("area", 0) < min_area or not isinstance(a.get("segmentation"), list):
            continue
        by_image.setdefault(a["image_id"], []).append(a)
    if mask_source == "segmenter" and segmenter is None:
        raise ValueError("coco_object_samples needs a segmenter (models.load_segmenter('sam2.1-hiera-tiny')) "
                         "or mask_source='ground_truth' (ablation only)")
    out: list[ObjectSample] = []
    n_img = 0
    for info in sorted(coco["images"], key=lambda i: i["id"]):
        anns = by_image.get(info["id"], [])
        names = [cats[a["category_id"]] for a in anns]
        anns = [a for a in anns if names.count(cats[a["category_id"]]) == 1]
        if len(anns) < min_objects:
            continue
        image = data.load_image(img_dir / info["file_name"])
        hw = image.shape[:2]
        if mask_source == "segmenter":
            segmenter.set_image(image)
        for a in anns:
            gt = _polygon_mask(a["segmentation"], hw)
            if not gt.any():
                continue
            pt = interior_point(gt)
            mask = segment_point(segmenter, pt) if mask_source == "segmenter" else gt
            x, y, w, h = a["bbox"]
            out.append(ObjectSample(image, pt, template.format(cats[a["category_id"]]), mask, int(info["id"]),
                                    mask_source, gt, (x, y, x + w, y + h)))
        n_img += 1
        if max_images is not None and n_img >= max_images:
            break
    return out
