"""Random-init stand-ins for every official file, written in the official formats into a cache (tests, smoke runs).

Real mode must be correct though this project's machines can never download real weights.
So the real-mode smoke run (``make test``, :mod:`tests.test_real_mode`) writes *stand-ins*:
the real architectures at random init, saved exactly where and how the project's loaders
expect the official files, into a temporary ``$OGCLIP_CACHE``:

=====================================  ===============================================  ==========================
file                                   format                                           official source
=====================================  ===============================================  ==========================
``checkpoints/vit_b_16_openai.safetensors``  open_clip state dict (safetensors, fp16)  timm/open_clip on the Hub
``checkpoints/sam2.1_hiera_tiny.pt``   ``torch.save({"model": state_dict})``              SAM2's release files
``checkpoints/fasterrcnn_…-fb6a3cc7.pth``  torchvision state dict                       download.pytorch.org
``diffusers/stable-diffusion-2-inpainting/``  a diffusers ``save_pretrained`` folder (tiny)  stabilityai on the Hub
=====================================  ===============================================  ==========================

Nothing here is ever used for a result: a stand-in's outputs are noise. They only prove
that the loaders, the shapes and the plumbing of real mode work, with the network off.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import torch

from . import paths, weights

COMPONENTS = ("clip", "sam2", "detector", "inpainting")


def write_clip(seed: int = 0) -> Path:
    """ViT-B/16 (QuickGELU) at random init as ``open_clip_model.safetensors`` would hold it (fp16)."""
    import open_clip
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model = open_clip.create_model("ViT-B-16-quickgelu", pretrained=None)
    path = weights.checkpoint_path("clip-vit-b-16-openai")
    save_file({k: v.detach().half().contiguous() for k, v in model.state_dict().items()}, str(path),
              metadata={"format": "pt", STANDIN_KEY: "random-init"})
    return path


#: safetensors metadata key that marks a stand-in (``make bench`` then reports speeds only)
STANDIN_KEY = "ogclip_standin"


def is_standin(path) -> bool:
    """True when the safetensors file at ``path`` was written by this module (its metadata says so)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return (f.metadata() or {}).get(STANDIN_KEY) == "random-init"
    except Exception:  # noqa: BLE001 - unreadable / not safetensors: not ours
        return False


def write_sam2(name: str = "sam2.1-hiera-tiny", seed: int = 0) -> Path:
    """SAM2.1 at random init, saved the way Meta's release files are: ``{"model": state_dict}``."""
    from sam2.build_sam import build_sam2

    torch.manual_seed(seed)
    ck = weights.entry(name)
    model = build_sam2(ck.extra["config"], ckpt_path=None, device="cpu", mode="eval")
    path = weights.checkpoint_path(ck.name)
    torch.save({"model": model.state_dict()}, path)
    return path


def write_detector(seed: int = 0) -> Path:
    """torchvision's Faster R-CNN MobileNetV3-Large FPN (91 COCO classes) at random init, as a state dict."""
    import torchvision

    torch.manual_seed(seed)
    model = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None)
    path = weights.checkpoint_path("fasterrcnn-mobilenet-v3-large-fpn")
    torch.save(model.state_dict(), path)
    return path


def _byte_chars() -> list[str]:
    """GPT-2 / CLIP's byte → printable-character table (the 256 base symbols of byte-level BPE)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def _tiny_clip_tokenizer(folder: Path) -> None:
    """A CLIP BPE tokenizer with a byte-level vocabulary and no merges (every character one token),
    saved by ``CLIPTokenizer.save_pretrained`` (vocab.json, merges.txt, tokenizer configs)."""
    from transformers import CLIPTokenizer

    chars = _byte_chars()
    vocab = {c: i for i, c in enumerate(chars)}
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77).save_pretrained(str(folder))


def write_inpainting(seed: int = 0) -> Path:
    """A tiny ``StableDiffusionInpaintPipeline`` (the same components and folder layout as
    ``stabilityai/stable-diffusion-2-inpainting``: a 9-channel UNet, a VAE, a CLIP text
    encoder and tokenizer, a DDIM scheduler) written with ``save_pretrained``."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionInpaintPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    folder = inpainting_folder()
    tok_dir = folder / "tokenizer"
    _tiny_clip_tokenizer(tok_dir)
    tokenizer = CLIPTokenizer.from_pretrained(str(tok_dir))
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37,
                                        num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=77,
                                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                        pad_token_id=tokenizer.pad_token_id))
    unet = UNet2DConditionModel(sample_size=32, in_channels=9, norm_num_groups=16, out_channels=4, layers_per_block=1,
                                block_out_channels=(32, 64), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                                attention_head_dim=(2, 4), use_linear_projection=True)
    # four blocks: latents at 1/8 of the image, as Stable Diffusion's VAE (and what the pipeline assumes)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 16, 16, 16),
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        layers_per_block=1, norm_num_groups=8, sample_size=256)
    sched = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, steps_offset=1,
                          set_alpha_to_one=False)
    pipe = StableDiffusionInpaintPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet, scheduler=sched,
                                          safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(str(folder))
    return folder


def inpainting_folder() -> Path:
    """Where the inpainting pipeline lives: ``$OGCLIP_CACHE/diffusers/stable-diffusion-2-inpainting/``."""
    return paths.cache_dir("diffusers") / weights.entry("sd2-inpainting").filename


WRITERS = {"clip": write_clip, "sam2": write_sam2, "detector": write_detector, "inpainting": write_inpainting}


def write_all(components: Iterable[str] = COMPONENTS, seed: int = 0) -> dict[str, Path]:
    """Write the named stand-ins into the current ``$OGCLIP_CACHE``; returns ``{component: path}``."""
    out = {}
    for c in components:
        if c not in WRITERS:
            raise ValueError(f"unknown stand-in {c!r}; choose from {COMPONENTS}")
        out[c] = WRITERS[c](seed=seed)
    return out
