"""Input checks shared by the library: each raises ``ValueError`` naming the problem and the fix."""

from __future__ import annotations

import warnings

import torch
from torch import Tensor


def _shape(t: Tensor) -> str:
    return "x".join(str(s) for s in t.shape) or "scalar"


def _check_tensor(x: object, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    return x


def check_finite(x: Tensor, name: str) -> None:
    """Raise if ``x`` holds NaN or inf (a cheap sum first, the exact scan only if it fails)."""
    if bool(torch.isfinite(x.sum())) or bool(torch.isfinite(x).all()):
        return
    bad = int((~torch.isfinite(x)).sum())
    raise ValueError(
        f"{name} holds {bad} NaN/inf values; clean the input (e.g. torch.nan_to_num) first"
    )


def check_mask(mask: object, name: str = "mask") -> Tensor:
    """Check a MASK batch: float ``[B,H,W]`` with values in 0..1, finite, non-empty."""
    mask = _check_tensor(mask, name)
    if mask.dim() != 3:
        raise ValueError(
            f"{name} must be [B,H,W], got shape {_shape(mask)}; "
            "add a batch dimension with mask[None] or pass one mask per image"
        )
    if not mask.is_floating_point():
        raise ValueError(
            f"{name} must be a float tensor in 0..1, got {mask.dtype}; convert with mask.float()"
        )
    if mask.numel() == 0:
        raise ValueError(f"{name} is empty (shape {_shape(mask)}); it needs at least 1x1 pixels")
    check_finite(mask, name)
    lo, hi = (float(v) for v in torch.aminmax(mask))
    if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"{name} values must lie in 0..1, found {lo:g}..{hi:g}; clamp or rescale it"
        )
    return mask


def check_image(image: object, name: str = "image") -> Tensor:
    """Check a library image batch: float ``[B,C,H,W]``, finite, non-empty."""
    image = _check_tensor(image, name)
    if image.dim() != 4:
        raise ValueError(
            f"{name} must be [B,C,H,W], got shape {_shape(image)}; "
            "ComfyUI IMAGE tensors [B,H,W,C] convert with comfyui_pal.core.layout.image_to_bchw"
        )
    if image.shape[1] not in (1, 3, 4) and image.shape[-1] in (1, 3, 4):
        raise ValueError(
            f"{name} is {_shape(image)}, which looks like ComfyUI's IMAGE [B,H,W,C]; the library "
            "takes [B,C,H,W]: convert with comfyui_pal.core.layout.image_to_bchw"
        )
    if image.shape[1] in (1, 3, 4) and image.shape[-1] in (1, 3, 4) and image.shape[2] >= 16:
        warnings.warn(
            f"{name} {_shape(image)} is read as [B,C,H,W], an image {image.shape[-1]} pixels "
            f"wide and {image.shape[2]} tall; if it is a ComfyUI IMAGE [B,H,W,C], convert it "
            "with comfyui_pal.core.layout.image_to_bchw",
            stacklevel=2,
        )
    if not image.is_floating_point():
        raise ValueError(
            f"{name} must be float in 0..1, got {image.dtype}; convert with image.float() / 255"
        )
    if image.numel() == 0:
        raise ValueError(f"{name} is empty (shape {_shape(image)}); it needs at least 1x1 pixels")
    check_finite(image, name)
    return image


def match_masks(mask: Tensor, image: Tensor) -> Tensor:
    """Broadcast a ``[1|B,H,W]`` mask batch over a ``[B,C,H,W]`` image batch.

    A mask batch of 1 serves every image; any other batch or size mismatch raises.
    """
    b, _, h, w = image.shape
    mb, mh, mw = mask.shape
    if (mh, mw) != (h, w):
        raise ValueError(
            f"mask is {mw}x{mh} but image is {w}x{h}; resize the mask to the image size"
        )
    if mb == b:
        return mask
    if mb == 1:
        return mask.expand(b, h, w)
    raise ValueError(
        f"mask batch has {mb} masks but image batch has {b} images; "
        "pass one mask per image or a single mask for all"
    )


def check_nonnegative(value: float, name: str) -> None:
    """Raise if a size-like argument is negative (or NaN)."""
    if not value >= 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
