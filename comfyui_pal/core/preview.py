"""Preview pictures: artifact overlays for people to look at."""

from __future__ import annotations

import torch
from torch import Tensor

OVERLAY_RGB = (1.0, 0.1, 0.1)


def overlay(images: Tensor, probs: Tensor, threshold: float = 0.5, opacity: float = 0.55) -> Tensor:
    """Tint artifact pixels of ``images`` ``[B,3,H,W]`` red by their probability ``[B,H,W]``.

    Pixels at or below ``threshold`` stay untouched; above it the tint grows with the
    probability up to ``opacity``; the region border is drawn solid so small regions show.
    """
    colour = torch.tensor(OVERLAY_RGB, device=images.device).view(1, 3, 1, 1)
    hit = (probs > threshold).float()[:, None]
    alpha = opacity * hit * (0.5 + 0.5 * probs[:, None])
    inner = -torch.nn.functional.max_pool2d(-hit, 3, stride=1, padding=1)
    border = hit - inner
    alpha = torch.maximum(alpha, border)
    return images * (1 - alpha) + colour * alpha


def compare(image: Tensor, probs: Tensor, fixed: Tensor, threshold: float = 0.5) -> Tensor:
    """Side-by-side panel ``[3,H,3W]``: ``image`` ``[1,3,H,W]`` | what was flagged (tinted
    ``probs`` ``[1,H,W]`` above ``threshold``) | ``fixed`` ``[1,3,H,W]``."""
    return torch.cat([image[0], overlay(image, probs, threshold)[0], fixed[0]], dim=2)
