"""Artifact detection: batched, chunked inference returning soft artifact probabilities.

Modes:
- ``resize`` (the paper's): squash each image to 512x512, run, resize the logits back.
- ``tiled``: 512 px windows at native resolution with overlap, blended with a smooth weight,
  fused with the global ``resize`` pass, so 1024-2048 px images keep small artifacts.

Optional horizontal-flip test-time augmentation; fp16 / bf16 autocast on GPU; everything under
``torch.inference_mode``. Images are ComfyUI IMAGE ``[B,H,W,C]`` float 0..1 at the API.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .constants import ARTIFACT_CLASS, INPUT_SIZE, MEAN_RGB, PAR_THRESHOLD, STD_RGB
from .layout import image_to_bchw, to_rgb

MODES = ("resize", "tiled")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
MIN_SIDE = 32  # smaller images are padded (reflect) up to this before inference

Progress = Callable[[int, int], None]  # (done, total); may raise to interrupt


def normalize(images: Tensor) -> Tensor:
    """``[B,3,H,W]`` RGB 0..1 -> the model's input: ``(255 x - mean) / std`` per channel."""
    mean = torch.tensor(MEAN_RGB, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    std = torch.tensor(STD_RGB, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    return (images * 255.0 - mean) / std


def as_rgb_bchw(images: Tensor) -> Tensor:
    """ComfyUI IMAGE ``[B,H,W,C]`` (C = 1, 3 or 4) -> RGB ``[B,3,H,W]`` float32, checked."""
    return to_rgb(image_to_bchw(images)).clamp(0, 1).contiguous()


def _autocast(device: torch.device, precision: str):
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32" or (precision == "auto" and device.type == "cpu"):
        return torch.autocast(device.type, enabled=False)
    if precision == "auto":
        bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        dtype = torch.bfloat16 if bf16 else torch.float16
    else:
        dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype)


def _logits(model: nn.Module, x: Tensor, tta: bool) -> Tensor:
    """Float32 logits for normalised ``x``, averaged with the mirrored pass when ``tta``."""
    out = model(x).float()
    if tta:
        out = (out + model(x.flip(-1)).float().flip(-1)) / 2
    return out


def _pad_small(x: Tensor) -> Tensor:
    """Pad ``[N,C,h,w]`` at the bottom / right up to ``MIN_SIDE`` (callers crop back)."""
    h, w = x.shape[-2:]
    ph, pw = max(0, MIN_SIDE - h), max(0, MIN_SIDE - w)
    if ph or pw:
        mode = "reflect" if h > ph and w > pw else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x


def _tile_starts(length: int, tile: int, stride: int) -> list[int]:
    if length <= tile:
        return [0]
    n = math.ceil((length - tile) / stride) + 1
    return [min(i * stride, length - tile) for i in range(n)]


def _tile_weight(th: int, tw: int, device: torch.device) -> Tensor:
    """Smooth (raised cosine) blending weight, never zero so every pixel is covered."""
    wy = torch.hann_window(th + 2, periodic=False, device=device)[1:-1]
    wx = torch.hann_window(tw + 2, periodic=False, device=device)[1:-1]
    return (wy[:, None] * wx[None, :]).clamp(min=1e-3)


def detect(
    model: nn.Module,
    images: Tensor,
    mode: str = "resize",
    tta: bool = False,
    *,
    batch_size: int = 4,
    tile: int = INPUT_SIZE,
    overlap: float = 0.25,
    global_weight: float = 0.5,
    max_batch_pixels: int = 2 * INPUT_SIZE**2,
    precision: str = "auto",
    progress: Progress | None = None,
) -> Tensor:
    """Artifact probabilities ``[B,H,W]`` in 0..1 for ComfyUI IMAGE ``images`` ``[B,H,W,C]``.

    ``mode`` is ``resize`` or ``tiled`` (windows of ``tile`` px overlapping by ``overlap``,
    fused with the global pass at ``global_weight``). At most ``batch_size`` images or tiles,
    and at most ``max_batch_pixels`` input pixels, go through the model at once (activation
    memory grows with the pixels: the full Swin-B needs about 0.7 GB per 512x512 item).
    ``progress(done, total)`` is called after each chunk and may raise to stop. Grayscale
    and RGBA images are converted; images under 32 px are padded.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if batch_size < 1 or not 0 <= overlap < 1 or not 0 <= global_weight <= 1 or tile < MIN_SIDE:
        raise ValueError(
            f"need batch_size >= 1, 0 <= overlap < 1, 0 <= global_weight <= 1, tile >= 32; got "
            f"{batch_size}, {overlap}, {global_weight}, {tile}"
        )
    from .cache import CACHE

    x = as_rgb_bchw(images)
    device = CACHE.prepare(model)
    b, _, h, w = x.shape
    plans = [("global", i, None) for i in range(b)]
    if mode == "tiled":
        stride = max(1, round(tile * (1 - overlap)))
        for i in range(b):
            for y in _tile_starts(h, tile, stride):
                for xx in _tile_starts(w, tile, stride):
                    plans.append(("tile", i, (y, xx)))
    total = len(plans)
    per_chunk = max(1, min(batch_size, max_batch_pixels // max(INPUT_SIZE, tile) ** 2))
    glob = torch.zeros(b, h, w)
    acc = torch.zeros(b, h, w)
    norm = torch.zeros(b, h, w)
    done = 0
    with torch.inference_mode(), _autocast(device, precision):
        for start in range(0, total, per_chunk):
            chunk = plans[start : start + per_chunk]
            kinds = {k for k, _, _ in chunk}
            for kind in sorted(kinds):
                items = [(i, pos) for k, i, pos in chunk if k == kind]
                if kind == "global":
                    batch = torch.stack([x[i] for i, _ in items]).to(device)
                    small = F.interpolate(
                        batch,
                        size=(INPUT_SIZE, INPUT_SIZE),
                        mode="bilinear",
                        align_corners=False,
                        antialias=True,
                    )
                    logits = _logits(model, normalize(small), tta)
                    logits = F.interpolate(
                        logits, size=(h, w), mode="bilinear", align_corners=False
                    )
                    probs = logits.softmax(1)[:, ARTIFACT_CLASS].cpu()
                    for (i, _), p in zip(items, probs, strict=True):
                        glob[i] = p
                else:
                    th, tw = min(tile, h), min(tile, w)
                    crops = torch.stack([x[i, :, y : y + th, xx : xx + tw] for i, (y, xx) in items])
                    padded = _pad_small(crops.to(device))
                    logits = _logits(model, normalize(padded), tta)[..., :th, :tw]
                    probs = logits.softmax(1)[:, ARTIFACT_CLASS].cpu()
                    wgt = _tile_weight(th, tw, probs.device)
                    for (i, (y, xx)), p in zip(items, probs, strict=True):
                        acc[i, y : y + th, xx : xx + tw] += p * wgt
                        norm[i, y : y + th, xx : xx + tw] += wgt
            done += len(chunk)
            if progress is not None:
                progress(done, total)
    if mode == "resize":
        return glob
    return global_weight * glob + (1 - global_weight) * acc / norm


def par(probs: Tensor, threshold: float = PAR_THRESHOLD) -> Tensor:
    """Perceptual artifact ratio per image: the fraction of pixels with ``probs > threshold``.

    ``probs`` ``[B,H,W]`` -> ``[B]`` float in 0..1 (the paper's quality score; lower is better).
    """
    if probs.dim() != 3:
        raise ValueError(f"probs must be [B,H,W], got shape {tuple(probs.shape)}")
    return (probs > threshold).float().mean(dim=(1, 2))
