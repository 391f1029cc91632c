"""Synthetic artifact generator: deterministic, families, sizes, masks that match changes."""

from __future__ import annotations

import pytest
import torch

from comfyui_pal.training import synth
from comfyui_pal.training.datasets import procedural_image


@pytest.fixture(scope="module")
def clean():
    return procedural_image(7, 160, 200)


def test_the_same_seed_gives_the_same_corruption(clean):
    a, ma, pa = synth.corrupt(clean, 42)
    b, mb, pb = synth.corrupt(clean, 42)
    assert torch.equal(a, b) and torch.equal(ma, mb) and pa == pb
    c, _, _ = synth.corrupt(clean, 43)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("family", synth.ALL_FAMILIES)
def test_every_family_changes_the_image_and_masks_what_changed(clean, family):
    out, mask, planted = synth.corrupt(
        clean, 3, families=(family,), count=(1, 1), area=(0.05, 0.1), severity=(0.8, 1.0)
    )
    assert [p.family for p in planted] == [family]
    assert out.shape == clean.shape and out.min() >= 0 and out.max() <= 1
    assert mask.sum() > 0
    changed = (out - clean).abs().amax(0) > synth.PERCEPTIBLE
    # the mask covers (almost) every perceptible change; what it adds that did not change
    # is only hairline gaps it closed, next to changed pixels
    assert (changed & (mask == 0)).sum() <= 0.05 * changed.sum() + 20
    near = synth.M.grow(changed[None], 1)[0] > 0
    assert ((mask > 0) & ~near).sum() == 0


def test_pixels_outside_the_planted_shapes_are_untouched(clean):
    out, mask, _ = synth.corrupt(clean, 11, count=(2, 2))
    far = synth.M.grow(mask[None] > 0, 12)[0] == 0
    big_support = (out - clean).abs().amax(0) > 0
    # every changed pixel lies near a shape (soft edges reach a few px past the mask)
    assert not (big_support & far & ((out - clean).abs().amax(0) > synth.PERCEPTIBLE)).any()


def test_shape_sizes_follow_the_requested_area(clean):
    h, w = clean.shape[1:]
    for seed in range(12):
        _, _, planted = synth.corrupt(clean, seed, count=(1, 1), area=(0.02, 0.02))
        for p in planted:
            assert 0.004 * h * w <= p.area_px <= 0.06 * h * w, p


def test_bad_arguments_raise(clean):
    with pytest.raises(ValueError, match="unknown families"):
        synth.corrupt(clean, 0, families=("rainbow",))
    with pytest.raises(ValueError, match=r"\[3,H,W\]"):
        synth.corrupt(clean[None], 0)


@pytest.mark.parametrize("family", ["texture", "latent_mix"])
def test_borrowing_families_use_the_donor(clean, family):
    donor = procedural_image(99, 120, 150)
    kw = dict(families=(family,), count=(1, 1), area=(0.08, 0.1), severity=(0.9, 0.9))
    a, ma, _ = synth.corrupt(clean, 5, donor=donor, **kw)
    b, mb, _ = synth.corrupt(clean, 5, donor=donor, **kw)
    c, _, _ = synth.corrupt(clean, 5, **kw)
    assert torch.equal(a, b) and torch.equal(ma, mb)
    assert not torch.equal(a, c)  # the donor's content, not the image's own


def test_patch_codec_is_a_working_autoencoder(clean):
    codec = synth.default_codec()
    x, _ = synth._padded(clean, codec.patch)
    z = codec.encode(x)
    assert z.shape[0] == codec.basis.shape[0] < 3 * codec.patch**2  # a real bottleneck
    rec = codec.decode(z, x.shape[1:])
    psnr = -10 * torch.log10(((rec - x) ** 2).mean())
    assert psnr > 24, psnr  # smooth content comes back; the bottleneck blurs only fine detail
