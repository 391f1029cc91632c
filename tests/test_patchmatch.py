"""Built-in PatchMatch inpainter: continues texture, keeps pixels outside, deterministic."""

from __future__ import annotations

import pytest
import torch
from conftest import blob_mask

from comfyui_pal.pipelines.inpaint import patchmatch_fill, smooth_fill


def _stripes(h: int = 96, w: int = 96) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    a = ((xx // 4) % 2).float()
    b = ((yy // 6) % 2).float()
    return torch.stack([a, b, (a + b) / 2])[None]


def test_texture_continues_into_the_hole_better_than_a_smooth_fill():
    image = _stripes()
    mask = blob_mask(96, 96, [(48, 48, 14)])
    hole = mask[0] > 0
    pm = patchmatch_fill(image, mask, seed=0)
    sm = smooth_fill(image, mask)
    err_pm = (pm - image)[0][:, hole].abs().mean()
    err_sm = (sm - image)[0][:, hole].abs().mean()
    assert err_pm < 0.5 * err_sm, (float(err_pm), float(err_sm))


@pytest.mark.parametrize(
    "blobs",
    [[(0, 40, 12)], [(48, 48, 30)], [(10, 10, 3), (80, 70, 6)]],
    ids=["border", "huge", "two"],
)
def test_pixels_outside_the_hole_come_back_bit_exact(blobs):
    image = torch.rand(2, 3, 96, 96)
    mask = blob_mask(96, 96, blobs)
    out = patchmatch_fill(image, mask, seed=1)
    keep = (mask == 0)[:, None].expand_as(image)
    assert torch.equal(out[keep], image[keep])
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


def test_thin_holes_and_fully_masked_images_are_filled():
    image = torch.rand(1, 3, 64, 64)
    thin = torch.zeros(1, 64, 64)
    thin[0, 30, :] = 1
    assert torch.isfinite(patchmatch_fill(image, thin)).all()
    full = patchmatch_fill(image, torch.ones(1, 64, 64))  # no known patch: smooth fallback
    assert torch.allclose(full, torch.full_like(full, 0.5))


def test_the_same_seed_gives_the_same_fill():
    image = _stripes(64, 64)
    mask = blob_mask(64, 64, [(30, 30, 9)])
    assert torch.equal(patchmatch_fill(image, mask, seed=3), patchmatch_fill(image, mask, seed=3))


def test_bad_patch_sizes_raise():
    with pytest.raises(ValueError, match="odd size"):
        patchmatch_fill(torch.rand(1, 3, 16, 16), torch.zeros(1, 16, 16), patch=4)


def test_fills_work_on_the_inputs_device_and_make_nothing_on_the_default_one():
    # a GPU user's tensors stay on the GPU: with the default device set to "meta", any tensor
    # the fills made without the input's device would land there and fail to mix with it
    image = _stripes(80, 72)
    mask = blob_mask(80, 72, [(40, 30, 10), (12, 60, 5)])
    want_pm, want_sm = patchmatch_fill(image, mask, seed=5), smooth_fill(image, mask)
    with torch.device("meta"):
        pm, sm = patchmatch_fill(image, mask, seed=5), smooth_fill(image, mask)
    assert pm.device.type == "cpu" and torch.equal(pm, want_pm) and torch.equal(sm, want_sm)
