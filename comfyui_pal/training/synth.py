"""Synthetic artifacts: corrupt a clean image the way generators fail, with an exact mask.

``corrupt(image, seed)`` plants one or more artifacts, each a random shape (blob, stroke or
irregular polygon) covering about 0.5 % to 25 % of the image, with a soft edge and a severity,
filled by one corruption family:

- ``warp``: local geometric warp, melted structure;
- ``smear``: smeared or over-smoothed texture (directional / Gaussian blur);
- ``fill``: blurred fill from a heavily low-passed copy;
- ``patch``: misplaced or duplicated patch copied from elsewhere in the image;
- ``seam``: broken seam, one side of a line shifted so edges misalign;
- ``blotch``: colour blotch or tone island;
- ``grid``: checkerboard / blocky upsampling pattern;
- ``noise``: noise island;
- ``inpaint``: an implausible fill made by the pack's own smooth inpainter.

``banding`` (posterised tones: colour banding and contour lines) and ``halo``
(over-sharpening: bright and dark halos along edges) are kept out of ``FAMILIES``, so the
default model never trains on them: they are unseen families for the few-shot adaptation
experiment (``benchmarks/bench_fewshot.py``).

The mask marks only pixels whose value changed perceptibly (``PERCEPTIBLE`` in 0..1 on any
channel) inside the planted shapes, cleaned of specks. Everything is reproducible from the
seed. Images are ``[3,H,W]`` float 0..1; masks ``[H,W]`` float 0/1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import Tensor

from ..core import masks as M
from ..pipelines.inpaint.smooth import smooth_fill

FAMILIES = ("warp", "smear", "fill", "patch", "seam", "blotch", "grid", "noise", "inpaint")
HELD_OUT_FAMILIES = ("halo", "banding")
ALL_FAMILIES = FAMILIES + HELD_OUT_FAMILIES
SHAPES = ("blob", "stroke", "polygon")
PERCEPTIBLE = 0.03  # a change of about 8/255 on some channel counts as visible
MIN_SPECK_PX = 12


@dataclass
class Planted:
    """What was planted: family, shape, severity 0..1, box (x0, y0, x1, y1), area in px."""

    family: str
    shape: str
    severity: float
    box: tuple[int, int, int, int]
    area_px: int


def _rand(g: torch.Generator, lo: float = 0.0, hi: float = 1.0) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def _randint(g: torch.Generator, lo: int, hi: int) -> int:
    """Uniform integer in [lo, hi]."""
    return int(torch.randint(lo, hi + 1, (), generator=g))


def _smooth_noise(g: torch.Generator, h: int, w: int, cells: int, channels: int = 1) -> Tensor:
    """Smooth random field ``[channels,h,w]`` in about -1..1 (bicubic-upsampled grid noise)."""
    base = torch.randn(1, channels, cells + 3, cells + 3, generator=g)
    up = F.interpolate(base, size=(h + 2, w + 2), mode="bicubic", align_corners=False)
    return up[0, :, 1:-1, 1:-1].clamp(-2.5, 2.5) / 1.5


# --- shapes ---------------------------------------------------------------------------------


def _shape(g: torch.Generator, kind: str, h: int, w: int, area: float) -> Tensor:
    """Bool ``[h,w]`` shape of about ``area`` px, placed at random inside the image."""
    if kind == "stroke":
        return _stroke(g, h, w, area)
    side = math.sqrt(area / (0.55 if kind == "blob" else 0.6))
    aspect = math.exp(_rand(g, -0.7, 0.7))
    bw = max(3, min(w, round(side * aspect)))
    bh = max(3, min(h, round(area / (0.55 * bw)) if kind == "blob" else round(side / aspect)))
    bh = max(3, min(h, bh))
    x0 = _randint(g, 0, w - bw)
    y0 = _randint(g, 0, h - bh)
    out = torch.zeros(h, w, dtype=torch.bool)
    if kind == "blob":
        yy, xx = torch.meshgrid(torch.linspace(-1, 1, bh), torch.linspace(-1, 1, bw), indexing="ij")
        field = 1 - (xx**2 + yy**2) + 0.45 * _smooth_noise(g, bh, bw, 3)[0]
        thr = torch.quantile(field.flatten(), 1 - min(0.95, area / (bh * bw)))
        out[y0 : y0 + bh, x0 : x0 + bw] = field > thr
    else:
        n = _randint(g, 5, 10)
        angles = np.sort(np.array([_rand(g, 0, 2 * math.pi) for _ in range(n)]))
        radii = [_rand(g, 0.45, 1.0) for _ in range(n)]
        pts = [
            (x0 + bw / 2 + r * bw / 2 * math.cos(a), y0 + bh / 2 + r * bh / 2 * math.sin(a))
            for a, r in zip(angles, radii, strict=True)
        ]
        img = Image.new("L", (w, h), 0)
        ImageDraw.Draw(img).polygon(pts, fill=255)
        out = torch.from_numpy(np.array(img) > 0)
    return out


def _stroke(g: torch.Generator, h: int, w: int, area: float) -> Tensor:
    width = max(2, round(math.sqrt(area) * _rand(g, 0.12, 0.3)))
    length = area / width
    pts = [(_rand(g, 0, w), _rand(g, 0, h))]
    step = max(4.0, length / _randint(g, 2, 5))
    travelled, heading = 0.0, _rand(g, 0, 2 * math.pi)
    while travelled < length:
        heading += _rand(g, -1.0, 1.0)
        x = min(max(pts[-1][0] + step * math.cos(heading), 0), w - 1)
        y = min(max(pts[-1][1] + step * math.sin(heading), 0), h - 1)
        pts.append((x, y))
        travelled += step
    img = Image.new("L", (w, h), 0)
    ImageDraw.Draw(img).line(pts, fill=255, width=width, joint="curve")
    return torch.from_numpy(np.array(img) > 0)


# --- corruption families --------------------------------------------------------------------


def _warp(g, img, box, s):
    _, h, w = img.shape
    amp = 3 + 14 * s
    disp = _smooth_noise(g, h, w, 4, 2) * amp
    yy, xx = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    gx = (xx + disp[0]) / max(w - 1, 1) * 2 - 1
    gy = (yy + disp[1]) / max(h - 1, 1) * 2 - 1
    grid = torch.stack([gx, gy], -1)[None]
    return F.grid_sample(
        img[None], grid, mode="bilinear", padding_mode="reflection", align_corners=True
    )[0]


def _soft(img: Tensor, sigma: float) -> Tensor:
    """Gaussian blur of ``[3,H,W]`` normalised at the border (no darkening from zero padding)."""
    num = M._blur(img[:, None], sigma)[:, 0]
    return num / M._blur(torch.ones_like(img[:1, None]), sigma)[:, 0]


def _smear(g, img, box, s):
    if _rand(g) < 0.5:
        return _soft(img, 1.5 + 5 * s)
    length = 5 + round(20 * s)
    angle = _rand(g, 0, math.pi)
    k = torch.zeros(length, length)
    cx = (length - 1) / 2
    for t in torch.linspace(-cx, cx, 2 * length):
        k[round(cx + float(t) * math.sin(angle)), round(cx + float(t) * math.cos(angle))] = 1
    k = (k / k.sum()).view(1, 1, length, length).expand(3, 1, length, length)
    pad = length // 2
    x = F.pad(img[None], (pad, pad, pad, pad), mode="replicate")
    return F.conv2d(x, k, groups=3)[0, :, : img.shape[1], : img.shape[2]]


def _fill(g, img, box, s):
    return _soft(img, 6 + 14 * s)


def _patch(g, img, box, s):
    _, h, w = img.shape
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    dx = _randint(g, -x0, w - x1) if w > bw else 0
    dy = _randint(g, -y0, h - y1) if h > bh else 0
    if abs(dx) < bw // 2 and abs(dy) < bh // 2:  # make sure the copy comes from elsewhere
        dx = (bw // 2 + 1) * (1 if x1 + bw // 2 + 1 <= w else -1) if w > 2 * bw else dx
    out = torch.roll(img, shifts=(-dy, -dx), dims=(1, 2))
    return out.flip(2) if _rand(g) < 0.3 else out


def _seam(g, img, box, s):
    _, h, w = img.shape
    x0, y0, x1, y1 = box
    angle = _rand(g, 0, math.pi)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    yy, xx = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    side = ((xx - cx) * math.sin(angle) - (yy - cy) * math.cos(angle)) > 0
    shift = max(2, round(3 + 10 * s))
    dx, dy = round(shift * math.cos(angle)), round(shift * math.sin(angle))
    moved = torch.roll(img, shifts=(dy, dx), dims=(1, 2))
    return torch.where(side[None], moved, img)


def _blotch(g, img, box, s):
    _, h, w = img.shape
    field = (_smooth_noise(g, h, w, 2)[0] * 0.5 + 0.75).clamp(0, 1)
    colour = torch.randn(3, 1, 1, generator=g)
    colour = colour / colour.norm() * (0.12 + 0.3 * s)
    gain = 1 + _rand(g, -0.35, 0.35) * s
    return ((img - 0.5) * gain + 0.5 + colour * field).clamp(0, 1)


def _grid(g, img, box, s):
    _, h, w = img.shape
    f = _randint(g, 2, 4)
    small = F.interpolate(img[None], scale_factor=1 / f, mode="area")
    blocky = F.interpolate(small, size=(h, w), mode="nearest")[0]
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    period = _randint(g, 2, 4)
    checker = (((yy // period) + (xx // period)) % 2).float() * 2 - 1
    return (blocky + checker * (0.03 + 0.09 * s)).clamp(0, 1)


def _noise(g, img, box, s):
    sigma = 0.05 + 0.15 * s
    n = torch.randn(img.shape, generator=g) * sigma
    if _rand(g) < 0.4:
        n = n.mean(0, keepdim=True).expand_as(img)
    return (img + n).clamp(0, 1)


def _banding(g, img, box, s):
    levels = max(2, round(9 - 6 * s))
    offset = _rand(g, 0, 1 / levels)
    return (((img + offset) * levels).floor() / levels + 0.5 / levels).clamp(0, 1)


def _halo(g, img, box, s):
    blurred = _soft(img, _rand(g, 1.0, 3.0))
    return (img + (1.5 + 3.5 * s) * (img - blurred)).clamp(0, 1)


def _inpaint(g, img, box, s, shape=None):
    return smooth_fill(img[None], shape[None].float())[0]


_EFFECTS = {
    "warp": _warp,
    "smear": _smear,
    "fill": _fill,
    "patch": _patch,
    "seam": _seam,
    "blotch": _blotch,
    "grid": _grid,
    "noise": _noise,
    "inpaint": _inpaint,
    "banding": _banding,
    "halo": _halo,
}


def _box(shape: Tensor) -> tuple[int, int, int, int]:
    ys, xs = torch.nonzero(shape, as_tuple=True)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def corrupt(
    image: Tensor,
    seed: int,
    *,
    families: tuple[str, ...] = FAMILIES,
    count: tuple[int, int] = (1, 3),
    area: tuple[float, float] = (0.005, 0.25),
    severity: tuple[float, float] = (0.3, 1.0),
) -> tuple[Tensor, Tensor, list[Planted]]:
    """Plant ``count`` artifacts into ``image`` ``[3,H,W]``; returns (corrupted, mask, planted).

    ``area`` bounds each shape's size as a fraction of the image; ``severity`` its strength.
    The same ``seed`` gives the same result.
    """
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be [3,H,W], got shape {tuple(image.shape)}")
    unknown = set(families) - set(ALL_FAMILIES)
    if unknown or not families:
        raise ValueError(f"unknown families {sorted(unknown)}; choose from {ALL_FAMILIES}")
    g = torch.Generator().manual_seed(int(seed))
    _, h, w = image.shape
    clean = image.float().clamp(0, 1)
    out = clean.clone()
    support = torch.zeros(h, w, dtype=torch.bool)
    planted = []
    for _ in range(_randint(g, *count)):
        fam = families[_randint(g, 0, len(families) - 1)]
        kind = SHAPES[_randint(g, 0, len(SHAPES) - 1)]
        frac = math.exp(_rand(g, math.log(area[0]), math.log(area[1])))
        shape = _shape(g, kind, h, w, frac * h * w)
        if not shape.any():
            continue
        box = _box(shape)
        sev = _rand(g, *severity)
        effect = _EFFECTS[fam]
        target = (
            effect(g, out, box, sev, shape=shape) if fam == "inpaint" else effect(g, out, box, sev)
        )
        soft = _rand(g, 0.5, 2.5)
        alpha = M._blur(shape.float()[None, None], soft)[0, 0].clamp(0, 1)
        alpha = torch.maximum(alpha, shape.float())
        out = out * (1 - alpha) + target.clamp(0, 1) * alpha
        support |= alpha > 0.05
        planted.append(Planted(fam, kind, sev, box, int(shape.sum())))
    changed = ((out - clean).abs().amax(0) > PERCEPTIBLE) & support
    mask = M.remove_small(changed[None].float(), MIN_SPECK_PX)
    mask = M.grow(M.grow(mask, 1), -1)  # close hairline gaps
    return out, mask[0] * support.float(), planted
