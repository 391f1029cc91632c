"""Preview pictures: artifact overlays for people to look at."""

from __future__ import annotations

import torch
from torch import Tensor

OVERLAY_RGB = (1.0, 0.1, 0.1)


def overlay(images: Tensor, probs: Tensor, threshold: float = 0.5, opacity: float = 0.55) -> Tensor:
    """Tint artifact pixels of ``images`` ``[B,3,H,W]`` red by their probability ``[B,H,W]``.

    Pixels at or below ``threshold`` stay untouched; above it the tint grows with the
    probability up to ``opacity``; the region border is drawn solid so small regions show.
    Built in place: one image copy and one alpha map, whatever the size.
    """
    hit = probs > threshold
    alpha = probs.float().mul(0.5 * opacity).add_(0.5 * opacity).mul_(hit)
    outside = torch.nn.functional.max_pool2d((~hit).float()[:, None], 3, stride=1, padding=1)
    alpha.masked_fill_(hit & (outside[:, 0] > 0), 1.0)  # the region's border, drawn solid
    del outside
    out = images.float() * (1 - alpha)[:, None]
    for c, value in enumerate(OVERLAY_RGB):
        out[:, c].add_(alpha, alpha=value)
    return out


PANEL_SIDE = 2048  # the compare panel's tiles are at most this many pixels on a side


def compare(image: Tensor, probs: Tensor, fixed: Tensor, threshold: float = 0.5) -> Tensor:
    """Side-by-side panel ``[3,h,3w]``: ``image`` ``[1,3,H,W]`` | what was flagged (tinted
    ``probs`` ``[1,H,W]`` above ``threshold``) | ``fixed`` ``[1,3,H,W]``. A preview: tiles of
    images larger than ``PANEL_SIDE`` are scaled down (area average) to fit it."""
    h, w = image.shape[-2:]
    scale = min(1.0, PANEL_SIDE / max(h, w))
    if scale < 1:
        size = (max(1, round(h * scale)), max(1, round(w * scale)))

        def small(x: Tensor) -> Tensor:
            return torch.nn.functional.interpolate(x, size=size, mode="area")

        image, fixed, probs = small(image), small(fixed), small(probs[:, None])[:, 0]
    return torch.cat([image[0], overlay(image, probs, threshold)[0], fixed[0]], dim=2)
