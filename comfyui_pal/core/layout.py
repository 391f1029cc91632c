"""Layout converters between ComfyUI tensors and the library's layout, in one place.

ComfyUI IMAGE is ``[B,H,W,C]`` float32 0..1; the library works on ``[B,C,H,W]``.
ComfyUI MASK is ``[B,H,W]`` (some nodes emit ``[H,W]``) float 0..1.
"""

from __future__ import annotations

import warnings

from torch import Tensor

from .checks import check_image, check_mask

OUT_OF_RANGE = 1e-3  # IMAGE values beyond 0..1 by more than this are reported


def image_to_bchw(image: Tensor) -> Tensor:
    """ComfyUI IMAGE ``[B,H,W,C]`` -> library ``[B,C,H,W]`` (float32, contiguous).

    Warns (``UserWarning``) when the IMAGE looks like ``[B,C,H,W]`` (1-4 pixels tall and much
    wider) and when its values leave 0..1 (the pipeline clamps them)."""
    if isinstance(image, Tensor) and image.dim() not in (3, 4):
        raise ValueError(
            f"IMAGE must be [B,H,W,C], got a {image.dim()}-D tensor of shape "
            f"{tuple(image.shape)}; a batch of batches or video frames must be flattened to "
            "one batch first (e.g. with a Rebatch / frames-to-batch node)"
        )
    if isinstance(image, Tensor) and image.dim() == 3 and image.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"expected an IMAGE [B,H,W,C] but got shape {tuple(image.shape)}, which looks like "
            "a MASK [B,H,W]; convert it with a MaskToImage node first"
        )
    if isinstance(image, Tensor) and image.dim() == 3:
        image = image[None]
    if isinstance(image, Tensor) and image.dim() == 4 and image.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"IMAGE must be [B,H,W,C] with 1, 3 or 4 channels, got shape {tuple(image.shape)}"
        )
    if isinstance(image, Tensor) and image.shape[1] in (1, 3, 4) and image.shape[2] >= 16:
        warnings.warn(
            f"IMAGE {tuple(image.shape)} is read as [B,H,W,C], an image {image.shape[1]} pixels "
            f"tall and {image.shape[2]} wide; if it is [B,C,H,W], permute it to [B,H,W,C]",
            stacklevel=2,
        )
    out = check_image(image.permute(0, 3, 1, 2) if isinstance(image, Tensor) else image, "image")
    lo, hi = out.aminmax()
    if lo < -OUT_OF_RANGE or hi > 1 + OUT_OF_RANGE:
        warnings.warn(
            f"IMAGE values span {float(lo):.3g}..{float(hi):.3g}, outside 0..1; they are clamped "
            "to 0..1 (a decoder or math node overshot?)",
            stacklevel=2,
        )
    return out.float().contiguous()


def to_rgb(image: Tensor) -> Tensor:
    """``[B,C,H,W]`` with C = 1 (grey), 3 or 4 (RGBA; alpha dropped) -> ``[B,3,H,W]``."""
    if image.shape[1] == 1:
        return image.expand(-1, 3, -1, -1)
    if image.shape[1] == 4:
        return image[:, :3]  # alpha is not part of the picture the generator made
    if image.shape[1] != 3:
        raise ValueError(f"images need 1, 3 or 4 channels, got {image.shape[1]}")
    return image


def bchw_to_image(image: Tensor) -> Tensor:
    """Library ``[B,C,H,W]`` -> ComfyUI IMAGE ``[B,H,W,C]`` (float32, contiguous)."""
    return image.permute(0, 2, 3, 1).float().contiguous()


def comfy_mask(mask: Tensor) -> Tensor:
    """ComfyUI MASK ``[H,W]`` or ``[B,H,W]`` -> checked float ``[B,H,W]``."""
    if isinstance(mask, Tensor) and mask.dim() == 2:
        mask = mask[None]
    if isinstance(mask, Tensor) and mask.dim() == 4 and mask.shape[-1] in (1, 3, 4):
        raise ValueError(
            f"expected a MASK [B,H,W] but got shape {tuple(mask.shape)}, which looks like an "
            "IMAGE [B,H,W,C]; convert it with an ImageToMask node first"
        )
    return check_mask(mask, "mask").float()
