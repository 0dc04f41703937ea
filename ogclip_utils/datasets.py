"""Benchmark datasets in their published on-disk layouts, plus the offline shapes benchmark.

Every dataset is a :class:`BenchDataset`: a list of sample ids, a loader returning
``Sample(id, image uint8 H×W×3, label int64 H×W)`` with 255 = ignore, the class names
(SCLIP-style files in ``data/class_names/``: one class per line, synonyms separated by
``", "``) and the per-dataset inference defaults published with SCLIP (its
``configs/cfg_*.py``: short side, logit scale, probability / area thresholds).

Layouts (what ``--data-dir`` points at):

- ``pascal-voc`` / ``voc20``: ``VOCdevkit/VOC2012`` (or the ``VOC2012`` folder itself)
  with ``JPEGImages/*.jpg``, ``SegmentationClass/*.png`` (palette PNGs whose indices are
  the labels, 255 = object border) and ``ImageSets/Segmentation/val.txt``. VOC20 drops
  the background like mmseg's ``reduce_zero_label`` (0 → 255, others − 1).
- ``coco-stuff``: mmseg's COCO-Stuff 164k layout ``images/val2017/*.jpg`` and
  ``annotations/val2017/*_labelTrainIds.png`` (171 train ids, 255 = unlabeled); the raw
  ``stuffthingmaps`` PNGs (``*.png`` with the 182 COCO ids) are mapped on the fly.
- ``coco-object``: the same images with ``annotations/val2017/*_instanceTrainIds.png``
  (0 = background, 1…80 the things, 255 = ignore), as written by SCLIP's
  ``datasets/cvt_coco_object.py``.
- ``shapes``: rendered from :data:`SHAPES_SEEDS` (fixed), any size, no files.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from . import data, paths

IGNORE_INDEX = 255
CLASS_NAME_DIR = Path(__file__).resolve().parent.parent / "data" / "class_names"
#: The fixed seed list of the shapes benchmark (disjoint from the tiny-shapes training and
#: evaluation seeds); sample i is ``make_scene(SHAPES_SEEDS[i], size=...)``.
SHAPES_SEEDS: tuple[int, ...] = tuple(range(900_000, 900_000 + 1000))
DATASETS = ("shapes", "pascal-voc", "voc20", "coco-stuff", "coco-object")

# 0-based COCO category ids with no stuffthingmaps pixels (the 11 unused thing ids);
# the remaining 171 ids in order are mmseg's COCO-Stuff train ids 0…170.
_COCO_UNUSED = (11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90)


@dataclass(frozen=True)
class DatasetDefaults:
    """Inference settings published for a dataset (SCLIP ``configs/cfg_*.py``).

    ``short_side``: images are resized so their short side has this many pixels (None =
    keep); ``slide_crop`` / ``slide_stride`` in pixels (None = the model's input size / half).
    """

    short_side: int | None
    logit_scale: float = 40.0
    prob_thd: float = 0.0
    area_thd: float | None = None
    slide_crop: int | None = None
    slide_stride: int | None = None


DEFAULTS: dict[str, DatasetDefaults] = {
    "pascal-voc": DatasetDefaults(short_side=336, logit_scale=65.0, prob_thd=0.1, area_thd=0.1, slide_crop=224, slide_stride=112),
    "voc20": DatasetDefaults(short_side=336, slide_crop=224, slide_stride=112),
    "coco-stuff": DatasetDefaults(short_side=448, slide_crop=224, slide_stride=112),
    "coco-object": DatasetDefaults(short_side=336, logit_scale=50.0, prob_thd=0.1, slide_crop=224, slide_stride=112),
    # shapes: the tiny model's 64-px input, windows 64 / stride 32 (see notes/tiny-shapes-probes)
    "shapes": DatasetDefaults(short_side=None, slide_crop=64, slide_stride=32),
}

#: Published SCLIP mIoU (%) — references a real run should approach, never our results.
#: Paper: arXiv 2312.01597 (as quoted in the issue); repo: wangf3014/SCLIP README, default setup.
PUBLISHED_SCLIP = {
    "pascal-voc": {"paper": 59.1, "repo": 59.63},
    "voc20": {"repo": 81.54},
    "coco-stuff": {"paper": 22.4, "repo": 22.77},
    "coco-object": {"repo": 33.52},
}

INSTRUCTIONS = {
    "pascal-voc": """PASCAL VOC 2012 val was not found under {root}.
Download and unpack it (about 2 GB):
    mkdir -p {root} && cd {root}
    wget http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar
    tar -xf VOCtrainval_11-May-2012.tar
Expected layout (pass --data-dir {root}):
    {root}/VOCdevkit/VOC2012/JPEGImages/2007_000033.jpg
    {root}/VOCdevkit/VOC2012/SegmentationClass/2007_000033.png
    {root}/VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt""",
    "coco-stuff": """COCO-Stuff 164k val was not found under {root}.
Download the val images and the stuff+thing maps (about 1 GB):
    mkdir -p {root}/images {root}/annotations && cd {root}
    wget http://images.cocodataset.org/zips/val2017.zip
    wget http://calvin.inf.ed.ac.uk/wp-content/uploads/data/cocostuffdataset/stuffthingmaps_trainval2017.zip
    unzip -q val2017.zip -d images
    unzip -q stuffthingmaps_trainval2017.zip 'val2017/*' -d annotations
Optionally convert to train ids with mmsegmentation (tools/dataset_converters/coco_stuff164k.py);
raw maps are converted on the fly. Expected layout (pass --data-dir {root}):
    {root}/images/val2017/000000000139.jpg
    {root}/annotations/val2017/000000000139_labelTrainIds.png   (or 000000000139.png, raw COCO ids)""",
    "coco-object": """COCO-Object val was not found under {root}.
It is derived from COCO-Stuff 164k (see the coco-stuff instructions for the images and maps):
    git clone https://github.com/wangf3014/SCLIP && cd SCLIP
    python datasets/cvt_coco_object.py {root} -o {root}
Expected layout (pass --data-dir {root}):
    {root}/images/val2017/000000000139.jpg
    {root}/annotations/val2017/000000000139_instanceTrainIds.png""",
}
INSTRUCTIONS["voc20"] = INSTRUCTIONS["pascal-voc"]


class DatasetNotFoundError(FileNotFoundError):
    """A benchmark dataset is missing; the message holds download and layout instructions."""


@dataclass
class Sample:
    """One evaluation image: ``image`` uint8 H×W×3, ``label`` int64 H×W (255 = ignore)."""

    id: str
    image: np.ndarray
    label: np.ndarray


@dataclass
class BenchDataset:
    """A benchmark split: ``len(ds)``, ``ds[i] -> Sample``, class names and defaults.

    ``vocabulary[i]`` is the text query of class i (synonyms joined with ", ");
    ``class_names[i]`` its display name (the first synonym; "background" for a background
    class); ``background`` is the index of the background class or None (VOC20, COCO-Stuff)."""

    name: str
    ids: list[str]
    vocabulary: list[str]
    class_names: list[str]
    defaults: DatasetDefaults
    background: int | None
    loader: Callable[[str], Sample] = field(repr=False)
    root: Path | None = None

    @property
    def num_classes(self) -> int:
        return len(self.vocabulary)

    @property
    def ignore_index(self) -> int:
        return IGNORE_INDEX

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> Sample:
        if not -len(self.ids) <= i < len(self.ids):
            raise IndexError(f"sample {i} out of range for {self.name} with {len(self.ids)} samples")
        return self.loader(self.ids[i])


def read_class_names(path: str | Path) -> list[list[str]]:
    """Read an SCLIP-style class-name file: one class per line, synonyms separated by ", "."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"class-name file not found: {path}")
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    out = [[s.strip() for s in ln.split(", ") if s.strip()] for ln in lines if ln]
    if not out:
        raise ValueError(f"class-name file {path} is empty")
    return out


def _vocab(file: str, background: int | None) -> tuple[list[str], list[str]]:
    classes = read_class_names(CLASS_NAME_DIR / file)
    vocab = [", ".join(c) for c in classes]
    names = [c[0] for c in classes]
    if background is not None:
        names[background] = "background"
    return vocab, names


def _read_label(path: Path) -> np.ndarray:
    """A PNG label map as int64 H×W (palette PNGs keep their indices)."""
    from PIL import Image

    with Image.open(path) as im:
        if im.mode not in ("P", "L", "I", "I;16"):
            raise ValueError(f"{path} is a {im.mode} image; label maps must be single-channel or palette PNGs")
        return np.asarray(im).astype(np.int64)


def _missing(name: str, root: Path, what: Path) -> DatasetNotFoundError:
    return DatasetNotFoundError(f"{what} does not exist.\n" + INSTRUCTIONS[name].format(root=root))


def _voc(root: Path, reduce_zero_label: bool, name: str) -> BenchDataset:
    base = next((p for p in (root / "VOCdevkit" / "VOC2012", root / "VOC2012", root) if (p / "JPEGImages").is_dir()), None)
    if base is None:
        raise _missing(name, root, root / "VOCdevkit" / "VOC2012" / "JPEGImages")
    split = base / "ImageSets" / "Segmentation" / "val.txt"
    if not split.exists():
        raise _missing(name, root, split)
    ids = [ln.strip() for ln in split.read_text().splitlines() if ln.strip()]

    def load(i: str) -> Sample:
        img_p, lab_p = base / "JPEGImages" / f"{i}.jpg", base / "SegmentationClass" / f"{i}.png"
        if not lab_p.exists():
            raise _missing(name, root, lab_p)
        lab = _read_label(lab_p)
        if reduce_zero_label:  # mmseg: 0 -> 255, others -1, 255 stays
            lab = np.where(lab == 0, 255, lab - 1)
            lab[lab == 254] = 255
        return Sample(i, data.load_image(img_p), lab)

    if reduce_zero_label:
        vocab, names = _vocab("voc20.txt", None)
        return BenchDataset(name, ids, vocab, names, DEFAULTS[name], None, load, root)
    vocab, names = _vocab("voc21.txt", 0)
    return BenchDataset(name, ids, vocab, names, DEFAULTS[name], 0, load, root)


def coco_stuff_lut() -> np.ndarray:
    """256-entry lookup table: raw stuffthingmaps id (0-based COCO id) → train id 0…170, else 255."""
    lut = np.full(256, IGNORE_INDEX, np.int64)
    valid = [i for i in range(182) if i not in _COCO_UNUSED]
    lut[valid] = np.arange(len(valid))
    return lut


def _coco(root: Path, name: str) -> BenchDataset:
    img_dir, ann_dir = root / "images" / "val2017", root / "annotations" / "val2017"
    for d in (img_dir, ann_dir):
        if not d.is_dir():
            raise _missing(name, root, d)
    ids = sorted(p.stem for p in img_dir.glob("*.jpg"))
    if not ids:
        raise _missing(name, root, img_dir / "*.jpg")
    suffix = "_instanceTrainIds.png" if name == "coco-object" else "_labelTrainIds.png"
    lut = coco_stuff_lut()

    def load(i: str) -> Sample:
        p = ann_dir / f"{i}{suffix}"
        if p.exists():
            lab = _read_label(p)
        elif name == "coco-stuff" and (ann_dir / f"{i}.png").exists():
            lab = lut[np.clip(_read_label(ann_dir / f"{i}.png"), 0, 255)]
        else:
            raise _missing(name, root, p)
        return Sample(i, data.load_image(img_dir / f"{i}.jpg"), lab)

    if name == "coco-object":
        vocab, names = _vocab("coco_object.txt", 0)
        return BenchDataset(name, ids, vocab, names, DEFAULTS[name], 0, load, root)
    vocab, names = _vocab("coco_stuff.txt", None)
    return BenchDataset(name, ids, vocab, names, DEFAULTS[name], None, load, root)


def shapes(size: int = 160, num_objects: int | tuple[int, int] | None = (1, 4),
           seeds: Sequence[int] = SHAPES_SEEDS) -> BenchDataset:
    """The offline shapes benchmark: scene i = ``data.make_scene(seeds[i], size, num_objects)``;
    31 classes (0 = background), exact labels, nothing ignored."""
    seeds = [int(s) for s in seeds]

    def load(i: str) -> Sample:
        sc = data.make_scene(int(i.split("-")[1]), size=size, num_objects=num_objects)
        return Sample(i, sc.image, sc.labels.astype(np.int64))

    ids = [f"shapes-{s}" for s in seeds]
    return BenchDataset("shapes", ids, list(data.CLASS_NAMES), list(data.CLASS_NAMES), DEFAULTS["shapes"], 0, load, None)


#: the real benchmark sets a real-mode lesson looks for, in this order (:func:`find_real`)
REAL_LESSON_SETS = ("pascal-voc", "coco-object", "coco-stuff")


def cache_root(name: str) -> Path:
    """Where a real dataset lives in the project's one cache: ``$OGCLIP_CACHE/datasets/<name>/``
    (:func:`ogclip_utils.paths.dataset_dir`)."""
    return paths.dataset_dir(name)


def find_real(names: Sequence[str] = REAL_LESSON_SETS) -> tuple[str, Path] | None:
    """``(name, folder)`` of the first of ``names`` present in the cache (:func:`cache_root`) or
    in ``data/benchmarks/<name>/``, else None. Nothing is downloaded."""
    for name in names:
        for root in (cache_root(name), data.DATA_DIR / "benchmarks" / name):
            if root.is_dir():
                return name, root
    return None


def load_dataset(name: str, data_dir: str | Path | None = None, num_samples: int | None = None,
                 size: int = 160) -> BenchDataset:
    """Open a benchmark dataset by name (see :data:`DATASETS`).

    ``data_dir``: the dataset folder (ignored for shapes); default ``$OGCLIP_CACHE/datasets/<name>``
    (:func:`cache_root`), or ``data/benchmarks/<name>`` where only that exists.
    ``num_samples``: keep the first N samples (in the published split order).
    ``size``: shapes scene size in pixels. Raises :class:`DatasetNotFoundError` (a
    ``FileNotFoundError``) with download and layout instructions when files are missing."""
    if name not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {name!r}")
    if num_samples is not None and (not isinstance(num_samples, (int, np.integer)) or num_samples < 1):
        raise ValueError(f"num_samples must be a positive integer or None, got {num_samples!r}")
    if name == "shapes":
        if num_samples is not None and num_samples > len(SHAPES_SEEDS):
            raise ValueError(f"num_samples: the shapes benchmark has {len(SHAPES_SEEDS)} scenes, got {num_samples}")
        ds = shapes(size=size)
    else:
        if data_dir is None:  # the cache first ($OGCLIP_CACHE/datasets/<name>), then data/benchmarks/<name>
            found = find_real([name])
            data_dir = found[1] if found else cache_root(name)
        root = Path(data_dir).expanduser()
        if not root.exists():
            raise DatasetNotFoundError(f"--data-dir {root} does not exist.\n" + INSTRUCTIONS[name].format(root=root))
        ds = _voc(root, name == "voc20", name) if name in ("pascal-voc", "voc20") else _coco(root, name)
    if num_samples is not None:
        ds.ids = ds.ids[: int(num_samples)]
    return ds
