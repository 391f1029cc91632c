"""Mask toolkit: thresholds, round grow / shrink, holes, specks, feather, components."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
import torch
from conftest import assert_soft_close, blob_mask, exact_in_every_dtype
from hypothesis import given, settings
from hypothesis import strategies as st

from comfyui_pal.core import masks


def _disc_dilate_reference(m: np.ndarray, r: int) -> np.ndarray:
    """Brute force: a pixel is set when a foreground pixel lies within Euclidean distance r."""
    h, w = m.shape
    out = np.zeros_like(m, dtype=bool)
    ys, xs = np.nonzero(m)
    for y in range(h):
        for x in range(w):
            if len(ys) and ((ys - y) ** 2 + (xs - x) ** 2 <= r * r).any():
                out[y, x] = True
    return out


def _label_reference(m: np.ndarray, connectivity: int = 8) -> tuple[np.ndarray, int]:
    """Breadth-first labelling in raster order of first pixels."""
    h, w = m.shape
    lab = np.zeros((h, w), dtype=np.int64)
    steps = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    if connectivity == 4:
        steps = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    k = 0
    for y in range(h):
        for x in range(w):
            if m[y, x] and not lab[y, x]:
                k += 1
                lab[y, x] = k
                q = deque([(y, x)])
                while q:
                    cy, cx = q.popleft()
                    for dy, dx in steps:
                        ny, nx = cy + dy, cx + dx
                        if 0 <= ny < h and 0 <= nx < w and m[ny, nx] and not lab[ny, nx]:
                            lab[ny, nx] = k
                            q.append((ny, nx))
    return lab, k


random_masks = st.builds(
    lambda h, w, p, seed: (
        torch.rand(2, h, w, generator=torch.Generator().manual_seed(seed)) < p
    ).float(),
    st.integers(1, 24),
    st.integers(1, 24),
    st.floats(0.0, 1.0),
    st.integers(0, 2**31 - 1),
)


def test_threshold_is_strictly_greater_than_value():
    m = torch.tensor([[[0.2, 0.5, 0.51, 1.0]]])
    assert masks.threshold(m, 0.5).tolist() == [[[0.0, 0.0, 1.0, 1.0]]]


def test_invert_flips_values():
    m = torch.tensor([[[0.0, 0.25, 1.0]]])
    assert masks.invert(m).tolist() == [[[1.0, 0.75, 0.0]]]


@settings(max_examples=40, deadline=None)
@given(random_masks, st.integers(0, 9))
def test_grow_equals_brute_force_disc_dilation(m, r):
    out = masks.grow(m, r)
    for b in range(m.shape[0]):
        ref = _disc_dilate_reference(m[b].numpy() > 0, r)
        assert np.array_equal(out[b].numpy() > 0, ref)


@settings(max_examples=40, deadline=None)
@given(random_masks, st.integers(1, 9))
def test_shrink_is_the_complement_of_growing_the_background_and_keeps_the_border(m, r):
    out = masks.grow(m, -r)
    for b in range(m.shape[0]):
        ref = ~_disc_dilate_reference(m[b].numpy() == 0, r)
        assert np.array_equal(out[b].numpy() > 0, ref)


def test_grow_footprint_is_round():
    m = torch.zeros(1, 41, 41)
    m[0, 20, 20] = 1
    grown = masks.grow(m, 10)
    yy, xx = np.mgrid[-20:21, -20:21]
    assert int(grown.sum()) == int(((yy**2 + xx**2) <= 100).sum())  # 317 lattice points
    assert grown[0, 20, 30] == 1 and grown[0, 27, 27] == 1 and grown[0, 28, 28] == 0


def test_grow_zero_is_identity_and_huge_radius_fills_everything():
    m = blob_mask(30, 50, [(10, 10, 3)])
    assert torch.equal(masks.grow(m, 0), m)
    assert masks.grow(m, 500).min() == 1
    assert masks.grow(m, -500).max() == 0


def test_shrink_does_not_erode_from_the_image_border():
    m = torch.ones(1, 10, 10)
    assert torch.equal(masks.grow(m, -3), m)


def test_grow_rejects_soft_masks_with_a_hint():
    with pytest.raises(ValueError, match="binary"):
        masks.grow(torch.full((1, 4, 4), 0.5), 2)


def test_fill_holes_fills_enclosed_background_only():
    m = blob_mask(40, 40, [(20, 20, 12)]) - blob_mask(40, 40, [(20, 20, 5)])
    m[:, 0:6, 0:6] = 1  # a corner block: the background behind it reaches the border
    filled = masks.fill_holes(m)
    assert torch.equal(filled, torch.maximum(blob_mask(40, 40, [(20, 20, 12)]), m))


def test_fill_holes_leaves_a_gap_open_to_the_border():
    m = torch.zeros(1, 9, 9)
    m[0, 2:7, 2:7] = 1
    m[0, 3:6, 3:6] = 0
    m[0, 4, 6] = 0  # the ring is broken: the inside connects to the outside
    assert torch.equal(masks.fill_holes(m), m)


def test_fill_holes_treats_diagonal_background_gaps_as_closed():
    m = torch.zeros(1, 5, 5)
    m[0, 1, 2] = m[0, 2, 1] = m[0, 2, 3] = m[0, 3, 2] = 1  # diamond: 8-connected ring
    assert masks.fill_holes(m)[0, 2, 2] == 1


@pytest.mark.parametrize("radius", [1, 4, 9])
def test_grow_in_bands_equals_growing_at_once(monkeypatch, radius):
    m = (torch.rand(2, 53, 37, generator=torch.Generator().manual_seed(radius)) < 0.05).float()
    whole = masks.grow(m, radius)
    monkeypatch.setattr(masks, "BAND_PX", 2 * 37 * 5)  # bands of 5 rows
    assert torch.equal(masks.grow(m, radius), whole) and whole.sum() > m.sum()
    assert torch.equal(
        masks.grow(m, -radius), masks._dilate_band((m == 0), radius).logical_not().float()
    )


@pytest.mark.parametrize("seed", range(12))
def test_fill_holes_per_component_equals_labelling_the_whole_background(seed):
    g = torch.Generator().manual_seed(seed)
    b, h, w = 2, 24 + seed, 31
    m = (torch.rand(b, h, w, generator=g) < 0.35 + 0.03 * seed).float()  # nested rings, specks
    m[0, 3:15, 3:15], m[0, 5:13, 5:13], m[0, 7:11, 7:11] = 1.0, 0.0, 1.0
    whole = masks._fill_enclosed(m > 0).float()
    assert torch.equal(masks.fill_holes(m), whole)


def test_fill_holes_on_a_full_mask_is_a_no_op():
    m = torch.ones(2, 6, 7)
    assert torch.equal(masks.fill_holes(m), m)


def test_remove_small_by_pixels_and_by_fraction():
    m = torch.zeros(1, 20, 20)
    m[0, 0:2, 0:2] = 1  # 4 px
    m[0, 10:15, 10:15] = 1  # 25 px
    assert int(masks.remove_small(m, 5).sum()) == 25
    assert int(masks.remove_small(m, 4).sum()) == 29
    assert int(masks.remove_small(m, 0.05).sum()) == 25  # 5 % of 400 px = 20 px
    assert torch.equal(masks.remove_small(m, 0), m)


def test_feather_goes_outward_only_and_stops_at_three_sigma():
    m = blob_mask(64, 64, [(32, 32, 8)])
    f = masks.feather(m, 3.0)
    assert torch.all(f[m > 0] == 1)
    outside = f[m == 0]
    assert outside.max() < 1 and outside.max() > 0.3
    # beyond the kernel (radius ceil(3 sigma) = 9 px) the mask stays exactly 0
    far = masks.grow(m, 10) == 0
    assert torch.all(f[far] == 0)


@settings(max_examples=40, deadline=None)
@given(random_masks, st.sampled_from([4, 8]))
def test_label_matches_breadth_first_reference(m, connectivity):
    labels, counts = masks.label(m, connectivity)
    for b in range(m.shape[0]):
        ref, k = _label_reference(m[b].numpy() > 0, connectivity)
        assert counts[b] == k
        assert np.array_equal(labels[b].numpy(), ref)


def test_label_numbers_each_image_from_one():
    m = torch.zeros(3, 8, 8)
    m[0, 0, 0] = m[0, 5, 5] = 1
    m[2, 3, 3] = 1
    labels, counts = masks.label(m)
    assert counts == [2, 0, 1]
    assert labels[0].max() == 2 and labels[2].max() == 1


def test_label_handles_a_spiral_without_merging_separate_arms():
    m = torch.zeros(1, 64, 64)
    for i in range(0, 30, 4):  # nested square rings, each separate
        m[0, i, i : 64 - i] = m[0, 63 - i, i : 64 - i] = 1
        m[0, i : 64 - i, i] = m[0, i : 64 - i, 63 - i] = 1
    _, counts = masks.label(m)
    assert counts == [8]


def test_find_regions_reports_half_open_boxes_areas_and_probabilities():
    m = torch.zeros(1, 10, 20)
    m[0, 2:5, 3:9] = 1
    m[0, 7, 15] = 1
    probs = torch.zeros(1, 10, 20)
    probs[0, 2:5, 3:9] = 0.5
    probs[0, 3, 4] = 0.9
    probs[0, 7, 15] = 0.7
    r1, r2 = masks.find_regions(m, probs)
    assert r1.box == (3, 2, 9, 5) and r1.area_px == 18 and r1.area_ratio == 18 / 200
    assert r1.max_prob == pytest.approx(0.9) and r1.mean_prob == pytest.approx(
        (17 * 0.5 + 0.9) / 18
    )
    assert r2.box == (15, 7, 16, 8) and r2.area_px == 1 and r2.id == 2
    assert masks.find_regions(torch.zeros(2, 5, 5)) == []


def test_refine_applies_steps_in_order():
    m = blob_mask(50, 50, [(25, 25, 10)]) * 0.8
    m[0, 0, 0] = 0.9  # a speck
    out = masks.refine(m, threshold=0.5, grow=2, min_area=10, feather=2.0, invert=True)
    assert out[0, 0, 0] == 1  # speck dropped, then inverted
    assert out[0, 25, 25] == 0 and out[0, 25, 37] == 0  # grown by 2 then inverted


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (torch.zeros(4, 4), r"\[B,H,W\]"),
        (torch.zeros(1, 1, 4, 4), r"\[B,H,W\]"),
        (torch.zeros(1, 4, 4, dtype=torch.int64), "float"),
        (torch.full((1, 4, 4), float("nan")), "NaN"),
        (torch.full((1, 4, 4), 2.0), "0..1"),
        (torch.zeros(1, 0, 4), "empty"),
        ("not a tensor", "torch.Tensor"),
    ],
)
def test_bad_masks_raise_naming_the_problem(bad, message):
    with pytest.raises(ValueError, match=message):
        masks.threshold(bad)


def test_negative_sizes_raise():
    m = torch.zeros(1, 4, 4)
    with pytest.raises(ValueError, match="min_area"):
        masks.remove_small(m, -1)
    with pytest.raises(ValueError, match="sigma"):
        masks.feather(m, -2.0)


# --- every device and dtype: the float32 CPU result, in the input's dtype and device --------


def _binary_masks() -> torch.Tensor:
    """``[2,40,56]`` 0/1 masks: discs, a speck, a ring with a hole, regions on the border."""
    m = blob_mask(40, 56, [(12, 12, 6), (44, 25, 9), (30, 34, 1)], batch=2)
    m[1] -= blob_mask(40, 56, [(44, 25, 4)])[0]
    m[1, 0:5, 0:7] = 1
    return m


def _soft_masks() -> torch.Tensor:
    """``[2,40,56]`` soft masks in 0..1 whose values every dtype holds exactly."""
    g = torch.Generator().manual_seed(5)
    return exact_in_every_dtype(torch.rand(2, 40, 56, generator=g))


def _same_kind(out: torch.Tensor, device: torch.device, dtype: torch.dtype) -> None:
    assert out.device.type == device.type and out.dtype == dtype


def test_threshold_is_exact_in_every_dtype_and_device(device, dtype):
    m = _soft_masks()
    out = masks.threshold(m.to(device, dtype), 0.6)  # 0.6 is 0.6016 in bfloat16
    _same_kind(out, device, dtype)
    assert torch.equal(out.cpu().float(), masks.threshold(m, 0.6))


def test_invert_is_exact_in_every_dtype_and_device(device, dtype):
    m = _soft_masks()
    out = masks.invert(m.to(device, dtype))
    _same_kind(out, device, dtype)
    assert torch.equal(out.cpu().float(), masks.invert(m))


@pytest.mark.parametrize("px", [4, -3])
def test_grow_and_shrink_are_exact_in_every_dtype_and_device(px, device, dtype):
    m = _binary_masks()
    out = masks.grow(m.to(device, dtype), px)
    _same_kind(out, device, dtype)
    assert torch.equal(out.cpu().float(), masks.grow(m, px))


def test_fill_holes_is_exact_in_every_dtype_and_device(device, dtype):
    m = _binary_masks()
    out = masks.fill_holes(m.to(device, dtype))
    _same_kind(out, device, dtype)
    assert torch.equal(out.cpu().float(), masks.fill_holes(m))


def test_remove_small_is_exact_in_every_dtype_and_device(device, dtype):
    m = _binary_masks()
    out = masks.remove_small(m.to(device, dtype), 20)
    _same_kind(out, device, dtype)
    assert torch.equal(out.cpu().float(), masks.remove_small(m, 20))


def test_label_gives_the_same_int32_labels_in_every_dtype_and_device(device, dtype):
    m = _binary_masks()
    labels, counts = masks.label(m.to(device, dtype))
    ref_labels, ref_counts = masks.label(m)
    assert labels.device.type == device.type and labels.dtype == torch.int32
    assert counts == ref_counts and torch.equal(labels.cpu(), ref_labels)


def test_find_regions_gives_the_same_regions_in_every_dtype_and_device(device, dtype):
    m, probs = _binary_masks(), _soft_masks()
    found = masks.find_regions(m.to(device, dtype), probs.to(device, dtype))
    reference = masks.find_regions(m, probs)
    assert [(r.batch_index, r.id, r.box, r.area_px) for r in found] == [
        (r.batch_index, r.id, r.box, r.area_px) for r in reference
    ]
    assert [r.max_prob for r in found] == [r.max_prob for r in reference]
    assert [r.mean_prob for r in found] == pytest.approx([r.mean_prob for r in reference])


def test_blur_matches_float32_in_every_dtype_and_device(device, dtype):
    m = _soft_masks()
    out = masks.blur(m.to(device, dtype), 1.5)
    _same_kind(out, device, dtype)
    assert_soft_close(out, masks.blur(m, 1.5))


def test_feather_matches_float32_in_every_dtype_and_device(device, dtype):
    m = _binary_masks()
    out = masks.feather(m.to(device, dtype), 2.0)
    _same_kind(out, device, dtype)
    assert_soft_close(out, masks.feather(m, 2.0))
    assert torch.all(out[m.to(device) > 0] == 1)  # still outward only


def test_refine_matches_float32_in_every_dtype_and_device(device, dtype):
    m = _soft_masks()
    opts = {"threshold": 0.6, "grow": 1, "fill_holes": True, "min_area": 8, "feather": 1.0}
    out = masks.refine(m.to(device, dtype), **opts)
    _same_kind(out, device, dtype)
    assert_soft_close(out, masks.refine(m, **opts))
