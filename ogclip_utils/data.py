"""The shapes world (scenes with exact ground truth), bundled photos and ``load_image``.

The shapes world is the offline stand-in for photos: coloured shapes on textured grey
backgrounds, rendered procedurally from a seed, with exact per-pixel labels, instance
masks, boxes, captions and referring expressions. Everything is deterministic per seed.

Conventions: images are uint8 H×W×3 RGB, masks bool H×W, boxes (x0, y0, x1, y1) in
pixels with x1/y1 exclusive, points (x, y) in pixels.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from .arrays import crop_box, mask_box  # noqa: F401  (crop_box: old import path data.crop_box)

# ----------------------------------------------------------------------------- vocabulary
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (217, 26, 26),
    "green": (26, 173, 38),
    "blue": (26, 64, 230),
    "yellow": (242, 217, 26),
    "purple": (140, 38, 191),
    "orange": (255, 128, 13),
}
COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)
#: Offline vocabulary: index 0 is "background", then the 30 "colour shape" classes,
#: colour-major ("red circle", "red square", …, "orange cross").
CLASS_NAMES: list[str] = ["background"] + [f"{c} {s}" for c in COLOUR_NAMES for s in SHAPES]
NUM_CLASSES = len(CLASS_NAMES)  # 31

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
PHOTO_DIR = DATA_DIR / "photos"

#: Geometry of an object of nominal radius r (fractions of r), see the design card.
GEOMETRY = {
    "square_half_side": 0.85,
    "triangle_circumradius": 1.2,
    "star_outer": (1.25, 1.3),
    "star_inner_ratio": 0.45,
    "cross_half_length": 1.05,
    "cross_half_width": 0.36,
}
SUPERSAMPLE = 4  # anti-aliasing factor of the renderer


def class_id(colour: str, shape: str) -> int:
    """Index of "colour shape" in :data:`CLASS_NAMES`."""
    name = f"{colour} {shape}"
    if name not in CLASS_NAMES:
        raise ValueError(f"unknown class {name!r}; colours are {COLOUR_NAMES}, shapes are {SHAPES}")
    return CLASS_NAMES.index(name)


# ----------------------------------------------------------------------------- dataclasses
@dataclass
class ShapeObject:
    """One visible object of a scene (its mask is what remains visible after occlusion)."""

    name: str  # "red circle"
    colour: str
    shape: str
    mask: np.ndarray  # bool H×W, visible pixels
    box: tuple[float, float, float, float]  # tight box of the visible mask, x1/y1 exclusive
    center: tuple[float, float]  # (x, y) of the drawn shape in pixels
    radius: float  # nominal radius r in pixels
    angle: float  # rotation in degrees

    @property
    def class_id(self) -> int:
        return CLASS_NAMES.index(self.name)

    @property
    def area(self) -> int:
        return int(self.mask.sum())


@dataclass
class Scene:
    """A rendered scene. ``labels`` holds class ids (0 = background), ``instances`` holds
    0 for background and i+1 for ``objects[i]``."""

    image: np.ndarray  # uint8 H×W×3
    labels: np.ndarray  # int64 H×W
    instances: np.ndarray  # int32 H×W
    objects: list[ShapeObject]
    caption: str
    seed: int | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return self.image.shape[:2]


@dataclass
class Expression:
    """A referring expression that names exactly one object of a scene."""

    text: str
    kind: str  # "attribute" or "relational"
    target: int  # index into scene.objects (-1: an expression written for a photo)
    box: tuple[float, float, float, float] | None  # x0, y0, x1, y1 pixels; None: no ground truth (a photo)


# ----------------------------------------------------------------------------- rendering
def _polygon(shape: str, r: float, angle: float, rng: np.random.Generator, variation: float) -> np.ndarray | None:
    """Vertices (N,2) of a shape centred at 0 with nominal radius ``r``; None for circles."""

    def vary(x: float) -> float:
        return x * (1.0 + variation * rng.uniform(-1.0, 1.0))

    if shape == "circle":
        return None
    if shape == "square":
        h = vary(GEOMETRY["square_half_side"]) * r
        pts = np.array([[-h, -h], [h, -h], [h, h], [-h, h]])
    elif shape == "triangle":
        R = vary(GEOMETRY["triangle_circumradius"]) * r
        a = np.deg2rad(-90 + np.arange(3) * 120)
        pts = np.stack([R * np.cos(a), R * np.sin(a)], 1)
        pts[:, 1] += R * 0.25  # centre the triangle's box on the object centre
    elif shape == "star":
        lo, hi = GEOMETRY["star_outer"]
        R = rng.uniform(lo, hi) * (1.0 + variation * rng.uniform(-1.0, 1.0)) * r
        ri = vary(GEOMETRY["star_inner_ratio"]) * R
        a = np.deg2rad(-90 + np.arange(10) * 36)
        rad = np.where(np.arange(10) % 2 == 0, R, ri)
        pts = np.stack([rad * np.cos(a), rad * np.sin(a)], 1)
        pts[:, 1] += R * 0.1
    elif shape == "cross":
        L = vary(GEOMETRY["cross_half_length"]) * r
        w = vary(GEOMETRY["cross_half_width"]) * r
        pts = np.array(
            [[-w, -L], [w, -L], [w, -w], [L, -w], [L, w], [w, w], [w, L], [-w, L], [-w, w], [-L, w], [-L, -w], [-w, -w]]
        )
    else:
        raise ValueError(f"unknown shape {shape!r}; shapes are {SHAPES}")
    t = np.deg2rad(angle)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    return pts @ rot.T


def _coverage(shape: str, cx: float, cy: float, r: float, angle: float, hw: tuple[int, int],
              rng: np.random.Generator, variation: float) -> np.ndarray:
    """Anti-aliased coverage in [0,1] (float32 H×W) of one shape, rendered with PIL at 4× supersampling."""
    H, W = hw
    pts = _polygon(shape, r, angle, rng, variation)
    ext = 1.6 * r + 2
    x0, y0 = max(int(np.floor(cx - ext)), 0), max(int(np.floor(cy - ext)), 0)
    x1, y1 = min(int(np.ceil(cx + ext)), W), min(int(np.ceil(cy + ext)), H)
    cov = np.zeros((H, W), np.float32)
    if x1 <= x0 or y1 <= y0:
        return cov
    s = SUPERSAMPLE
    canvas = Image.new("L", ((x1 - x0) * s, (y1 - y0) * s), 0)
    draw = ImageDraw.Draw(canvas)
    # pixel (i, j) covers [j, j+1) × [i, i+1); its centre is (j+0.5, i+0.5)
    ox, oy = (cx - x0) * s, (cy - y0) * s
    if pts is None:
        rr = r * s
        draw.ellipse([ox - rr, oy - rr, ox + rr, oy + rr], fill=255)
    else:
        draw.polygon([(ox + px * s, oy + py * s) for px, py in pts], fill=255)
    a = np.asarray(canvas, np.float32) / 255.0
    a = a.reshape(y1 - y0, s, x1 - x0, s).mean(axis=(1, 3))
    cov[y0:y1, x0:x1] = a
    return cov


def _object_colour(colour: str, rng: np.random.Generator) -> np.ndarray:
    """Jittered RGB in [0,1]: brightness ×U(0.85,1.08), per-channel N(0, 0.05)."""
    base = np.asarray(COLOURS[colour], np.float32) / 255.0
    c = base * rng.uniform(0.85, 1.08) + rng.normal(0.0, 0.05, 3)
    return np.clip(c, 0.0, 1.0).astype(np.float32)


def render_background(hw: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Float32 H×W×3 background in [0,1]: grey 0.25–0.85 with a tint, a gradient,
    low-frequency texture and pixel noise."""
    H, W = hw
    grey = rng.uniform(0.25, 0.85)
    tint = rng.normal(0.0, 0.03, 3)
    img = np.full((H, W, 3), grey, np.float32) + tint.astype(np.float32)
    # gradient in a random direction
    t = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    g = (np.cos(t) * (xx / max(W, 1) - 0.5) + np.sin(t) * (yy / max(H, 1) - 0.5)) * rng.uniform(0.0, 0.15)
    img += g[..., None]
    # low-frequency texture: a coarse random grid upsampled bicubically
    k = int(rng.integers(3, 7))
    coarse = rng.normal(0.0, 1.0, (k, k)).astype(np.float32)
    tex = np.asarray(Image.fromarray(coarse, mode="F").resize((W, H), Image.BICUBIC), np.float32)
    img += (tex * rng.uniform(0.01, 0.04))[..., None]
    img += rng.normal(0.0, rng.uniform(0.005, 0.015), (H, W, 3)).astype(np.float32)
    return img


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _check_size(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        H = W = int(size)
    elif isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(s, (int, np.integer)) for s in size):
        H, W = int(size[0]), int(size[1])
    else:
        raise ValueError(f"size must be an int or a (height, width) pair of ints, got {size!r}")
    if min(H, W) < 16 or max(H, W) > 4096:
        raise ValueError(f"size {size!r} is out of range: height and width must be between 16 and 4096 pixels")
    return H, W


def make_scene(
    seed: int,
    size: int | Sequence[int] = 160,
    num_objects: int | tuple[int, int] | None = None,
    classes: Sequence[str] | None = None,
    radius_range: tuple[float, float] = (0.06, 0.25),
    variation: float = 0.03,
    min_visible: float = 0.6,
    names: Sequence[str] | None = None,
) -> Scene:
    """Render one shapes-world scene, deterministically from ``seed``.

    Args:
        seed: any non-negative integer; the same seed always gives the same scene.
        size: ``S`` for S×S or ``(height, width)`` in pixels (16…4096).
        num_objects: exact count, an inclusive ``(min, max)`` range, or None for 0–4
            (zero objects only 5 % of the time).
        classes: restrict object classes to these "colour shape" names.
        radius_range: nominal radius as fractions of the short image side.
        variation: relative jitter of the shape proportions (0.03 = ±3 %).
        min_visible: every object keeps at least this fraction of its own area visible.
        names: the exact "colour shape" classes to place, in order (instead of random
            classes; ``num_objects`` and ``classes`` are then ignored). An object that cannot
            be placed visibly is skipped, as always — compare ``len(scene.objects)``.

    Returns:
        :class:`Scene` with image uint8 H×W×3, labels int64 H×W, instances int32 H×W,
        objects (visible mask, tight box), caption.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    H, W = _check_size(size)
    rng = np.random.default_rng([int(seed), 7919])
    if names is not None:
        names = list(names)
        for c in names:
            if c not in CLASS_NAMES[1:]:
                raise ValueError(f"names: {c!r} is not a shapes-world class; see data.CLASS_NAMES")
        n = len(names)
    elif num_objects is None:
        n = 0 if rng.random() < 0.05 else int(rng.integers(1, 5))
    elif isinstance(num_objects, tuple):
        n = int(rng.integers(num_objects[0], num_objects[1] + 1))
    else:
        n = int(num_objects)
    if n < 0 or n > 12:
        raise ValueError(f"num_objects must be between 0 and 12, got {num_objects!r}")
    pool = list(classes) if classes is not None else CLASS_NAMES[1:]
    for c in pool:
        if c not in CLASS_NAMES[1:]:
            raise ValueError(f"classes: {c!r} is not a shapes-world class; see data.CLASS_NAMES")

    img = render_background((H, W), rng)
    short = min(H, W)
    instances = np.zeros((H, W), np.int32)
    placed: list[dict] = []
    for k in range(n):
        for _attempt in range(30):
            name = names[k] if names is not None else pool[int(rng.integers(len(pool)))]
            colour, shape = name.split(" ")
            r = rng.uniform(*radius_range) * short
            m = 1.35 * r
            if 2 * m >= min(H, W):
                r = min(H, W) / 2.9
                m = 1.35 * r
            cx, cy = rng.uniform(m, W - m), rng.uniform(m, H - m)
            angle = rng.uniform(-8, 8) if shape == "square" else rng.uniform(0, 360)
            state = rng.bit_generator.state
            cov = _coverage(shape, cx, cy, r, angle, (H, W), rng, variation)
            full = cov >= 0.5
            if full.sum() < 4:
                continue
            ok = all(((instances == i + 1) & ~full).sum() >= min_visible * p["area"] for i, p in enumerate(placed))
            if ok:
                break
        else:
            continue  # could not place this object without hiding others; skip it
        del state
        col = _object_colour(colour, rng)
        img = img * (1 - cov[..., None]) + col[None, None, :] * cov[..., None]
        instances[full] = len(placed) + 1
        placed.append(dict(name=name, colour=colour, shape=shape, cx=cx, cy=cy, r=r, angle=angle, area=int(full.sum())))
    # mild pixel noise on top of everything
    img = img + rng.normal(0.0, 0.012, img.shape).astype(np.float32)
    image = _to_uint8(img)

    labels = np.zeros((H, W), np.int64)
    objects: list[ShapeObject] = []
    keep_ids = np.zeros(len(placed) + 1, np.int32)
    for i, p in enumerate(placed):
        mask = instances == i + 1
        if mask.sum() == 0:
            continue
        keep_ids[i + 1] = len(objects) + 1
        labels[mask] = CLASS_NAMES.index(p["name"])
        objects.append(ShapeObject(p["name"], p["colour"], p["shape"], mask, mask_box(mask),
                                   (float(p["cx"]), float(p["cy"])), float(p["r"]), float(p["angle"])))
    instances = keep_ids[instances]
    return Scene(image=image, labels=labels, instances=instances, objects=objects, caption=caption(objects), seed=int(seed))


def make_scenes(seeds: Sequence[int], **kwargs) -> list[Scene]:
    """``[make_scene(s, **kwargs) for s in seeds]``."""
    return [make_scene(int(s), **kwargs) for s in seeds]


# ----------------------------------------------------------------------------- crops
def render_object(colour: str, shape: str, seed: int, size: int = 64, fill: tuple[float, float] = (0.55, 0.9),
                  variation: float = 0.03) -> np.ndarray:
    """A single-object crop (uint8 size×size×3): one object on a background, the object
    spanning ``fill`` of the crop width — what a detector crop with a little padding looks like."""
    rng = np.random.default_rng([int(seed), 104729])
    H = W = int(size)
    img = render_background((H, W), rng)
    r = rng.uniform(*fill) * size / 2 / 1.25
    cx = size / 2 + rng.uniform(-0.08, 0.08) * size
    cy = size / 2 + rng.uniform(-0.08, 0.08) * size
    angle = rng.uniform(-8, 8) if shape == "square" else rng.uniform(0, 360)
    cov = _coverage(shape, cx, cy, r, angle, (H, W), rng, variation)
    col = _object_colour(colour, rng)
    img = img * (1 - cov[..., None]) + col * cov[..., None]
    img = img + rng.normal(0.0, 0.012, img.shape).astype(np.float32)
    return _to_uint8(img)


# ----------------------------------------------------------------------------- language
def _join(phrases: list[str]) -> str:
    if len(phrases) <= 1:
        return "".join(phrases)
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def caption(objects: Sequence[ShapeObject]) -> str:
    """Scene caption naming every object left to right: "a red circle and a blue square"."""
    if not objects:
        return "an empty background"
    ordered = sorted(objects, key=lambda o: o.center[0])
    return _join([f"a {o.name}" for o in ordered])


def _size_word(obj: ShapeObject, others: list[ShapeObject]) -> str | None:
    """"large"/"small" when the object is clearly bigger/smaller than every other object of its class."""
    if not others:
        return None
    if all(obj.radius >= 1.4 * o.radius for o in others):
        return "large"
    if all(obj.radius * 1.4 <= o.radius for o in others):
        return "small"
    return None


RELATIONS = ("left of", "right of", "above", "below")


def _relation_holds(rel: str, t: ShapeObject, a: ShapeObject) -> bool:
    dx, dy = t.center[0] - a.center[0], t.center[1] - a.center[1]
    gap = 0.5 * (t.radius + a.radius)
    if rel == "left of":
        return dx < -gap and abs(dx) > abs(dy)
    if rel == "right of":
        return dx > gap and abs(dx) > abs(dy)
    if rel == "above":
        return dy < -gap and abs(dy) > abs(dx)
    if rel == "below":
        return dy > gap and abs(dy) > abs(dx)
    raise ValueError(f"unknown relation {rel!r}; relations are {RELATIONS}")


def referring_expressions(scene: Scene) -> list[Expression]:
    """Every unambiguous expression the generator knows for ``scene``.

    - attribute: "the red circle" when its class is unique; "the large blue square" /
      "the small blue square" when several objects share the class and size separates them;
    - relational: "the star left of the red circle" — the anchor's class is unique and
      exactly one object of the target's shape stands in that relation to it.
    """
    out: list[Expression] = []
    objs = scene.objects
    for i, o in enumerate(objs):
        same = [p for j, p in enumerate(objs) if j != i and p.name == o.name]
        if not same:
            out.append(Expression(f"the {o.name}", "attribute", i, o.box))
        else:
            w = _size_word(o, same)
            if w:
                out.append(Expression(f"the {w} {o.name}", "attribute", i, o.box))
    for ai, a in enumerate(objs):
        if sum(p.name == a.name for p in objs) != 1:
            continue
        for rel in RELATIONS:
            for shape in SHAPES:
                cands = [j for j, t in enumerate(objs) if j != ai and t.shape == shape and _relation_holds(rel, t, a)]
                if len(cands) == 1:
                    t = objs[cands[0]]
                    out.append(Expression(f"the {shape} {rel} the {a.name}", "relational", cands[0], t.box))
    return out


# ----------------------------------------------------------------------------- photos
PHOTOS = {
    "astronaut": "astronaut.jpg",
    "coffee": "coffee.jpg",
    "chelsea": "chelsea.jpg",
    "rocket": "rocket.jpg",
}
#: A real-mode vocabulary for each bundled photo (used by notebooks and `make demo`).
PHOTO_VOCABULARIES = {
    "astronaut": ["person, astronaut", "flag", "rocket", "background, wall"],
    "coffee": ["cup, coffee cup", "saucer, plate", "spoon", "table", "background"],
    "chelsea": ["cat", "background, floor, wall"],
    "rocket": ["rocket", "smoke", "sky", "tower", "ground", "background"],
}


def photo_path(name: str) -> Path:
    """Path of a bundled photo (see ``data/README.md`` for sources and licences)."""
    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}; bundled photos are {sorted(PHOTOS)}")
    return PHOTO_DIR / PHOTOS[name]


def load_photo(name: str) -> np.ndarray:
    """A bundled photo as uint8 H×W×3."""
    return load_image(photo_path(name))


# ----------------------------------------------------------------------------- load_image
MAX_PIXELS = 100_000_000


def load_image(image: "str | Path | Image.Image | np.ndarray") -> np.ndarray:
    """Load or convert an image to uint8 H×W×3 RGB.

    Accepts a path (str/Path), a PIL image or a numpy array (H×W, H×W×1, H×W×3, H×W×4;
    uint8, uint16, bool or float in [0, 1]). Converts grayscale, palette, RGBA (composited
    on white) and 16-bit images; applies EXIF orientation. Never modifies its input.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: not an image, empty, absurdly large, or an unsupported array.
    """
    if isinstance(image, (str, Path)):
        path = Path(image).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"image file not found: {str(path)!r} (check the path and the working directory)")
        if path.is_dir():
            raise ValueError(f"image path {str(path)!r} is a folder, not an image file")
        try:
            with Image.open(path) as pil:
                pil.load()
                return _from_pil(pil, source=str(path))
        except (OSError, SyntaxError, Image.DecompressionBombError) as exc:
            raise ValueError(f"{str(path)!r} could not be read as an image ({exc}); use a PNG or JPEG file") from exc
    if isinstance(image, Image.Image):
        return _from_pil(image, source="PIL image")
    if isinstance(image, (bytes, bytearray)):
        try:
            with Image.open(io.BytesIO(image)) as pil:
                pil.load()
                return _from_pil(pil, source="bytes")
        except OSError as exc:
            raise ValueError(f"bytes could not be decoded as an image ({exc})") from exc
    if hasattr(image, "detach") and hasattr(image, "cpu"):
        raise ValueError("got a torch tensor; pass a numpy uint8 H×W×3 array instead (tensor.permute(1, 2, 0).cpu().numpy())")
    if isinstance(image, np.ndarray):
        return _from_array(image)
    raise ValueError(f"image must be a path, a PIL image or a numpy array, got {type(image).__name__}")


def _check_dims(h: int, w: int, source: str) -> None:
    if h == 0 or w == 0:
        raise ValueError(f"{source} is empty ({h}×{w} pixels)")
    if h * w > MAX_PIXELS:
        raise ValueError(f"{source} has {h}×{w} pixels, more than {MAX_PIXELS:,}; resize it first")


def _from_pil(pil: Image.Image, source: str) -> np.ndarray:
    _check_dims(pil.height, pil.width, source)
    pil = ImageOps.exif_transpose(pil) or pil
    if pil.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(pil)
        if pil.mode == "F":
            return _from_array(arr.astype(np.float32))
        arr = arr.astype(np.float64)
        scale = 65535.0 if arr.max() > 255 or pil.mode.startswith("I;16") else 255.0
        return _from_array((np.clip(arr / scale, 0, 1) * 255 + 0.5).astype(np.uint8))
    if pil.mode == "P" and "transparency" in pil.info:
        pil = pil.convert("RGBA")
    if pil.mode in ("RGBA", "LA", "PA"):
        pil = pil.convert("RGBA")
        bg = Image.new("RGBA", pil.size, (255, 255, 255, 255))
        pil = Image.alpha_composite(bg, pil)
    return np.array(pil.convert("RGB"), dtype=np.uint8)


def _from_array(arr: np.ndarray) -> np.ndarray:
    a = np.asarray(arr)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ValueError(
            f"image array has shape {a.shape}; expected H×W (gray), H×W×3 (RGB) or H×W×4 (RGBA) — "
            "channels-first arrays need arr.transpose(1, 2, 0)"
        )
    _check_dims(a.shape[0], a.shape[1], f"image array of shape {a.shape}")
    if a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif a.dtype == np.uint16:
        a = (a.astype(np.float64) / 257.0 + 0.5).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise ValueError("image array contains NaN or infinite values")
        if a.min() < 0 or a.max() > 1:
            raise ValueError(
                f"float image values must lie in [0, 1], got [{a.min():.3g}, {a.max():.3g}]; "
                "for 0–255 floats pass arr.astype(np.uint8)"
            )
        a = (a * 255.0 + 0.5).astype(np.uint8)
    elif a.dtype != np.uint8:
        if np.issubdtype(a.dtype, np.integer) and a.size and a.min() >= 0 and a.max() <= 255:
            a = a.astype(np.uint8)
        else:
            raise ValueError(f"image array dtype {a.dtype} is not supported; use uint8 (0–255), uint16 or float in [0, 1]")
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.shape[2] == 4:
        alpha = a[..., 3:4].astype(np.float32) / 255.0
        a = (a[..., :3].astype(np.float32) * alpha + 255.0 * (1 - alpha) + 0.5).astype(np.uint8)
    return np.ascontiguousarray(a, dtype=np.uint8).copy()
