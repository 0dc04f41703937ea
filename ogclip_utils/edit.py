"""Edit what you segmented: remove an object, or replace a region with something described in text.

Two back ends behind one set of functions:

- **offline** — OpenCV inpainting (``cv2.inpaint``, Telea's fast-marching method) fills the
  (dilated) mask from its border. Good enough to *remove* a flat-coloured shape; it cannot
  invent content, so text-guided *replacement* needs the real model.
- **real** — a diffusers ``StableDiffusionInpaintPipeline`` (``stabilityai/stable-diffusion-2-inpainting``
  by default, see ``models.REGISTRY["sd2-inpainting"]``). The image is resized to the model's
  multiple of 8, the generated pixels are resized back and blended in through the feathered mask.

In both back ends the mask is first **dilated** (objects' anti-aliased edges and shadows sit just
outside a segmentation mask) and then **feathered** (a soft alpha ramp inside the dilated mask),
and the result is composited as ``alpha·edited + (1 − alpha)·original``. The alpha is exactly 0
outside the dilated mask, so an edit never changes a pixel there.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from . import env, weights

#: Default diffusers model for real-mode inpainting (fetched into the project's cache on first use).
DEFAULT_INPAINT_MODEL = "stabilityai/stable-diffusion-2-inpainting"
REPLACE_NEEDS_REAL = (
    "text-guided replacement needs the real Stable Diffusion inpainting model: set OGCLIP_MODE=real "
    "(or --mode real) with diffusers installed (the weights, ~5.2 GB, are fetched into $OGCLIP_CACHE/diffusers on first use); "
    "offline mode can only remove (OpenCV inpainting) or show the mask"
)


class InpaintingUnavailable(ValueError):
    """The requested edit needs a back end that is not available here; the message says how to get it."""


@dataclass
class EditResult:
    """An edited image and how it was made.

    Attributes:
        image: H×W×3 uint8 RGB, the edited image (same size as the input).
        mask: H×W bool, the dilated mask; pixels outside it are unchanged.
        alpha: H×W float32 in [0, 1], the feathered blend weight (0 outside ``mask``).
        method: "opencv-telea", "opencv-ns", "blacken", "mask" or "diffusers".
        prompt: the text prompt used for generation ("" when none).
    """

    image: np.ndarray
    mask: np.ndarray
    alpha: np.ndarray
    method: str
    prompt: str = ""


# ----------------------------------------------------------------------------- masks
def _check_image_mask(image, mask) -> tuple[np.ndarray, np.ndarray]:
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"image must be uint8 H×W×3 RGB, got {img.dtype} {img.shape}; use data.load_image() to convert")
    m = np.asarray(mask)
    if m.shape != img.shape[:2]:
        raise ValueError(f"mask has shape {m.shape} but the image is {img.shape[:2]}; pass an H×W bool mask of the same size")
    if m.dtype != bool:
        if not np.isin(np.unique(m), (0, 1, 255)).all():
            raise ValueError("mask must be bool (or 0/1, 0/255 integers); threshold it first")
        m = m > 0
    return img, m


def _disk(radius: int) -> np.ndarray:
    r = int(radius)
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return xx ** 2 + yy ** 2 <= r * r


def dilate_mask(mask: np.ndarray, pixels: int = 6) -> np.ndarray:
    """Grow a bool H×W mask by a disk of radius ``pixels`` (0 returns a copy)."""
    if int(pixels) < 0:
        raise ValueError(f"dilate must be ≥ 0 pixels, got {pixels}")
    m = np.asarray(mask, bool)
    if pixels == 0 or not m.any():
        return m.copy()
    return ndi.binary_dilation(m, structure=_disk(pixels))


def feather_mask(mask: np.ndarray, feather: float = 4.0) -> np.ndarray:
    """A soft alpha (H×W float32 in [0, 1]) that is 1 deep inside ``mask``, ramps linearly to
    ~0 over the last ``feather`` pixels towards its border, and is exactly 0 outside it."""
    m = np.asarray(mask, bool)
    if feather < 0:
        raise ValueError(f"feather must be ≥ 0 pixels, got {feather}")
    if feather == 0 or not m.any():
        return m.astype(np.float32)
    dist = ndi.distance_transform_edt(np.pad(m, 1))[1:-1, 1:-1]  # distance to the nearest pixel outside
    return np.clip(dist / float(feather), 0.0, 1.0).astype(np.float32)


def prepare_mask(image, mask, dilate: int = 6, feather: float = 4.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate ``image``/``mask`` and return (image, dilated bool mask, feathered alpha).

    ``feather`` is capped at ``dilate`` (when ``dilate`` > 0) so the original mask stays fully
    replaced (alpha = 1 on it)."""
    img, m = _check_image_mask(image, mask)
    grown = dilate_mask(m, dilate)
    f = min(float(feather), float(dilate)) if dilate > 0 else float(feather)
    return img, grown, feather_mask(grown, f)


def composite(original: np.ndarray, edited: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``alpha·edited + (1 − alpha)·original`` as uint8; pixels with alpha 0 are copied exactly."""
    a = np.asarray(alpha, np.float32)[..., None]
    out = np.asarray(edited, np.float32) * a + np.asarray(original, np.float32) * (1 - a)
    out = np.clip(np.round(out), 0, 255).astype(np.uint8)
    out[a[..., 0] == 0] = np.asarray(original)[a[..., 0] == 0]
    return out


# ----------------------------------------------------------------------------- offline
def remove(image, mask, method: str = "telea", dilate: int = 6, feather: float = 4.0, radius: int = 5) -> EditResult:
    """Remove the object under ``mask`` with OpenCV inpainting (no weights, any mode).

    Args:
        image: H×W×3 uint8 RGB.
        mask: H×W bool, the object to remove.
        method: "telea" (fast marching, Telea 2004), "ns" (Navier–Stokes) or "blacken"
            (paint the dilated region black, hard edge — the old tool's non-inpainting ``remove``).
        dilate: pixels to grow the mask by (covers anti-aliased edges).
        feather: width of the soft blend inside the dilated mask, pixels.
        radius: OpenCV's inpainting neighbourhood radius, pixels.
    """
    import cv2

    methods = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS, "blacken": None}
    if method not in methods:
        raise ValueError(f"method must be one of {sorted(methods)}, got {method!r}")
    img, grown, alpha = prepare_mask(image, mask, dilate, feather)
    if method == "blacken":  # a hard cut-out: the old tool's look, no soft edge
        hard = grown.astype(np.float32)
        return EditResult(composite(img, np.zeros_like(img), hard), grown, hard, "blacken")
    if not grown.any():
        return EditResult(img.copy(), grown, alpha, f"opencv-{method}")
    filled = cv2.inpaint(np.ascontiguousarray(img), grown.astype(np.uint8) * 255, float(radius), methods[method])
    return EditResult(composite(img, filled, alpha), grown, alpha, f"opencv-{method}")


def mask_view(image, mask) -> EditResult:
    """The region as white on black (what ``--edit replace`` shows without inpainting)."""
    img, m = _check_image_mask(image, mask)
    out = np.zeros_like(img)
    out[m] = 255
    return EditResult(out, m, m.astype(np.float32), "mask")


# ----------------------------------------------------------------------------- real (diffusers)
def load_inpainter(model: str = DEFAULT_INPAINT_MODEL, device: str | None = None, mode: str | None = None):
    """A diffusers ``StableDiffusionInpaintPipeline`` on ``device`` (fp16 on CUDA).

    Only in real mode: offline this raises :class:`InpaintingUnavailable` instead of downloading.
    ``model`` is the default Hub name (read from ``$OGCLIP_CACHE/diffusers/stable-diffusion-2-inpainting/``,
    fetched there file by file by the project's downloader on first use, ~5.2 GB) or a local
    folder written by ``save_pretrained``. Hugging Face's own cache is never used.
    """
    if env.get_mode(mode) != "real":
        raise InpaintingUnavailable(REPLACE_NEEDS_REAL)
    import torch

    try:
        from diffusers import StableDiffusionInpaintPipeline
    except ImportError as exc:  # pragma: no cover - diffusers is a dependency
        raise InpaintingUnavailable("diffusers is not installed: pip install diffusers transformers") from exc
    if model in (DEFAULT_INPAINT_MODEL, "sd2-inpainting"):
        folder = weights.folder_path("sd2-inpainting")
        if not (folder / "model_index.json").exists():  # written last by download_folder
            folder = weights.download_folder("sd2-inpainting")
    else:
        folder = Path(model)
        if not (folder / "model_index.json").is_file():
            raise InpaintingUnavailable(f"model={model!r} is neither {DEFAULT_INPAINT_MODEL!r} nor a diffusers folder "
                                        "(a directory with model_index.json, as save_pretrained writes it)")
    dev = env.get_device(device)
    dtype = torch.float16 if dev.type == "cuda" else torch.float32
    try:
        pipe = StableDiffusionInpaintPipeline.from_pretrained(str(folder), torch_dtype=dtype, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise InpaintingUnavailable(f"{folder} is not a complete diffusers inpainting folder ({str(exc)[:200]}); "
                                    "delete it and run the edit again to re-download") from exc
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(dev)


def model_size(hw: tuple[int, int], multiple: int = 8, max_side: int = 512) -> tuple[int, int]:
    """(height, width) for the model: the long side scaled to ``max_side`` (aspect kept), each
    side rounded to a multiple of ``multiple`` (at least one multiple)."""
    H, W = int(hw[0]), int(hw[1])
    if H < 1 or W < 1:
        raise ValueError(f"image size must be positive, got {hw}")
    s = max_side / max(H, W)
    return (max(multiple, int(round(H * s / multiple)) * multiple), max(multiple, int(round(W * s / multiple)) * multiple))


def inpaint(pipe, image, mask, prompt: str, negative_prompt: str | None = None, dilate: int = 8, feather: float = 6.0,
            steps: int = 30, guidance_scale: float = 7.5, seed: int = 0, max_side: int = 512) -> EditResult:
    """Generate ``prompt`` inside ``mask`` with a diffusers inpainting pipeline.

    The image and the feathered mask are resized to the model's size (``model_size``: long side
    ``max_side``, multiples of 8 or the VAE's scale factor), generated, resized back with Lanczos,
    and blended through the feathered alpha, so nothing outside the dilated mask changes.

    Args:
        pipe: a ``StableDiffusionInpaintPipeline`` (``load_inpainter()``; tests build a tiny one).
        image: H×W×3 uint8 RGB. mask: H×W bool.
        prompt: what to paint there, e.g. "a sunset sky"; for removal something like
            "background, empty scene".
        steps, guidance_scale, seed: diffusion settings (seeded ``torch.Generator``).
    """
    import torch
    from PIL import Image

    if not isinstance(prompt, str):
        raise ValueError(f"prompt must be a string, got {type(prompt).__name__}")
    if int(steps) < 1:
        raise ValueError(f"steps must be ≥ 1, got {steps}")
    img, grown, alpha = prepare_mask(image, mask, dilate, feather)
    if not grown.any():
        return EditResult(img.copy(), grown, alpha, "diffusers", prompt)
    H, W = img.shape[:2]
    multiple = max(8, int(getattr(pipe, "vae_scale_factor", 8)))
    h, w = model_size((H, W), multiple, max_side)
    small = Image.fromarray(img).resize((w, h), Image.Resampling.LANCZOS)
    small_mask = Image.fromarray(np.round(alpha * 255).astype(np.uint8)).resize((w, h), Image.Resampling.BILINEAR)
    device = getattr(pipe, "device", torch.device("cpu"))
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    out = pipe(prompt=prompt, negative_prompt=negative_prompt, image=small, mask_image=small_mask, height=h, width=w,
               num_inference_steps=int(steps), guidance_scale=float(guidance_scale), generator=gen, output_type="np")
    gen_img = np.asarray(out.images[0], np.float32)
    if gen_img.shape[:2] != (h, w):
        raise RuntimeError(f"the inpainting pipeline on {device} returned {gen_img.shape}, expected {(h, w, 3)}")
    gen_u8 = np.clip(np.round(gen_img * 255), 0, 255).astype(np.uint8)
    back = np.asarray(Image.fromarray(gen_u8).resize((W, H), Image.Resampling.LANCZOS))
    return EditResult(composite(img, back, alpha), grown, alpha, "diffusers", prompt)


def edit(image, mask, action: str = "remove", use_inpainting: bool = False, prompt: str = "", pipe=None,
         mode: str | None = None, device: str | None = None, **kwargs) -> EditResult:
    """One entry point for the command line's ``--edit``.

    - ``remove``: without inpainting blacken the region; with inpainting use Stable Diffusion in
      real mode (prompt default "background") and OpenCV inpainting offline.
    - ``replace``: without inpainting the mask (white on black); with inpainting generate
      ``prompt`` inside it — real mode only (offline raises :class:`InpaintingUnavailable`).
    """
    if action not in ("remove", "replace"):
        raise ValueError(f"action must be 'remove' or 'replace', got {action!r}")
    if action == "replace" and not use_inpainting:
        return mask_view(image, mask)
    if action == "remove" and not use_inpainting:
        return remove(image, mask, method="blacken", **{k: v for k, v in kwargs.items() if k in ("dilate", "feather")})
    if action == "replace" and not str(prompt).strip():
        raise ValueError("--edit replace --use-inpainting needs --edit-prompt TEXT (what to paint inside the mask)")
    resolved = env.get_mode(mode)
    if resolved != "real" and pipe is None:
        if action == "replace":
            raise InpaintingUnavailable(REPLACE_NEEDS_REAL)
        return remove(image, mask, **{k: v for k, v in kwargs.items() if k in ("method", "dilate", "feather", "radius")})
    if pipe is None:
        pipe = load_inpainter(device=device, mode=resolved)
    text = prompt or "background, empty scene, seamless"
    return inpaint(pipe, image, mask, text, **{k: v for k, v in kwargs.items() if k != "method" and k != "radius"})
