"""Dataset loaders on tiny fixtures written in the published on-disk layouts."""
import numpy as np
import pytest
from PIL import Image

from ogclip_utils import data, datasets


def _jpg(path, h=6, w=8, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)


def _png(path, arr, palette=False):
    """Write a label PNG: mode L, or a palette PNG like VOC's SegmentationClass."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(arr.astype(np.uint8), mode="L")
    if palette:
        im = Image.fromarray(arr.astype(np.uint8), mode="P")
        im.putpalette([v for i in range(256) for v in ((i * 37) % 256, (i * 91) % 256, (i * 53) % 256)])
    im.save(path)


@pytest.fixture
def voc_root(tmp_path):
    base = tmp_path / "VOCdevkit" / "VOC2012"
    lab = np.zeros((6, 8), np.uint8)
    lab[1:3, 1:4] = 15  # person
    lab[3, :] = 255  # border
    lab[4:, 5:] = 20  # tv monitor
    for i, name in enumerate(["2007_000033", "2007_000042"]):
        _jpg(base / "JPEGImages" / f"{name}.jpg", seed=i)
        _png(base / "SegmentationClass" / f"{name}.png", lab, palette=True)
    (base / "ImageSets" / "Segmentation").mkdir(parents=True)
    (base / "ImageSets" / "Segmentation" / "val.txt").write_text("2007_000033\n2007_000042\n")
    return tmp_path, lab


def test_voc21(voc_root):
    root, lab = voc_root
    ds = datasets.load_dataset("pascal-voc", root)
    assert len(ds) == 2 and ds.num_classes == 21 and ds.background == 0
    assert ds.class_names[0] == "background" and ds.class_names[15] == "person"
    assert "person in shirt" in ds.vocabulary[15]
    s = ds[0]
    assert s.id == "2007_000033" and s.image.shape == (6, 8, 3) and s.image.dtype == np.uint8
    np.testing.assert_array_equal(s.label, lab.astype(np.int64))
    assert ds.defaults.short_side == 336 and ds.defaults.logit_scale == 65 and ds.defaults.prob_thd == 0.1


def test_voc20_reduces_zero_label(voc_root):
    root, lab = voc_root
    ds = datasets.load_dataset("voc20", root / "VOCdevkit", num_samples=1)
    assert len(ds) == 1 and ds.num_classes == 20 and ds.background is None
    y = ds[0].label
    assert (y[lab == 0] == 255).all() and (y[lab == 255] == 255).all()
    assert (y[lab == 15] == 14).all() and (y[lab == 20] == 19).all()
    assert ds.class_names[14] == "person"


def test_coco_stuff_train_ids_and_raw(tmp_path):
    lab = np.array([[0, 170, 255], [12, 5, 255]], np.uint8)
    _jpg(tmp_path / "images/val2017/000000000139.jpg", 2, 3)
    _png(tmp_path / "annotations/val2017/000000000139_labelTrainIds.png", lab)
    raw = np.array([[0, 11, 12], [90, 91, 181]], np.uint8)  # 11 and 90 are unused COCO ids
    _jpg(tmp_path / "images/val2017/000000000285.jpg", 2, 3, seed=1)
    _png(tmp_path / "annotations/val2017/000000000285.png", raw)
    ds = datasets.load_dataset("coco-stuff", tmp_path)
    assert ds.num_classes == 171 and ds.background is None and ds.defaults.short_side == 448
    np.testing.assert_array_equal(ds[0].label, lab)
    np.testing.assert_array_equal(ds[1].label, [[0, 255, 11], [255, 80, 170]])
    assert ds.class_names[0] == "person" and ds.class_names[170] == "wood"


def test_coco_object(tmp_path):
    lab = np.array([[0, 1, 80], [255, 0, 3]], np.uint8)
    _jpg(tmp_path / "images/val2017/000000000139.jpg", 2, 3)
    _png(tmp_path / "annotations/val2017/000000000139_instanceTrainIds.png", lab)
    ds = datasets.load_dataset("coco-object", tmp_path)
    assert ds.num_classes == 81 and ds.class_names[0] == "background" and ds.class_names[1] == "person"
    assert ds.defaults.logit_scale == 50 and ds.defaults.prob_thd == 0.1
    np.testing.assert_array_equal(ds[0].label, lab)


def test_missing_dataset_gives_instructions(tmp_path):
    with pytest.raises(FileNotFoundError, match="VOCtrainval_11-May-2012.tar"):
        datasets.load_dataset("pascal-voc", tmp_path / "nowhere")
    with pytest.raises(datasets.DatasetNotFoundError, match="stuffthingmaps_trainval2017.zip"):
        datasets.load_dataset("coco-stuff", tmp_path)
    (tmp_path / "images/val2017").mkdir(parents=True)
    (tmp_path / "annotations/val2017").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="cvt_coco_object.py"):
        datasets.load_dataset("coco-object", tmp_path)


def test_shapes_benchmark_is_fixed():
    ds = datasets.load_dataset("shapes", num_samples=3, size=64)
    assert len(ds) == 3 and ds.num_classes == 31 and ds.class_names == data.CLASS_NAMES
    s = ds[1]
    sc = data.make_scene(datasets.SHAPES_SEEDS[1], size=64, num_objects=(1, 4))
    np.testing.assert_array_equal(s.image, sc.image)
    np.testing.assert_array_equal(s.label, sc.labels)
    with pytest.raises(IndexError):
        ds[3]


def test_bad_arguments():
    with pytest.raises(ValueError, match="dataset must be one of"):
        datasets.load_dataset("imagenet")
    with pytest.raises(ValueError, match="num_samples"):
        datasets.load_dataset("shapes", num_samples=0)


def test_read_class_names(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text("sky, wall\ncat\n\n")
    assert datasets.read_class_names(p) == [["sky", "wall"], ["cat"]]
    lines = datasets.read_class_names(datasets.CLASS_NAME_DIR / "voc21.txt")
    assert len(lines) == 21 and lines[0][:2] == ["sky", "wall"]
    assert len(datasets.read_class_names(datasets.CLASS_NAME_DIR / "coco_stuff.txt")) == 171
    assert len(datasets.read_class_names(datasets.CLASS_NAME_DIR / "coco_object.txt")) == 81


def test_the_cache_is_the_default_home_of_a_real_dataset(voc_root, tmp_path, monkeypatch):
    """``$OGCLIP_CACHE/datasets/<name>/`` is looked up first; a missing one names the cache in its error."""
    root, _ = voc_root
    cache = tmp_path / "cache"
    monkeypatch.setenv("OGCLIP_CACHE", str(cache))
    assert datasets.find_real() is None or datasets.find_real()[1].parent.name == "benchmarks"
    with pytest.raises(datasets.DatasetNotFoundError, match="datasets/pascal-voc"):
        datasets.load_dataset("pascal-voc")
    (cache / "datasets").mkdir(parents=True, exist_ok=True)
    (root / "VOCdevkit").rename(cache / "datasets" / "pascal-voc")
    assert datasets.find_real() == ("pascal-voc", cache / "datasets" / "pascal-voc")
    assert len(datasets.load_dataset("pascal-voc")) == 2


def test_benchmark_lesson_measures_a_real_set_when_the_cache_has_one(voc_root, tmp_path, monkeypatch):
    from ogclip_utils import benchmark, models

    root, _ = voc_root
    monkeypatch.setenv("OGCLIP_CACHE", str(tmp_path / "cache"))
    clip, seg = models.default_models("offline")
    off = benchmark.lesson("offline", num_samples=3)
    assert off.dataset.name == "shapes" and len(off.samples) == 3 and off.settings.slide_crop == 64
    assert off.note.startswith("offline") and off.cli_args(4)[:6] == ["benchmark", "--dataset", "shapes", "--num-samples", "3", "--model"]
    # real mode without a real set: the shapes scenes, and the note says what to add
    real = benchmark.lesson("real", num_samples=2, clip=clip, segmenter=seg)
    assert real.dataset.name == "shapes" and "no real benchmark set" in real.note and "pascal-voc" in real.note
    (tmp_path / "cache" / "datasets").mkdir(parents=True, exist_ok=True)
    (root / "VOCdevkit").rename(tmp_path / "cache" / "datasets" / "pascal-voc")
    real = benchmark.lesson("real", num_samples=2, clip=clip, segmenter=seg)
    assert real.dataset.name == "pascal-voc" and len(real.samples) == 2 and real.settings.short_side == 336
    assert "--data-dir" in real.cli_args() and real.dense_map(real.samples[0].image).probs.shape[0] == 21
