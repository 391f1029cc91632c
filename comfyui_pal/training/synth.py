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
- ``inpaint``: an implausible fill made by the pack's own smooth inpainter;

broken structure, the way generators get objects wrong:

- ``duplicate``: a part of the image repeated right next to itself (extra limbs, fingers);
- ``melt``: strong local warp with a downward drip (melted, bent object parts);
- ``ghost``: edges and lines doubled by a shifted, half-transparent copy;
- ``halves``: the two sides of a seam at different scales (mismatched halves);
- ``glyphs``: garbled text: real glyphs cut into slices and scrambled;

texture incoherence:

- ``texture``: the region re-synthesised from another image's texture, colour-matched;
- ``tiles``: a small tile of the region repeated across it;
- ``lighting``: a lighting gradient and contrast at odds with the surroundings;

generator-made (decoded by a small learned autoencoder, ``PatchCodec``, a PCA of 8x8 patches):

- ``latent``: the region's latents perturbed and partly dropped, then decoded.

``banding`` (posterised tones: colour banding and contour lines), ``halo`` (over-sharpening:
bright and dark halos along edges) and the generator-made ``latent_mix`` (the region's latents
mixed with another image's, then decoded: latent composition) are kept out of ``FAMILIES``,
so the default model never trains on them: they are unseen families for the few-shot
adaptation experiment (``benchmarks/bench_fewshot.py``).

Families that take content from elsewhere (``texture``, ``latent_mix``) use ``donor``, another
image ``[3,H,W]`` (the dataset passes another source's view); without one they use the image
itself, rotated.

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

SIGNAL_FAMILIES = ("warp", "smear", "fill", "patch", "seam", "blotch", "grid", "noise", "inpaint")
STRUCTURE_FAMILIES = ("duplicate", "melt", "ghost", "halves", "glyphs")
TEXTURE_FAMILIES = ("texture", "tiles", "lighting")
GENERATOR_FAMILIES = ("latent",)
FAMILIES = SIGNAL_FAMILIES + STRUCTURE_FAMILIES + TEXTURE_FAMILIES + GENERATOR_FAMILIES
HELD_OUT_FAMILIES = ("halo", "banding", "latent_mix")
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


# --- broken structure -----------------------------------------------------------------------


def _box_size(box) -> tuple[int, int]:
    return box[2] - box[0], box[3] - box[1]


def _duplicate(g, img, box, s, **_):
    bw, bh = _box_size(box)
    angle = _rand(g, 0, 2 * math.pi)
    frac = 0.3 + 0.5 * s
    dx, dy = round(frac * bw * math.cos(angle)), round(frac * bh * math.sin(angle))
    if dx == 0 and dy == 0:
        dx = max(2, bw // 3)
    return torch.roll(img, shifts=(dy, dx), dims=(1, 2))


def _melt(g, img, box, s, **_):
    _, h, w = img.shape
    x0, y0, x1, y1 = box
    amp = (0.06 + 0.16 * s) * max(x1 - x0, y1 - y0) + 2
    disp = _smooth_noise(g, h, w, 6, 2) * amp
    yy, xx = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    drip = ((yy - y0) / max(y1 - y0, 1)).clamp(0, 1) * amp * _rand(g, 0.3, 1.2)
    gx = (xx + disp[0]) / max(w - 1, 1) * 2 - 1
    gy = (yy + disp[1] - drip) / max(h - 1, 1) * 2 - 1
    grid = torch.stack([gx, gy], -1)[None]
    return F.grid_sample(
        img[None], grid, mode="bilinear", padding_mode="reflection", align_corners=True
    )[0]


def _ghost(g, img, box, s, **_):
    shift = _rand(g, 3, 5 + 14 * s)
    angle = _rand(g, 0, 2 * math.pi)
    moved = torch.roll(
        img, (round(shift * math.sin(angle)), round(shift * math.cos(angle))), (1, 2)
    )
    a = _rand(g, 0.35, 0.6)
    return img * (1 - a) + moved * a


def _zoom_about(img: Tensor, cx: float, cy: float, z: float) -> Tensor:
    """``img`` magnified by ``z`` about the pixel (cx, cy), same size (reflected borders)."""
    _, h, w = img.shape
    yy, xx = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    gx = (cx + (xx - cx) / z) / max(w - 1, 1) * 2 - 1
    gy = (cy + (yy - cy) / z) / max(h - 1, 1) * 2 - 1
    grid = torch.stack([gx, gy], -1)[None]
    return F.grid_sample(
        img[None], grid, mode="bilinear", padding_mode="reflection", align_corners=True
    )[0]


def _halves(g, img, box, s, **_):
    _, h, w = img.shape
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    z = _rand(g, 1.25, 1.3 + 0.5 * s) if _rand(g) < 0.5 else _rand(g, 0.85 - 0.3 * s, 0.8)
    zoomed = _zoom_about(img, cx, cy, z)
    angle = _rand(g, 0, math.pi)
    yy, xx = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    side = ((xx - cx) * math.sin(angle) - (yy - cy) * math.cos(angle)) > 0
    return torch.where(side[None], zoomed, img)


_GLYPHS = "abcdefghijkmnopqrstuwxyzABCDEFGHKLMNPRSTWXYZ0123456789&%#@"


def _glyphs(g, img, box, s, **_):
    from PIL import ImageFont

    x0, y0, x1, y1 = box
    bw, bh = max(8, x1 - x0), max(8, y1 - y0)
    rows = _randint(g, 1, max(1, min(4, bh // 14)))
    size = max(8, round(bh / rows * _rand(g, 0.55, 0.9)))
    font = ImageFont.load_default(size=size)
    canvas = Image.new("L", (bw, bh), 0)
    draw = ImageDraw.Draw(canvas)
    for r in range(rows):
        n = max(2, round(bw / (0.6 * size)))
        text = "".join(_GLYPHS[_randint(g, 0, len(_GLYPHS) - 1)] for _ in range(n))
        draw.text((_randint(g, -size // 2, 2), r * bh / rows), text, fill=255, font=font)
    ink = torch.from_numpy(np.asarray(canvas, dtype=np.float32) / 255)
    out, x = ink.clone(), 0
    while x < bw:  # cut into slices, shift / flip / drop them: garbled strokes
        sw = _randint(g, 2, max(3, size // 2))
        sl = ink[:, x : x + sw]
        sl = torch.roll(sl, _randint(g, -size // 3, size // 3), 0)
        if _rand(g) < 0.3:
            sl = sl.flip(1)
        if _rand(g) < 0.15:
            sl = torch.zeros_like(sl)
        out[:, x : x + sw] = sl
        x += sw
    region = img[:, y0:y1, x0:x1]
    mean = region.mean((1, 2), keepdim=True)
    colour = torch.where(mean > 0.5, mean * _rand(g, 0.0, 0.35), 1 - (1 - mean) * _rand(g, 0, 0.35))
    target = img.clone()
    a = out[: y1 - y0, : x1 - x0][None] * (0.6 + 0.4 * s)
    target[:, y0:y1, x0:x1] = region * (1 - a) + colour * a
    return target


# --- texture incoherence --------------------------------------------------------------------


def _texture(g, img, box, s, donor=None, **_):
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    src = donor if donor is not None else img.rot90(1, (1, 2))
    zoom = _rand(g, 0.6, 1.6)
    need_h, need_w = max(2, round(bh / zoom)), max(2, round(bw / zoom))
    sh, sw = src.shape[1:]
    if sh < need_h or sw < need_w:
        src = F.interpolate(src[None], size=(max(sh, need_h), max(sw, need_w)), mode="bilinear")[0]
        sh, sw = src.shape[1:]
    ty, tx = _randint(g, 0, sh - need_h), _randint(g, 0, sw - need_w)
    patch = src[:, ty : ty + need_h, tx : tx + need_w]
    patch = F.interpolate(patch[None], size=(bh, bw), mode="bilinear", align_corners=False)[0]
    region = img[:, y0:y1, x0:x1]
    pm, ps = patch.mean((1, 2), keepdim=True), patch.std((1, 2), keepdim=True) + 1e-3
    rm, rs = region.mean((1, 2), keepdim=True), region.std((1, 2), keepdim=True)
    match = (patch - pm) / ps * (rs + 0.02 + 0.08 * s) + rm
    target = img.clone()
    target[:, y0:y1, x0:x1] = match.clamp(0, 1)
    return target


def _tiles(g, img, box, s, **_):
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    t = min(bw, bh, _randint(g, 6, 10 + round(26 * s)))
    ty, tx = _randint(g, y0, y1 - t), _randint(g, x0, x1 - t)
    tile = img[:, ty : ty + t, tx : tx + t]
    reps = (1, math.ceil(bh / t), math.ceil(bw / t))
    target = img.clone()
    target[:, y0:y1, x0:x1] = tile.repeat(*reps)[:, :bh, :bw]
    return target


def _lighting(g, img, box, s, **_):
    _, h, w = img.shape
    x0, y0, x1, y1 = box
    angle = _rand(g, 0, 2 * math.pi)
    yy, xx = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) / 2 + 1
    ramp = (((xx - cx) * math.cos(angle) + (yy - cy) * math.sin(angle)) / r).clamp(-1, 1)
    gain = 1 + (0.25 + 0.45 * s) * ramp
    mean = img[:, y0:y1, x0:x1].mean((1, 2), keepdim=True)
    contrast = 1 + _rand(g, -0.5, 0.6) * s
    return (((img - mean) * contrast + mean) * gain[None]).clamp(0, 1)


# --- generator-made: a small learned autoencoder ------------------------------------------


class PatchCodec:
    """A linear autoencoder of RGB patches (PCA): ``[3,H,W]`` <-> latents ``[k, L]``.

    Patches of ``patch`` px at a stride of half a patch; decoding averages the overlaps. It is
    learned from images (``fit``), so its decodings carry the data's textures, blurred to
    ``k`` components, as a weak generator's do.
    """

    def __init__(self, mean: Tensor, basis: Tensor, patch: int = 8) -> None:
        self.mean, self.basis, self.patch = mean, basis, patch

    @classmethod
    def fit(cls, images: list[Tensor], k: int = 24, patch: int = 8, seed: int = 0) -> PatchCodec:
        g = torch.Generator().manual_seed(seed)
        cols = []
        for img in images:
            p = F.unfold(img[None].float(), patch, stride=patch)[0].T  # [L, 3*patch*patch]
            cols.append(p[torch.randperm(p.shape[0], generator=g)[:2000]])
        data = torch.cat(cols)
        mean = data.mean(0)
        _, _, v = torch.linalg.svd(data - mean, full_matrices=False)
        return cls(mean, v[:k], patch)

    def encode(self, img: Tensor) -> Tensor:
        p = F.unfold(img[None], self.patch, stride=self.patch // 2)[0]  # [D, L]
        return self.basis @ (p - self.mean[:, None])

    def decode(self, z: Tensor, size: tuple[int, int]) -> Tensor:
        p = self.basis.T @ z + self.mean[:, None]
        k, st = self.patch, self.patch // 2
        num = F.fold(p[None], size, k, stride=st)
        den = F.fold(torch.ones_like(p)[None], size, k, stride=st)
        return (num / den.clamp_min(1e-6))[0]


_CODEC: PatchCodec | None = None


def default_codec() -> PatchCodec:
    """The codec every corruption uses unless given one: fitted on procedural scenes (seeded),
    so it is the same everywhere and never sees a held-out photograph."""
    global _CODEC
    if _CODEC is None:
        from .datasets import procedural_image

        _CODEC = PatchCodec.fit([procedural_image(s, 256, 256) for s in range(12)])
    return _CODEC


def _padded(img: Tensor, patch: int) -> tuple[Tensor, tuple[int, int]]:
    _, h, w = img.shape
    st = patch // 2
    ph, pw = (-(h - patch) % st), (-(w - patch) % st)
    return F.pad(img[None], (0, pw, 0, ph), mode="replicate")[0], (h, w)


def _latent(g, img, box, s, codec=None, **_):
    codec = codec or default_codec()
    x, (h, w) = _padded(img, codec.patch)
    z = codec.encode(x)
    std = z.std(1, keepdim=True)
    k = z.shape[0]
    noisy = torch.rand(k, 1, generator=g) < 0.5
    z = z + noisy * torch.randn(z.shape, generator=g) * std * (0.4 + 1.4 * s)
    drop = (torch.rand(k, 1, generator=g) < 0.2 + 0.5 * s) & (torch.arange(k)[:, None] > 0)
    z = torch.where(drop, z.mean(1, keepdim=True), z)
    return codec.decode(z, x.shape[1:])[:, :h, :w].clamp(0, 1)


def _latent_mix(g, img, box, s, donor=None, codec=None, **_):
    codec = codec or default_codec()
    x, (h, w) = _padded(img, codec.patch)
    d = donor if donor is not None else img.flip(1)
    d = F.interpolate(d[None], size=x.shape[1:], mode="bilinear", align_corners=False)[0]
    a = _rand(g, 0.4, 0.6 + 0.35 * s)
    z = (1 - a) * codec.encode(x) + a * codec.encode(d)
    return codec.decode(z, x.shape[1:])[:, :h, :w].clamp(0, 1)


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
    "duplicate": _duplicate,
    "melt": _melt,
    "ghost": _ghost,
    "halves": _halves,
    "glyphs": _glyphs,
    "texture": _texture,
    "tiles": _tiles,
    "lighting": _lighting,
    "latent": _latent,
    "latent_mix": _latent_mix,
}
_WITH_CONTEXT = set(STRUCTURE_FAMILIES + TEXTURE_FAMILIES + GENERATOR_FAMILIES + ("latent_mix",))


def corrupt(
    image: Tensor,
    seed: int,
    *,
    families: tuple[str, ...] = FAMILIES,
    count: tuple[int, int] = (1, 3),
    area: tuple[float, float] = (0.005, 0.25),
    severity: tuple[float, float] = (0.3, 1.0),
    donor: Tensor | None = None,
    codec: PatchCodec | None = None,
) -> tuple[Tensor, Tensor, list[Planted]]:
    """Plant ``count`` artifacts into ``image`` ``[3,H,W]``; returns (corrupted, mask, planted).

    ``area`` bounds each shape's size as a fraction of the image; ``severity`` its strength.
    ``donor`` ``[3,h,w]`` is another image for the families that borrow content; ``codec``
    the autoencoder of the generator-made families (default ``default_codec()``). The same
    ``seed`` (and donor) gives the same result.
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
        box = M.box(shape)
        sev = _rand(g, *severity)
        effect = _EFFECTS[fam]
        if fam == "inpaint":
            target = effect(g, out, box, sev, shape=shape)
        elif fam in _WITH_CONTEXT:
            target = effect(g, out, box, sev, donor=donor, codec=codec)
        else:
            target = effect(g, out, box, sev)
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
