"""Artifact detection: batched, chunked inference returning soft artifact probabilities.

Modes:
- ``resize`` (the paper's): resize each image to 512x512 with the model's own
  ``input_resample`` filter, run, resize the logits back bilinearly. The official PAL4VST
  model uses antialiased bicubic, because the official app resizes its input with PIL's
  ``Image.resize(..., BICUBIC)``; torch's antialiased bicubic uses PIL's kernel (a = -0.5,
  support scaled with the downsampling factor), so the model sees what it saw there (tested
  against PIL on non-512 inputs). The shipped PAL-Lite uses antialiased bilinear, what it was
  tuned with (bicubic raised its false alarms on real generated images). Models that do not
  say (any ``nn.Module``) get bicubic.
- ``tiled``: 512 px windows at native resolution with overlap, blended with a smooth weight,
  fused with the global ``resize`` pass, so 1024-2048 px images keep small artifacts.

Optional horizontal-flip test-time augmentation; fp16 / bf16 autocast on GPU; everything under
``torch.inference_mode``. ``detect_resized`` is the same on inputs resized beforehand (by a CPU
worker: ``pipelines.score``). Images are the library's ``[B,C,H,W]`` float 0..1 (C = 1, 3 or 4).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..constants import ARTIFACT_CLASS, INPUT_SIZE, MEAN_RGB, PAR_THRESHOLD, STD_RGB
from ..core.checks import check_image
from ..core.layout import to_rgb
from ..options import option, pick, validate

MODES = ("resize", "tiled")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
MIN_SIDE = 32  # smaller images are padded (reflect) up to this before inference
# images at most this long (px) are seen at their own size by models trained at native scale
# (PAL-Lite): synthetic validation F1 at 64 / 128 px 0.28 / 0.22 enlarged to 512, 0.40 / 0.57
# at their own size. Above it, the 512 pass stays: at 400 px their own size found more planted
# artifacts but flagged busy real textures (knitwear) in generated thumbnails
OWN_SIZE_BELOW = 128

Progress = Callable[[int, int], None]  # (done, total); may raise to interrupt


def normalize(images: Tensor) -> Tensor:
    """``[B,3,H,W]`` RGB 0..1 -> the model's input: ``(255 x - mean) / std`` per channel."""
    mean = torch.tensor(MEAN_RGB, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    std = torch.tensor(STD_RGB, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    return (images * 255.0 - mean) / std


@dataclass
class DetectOptions:
    """How to run the detector; shared by ``detect``, the nodes and the CLI."""

    mode: str = option(
        "resize",
        "resize: the paper's 512x512 pass (the model's own resize filter). tiled: "
        "native-resolution windows fused with it (keeps small artifacts on big images).",
        choices=MODES,
    )
    tta: bool = option(False, "Average with a mirrored pass: fewer false alarms, 2x slower.")
    batch_size: int = option(
        2,
        "Images or tiles per model call, exactly (the full Swin-B needs about 0.7 GB of "
        "activations per 512x512 item); halved with a warning only on out-of-memory.",
        min=1,
        max=256,
    )
    tile: int = option(INPUT_SIZE, "Tile size of the tiled mode (px).", min=MIN_SIDE, max=4096)
    overlap: float = option(0.25, "Overlap of neighbouring tiles (fraction).", min=0, max=0.95)
    global_weight: float = option(
        0.5, "Weight of the global resize pass in the tiled mode's fusion.", min=0, max=1
    )
    precision: str = option(
        "auto", "Autocast precision on GPU; the CPU always runs fp32.", choices=PRECISIONS
    )

    def __post_init__(self) -> None:
        validate(self)


def as_rgb_bchw(images: Tensor) -> Tensor:
    """``[B,C,H,W]`` (C = 1, 3 or 4) -> RGB ``[B,3,H,W]`` float32 in 0..1, checked; a view of
    ``images`` (no copy) when they already are float32 RGB in 0..1."""
    check_image(images)
    x = to_rgb(images.float())
    lo, hi = x.aminmax()
    return x.clamp(0, 1) if lo < 0 or hi > 1 else x


def _artifact_probability(logits: Tensor, size: tuple[int, int] | None = None) -> Tensor:
    """``softmax(logits)[:, ARTIFACT_CLASS]`` ``[N,h,w]`` of ``[N,K,h,w]`` logits, resized
    (bilinear) to ``size`` first if given. With two classes it is the sigmoid of the logit
    difference, resized before the sigmoid (bilinear resizing is linear, so this equals
    resizing both logits): one full-size map instead of three."""
    if logits.shape[1] == 2:
        other = 1 - ARTIFACT_CLASS
        d = logits[:, ARTIFACT_CLASS : ARTIFACT_CLASS + 1] - logits[:, other : other + 1]
        if size is not None:
            d = F.interpolate(d, size=size, mode="bilinear", align_corners=False)
        return d[:, 0].sigmoid_()
    if size is not None:
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
    return logits.softmax(1)[:, ARTIFACT_CLASS]


RESAMPLES = ("bicubic", "bilinear")


def resize_input(x: Tensor, size: int = INPUT_SIZE, resample: str = "bicubic") -> Tensor:
    """``[N,3,h,w]`` -> ``[N,3,size,size]``, antialiased: ``bicubic`` is PIL's ``BICUBIC``
    filter, ``bilinear`` PIL's ``BILINEAR``.

    Bicubic may overshoot 0..1 slightly at hard edges, like PIL's before its uint8 clip; the
    result is clamped, so it matches PIL's on 8-bit input to within rounding.
    """
    if resample not in RESAMPLES:
        raise ValueError(f"resample must be one of {RESAMPLES}, got {resample!r}")
    out = F.interpolate(x, size=(size, size), mode=resample, align_corners=False, antialias=True)
    return out.clamp(0, 1)


def _compute_dtype(device: torch.device, precision: str) -> torch.dtype:
    """The dtype the model computes in for ``precision`` (one of ``PRECISIONS``) on ``device``."""
    if precision == "fp32" or (precision == "auto" and device.type == "cpu"):
        return torch.float32
    if precision == "auto":
        bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if bf16 else torch.float16
    return torch.float16 if precision == "fp16" else torch.bfloat16


def _autocast(device: torch.device, precision: str):
    """Autocast context for ``precision`` (checked by DetectOptions)."""
    dtype = _compute_dtype(device, precision)
    if dtype == torch.float32:
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=dtype)


def detect_bytes(
    model: nn.Module, h: int, w: int, options: DetectOptions, device: torch.device
) -> int:
    """Device memory (bytes) ``detect`` needs beyond the weights for ``[*,C,h,w]`` images on
    ``device``: one model call's peak (``batch_size`` items at the model's input size, or
    tiles), the logits a mirrored pass keeps meanwhile, and one full-size probability map
    (float32; made image by image), with the tiled mode's per-tile maps."""
    from ..models.memory import forward_bytes

    n = options.batch_size
    dtype = _compute_dtype(device, options.precision)
    shapes = [(n, 3, INPUT_SIZE, INPUT_SIZE)]
    if options.mode == "tiled":
        th, tw = max(MIN_SIDE, min(options.tile, h)), max(MIN_SIDE, min(options.tile, w))
        shapes.append((n, 3, th, tw))
    call = max(forward_bytes(model, s, dtype) + 2 * 4 * s[0] * s[2] * s[3] for s in shapes)
    return call + h * w * 4


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


def work_size(h: int, w: int, upsample: bool = True) -> int:
    """Side (px) of the square the resize mode brings an ``h`` x ``w`` image to: 512, or
    without ``upsample`` (a model whose ``upsamples_input`` is False) for an image whose long
    side is at most ``OWN_SIZE_BELOW`` px that side rounded up to 32 px (at least 32), so a
    16x16 thumbnail costs a 32x32 pass, not a 512x512 one."""
    if upsample or max(h, w) > OWN_SIZE_BELOW:
        return INPUT_SIZE
    return max(MIN_SIDE, -(-max(h, w) // 32) * 32)


def upsamples_input(model: nn.Module) -> bool:
    """Whether ``model`` sees smaller images enlarged to 512x512 (its ``upsamples_input``,
    else True, as the released PAL4VST models)."""
    return getattr(model, "upsamples_input", True)


def input_resample(model: nn.Module) -> str:
    """The filter (one of ``RESAMPLES``) that brings an image to the model's 512x512 input:
    the model's own ``input_resample``, else bicubic."""
    return getattr(model, "input_resample", "bicubic")  # what the model was trained with


def _options(options: DetectOptions | None, overrides: dict) -> DetectOptions:
    """``options`` with keyword ``overrides`` of its fields, checked."""
    if options is not None and not isinstance(options, DetectOptions):
        raise TypeError(
            f"detect(model, images, options): options must be DetectOptions, got {options!r}; "
            "pass single settings as keywords, e.g. detect(model, images, mode='tiled')"
        )
    return pick(DetectOptions, vars(options) if options else {}, **overrides)


def detect(
    model: nn.Module,
    images: Tensor,
    options: DetectOptions | None = None,
    *,
    progress: Progress | None = None,
    **overrides,
) -> Tensor:
    """Artifact probabilities ``[B,H,W]`` in 0..1 for images ``[B,C,H,W]`` float 0..1.

    ``options`` (or keyword ``overrides`` of its fields, e.g. ``mode="tiled"``) say how:
    ``resize`` or ``tiled`` mode, mirrored TTA, ``batch_size`` items per model call (kept
    exactly; halved with a ``ResourceWarning`` only when the device runs out of memory),
    tile size, overlap and fusion weight, autocast precision. ``progress(done, total)`` is
    called after each chunk and may raise to stop. Grayscale and RGBA images are converted;
    images under 32 px are padded.
    """
    opt = _options(options, overrides)
    x = as_rgb_bchw(images)
    resample = input_resample(model)

    side = work_size(*x.shape[-2:], upsamples_input(model))

    def resized(i: int, device: torch.device) -> Tensor:  # one image at a time at full size
        return resize_input(x[i : i + 1].to(device), side, resample)

    return _run(model, opt, x.shape[0], x.shape[-2:], resized, x, progress)


def detect_resized(
    model: nn.Module,
    resized: Tensor,
    size: tuple[int, int],
    options: DetectOptions | None = None,
    *,
    full: Tensor | None = None,
) -> Tensor:
    """``detect`` of images whose global-pass input was made beforehand (e.g. by a CPU
    worker, ``pipelines.score.prepare``): artifact probabilities ``[B,H,W]``, ``(H, W) =
    size``.

    ``resized`` ``[B,3,S,S]`` float 0..1 is ``resize_input(images, S, input_resample(model))``
    with ``S = work_size(H, W, upsamples_input(model))``; ``full`` ``[B,3,H,W]`` (the images
    themselves, RGB 0..1) is needed by the tiled mode only. Equals ``detect(model, images,
    options)`` when the resize ran on the same device.
    """
    opt = _options(options, {})
    b = resized.shape[0]
    side = work_size(*size, upsamples_input(model))
    if resized.shape[1:] != (3, side, side):
        raise ValueError(
            f"resized must be [B,3,{side},{side}] (resize_input's output at work_size), got "
            f"{tuple(resized.shape)}"
        )
    if opt.mode == "tiled" and (full is None or tuple(full.shape) != (b, 3, *size)):
        got = None if full is None else tuple(full.shape)
        raise ValueError(
            f"the tiled mode needs the full images [{b},3,{size[0]},{size[1]}], got {got}; "
            "pass full= (the images the resized batch was made from)"
        )
    return _run(model, opt, b, size, lambda i, dev: resized[i : i + 1].to(dev), full, progress=None)


def _run(
    model: nn.Module,
    opt: DetectOptions,
    b: int,
    size: tuple[int, int],
    resized: Callable[[int, torch.device], Tensor],
    x: Tensor | None,
    progress: Progress | None,
) -> Tensor:
    """``detect``'s work for ``b`` images of ``size`` ``(H, W)``: ``resized(i, device)`` is
    image i's global-pass input ``[1,3,512,512]`` on ``device``; ``x`` ``[b,3,H,W]`` the images
    (read by the tiled mode only)."""
    from ..cache import CACHE

    h, w = size
    device = CACHE.prepare(model, lambda dev: detect_bytes(model, h, w, opt, dev))
    tile, tta = opt.tile, opt.tta
    plans = [("global", i, None) for i in range(b)]
    if opt.mode == "tiled":
        stride = max(1, round(tile * (1 - opt.overlap)))
        for i in range(b):
            for y in _tile_starts(h, tile, stride):
                for xx in _tile_starts(w, tile, stride):
                    plans.append(("tile", i, (y, xx)))
    total = len(plans)
    glob = torch.zeros(b, h, w)
    tiled = opt.mode == "tiled"
    acc = torch.zeros(b, h, w) if tiled else None
    norm = torch.zeros(b, h, w) if tiled else None

    def run(chunk: list) -> None:
        for kind in sorted({k for k, _, _ in chunk}):
            items = [(i, pos) for k, i, pos in chunk if k == kind]
            if kind == "global":
                small = torch.cat([resized(i, device) for i, _ in items])
                logits = _logits(model, normalize(small), tta)
                for (i, _), row in zip(items, logits, strict=True):
                    glob[i] = _artifact_probability(row[None], (h, w))[0].cpu()
            else:
                th, tw = min(tile, h), min(tile, w)
                crops = torch.stack([x[i, :, y : y + th, xx : xx + tw] for i, (y, xx) in items])
                padded = _pad_small(crops.to(device))
                logits = _logits(model, normalize(padded), tta)[..., :th, :tw]
                probs = _artifact_probability(logits).cpu()
                wgt = _tile_weight(th, tw, probs.device)
                for (i, (y, xx)), p in zip(items, probs, strict=True):
                    acc[i, y : y + th, xx : xx + tw] += p * wgt
                    norm[i, y : y + th, xx : xx + tw] += wgt

    per_chunk, done = opt.batch_size, 0
    with torch.inference_mode(), _autocast(device, opt.precision):
        while done < total:
            chunk = plans[done : done + per_chunk]
            try:
                run(chunk)  # writes its items only after the model call succeeded
            except torch.cuda.OutOfMemoryError:
                if per_chunk == 1:
                    raise
                per_chunk = max(1, per_chunk // 2)
                warnings.warn(
                    f"detect: out of memory on {device} with batch_size={len(chunk)}; "
                    f"continuing with batch_size={per_chunk} (set a smaller batch_size to "
                    "avoid the retry)",
                    ResourceWarning,
                    stacklevel=3,  # the caller of detect / detect_resized
                )
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            done += len(chunk)
            if progress is not None:
                progress(done, total)
    if opt.mode == "resize":
        return glob
    return opt.global_weight * glob + (1 - opt.global_weight) * acc / norm


def par(probs: Tensor, threshold: float = PAR_THRESHOLD) -> Tensor:
    """Perceptual artifact ratio per image: the fraction of pixels with ``probs > threshold``.

    ``probs`` ``[B,H,W]`` -> ``[B]`` float in 0..1 (the paper's quality score; lower is better).
    """
    if probs.dim() != 3:
        raise ValueError(f"probs must be [B,H,W], got shape {tuple(probs.shape)}")
    return (probs > threshold).float().mean(dim=(1, 2))
