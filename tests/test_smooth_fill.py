"""Built-in smooth fill (push-pull with harmonic relaxation)."""

from __future__ import annotations

import torch
from conftest import blob_mask

from comfyui_pal.pipelines.inpaint import smooth_fill


def test_pixels_outside_the_hole_come_back_bit_exact():
    image = torch.rand(2, 3, 50, 70)
    mask = blob_mask(50, 70, [(30, 20, 9)])
    out = smooth_fill(image, mask)
    keep = (mask == 0)[:, None].expand_as(image)
    assert torch.equal(out[keep], image[keep])


def test_constant_surroundings_fill_with_the_constant():
    image = torch.full((1, 3, 40, 40), 0.3)
    image[:, :, 10:30, 10:30] = 1.0  # the "artifact"
    mask = torch.zeros(1, 40, 40)
    mask[0, 8:32, 8:32] = 1
    assert torch.allclose(smooth_fill(image, mask), torch.full_like(image, 0.3), atol=1e-6)


def test_a_gradient_continues_smoothly_into_the_hole():
    ramp = torch.linspace(0, 1, 64).view(1, 1, 1, 64).expand(1, 3, 64, 64).contiguous()
    mask = blob_mask(64, 64, [(32, 32, 6)])
    out = smooth_fill(ramp, mask)
    inside = mask[0] > 0
    assert (out[0, 0][inside] - ramp[0, 0][inside]).abs().max() < 0.06


def test_hole_touching_the_border_and_a_full_mask_are_filled():
    image = torch.rand(1, 3, 16, 16)
    edge = torch.zeros(1, 16, 16)
    edge[0, :, :4] = 1
    assert torch.isfinite(smooth_fill(image, edge)).all()
    full = smooth_fill(image, torch.ones(1, 16, 16))
    assert torch.allclose(full, torch.full_like(full, 0.5))
