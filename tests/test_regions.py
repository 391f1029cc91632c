"""Zoom-in crop planning, crop + zoom, and stitch."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import assert_soft_close, blob_mask, exact_in_every_dtype
from hypothesis import given, settings
from hypothesis import strategies as st

from comfyui_pal.core import masks, regions

TOL = 1 / 255


def _image(b: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Textured test images: noise plus gradients (harder than smooth content)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = torch.stack([xx, yy, (xx + yy) / 2])[None].expand(b, 3, h, w)
    return (0.6 * base + 0.4 * torch.rand(b, 3, h, w, generator=g)).contiguous()


def _outside_blend(plan: regions.StitchPlan, radius: float) -> torch.Tensor:
    """Bool [B,H,W]: pixels no crop's blend mask touches."""
    b = plan.batch_size
    h, w = plan.source_size
    touched = torch.zeros(b, h, w, dtype=torch.bool)
    for crop in plan.used_crops:
        x0, y0, x1, y1 = crop.box
        weight = regions.blend_mask(crop.mask[None], radius)[0] > 0
        sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        touched[crop.batch_index, sy0:sy1, sx0:sx1] |= weight[
            sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0
        ]
    return ~touched


def _roundtrip(image: torch.Tensor, mask: torch.Tensor, **opts) -> None:
    crops, _, plan = regions.crop_regions(image, mask, **opts)
    out = regions.stitch(image, crops, plan)
    assert out.shape == image.shape
    assert (out - image).abs().max() <= TOL
    outside = _outside_blend(plan, 16)[:, None].expand_as(image)
    assert torch.equal(out[outside], image[outside])


def test_roundtrip_without_edits_returns_the_input():
    image = _image(1, 200, 300)
    mask = blob_mask(200, 300, [(50, 50, 10), (220, 150, 20)])
    _roundtrip(image, mask)


@pytest.mark.parametrize(
    ("h", "w", "blobs"),
    [
        (1, 1, [(0, 0, 0)]),
        (5, 7, [(3, 2, 1)]),
        (64, 8192, [(100, 30, 10), (8000, 10, 5)]),
        (8192 // 16, 64, [(30, 400, 20)]),
        (120, 90, [(0, 0, 8), (89, 119, 6)]),  # touching corners
        (100, 100, [(50, 50, 60)]),  # covers the whole image
    ],
)
def test_roundtrip_on_tiny_wide_and_border_cases(h, w, blobs):
    _roundtrip(_image(1, h, w), blob_mask(h, w, blobs))


def test_roundtrip_in_a_mixed_empty_and_non_empty_batch():
    image = _image(3, 80, 120)
    mask = torch.zeros(3, 80, 120)
    mask[0] = blob_mask(80, 120, [(30, 30, 6)])[0]
    mask[2] = blob_mask(80, 120, [(100, 60, 9)])[0]
    crops, _, plan = regions.crop_regions(image, mask)
    assert [c.batch_index for c in plan.crops] == [0, 2]
    out = regions.stitch(image, crops, plan)
    assert torch.equal(out[1], image[1])
    assert (out - image).abs().max() <= TOL


@settings(max_examples=25, deadline=None)
@given(
    h=st.integers(8, 96),
    w=st.integers(8, 96),
    n=st.integers(1, 4),
    seed=st.integers(0, 10_000),
    radius=st.sampled_from([0, 3, 16]),
    merge=st.booleans(),
    color=st.booleans(),
)
def test_pixels_outside_blend_masks_stay_bit_exact_after_any_edit(
    h, w, n, seed, radius, merge, color
):
    g = torch.Generator().manual_seed(seed)
    image = _image(2, h, w, seed)
    blobs = [
        (
            int(torch.randint(0, w, (1,), generator=g)),
            int(torch.randint(0, h, (1,), generator=g)),
            int(torch.randint(0, 6, (1,), generator=g)),
        )
        for _ in range(n)
    ]
    mask = blob_mask(h, w, blobs, batch=2)
    mask[1] = torch.flip(mask[1], dims=(0,))
    crops, _, plan = regions.crop_regions(image, mask, merge=merge, min_context=4)
    edited = torch.rand(crops.shape, generator=g)
    out = regions.stitch(image, edited, plan, blend_radius=radius, color_match=color)
    outside = _outside_blend(plan, radius)[:, None].expand_as(image)
    assert torch.equal(out[outside], image[outside])
    assert torch.isfinite(out).all()


def test_edited_mask_pixels_are_replaced_by_the_crop_content():
    image = torch.zeros(1, 3, 100, 100)
    mask = blob_mask(100, 100, [(50, 50, 8)])
    crops, _, plan = regions.crop_regions(image, mask)
    out = regions.stitch(image, torch.ones_like(crops), plan)
    assert torch.allclose(out[0, :, mask[0] > 0], torch.ones(1))


def test_all_crops_share_one_work_size_that_is_a_multiple():
    mask = torch.zeros(1, 300, 500)
    mask[0, 10:20, 10:200] = 1  # wide strip
    mask[0, 150:290, 400:420] = 1  # tall strip
    crops, crop_masks, plan = regions.crop_regions(_image(1, 300, 500), mask, multiple=64)
    wh, ww = plan.work_size
    assert wh % 64 == 0 and ww % 64 == 0 and max(wh, ww) == 512
    assert crops.shape == (2, 3, wh, ww) and crop_masks.shape == (2, wh, ww)


@pytest.mark.parametrize("side", ["long", "short"])
def test_each_window_has_the_work_aspect_so_one_scale_maps_it(side):
    mask = torch.zeros(1, 300, 500)
    mask[0, 10:20, 10:200] = 1
    plan = regions.plan_crops(mask, side=side, target_size=256, multiple=8)
    wh, ww = plan.work_size
    assert (min if side == "short" else max)(wh, ww) == 256
    for crop in plan.crops:
        h, w = crop.size
        assert w * wh == h * ww  # exact aspect: no squash
        assert crop.scale == pytest.approx(ww / w) and crop.scale == pytest.approx(wh / h)


def test_window_holds_the_region_with_its_context():
    mask = torch.zeros(1, 400, 400)
    mask[0, 100:140, 200:260] = 1  # 60 x 40 px region
    plan = regions.plan_crops(mask, context_factor=2.0, min_context=8)
    x0, y0, x1, y1 = plan.crops[0].box
    assert x0 <= 200 - 15 and x1 >= 260 + 15 and y0 <= 100 - 10 and y1 >= 140 + 10


def test_windows_shift_inward_at_the_border():
    mask = torch.zeros(1, 400, 400)
    mask[0, 0:10, 0:10] = 1
    (crop,) = regions.plan_crops(mask).crops
    assert crop.box[0] == 0 and crop.box[1] == 0


def test_windows_larger_than_the_image_are_padded():
    image = _image(1, 20, 200)
    mask = torch.zeros(1, 20, 200)
    mask[0, 5:15, 90:110] = 1
    plan = regions.plan_crops(mask, min_context=32)
    (crop,) = plan.crops
    assert crop.box[1] < 0 and crop.box[3] > 20  # taller than the image: padded both sides
    crops, _ = regions.zoom_crops(image, plan)
    assert crops.shape[0] == 1


@pytest.mark.parametrize("mode", ["reflect", "edge"])
def test_cut_window_pads_by_mode(mode):
    img = torch.arange(5.0).view(1, 1, 5)
    win = regions.cut_window(img, (-2, 0, 7, 1), mode)[0, 0].tolist()
    expected = {"reflect": [2, 1, 0, 1, 2, 3, 4, 3, 2], "edge": [0, 0, 0, 1, 2, 3, 4, 4, 4]}
    assert win == expected[mode]


def test_nearby_regions_merge_and_distant_ones_do_not():
    mask = blob_mask(300, 600, [(100, 100, 8), (130, 100, 8), (500, 200, 8)])
    plan = regions.plan_crops(mask)
    assert [c.region_ids for c in plan.crops] == [[1, 2], [3]]
    statuses = {r["id"]: r["status"] for r in plan.report}
    assert statuses == {1: "merged", 2: "merged", 3: "kept"}
    separate = regions.plan_crops(mask, merge=False)
    assert [c.region_ids for c in separate.crops] == [[1], [2], [3]]


def test_merging_repeats_until_merged_windows_no_longer_overlap():
    # a chain: A overlaps B, and the merged AB window then reaches C
    mask = blob_mask(200, 800, [(100, 100, 5), (150, 100, 5), (205, 100, 5)])
    plan = regions.plan_crops(mask, context_factor=2.0, min_context=20)
    assert len(plan.crops) == 1 and plan.crops[0].region_ids == [1, 2, 3]


def test_max_regions_keeps_the_largest_and_reports_the_rest():
    mask = blob_mask(300, 900, [(100, 100, 5), (450, 100, 30), (800, 100, 15)])
    plan = regions.plan_crops(mask, max_regions=2)
    by_area = sorted(plan.report, key=lambda r: r["area_px"])
    kept = sorted(i for c in plan.crops for i in c.region_ids)
    assert kept == sorted(r["id"] for r in by_area[1:])
    skipped = [r for r in plan.report if r["status"] == "skipped"]
    assert skipped == [by_area[0]] and "max_regions" in skipped[0]["reason"]


def test_crop_masks_only_hold_their_own_regions():
    mask = blob_mask(200, 200, [(60, 100, 6), (90, 100, 6)])
    _crops, _crop_masks, plan = regions.crop_regions(_image(1, 200, 200), mask, merge=False)
    assert len(plan.crops) == 2
    for crop in plan.crops:
        _labels, counts = masks.label(crop.mask[None] > 0)
        assert counts == [1]


def test_empty_mask_yields_an_unused_placeholder_and_stitch_returns_the_input():
    image = _image(2, 64, 96)
    crops, crop_masks, plan = regions.crop_regions(image, torch.zeros(1, 64, 96))
    assert crops.shape[0] == 1 and not plan.crops[0].used and plan.used_crops == []
    assert crop_masks.max() == 0
    out = regions.stitch(image, torch.rand_like(crops), plan)
    assert torch.equal(out, image)


def test_stitch_plan_survives_a_json_round_trip():
    image = _image(1, 120, 160)
    mask = blob_mask(120, 160, [(40, 40, 7), (120, 90, 5)]) * 0.8
    crops, _, plan = regions.crop_regions(image, mask)
    text = plan.to_json()
    json.loads(text)
    again = regions.StitchPlan.from_json(text)
    edited = torch.rand_like(crops)
    assert torch.equal(regions.stitch(image, edited, plan), regions.stitch(image, edited, again))


def test_stitch_accepts_crops_returned_at_another_size():
    image = _image(1, 150, 150)
    mask = blob_mask(150, 150, [(70, 70, 10)])
    crops, _, plan = regions.crop_regions(image, mask, target_size=256)
    bigger = regions.resize(crops, (512, 512)).clamp(0, 1)
    out = regions.stitch(image, bigger, plan)
    inside = mask[0] > 0
    assert (out - image)[0][:, inside].abs().max() < 0.1


def test_color_match_removes_a_global_colour_cast():
    image = _image(1, 128, 128) * 0.5 + 0.25
    mask = blob_mask(128, 128, [(64, 64, 12)])
    crops, _, plan = regions.crop_regions(image, mask)
    cast = (crops + torch.tensor([0.15, -0.1, 0.05]).view(1, 3, 1, 1)).clamp(0, 1)
    plain = regions.stitch(image, cast, plan)
    matched = regions.stitch(image, cast, plan, color_match=True)
    inside = (mask[0] > 0)[None].expand(3, -1, -1)
    err_plain = (plain[0] - image[0])[inside].abs().mean()
    err_matched = (matched[0] - image[0])[inside].abs().mean()
    assert err_matched < 0.5 * err_plain


def test_color_match_keeps_an_unedited_roundtrip_exact_enough():
    image = _image(1, 100, 100)
    mask = blob_mask(100, 100, [(50, 50, 10)])
    crops, _, plan = regions.crop_regions(image, mask)
    out = regions.stitch(image, crops, plan, color_match=True)
    assert (out - image).abs().max() <= TOL


def test_single_mask_broadcasts_over_the_batch():
    image = _image(3, 50, 60)
    _crops, _, plan = regions.crop_regions(image, blob_mask(50, 60, [(20, 20, 4)]))
    assert [c.batch_index for c in plan.crops] == [0, 1, 2]


def test_zoom_uses_antialiasing_when_shrinking():
    image = torch.zeros(1, 1, 600, 600)
    image[..., ::2, :] = 1.0  # one-pixel stripes alias badly without a low-pass
    mask = torch.zeros(1, 600, 600)
    mask[0, 100:500, 100:500] = 1
    crops, _, plan = regions.crop_regions(image, mask, target_size=128)
    assert plan.crops[0].scale < 1
    assert (crops - 0.5).abs().max() < 0.05


@pytest.mark.parametrize(
    ("image", "mask", "message"),
    [
        (torch.rand(1, 3, 10, 10), torch.zeros(1, 10, 12), "mask is 12x10 but image is 10x10"),
        (torch.rand(2, 3, 10, 10), torch.zeros(3, 10, 10), "3 masks but image batch has 2"),
        (torch.rand(3, 10, 10), torch.zeros(1, 10, 10), r"\[B,C,H,W\]"),
        (torch.full((1, 3, 4, 4), float("nan")), torch.zeros(1, 4, 4), "NaN"),
        (torch.rand(1, 3, 4, 4), torch.zeros(1, 4, 4, dtype=torch.uint8), "float"),
    ],
)
def test_bad_inputs_raise_naming_the_problem(image, mask, message):
    with pytest.raises(ValueError, match=message):
        regions.crop_regions(image, mask)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"min_context": -1}, "min_context"),
        ({"multiple": 12}, "multiple of 8"),
        ({"target_size": 4}, "target_size"),
        ({"context_factor": 0.5}, "context_factor"),
        ({"side": "diagonal"}, "side"),
        ({"pad_mode": "wrap"}, "pad_mode"),
    ],
)
def test_bad_plan_options_raise(option, message):
    with pytest.raises(ValueError, match=message):
        regions.plan_crops(torch.zeros(1, 8, 8), **option)


def test_stitch_rejects_a_crop_batch_of_the_wrong_length():
    image = _image(1, 60, 60)
    mask = blob_mask(60, 60, [(10, 10, 3), (50, 50, 3)])
    crops, _, plan = regions.crop_regions(image, mask, merge=False)
    with pytest.raises(ValueError, match=f"got 1 crops but the stitch plan has {len(plan.crops)}"):
        regions.stitch(image, crops[:1], plan)


def test_stitch_rejects_a_different_image():
    image = _image(1, 60, 60)
    crops, _, plan = regions.crop_regions(image, blob_mask(60, 60, [(10, 10, 3)]))
    with pytest.raises(ValueError, match="stitch plan was made for"):
        regions.stitch(_image(1, 60, 61), crops, plan)


def test_blend_mask_reaches_exactly_as_far_as_documented():
    m = torch.zeros(1, 101, 101)
    m[0, 50, 50] = 1
    radius = 16
    weight = regions.blend_mask(m, radius)[0]
    reach = math.ceil(radius / 2) + math.ceil(3 * radius / 4)
    yy, xx = torch.meshgrid(torch.arange(101), torch.arange(101), indexing="ij")
    dist = ((yy - 50) ** 2 + (xx - 50) ** 2).float().sqrt()
    assert torch.all(weight[dist > reach] == 0)
    assert torch.all(weight[dist <= radius / 2] > 0.97)


# --- every device and dtype: the float32 CPU result, in the input's dtype and device --------


def _scene() -> tuple[torch.Tensor, torch.Tensor]:
    """A ``[2,3,60,90]`` image and ``[2,60,90]`` 0/1 mask that every dtype holds exactly."""
    mask = blob_mask(60, 90, [(20, 20, 6), (70, 40, 9)], batch=2)
    mask[1] = torch.flip(mask[1], dims=(1,))
    return exact_in_every_dtype(_image(2, 60, 90)), mask


def _edit(crops: torch.Tensor) -> torch.Tensor:
    """An inpainter's output: new content that every dtype holds exactly."""
    g = torch.Generator().manual_seed(3)
    return exact_in_every_dtype(torch.rand(crops.shape, generator=g))


def _same_kind(out: torch.Tensor, device: torch.device, dtype: torch.dtype) -> None:
    assert out.device.type == device.type and out.dtype == dtype


def test_plan_crops_plans_the_same_crops_in_every_dtype_and_device(device, dtype):
    _, mask = _scene()
    plan = regions.plan_crops(mask.to(device, dtype), target_size=64)
    reference = regions.plan_crops(mask, target_size=64)
    assert plan.to_dict(include_masks=False) == reference.to_dict(include_masks=False)
    for crop, ref in zip(plan.crops, reference.crops, strict=True):
        assert torch.equal(crop.mask.cpu().float(), ref.mask)


def test_cut_window_is_exact_in_every_dtype_and_device(device, dtype):
    image, _ = _scene()
    box = (-7, 40, 30, 75)  # past the left and bottom borders
    out = regions.cut_window(image[0].to(device, dtype), box, "reflect")
    _same_kind(out, device, dtype)
    assert torch.equal(out.cpu().float(), regions.cut_window(image[0], box, "reflect"))


@pytest.mark.parametrize("size", [(128, 192), (23, 31)], ids=["up", "down"])
@pytest.mark.parametrize("mode", ["bicubic", "bilinear"])
def test_resize_matches_float32_in_every_dtype_and_device(size, mode, device, dtype):
    image, _ = _scene()
    out = regions.resize(image.to(device, dtype), size, mode)
    _same_kind(out, device, dtype)
    assert_soft_close(out, regions.resize(image, size, mode))


def test_blend_mask_matches_float32_in_every_dtype_and_device(device, dtype):
    _, mask = _scene()
    out = regions.blend_mask(mask.to(device, dtype), 8)
    _same_kind(out, device, dtype)
    assert_soft_close(out, regions.blend_mask(mask, 8))


def test_crop_regions_matches_float32_in_every_dtype_and_device(device, dtype):
    image, mask = _scene()
    crops, crop_masks, _ = regions.crop_regions(
        image.to(device, dtype), mask.to(device, dtype), target_size=64
    )
    ref_crops, ref_masks, _ = regions.crop_regions(image, mask, target_size=64)
    _same_kind(crops, device, dtype)
    _same_kind(crop_masks, device, dtype)
    assert_soft_close(crops, ref_crops)
    assert_soft_close(crop_masks, ref_masks)


@pytest.mark.parametrize("color_match", [False, True])
def test_stitch_matches_float32_in_every_dtype_and_device(color_match, device, dtype):
    image, mask = _scene()
    crops, _, plan = regions.crop_regions(image, mask, target_size=64)
    x = image.to(device, dtype)
    out = regions.stitch(x, _edit(crops).to(device, dtype), plan, color_match=color_match)
    _same_kind(out, device, dtype)
    reference = regions.stitch(image, _edit(crops), plan, color_match=color_match)
    assert_soft_close(out, reference, steps=2)  # resampled, mixed, colour matched


def test_stitch_keeps_far_pixels_bit_exact_in_every_dtype_and_device(device, dtype):
    image, mask = _scene()
    x = image.to(device, dtype)
    crops, _, plan = regions.crop_regions(x, mask.to(device, dtype), target_size=64)
    out = regions.stitch(x, _edit(crops), plan)
    _, _, cpu_plan = regions.crop_regions(image, mask, target_size=64)  # the same plan
    outside = _outside_blend(cpu_plan, 16)[:, None].expand_as(image).to(device)
    assert outside.any() and torch.equal(out[outside], x[outside])


def test_grouping_of_many_boxes_matches_the_pairwise_rule_on_both_paths():
    from comfyui_pal.core import regions as R

    g = torch.Generator().manual_seed(5)
    xy = torch.randint(0, 900, (300, 2), generator=g)
    boxes = [(x, y, x + 3, y + 3) for x, y in xy.tolist()]
    groups = R._merge_groups(boxes, 1.5, 6)
    ctx = [R.context_box(b, 1.5, 6) for b in boxes]
    owner = {i: k for k, grp in enumerate(groups) for i in grp}
    assert sorted(owner) == list(range(300))
    for i in range(300):  # boxes whose contexts overlap always share a group
        for j in range(i + 1, 300):
            a, b = ctx[i], ctx[j]
            if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                assert owner[i] == owner[j]
    full = R._context_boxes(torch.tensor(boxes, dtype=torch.float64), 1.5, 6)
    by_pairs, by_sweeps = R._components(full), R._components(full, rows=64, max_edges=0)
    same = by_pairs[:, None] == by_pairs[None, :]
    assert torch.equal(same, by_sweeps[:, None] == by_sweeps[None, :])
    assert 1 < len(groups) < 300
