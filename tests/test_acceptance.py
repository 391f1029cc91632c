"""The repaint acceptance test: real content (objects, structure entering a region) is never
removed; blemishes are repaired."""

from __future__ import annotations

import math

import torch
from conftest import PixelDetector, blob_mask

from comfyui_pal.pipelines import acceptance as A
from comfyui_pal.pipelines.fix import FixOptions, fix
from comfyui_pal.pipelines.inpaint import smooth_fill
from comfyui_pal.training.datasets import procedural_image

H, W = 256, 320


def _background(seed: int = 3) -> torch.Tensor:
    """A quiet textured background ``[3,H,W]`` (sky / wall)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.tensor([0.35, 0.45, 0.6]).view(3, 1, 1).expand(3, H, W).clone()
    return (base + 0.02 * torch.randn(3, H, W, generator=g)).clamp(0, 1)


def _disc(cx: int, cy: int, r: int) -> torch.Tensor:
    return blob_mask(H, W, [(cx, cy, r)])[0] > 0


def _object_scene() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(image with an object, the background alone, the object's region grown by 6 px): a
    striped, bright object with its own structure, like a rocket or a sign."""
    bg = _background()
    obj = _disc(100, 80, 22)
    yy = torch.arange(H).view(H, 1).expand(H, W)
    stripes = ((yy // 4) % 2).float()
    paint = torch.stack([0.9 * stripes + 0.05, 0.85 * stripes + 0.05, 0.2 + 0 * stripes])
    img = torch.where(obj[None], paint, bg)
    region = A.M.grow(obj[None].float(), 6)[0] > 0
    return img, bg, region


def test_removing_an_object_is_refused_before_and_after():
    img, bg, region = _object_scene()
    why = A.triage(A.profile(img, region))
    assert why is not None and why.startswith(A.NEEDS_MODEL) and "object" in why
    # an exemplar / smooth fill of the region makes it background: the verdict refuses that
    erased = smooth_fill(img[None], region[None].float())[0]
    assert A.verdict(img, erased, region) is not None
    assert A.verdict(img, torch.where(region[None], bg, img), region) is not None


def test_a_blemish_on_texture_is_repairable_and_its_repair_accepted():
    clean = procedural_image(11, H, W)
    spot = _disc(70, 90, 14)
    g = torch.Generator().manual_seed(0)
    noisy = torch.where(
        spot[None], (clean + 0.25 * torch.randn(3, H, W, generator=g)).clamp(0, 1), clean
    )
    region = A.M.grow(spot[None].float(), 6)[0] > 0
    assert A.triage(A.profile(noisy, region)) is None
    assert A.verdict(noisy, clean, region) is None  # the true repair
    # a tone island with a soft edge, as generators leave them (a strongly coloured island
    # with a hard edge reads as an object and is left to a diffusion model)
    alpha = A.M._blur(spot[None, None].float(), 2.0)[0]
    tinted = clean * 0.85 + torch.tensor([0.15, 0.0, 0.1]).view(3, 1, 1)
    blotch = clean * (1 - alpha) + tinted * alpha
    assert A.triage(A.profile(blotch, region)) is None
    assert A.verdict(blotch, clean, region) is None


def test_breaking_a_line_that_runs_through_a_region_is_refused():
    img = _background()
    img[:, :, 98:102] = 0.05  # a dark mast from top to bottom
    region = A.M.grow(_disc(100, 80, 16)[None].float(), 6)[0] > 0
    broken = smooth_fill(img[None], region[None].float())[0]
    why = A.verdict(img, broken, region)
    assert why is not None and "removed structure" in why
    # a repaint that keeps the mast (here: the image itself with mild noise) passes
    g = torch.Generator().manual_seed(1)
    kept = (img + 0.01 * torch.randn(img.shape, generator=g)).clamp(0, 1)
    assert A.verdict(img, kept, region) is None


def test_a_large_structured_region_needs_a_model():
    img = procedural_image(5, H, W)
    p = A.profile(img, _disc(100, 80, 60))
    assert p.area > A.Limits().max_area or A.triage(p) is not None
    assert A.triage(p).startswith(A.NEEDS_MODEL)


class YellowDetector(PixelDetector):
    """Flags the object's yellow-ish bright stripes (a false alarm on real content)."""

    def score(self, v):
        r, g, b = v[:, 0], v[:, 1], v[:, 2]
        hit = (r > 0.7) & (g > 0.7) & (b < 0.4)
        # the whole object's box is flagged, as a real detector flags a rocket
        hit = torch.nn.functional.max_pool2d(hit.float()[:, None], 9, 1, 4)[:, 0] > 0
        return torch.logit(torch.where(hit, 0.97, 0.001))


def test_the_fix_keeps_a_flagged_object_and_says_why():
    img, _, _ = _object_scene()
    fixed, _, history = fix(YellowDetector(), img[None], FixOptions(max_iterations=1, tta=False))
    assert torch.equal(fixed, img[None])  # nothing real removed, bit-exact
    reasons = [r["reason"] for r in history[0]["skipped"]]
    assert any(r.startswith(A.NEEDS_MODEL) for r in reasons), reasons
    # without protection the built-in fill erases the object (what the guard prevents)
    erased, _, _ = fix(
        YellowDetector(), img[None], FixOptions(max_iterations=1, tta=False, protect=False)
    )
    assert not torch.equal(erased, img[None])


def test_a_model_inpainter_that_erases_the_object_is_undone():
    img, _, _ = _object_scene()

    def eraser(crops, crop_masks, seed):  # paints the crop's background colour everywhere
        colour = crops[:, :, :2, :2].mean((2, 3), keepdim=True)
        return torch.where(crop_masks[:, None] > 0, colour.expand_as(crops), crops)

    fixed, _, history = fix(
        YellowDetector(), img[None], FixOptions(max_iterations=1, tta=False), inpaint=eraser
    )
    assert torch.equal(fixed, img[None])
    undone = [u for h in history if "changes_undone" in h for u in h["changes_undone"]]
    assert undone and all("reason" in u and "box" in u for u in undone)
    assert math.isfinite(undone[0]["area_px"])


def test_a_repaint_that_carves_a_new_shape_into_plain_content_is_refused():
    img = _background()
    region = _disc(150, 120, 24)
    carved = img.clone()
    hole = _disc(150, 120, 14)
    carved[:, hole] = 0.02  # a dark hole with a bright fragment: a new object, not a repair
    carved[:, _disc(158, 118, 4)] = 0.95
    why = A.verdict(img, carved, region)
    assert why is not None and "new object" in why


def test_cutting_short_a_line_that_ends_inside_a_region_is_refused():
    img = _background()
    img[:, 80:, 98:102] = 0.95  # a bright mast from the bottom edge, its top inside the region
    region = A.M.grow(_disc(100, 80, 20)[None].float(), 6)[0] > 0
    p0 = A.profile(img, region)
    assert p0.depth >= 2 * A.REACH and p0.through == 0  # it enters, reaches deep, never leaves
    cut = torch.where(region[None], _background(), img)  # the mast stops at the outline
    assert A.profile(cut, region, tau=p0.tau).depth < A.Limits().keep_depth * p0.depth
    assert A.verdict(img, cut, region) is not None
    # continuing it to its old top is no loss
    assert A.verdict(img, img, region) is None


def test_a_line_across_a_region_is_counted_both_ways():
    img = _background()
    img[:, :, 98:102] = 0.05
    region = A.M.grow(_disc(100, 80, 16)[None].float(), 6)[0] > 0
    assert A.profile(img, region).through >= 12
    assert A.profile(_background(), region).through == 0


def test_spots_lie_next_to_the_region_on_unflagged_content():
    core = _disc(100, 80, 10)
    flagged = A.M.grow(core[None].float(), 4)[0] > 0
    flagged[:, 110:] = True  # the right part of the image is flagged too
    found = A.spots(core, flagged, count=3)
    assert len(found) == 3
    for s in found:
        assert int(s.sum()) == int(core.sum())  # the same shape, moved
        assert not (s & flagged).any() and not (s & core).any()
    assert A.spots(core, torch.ones_like(core)) == []  # nowhere known to test on


def test_departure_is_the_change_over_the_fill_error():
    img = _background()
    core = _disc(100, 80, 10)
    repaint = img.clone()
    repaint[:, core] += 0.1  # a change of 3 x 0.01 per pixel (squared, summed over channels)
    assert math.isclose(A.departure(img, repaint, core, [0.01]), 3.0, rel_tol=1e-3)
    assert A.departure(img, repaint, core, []) == math.inf
    # another fill that differs from this one by s puts the fill's error at SPREAD_WEIGHT x s
    s = 0.03 / A.SPREAD_WEIGHT
    assert math.isclose(A.departure(img, repaint, core, [0.01], spread=s), 1.0, rel_tol=1e-3)
    assert math.isclose(A.departure(img, repaint, core, [], spread=s / 3), 3.0, rel_tol=1e-3)
    # several spots: their mean
    assert math.isclose(A.departure(img, repaint, core, [0.005, 0.015]), 3.0, rel_tol=1e-3)


def _copy_from_the_side(crops, masks, seed):
    """A stand-in fill whose answer depends on the seed: every hole pixel takes the colour 2 px
    left of the hole's box (odd seeds) or 2 px right of it (even seeds)."""
    out = crops.clone()
    for b in range(len(crops)):
        ys, xs = torch.nonzero(masks[b] > 0, as_tuple=True)
        x = int(xs.min()) - 2 if seed % 2 else int(xs.max()) + 2
        hole = masks[b] > 0
        out[b][:, hole] = crops[b][:, int(ys.min()), x][:, None]
    return out


def test_a_repaint_another_seed_would_paint_otherwise_is_a_guess_and_refused():
    from comfyui_pal.pipelines.fix import FillError, _implausible

    img = torch.full((3, 128, 128), 0.5)
    core = torch.zeros(128, 128, dtype=torch.bool)
    core[56:72, 56:72] = True
    img[:, 56:72, 52:56] = torch.tensor([1.0, 0, 0])[:, None, None]  # red on its left
    img[:, 56:72, 72:76] = torch.tensor([0, 0, 1.0])[:, None, None]  # blue on its right
    img[:, core] = torch.tensor([0, 1.0, 0])[:, None]  # a green object
    probs = torch.zeros(128, 128)
    probs[50:78] = 0.9  # the band is flagged: the spots lie on flat grey above and below
    repaint = img.clone()
    repaint[:, core] = torch.tensor([1.0, 0, 0])[:, None]  # this seed's fill: red
    fill_error = FillError(FixOptions(), _copy_from_the_side, seed=0)
    whole = (slice(0, 128), slice(0, 128))
    limits = A.Limits()
    # any fill of flat grey is exact, so the spots alone would call the repaint a repair ...
    spots = A.spots(core, probs > 0.5, image=img)
    assert spots and all(fill_error(img, s, 1) == 0 for s in spots)
    # ... but another seed paints it blue: the fill is a guess, as far from itself as from it
    why = _implausible(img, repaint, probs, core, whole, 0.5, fill_error, 1, limits)
    assert why is not None and "another fill of it differs" in why, why


class _Remembers(PixelDetector):
    """Flags ``where`` while the image there still holds ``content`` (a false alarm on it), or
    without ``where`` everywhere the image differs from ``content`` by more than 0.12 on
    average over a few px (planted noise; a fill of the texture differs by less)."""

    def __init__(self, content: torch.Tensor, where: torch.Tensor | None = None) -> None:
        super().__init__()
        self.content, self.where = content, where

    def score(self, v):
        if self.where is not None:
            hit = self.where[None] & ((v - self.content[None]).abs().amax(1) < 0.02)
        else:
            d = (v - self.content[None]).abs().amax(1, keepdim=True)
            hit = A.M._blur(d, 2.0)[:, 0] > 0.12
        return torch.logit(torch.where(hit, 0.97, 0.001))


def _textured(seed: int = 4) -> torch.Tensor:
    """Random-phase texture at 512 x 512 (the detector's own size: no resampling)."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(1, 3, 128, 128, generator=g)
    up = torch.nn.functional.interpolate(noise, size=(512, 512), mode="bicubic")[0]
    return (0.5 + 0.06 * up).clamp(0, 1)


def test_a_false_alarm_on_texture_is_not_replaced_by_another_texture():
    """The detector flags real texture; a fill of it makes the detector happy (the content it
    flagged is gone), but the fill is no closer to anything than the texture itself."""
    img = _textured()
    where = A.M.grow(blob_mask(512, 512, [(300, 250, 16)]), 0)[0] > 0
    opts = FixOptions(max_iterations=1, tta=False)
    fixed, _, history = fix(_Remembers(img, where), img[None], opts)
    assert torch.equal(fixed, img[None])
    reasons = [u["reason"] for h in history for u in h.get("changes_undone", [])]
    assert any(r.startswith("no better than the region") for r in reasons), reasons
    # without protection the fill stays (what the test prevents)
    loose, _, _ = fix(
        _Remembers(img, where), img[None], FixOptions(max_iterations=1, tta=False, protect=False)
    )
    assert not torch.equal(loose, img[None])


def test_a_planted_blotch_on_texture_is_still_repaired():
    clean = _textured()
    spot = blob_mask(512, 512, [(300, 250, 16)])[0] > 0
    g = torch.Generator().manual_seed(0)
    img = torch.where(
        spot[None], (clean + 0.3 * torch.randn(clean.shape, generator=g)).clamp(0, 1), clean
    )
    fixed, _, history = fix(_Remembers(clean), img[None], FixOptions(max_iterations=1, tta=False))
    before = float(((img - clean) ** 2)[:, spot].mean())
    after = float(((fixed[0] - clean) ** 2)[:, spot].mean())
    assert after < 0.2 * before, history
