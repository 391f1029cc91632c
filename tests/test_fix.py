"""The automatic fix loop, with a stand-in detector (no trained weights needed)."""

from __future__ import annotations

import itertools

import pytest
import torch
from conftest import PixelDetector, blob_mask
from torch import nn

from comfyui_pal.pipelines.fix import FixOptions, changed_mask, fix
from comfyui_pal.training.datasets import procedural_image


class MagentaDetector(nn.Module):
    """Flags saturated magenta pixels: the 'artifact' planted below."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(30.0))

    def forward(self, x):
        # undo the PAL normalisation approximately: x is (255 v - mean) / std
        r, g, b = x[:, 0], x[:, 1], x[:, 2]
        score = (r + b) / 2 - g - 2.5
        return torch.stack([torch.zeros_like(score), self.scale * score], 1)


class TwoColourDetector(PixelDetector):
    """Probability 0.99 on magenta pixels, 0.7 on yellow ones, ~0 elsewhere."""

    def score(self, v):
        r, g, b = v[:, 0], v[:, 1], v[:, 2]
        magenta = (r > 0.9) & (b > 0.9) & (g < 0.1)
        yellow = (r > 0.9) & (g > 0.9) & (b < 0.1)
        return torch.logit(torch.where(magenta, 0.99, torch.where(yellow, 0.7, 0.001)))


# the loop's mechanics, on flat magenta discs: to the acceptance test those hard-edged, saturated
# discs are objects, not blemishes (tests/test_acceptance.py covers that side)
MECHANICS = {"protect": False}


def _paint(img, mask, rgb):
    return torch.where(mask[:, None] > 0, torch.tensor(rgb).view(1, 3, 1, 1), img)


def _scene(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    img = procedural_image(seed, 128, 160)[None] * 0.6 + 0.2
    spot = blob_mask(128, 160, [(50, 60, 9), (120, 40, 6)])
    img = torch.where(spot[:, None] > 0, torch.tensor([1.0, 0.0, 1.0]).view(1, 3, 1, 1), img)
    return img, spot


def test_fixing_removes_flagged_regions_and_lowers_par():
    img, _spot = _scene()
    opts = FixOptions(inpainter="smooth", max_iterations=2, grow=2, **MECHANICS)
    _fixed, final, history = fix(MagentaDetector(), img, opts)
    rounds = [h for h in history if "iteration" in h]
    assert rounds[0]["par"][0] > 0.005 and rounds[-1]["par"][0] == 0.0
    assert final.sum() == 0
    assert len(rounds[0]["fixed"]) == 2


def test_pixels_away_from_the_artifacts_stay_bit_exact():
    img, _spot = _scene(1)
    opts = FixOptions(inpainter="patchmatch", grow=2, blend_radius=8, **MECHANICS)
    fixed, _, _ = fix(MagentaDetector(), img, opts)
    touched = changed_mask(img, fixed)[0] > 0
    reach = 2 + 4 + 6 + 2  # grow + ceil(R/2) + ceil(3R/4) + detector blur margin
    near = blob_mask(128, 160, [(50, 60, 9 + reach), (120, 40, 6 + reach)])[0] > 0
    assert touched.any() and not (touched & ~near).any()


def test_clean_images_pass_through_untouched_in_a_mixed_batch():
    dirty, _ = _scene(2)
    clean = procedural_image(3, 128, 160)[None] * 0.5 + 0.25
    batch = torch.cat([clean, dirty, clean])
    fixed, _, history = fix(MagentaDetector(), batch, FixOptions(inpainter="smooth", **MECHANICS))
    assert torch.equal(fixed[0], batch[0]) and torch.equal(fixed[2], batch[2])
    assert not torch.equal(fixed[1], batch[1])
    assert {r["batch_index"] for r in history[0]["fixed"]} == {1}


def test_the_same_seed_gives_the_same_result():
    img, _ = _scene(4)
    a = fix(MagentaDetector(), img, FixOptions(seed=5))[0]
    b = fix(MagentaDetector(), img, FixOptions(seed=5))[0]
    assert torch.equal(a, b)


def test_a_custom_inpainter_receives_zoomed_crops_and_masks():
    img, _ = _scene(5)
    seen = []

    def recorder(crops, crop_masks, seed):
        seen.append((crops.shape, crop_masks.shape, seed))
        return torch.where(crop_masks[:, None] > 0, torch.full_like(crops, 0.5), crops)

    opts = FixOptions(target_size=256, multiple=64, max_iterations=1, seed=7)
    fix(MagentaDetector(), img, opts, inpaint=recorder)
    ((crops_shape, masks_shape, seed),) = seen
    assert max(crops_shape[2:]) == 256 and all(d % 64 == 0 for d in crops_shape[2:])
    assert masks_shape[0] == crops_shape[0] and seed == 7


def test_a_round_that_raises_par_is_undone():
    img, _ = _scene(6)

    def vandal(crops, crop_masks, seed):  # paints more magenta instead of fixing
        return torch.where(
            crop_masks[:, None] >= 0, torch.tensor([1.0, 0.0, 1.0]).view(1, 3, 1, 1), crops
        )

    fixed, _, history = fix(MagentaDetector(), img, FixOptions(max_iterations=2), inpaint=vandal)
    assert torch.equal(fixed, img)
    assert history[0]["reverted"] == [0]
    records = history[0]["fixed"]
    assert records and all(r["outcome"] in ("undone", "reverted") and r["why"] for r in records)


def test_low_confidence_regions_are_reported_and_left_alone():
    img = procedural_image(7, 128, 160)[None] * 0.6 + 0.2
    sure = blob_mask(128, 160, [(40, 40, 8)])
    unsure = blob_mask(128, 160, [(120, 90, 8)])
    img = _paint(_paint(img, sure, [1.0, 0.0, 1.0]), unsure, [1.0, 1.0, 0.0])
    fixed, final, history = fix(TwoColourDetector(), img, FixOptions(grow=2, **MECHANICS))
    far = (blob_mask(128, 160, [(120, 90, 20)])[0] > 0)[None].expand(3, -1, -1)
    assert torch.equal(fixed[0][far], img[0][far])  # the yellow region is untouched
    assert not torch.equal(fixed, img)  # the magenta one is fixed
    (skip,) = [r for r in history[0]["skipped"] if "min_confidence" in r.get("reason", "")]
    assert skip["mean_prob"] == pytest.approx(0.7, abs=0.01)
    assert final[0][unsure[0] > 0].mean() > 0.8 and not final[0][sure[0] > 0].any()


def test_regions_over_the_cap_are_reported_and_left_alone_biggest_first():
    img = procedural_image(3, 128, 256)[None] * 0.6 + 0.2
    discs = [(30, 40, 10), (100, 40, 4), (170, 40, 7), (230, 90, 5)]
    img = _paint(img, blob_mask(128, 256, discs), [1.0, 0.0, 1.0])
    opts = FixOptions(inpainter="smooth", grow=2, max_iterations=1, max_regions=2, **MECHANICS)
    fixed, _final, history = fix(TwoColourDetector(), img, opts)
    capped = [r for r in history[0]["skipped"] if "max_regions=2" in r.get("reason", "")]
    assert len(history[0]["fixed"]) == 2 and len(capped) == 2
    for (x, y, rad), repainted in zip(discs, [True, False, True, False], strict=True):
        spot = blob_mask(128, 256, [(x, y, rad)])[0] > 0
        assert (fixed[0][:, spot] != img[0][:, spot]).any() == repainted  # the two largest


def test_every_region_record_has_a_key_no_other_record_shares():
    img = procedural_image(7, 128, 160)[None] * 0.6 + 0.2
    img = _paint(img, blob_mask(128, 160, [(40, 40, 8)]), [1.0, 0.0, 1.0])
    img = _paint(img, blob_mask(128, 160, [(120, 90, 8)]), [1.0, 1.0, 0.0])
    _, _, history = fix(TwoColourDetector(), img, FixOptions(grow=2, **MECHANICS))
    records = [r for h in history if "iteration" in h for r in h["fixed"] + h["skipped"]]
    keys = [r["region"] for r in records if "id" in r]
    assert len(records) >= 2 and len(keys) == len(set(keys)) == len(records)


def test_a_change_that_does_not_help_is_undone_and_the_others_kept():
    img = procedural_image(8, 128, 256)[None] * 0.6 + 0.2
    img = _paint(img, blob_mask(128, 256, [(40, 40, 7), (210, 90, 7)]), [1.0, 0.0, 1.0])

    def half_vandal(crops, crop_masks, seed):  # fixes crop 0, repaints crop 1 magenta
        fill = torch.where(crop_masks[:, None] > 0, torch.full_like(crops, 0.5), crops)
        fill[1] = torch.where(
            crop_masks[1] > 0, torch.tensor([1.0, 0.0, 1.0]).view(3, 1, 1), crops[1]
        )
        return fill

    opts = FixOptions(max_iterations=1, grow=2, min_confidence=0.5)
    fixed, _, history = fix(MagentaDetector(), img, opts, inpaint=half_vandal)
    first = blob_mask(128, 256, [(40, 40, 30)])[0] > 0
    second = blob_mask(128, 256, [(210, 90, 30)])[0] > 0
    assert not torch.equal(fixed[0][:, first], img[0][:, first])
    assert torch.equal(fixed[0][:, second], img[0][:, second])
    assert len(history[0]["changes_undone"]) == 1
    assert history[1]["par"][0] < history[0]["par"][0]
    # one record per region says what became of it, and why, with what the detector saw
    by_box = sorted(history[0]["fixed"], key=lambda r: r["box"][0])
    assert [r["outcome"] for r in by_box] == ["repainted", "undone"]
    assert "does not flag less" in by_box[1]["why"] and "why" not in by_box[0]
    assert all(r["mean_prob"] > 0.5 for r in by_box)


def test_built_in_fills_of_huge_regions_work_on_bounded_windows(monkeypatch):
    import comfyui_pal.pipelines.fix as fix_module

    img = procedural_image(9, 600, 700)[None] * 0.6 + 0.2
    big = blob_mask(600, 700, [(350, 300, 200)])
    img = _paint(img, big, [1.0, 0.0, 1.0])
    seen = []

    def recorder(name):
        def fill(crops, crop_masks, seed):
            seen.append(tuple(crops.shape[-2:]))
            return torch.where(crop_masks[:, None] > 0, torch.full_like(crops, 0.5), crops)

        return fill

    monkeypatch.setattr(fix_module, "builtin_inpainter", recorder)
    opts = FixOptions(max_iterations=1, grow=2, max_native_size=256, protect=False)
    *_, history = fix(MagentaDetector(), img, opts)
    assert seen and all(max(s) <= 256 for s in seen)
    assert history[1]["par"][0] < history[0]["par"][0]


def test_progress_runs_once_from_empty_to_full_per_region_and_can_stop():
    img, _spot = _scene()
    seen: list[tuple[float, float]] = []
    opts = FixOptions(inpainter="smooth", max_iterations=4, grow=2, **MECHANICS)
    fix(MagentaDetector(), img, opts, progress=lambda at, until: seen.append((at, until)))
    assert seen[0][0] == 0.0 and seen[-1] == (1.0, 1.0)  # full even though it stops early
    assert all(a <= u <= 1.0 for a, u in seen)
    assert all(p[0] <= q[0] for p, q in itertools.pairwise(seen)), seen
    assert len(seen) >= 2 + 2 + 1  # start, each of the two regions, re-detection, end

    class Stop(Exception):
        pass

    def stop(at, until):
        if at > 0:
            raise Stop

    with pytest.raises(Stop):  # e.g. ComfyUI's interrupt, before the second region
        fix(MagentaDetector(), img, opts, progress=stop)


def test_an_undone_edit_marks_only_the_regions_whose_pixels_it_touches():
    from comfyui_pal.pipelines.fix import _mark

    mask = torch.zeros(1, 40, 40)
    mask[0, 5:15, 5:15] = 1  # region A
    mask[0, 12:30, 18:30] = 1  # region B: its box overlaps the edit's window, not its pixels
    records = [
        {"batch_index": 3, "box": (5, 5, 15, 15), "outcome": "repainted"},
        {"batch_index": 3, "box": (18, 12, 30, 30), "outcome": "repainted"},
    ]
    patch = torch.zeros(20, 20, dtype=torch.bool)
    patch[:12, :12] = True  # the edit covers A (rows/cols 2..13) but none of B
    edit = {"batch_index": 3, "reason": "no", "pixels": (slice(2, 22), slice(2, 22), patch)}
    _mark(records, [edit], "undone", mask, [3])
    assert [r["outcome"] for r in records] == ["undone", "repainted"]
