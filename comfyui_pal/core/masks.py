"""Mask toolkit on ``[B,H,W]`` float masks in 0..1 (ComfyUI MASK layout).

Binary operations (``grow``, ``fill_holes``, ``remove_small``, ``label``) take masks whose
values are exactly 0 or 1; call ``threshold`` first on soft maps. Every function is
batch-aware, device-agnostic and returns a new tensor.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from kornia.filters import get_gaussian_kernel1d
from torch import Tensor

from .checks import check_mask, check_nonnegative


@dataclass(frozen=True)
class Region:
    """One connected artifact region of one image.

    ``box`` is half-open ``(x0, y0, x1, y1)`` in source pixels; ``area_ratio`` is
    ``area_px / (H*W)``; ``max_prob`` / ``mean_prob`` come from an optional probability map
    (``None`` without one).
    """

    batch_index: int
    id: int
    box: tuple[int, int, int, int]
    area_px: int
    area_ratio: float
    max_prob: float | None = None
    mean_prob: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def box(mask: Tensor) -> tuple[int, int, int, int]:
    """Bounding box ``(x0, y0, x1, y1)`` (end exclusive, px) of a non-empty bool ``[H,W]``."""
    ys, xs = torch.nonzero(mask, as_tuple=True)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _binary(mask: Tensor, name: str = "mask") -> Tensor:
    """Check a binary mask (float 0/1, or bool) and return it as bool."""
    if isinstance(mask, Tensor) and mask.dtype == torch.bool:
        if mask.dim() != 3 or mask.numel() == 0:
            raise ValueError(f"{name} must be a non-empty [B,H,W], got {tuple(mask.shape)}")
        return mask
    check_mask(mask, name)
    fg = mask > 0.5
    if not torch.equal(fg.to(mask.dtype), mask):
        raise ValueError(
            f"{name} must be binary (only 0 and 1) for this operation; "
            "threshold it first with masks.threshold(mask, 0.5)"
        )
    return fg


def threshold(mask: Tensor, value: float = 0.5) -> Tensor:
    """Binary mask ``[B,H,W]`` in ``mask``'s dtype: 1 where ``mask > value``, else 0.

    Half-precision masks are compared in float32, so ``value`` is not rounded to their
    precision first (bfloat16 would turn 0.6 into 0.6016).
    """
    check_mask(mask)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"threshold must be in [0, 1), got {value}")
    return (mask.to(torch.promote_types(mask.dtype, torch.float32)) > value).to(mask.dtype)


def invert(mask: Tensor) -> Tensor:
    """``1 - mask`` for a ``[B,H,W]`` mask in 0..1."""
    return 1.0 - check_mask(mask)


# --- grow / shrink ---------------------------------------------------------------------------


BAND_PX = 1 << 22  # pixels per band of a dilation's scans (bounds its memory on large masks)


def _dilate_disc(fg: Tensor, radius: int) -> Tensor:
    """Exact Euclidean dilation of bool ``[B,H,W]`` by a disc of ``radius`` px, in bands of
    rows (each with ``radius`` rows of context: a disc reaches no further), so its scan
    tensors stay a few MB on images of any size."""
    b, h, w = fg.shape
    band = max(1, BAND_PX // max(1, b * w))
    if h <= band:
        return _dilate_band(fg, radius)
    out = torch.empty_like(fg)
    for y in range(0, h, band):
        lo, hi, n = max(0, y - radius), min(h, y + band + radius), min(band, h - y)
        out[:, y : y + n] = _dilate_band(fg[:, lo:hi], radius)[:, y - lo : y - lo + n]
    return out


def _dilate_band(fg: Tensor, radius: int) -> Tensor:
    """Exact Euclidean dilation of bool ``[B,H,W]`` by a disc of ``radius`` px.

    A pixel is set when some foreground pixel lies within ``radius`` (inclusive). Cost is
    O(H*W) whatever the radius: the column distance ``g`` to the nearest foreground comes from
    two cumulative max/min scans, and each pixel with ``g <= radius`` then covers a row interval
    of half-width ``floor(sqrt(radius^2 - g^2))``, whose union two more scans find. Scans run
    along the contiguous axis in the smallest integer type that holds the coordinates.
    """
    _, h, w = fg.shape
    dev = fg.device
    big = h + w + radius + 2
    dt = torch.int16 if 3 * big < 2**15 else torch.int32

    ft = fg.transpose(1, 2).contiguous()  # [B,W,H]: scan columns along memory order
    rows = torch.arange(h, device=dev, dtype=dt)
    above = torch.where(ft, rows, -big).cummax(dim=2).values
    below = torch.where(ft, rows, big).flip(2).cummin(dim=2).values.flip(2)
    g = torch.minimum(rows - above, below - rows).clamp_(max=radius + 1)
    g = g.transpose(1, 2).contiguous()  # [B,H,W]

    d = torch.arange(radius + 2, device=dev, dtype=torch.float64)
    table = torch.sqrt((radius * radius - d * d).clamp(min=0)).floor().to(dt)
    table[(d * d + (table.double() + 1) ** 2) <= radius * radius] += 1  # guard sqrt rounding
    table[-1] = -2 * big  # g > radius: covers nothing
    half = table[g.long()]
    cols = torch.arange(w, device=dev, dtype=dt)
    reach_right = (cols + half).cummax(dim=2).values
    reach_left = (cols - half).flip(2).cummin(dim=2).values.flip(2)
    return (reach_right >= cols) | (reach_left <= cols)


def grow(mask: Tensor, px: int) -> Tensor:
    """Grow (``px > 0``) or shrink (``px < 0``) a binary ``[B,H,W]`` mask by ``|px|`` pixels.

    The footprint is a true disc of radius ``|px|`` (Euclidean), and the cost does not depend
    on ``px``. Shrinking treats the outside of the image as foreground, so regions touching the
    border do not erode from the border side.
    """
    fg = _binary(mask)
    px = int(px)
    if px == 0:
        return mask.clone()
    if px > 0:
        out = _dilate_disc(fg, px)
    else:
        out = ~_dilate_disc(~fg, -px)
    return out.to(mask.dtype)


# --- connected components -------------------------------------------------------------------


def _component_roots(fg: Tensor, connectivity: int = 8) -> tuple[Tensor, Tensor, Tensor]:
    """Label each foreground pixel with the flat index of its component's first pixel.

    ``fg`` is bool ``[B,H,W]``. Returns the result compactly, over the rows that hold
    foreground: ``(row_id [R], sub [R,W] bool, roots [R,W] int64)`` where ``row_id`` are
    global row numbers ``b*H + y`` and background pixels get root ``B*H*W``. Flat indices run
    over the whole batch, so components of different images never share a root, and each
    component's root is its first pixel in raster order. Only rows holding foreground are
    visited: horizontal runs are the graph's nodes and vertical (and, for 8-connectivity,
    diagonal) links between adjacent rows its edges; a vectorised union-find hooks larger
    roots onto smaller ones and compresses paths until no edge joins two roots.
    """
    b, h, w = fg.shape
    n = b * h * w
    dev = fg.device
    rows = fg.view(b * h, w)
    row_id = rows.any(dim=1).nonzero()[:, 0]  # global row numbers (b*h + y) with foreground
    sub = rows[row_id]  # [R,W]
    r = sub.shape[0]
    m = r * w
    idx = torch.arange(m, device=dev).view(r, w)  # compact index: r * w + x
    left = torch.zeros_like(sub)
    left[:, 1:] = sub[:, :-1]
    starts = sub & ~left
    run = torch.where(starts, idx, 0).cummax(dim=1).values.flatten()
    nodes = idx[starts]

    adjacent = (row_id[1:] == row_id[:-1] + 1) & ((row_id[1:] % h) != 0)  # same image, y+1
    up = sub[:-1] & adjacent[:, None]
    down = sub[1:]
    links = [(up & down, 0, 0)]  # (link map, x offset of its upper pixel, x step down)
    if connectivity == 8 and w > 1:
        links += [(up[:, :-1] & down[:, 1:], 0, 1), (up[:, 1:] & down[:, :-1], 1, -1)]
    uppers, lowers = [], []
    for sel, x_off, step in links:
        sel = sel.clone()
        sel[:, 1:] &= ~sel[:, :-1].clone()  # a stretch of links joins the same two runs
        yy, xx = sel.nonzero(as_tuple=True)
        upper = yy * w + xx + x_off
        uppers.append(upper)
        lowers.append(upper + w + step)
    a = run[torch.cat(uppers)]
    c = run[torch.cat(lowers)]

    parent = torch.arange(m, device=dev)
    while True:
        ra, rc = parent[a], parent[c]
        differ = ra != rc
        if not bool(differ.any()):
            break
        a, c, ra, rc = a[differ], c[differ], ra[differ], rc[differ]
        parent.scatter_reduce_(0, torch.maximum(ra, rc), torch.minimum(ra, rc), reduce="amin")
        while True:  # path compression over run starts until each points at its root
            pn = parent[nodes]
            ppn = parent[pn]
            if torch.equal(pn, ppn):
                break
            parent[nodes] = ppn
    root = parent[run].view(r, w)
    root_flat = row_id[root // w] * w + root % w  # compact index -> flat batch index
    return row_id, sub, torch.where(sub, root_flat, n)


def label(mask: Tensor, connectivity: int = 8) -> tuple[Tensor, list[int]]:
    """Connected components of a binary ``[B,H,W]`` mask (float 0/1 or bool).

    Returns ``(labels, counts)``: ``labels`` int32 ``[B,H,W]`` with 0 for background and
    1..K per image, numbered in raster order of each component's first pixel; ``counts[b]`` is
    K for image b. ``connectivity`` is 8 (default) or 4.
    """
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    fg = _binary(mask)
    b, h, w = fg.shape
    labels = torch.zeros((b * h, w), dtype=torch.int32, device=fg.device)
    row_id, sub, roots = _component_roots(fg, connectivity)
    fg_roots = roots[sub]
    if fg_roots.numel() == 0:
        return labels.view(b, h, w), [0] * b
    uniq, inverse = torch.unique(fg_roots, return_inverse=True)
    image_of = uniq // (h * w)
    per_image = torch.bincount(image_of, minlength=b)
    offsets = torch.cumsum(per_image, 0) - per_image
    sub_labels = torch.zeros(roots.shape, dtype=torch.int32, device=fg.device)
    sub_labels[sub] = (inverse - offsets[image_of][inverse] + 1).int()
    labels[row_id] = sub_labels
    return labels.view(b, h, w), [int(c) for c in per_image]


def fill_holes(mask: Tensor) -> Tensor:
    """Fill background areas of a binary ``[B,H,W]`` mask that do not reach the image border.

    Foreground is 8-connected, so background is taken as 4-connected (a diagonal gap does not
    let a hole leak out). The outer boundary of a hole belongs to one foreground component,
    so each component's holes are found in its own box (plus a 1 px ring): memory and time
    follow the foreground, not the image (a 6000x6000 mask costs no 6000x6000 index maps).
    """
    fg = _binary(mask)
    h, w = fg.shape[1:]
    out = fg.clone()
    labels, counts = label(fg)
    for bi, k in enumerate(counts):
        if k == 0:
            continue
        ys, xs = (labels[bi] > 0).nonzero(as_tuple=True)
        ids = labels[bi, ys, xs].long()
        lo = torch.full((k + 1,), max(h, w), dtype=torch.long, device=fg.device)
        hi = torch.full((k + 1,), -1, dtype=torch.long, device=fg.device)
        y0, x0 = lo.scatter_reduce(0, ids, ys, "amin"), lo.scatter_reduce(0, ids, xs, "amin")
        y1, x1 = hi.scatter_reduce(0, ids, ys, "amax"), hi.scatter_reduce(0, ids, xs, "amax")
        boxes = torch.stack([y0, x0, y1, x1], 1)[1:].tolist()
        for c, (ya, xa, yb, xb) in enumerate(boxes, 1):
            if yb - ya < 2 or xb - xa < 2:
                continue  # too thin to enclose anything
            wy, wx = slice(max(0, ya - 1), min(h, yb + 2)), slice(max(0, xa - 1), min(w, xb + 2))
            out[bi, wy, wx] |= _fill_enclosed(labels[bi : bi + 1, wy, wx] == c)[0]
    return out.to(mask.dtype)


def _fill_enclosed(fg: Tensor) -> Tensor:
    """``fill_holes`` of a bool ``[B,H,W]`` by labelling its whole background (4-connected)."""
    b, h, w = fg.shape
    n = fg.numel()
    row_id, sub, roots = _component_roots(~fg, connectivity=4)
    reaches_border = torch.zeros(n + 1, dtype=torch.bool, device=fg.device)
    y = row_id % h
    edge_rows = (y == 0) | (y == h - 1)
    for edge in (roots[edge_rows].flatten(), roots[:, 0], roots[:, -1]):
        reaches_border[edge] = True
    reaches_border[n] = True
    out = fg.clone().view(b * h, w)
    out[row_id] |= sub & ~reaches_border[roots]
    return out.view(b, h, w)


def remove_small(mask: Tensor, min_area: float) -> Tensor:
    """Drop 8-connected components smaller than ``min_area`` from a binary ``[B,H,W]`` mask.

    ``min_area >= 1`` is a pixel count; ``0 < min_area < 1`` is a fraction of the image area;
    0 keeps everything.
    """
    check_nonnegative(min_area, "min_area")
    fg = _binary(mask)
    if min_area == 0:
        return mask.clone()
    b, h, w = fg.shape
    limit = min_area * h * w if min_area < 1 else min_area
    row_id, sub, roots = _component_roots(fg)
    _, inverse, sizes = torch.unique(roots[sub], return_inverse=True, return_counts=True)
    big = torch.zeros_like(sub)  # sizes per component, not an index map of the whole image
    big[sub] = sizes[inverse] >= limit
    out = torch.zeros((b * h, w), dtype=mask.dtype, device=fg.device)
    out[row_id] = big.to(mask.dtype)
    return out.view(b, h, w)


# --- feather --------------------------------------------------------------------------------


def blur(mask: Tensor, sigma: float) -> Tensor:
    """Gaussian blur of ``[B,H,W]`` with ``sigma`` px; zeros beyond the border; kernel 3 sigma."""
    check_nonnegative(sigma, "sigma")
    if sigma == 0:
        return mask.clone()
    return _blur(mask[:, None].float(), sigma)[:, 0].to(mask.dtype)


def _blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of ``[N,1,H,W]`` float, zero padding, radius ``ceil(3 sigma)``."""
    r = math.ceil(3 * sigma)
    k = get_gaussian_kernel1d(2 * r + 1, sigma, device=x.device, dtype=x.dtype)
    x = F.conv2d(x, k.view(1, 1, 1, -1), padding=(0, r))
    return F.conv2d(x, k.view(1, 1, -1, 1), padding=(r, 0))


def feather(mask: Tensor, sigma: float) -> Tensor:
    """Feather a ``[B,H,W]`` mask outward only: ``max(mask, blur(mask, sigma))``.

    Inside the mask values never drop, so the masked area stays fully covered. The soft edge
    is cut off at ``ceil(3 * sigma)`` px (Euclidean) from the mask's support: every pixel
    farther away stays exactly 0.
    """
    check_mask(mask)
    check_nonnegative(sigma, "sigma")
    if sigma == 0:
        return mask.clone()
    reach = _dilate_disc(mask > 0, math.ceil(3 * sigma)).to(mask.dtype)
    soft = _blur(mask[:, None].float(), sigma)[:, 0].to(mask.dtype)
    return torch.maximum(mask, soft.clamp(0, 1) * reach)


# --- regions --------------------------------------------------------------------------------


def find_regions(mask: Tensor, probs: Tensor | None = None) -> list[Region]:
    """Connected regions (8-connected, ``mask > 0``) of a ``[B,H,W]`` mask, with statistics.

    ``probs`` is an optional ``[B,H,W]`` probability map giving each region's max / mean.
    Regions are ordered by image, then by raster order of their first pixel; ids start at 1.
    """
    check_mask(mask)
    if probs is not None:
        check_mask(probs, "probs")
        if probs.shape != mask.shape:
            raise ValueError(
                f"probs has shape {tuple(probs.shape)} but mask has {tuple(mask.shape)}; "
                "pass one probability map per mask"
            )
    labels, counts = label(mask > 0)
    return regions_from_labels(labels, counts, probs)


def regions_from_labels(
    labels: Tensor, counts: list[int], probs: Tensor | None = None
) -> list[Region]:
    """Region statistics from ``label`` output (``labels`` integer ``[B,H,W]``)."""
    _, h, w = labels.shape
    total = sum(counts)
    if total == 0:
        return []
    offsets = torch.tensor([0, *counts[:-1]], device=labels.device).cumsum(0)
    fg = labels > 0
    bs, ys, xs = fg.nonzero(as_tuple=True)
    gid = labels[bs, ys, xs].long() + offsets[bs] - 1  # global region index 0..total-1

    def reduce(values: Tensor, how: str, init: float) -> Tensor:
        out = torch.full((total,), init, dtype=values.dtype, device=values.device)
        return out.scatter_reduce_(0, gid, values, reduce=how)

    x0, y0 = reduce(xs, "amin", w), reduce(ys, "amin", h)
    x1, y1 = reduce(xs, "amax", -1) + 1, reduce(ys, "amax", -1) + 1
    area = torch.bincount(gid, minlength=total)
    pmax = pmean = None
    if probs is not None:
        pv = probs.float()[fg]
        pmax = reduce(pv, "amax", -1.0).tolist()
        pmean = (torch.zeros(total, device=pv.device).index_add_(0, gid, pv) / area).tolist()
    x0, y0, x1, y1, area = (t.tolist() for t in (x0, y0, x1, y1, area))
    out = []
    k = 0
    for bi, c in enumerate(counts):
        for rid in range(1, c + 1):
            out.append(
                Region(
                    batch_index=bi,
                    id=rid,
                    box=(x0[k], y0[k], x1[k], y1[k]),
                    area_px=area[k],
                    area_ratio=area[k] / (h * w),
                    max_prob=None if pmax is None else pmax[k],
                    mean_prob=None if pmean is None else pmean[k],
                )
            )
            k += 1
    return out


# refine() takes keyword arguments named like the steps; keep handles on the step functions.
_threshold, _grow, _fill_holes, _feather = threshold, grow, fill_holes, feather


def refine(
    mask: Tensor,
    *,
    threshold: float = 0.5,
    grow: int = 0,
    fill_holes: bool = False,
    min_area: float = 0.0,
    feather: float = 0.0,
    invert: bool = False,
) -> Tensor:
    """Threshold, grow / shrink, fill holes, drop small regions, feather, invert (in order).

    ``mask`` is ``[B,H,W]`` in 0..1; see the single-step functions for each argument.
    """
    out = _grow(_threshold(mask, threshold), grow)
    if fill_holes:
        out = _fill_holes(out)
    out = remove_small(out, min_area)
    if feather:
        out = _feather(out, feather)
    return 1.0 - out if invert else out
