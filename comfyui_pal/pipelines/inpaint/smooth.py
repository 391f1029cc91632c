"""Fast smooth fill: multi-scale push-pull with harmonic relaxation at every scale."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ...core.checks import check_image, check_mask, match_masks

_SMOOTH_ITERS = 4


def smooth_fill(image: Tensor, mask: Tensor) -> Tensor:
    """Fill the masked pixels of ``image`` ``[B,C,H,W]`` smoothly from their surroundings.

    ``mask`` ``[1|B,H,W]``: pixels with ``mask > 0`` are replaced, all others come back bit
    for bit. Known colours are pushed down an image pyramid (weighted averages), pulled back
    up with bilinear upsampling, and relaxed towards a harmonic (Laplace) fill at each scale.
    A fully masked image is filled with mid-grey. Runs on ``image``'s device (``mask`` is moved
    there).
    """
    check_image(image)
    hole = match_masks(check_mask(mask), image).to(image.device)[:, None] > 0
    known = (~hole).to(image.dtype)
    pyramid = [(image * known, known, hole)]
    while min(pyramid[-1][0].shape[-2:]) > 1:
        c, w, _ = pyramid[-1]
        c2 = F.avg_pool2d(c, 2, ceil_mode=True)
        w2 = F.avg_pool2d(w, 2, ceil_mode=True)
        pyramid.append((c2, w2, w2 < 1))

    filled = None
    for c, w, h in reversed(pyramid):
        base = c / w.clamp(min=1e-12)
        if filled is None:
            up = torch.full_like(c, 0.5)
        else:
            up = F.interpolate(filled, size=c.shape[-2:], mode="bilinear", align_corners=False)
        filled = torch.where(w > 0, base * w + up * (1 - w), up)
        for _ in range(_SMOOTH_ITERS):
            relaxed = F.avg_pool2d(F.pad(filled, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
            filled = torch.where(h, relaxed * (1 - w) + base * w, filled)
    return torch.where(hole, filled, image)
