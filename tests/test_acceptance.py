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
