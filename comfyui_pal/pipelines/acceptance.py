"""Whether a repaint may stay: it must repair a region without removing real content.

"The detector flags less" is necessary but not sufficient: an exemplar fill that replaces an
object by background always lowers the flagged area. Two looks at the image decide:

- before inpainting (``triage``), what the region *is*: a region whose outline follows strong
  edges and whose inside has its own structure is an object, not a blemish; a region that
  strong edges cross is cut through structure that continues outside it; a large region needs
  new content. A built-in fill (exemplar / smooth, which can only copy or smooth what is
  around) cannot repair those: they are left for a diffusion model with the reason
  ``NEEDS_MODEL``.
- after inpainting (``verdict``), what the repaint *did*: the edges that entered the region
  from outside must still continue into it, and a region that stood out from its surroundings
  with structure of its own must not have become plain background.

All measures are on luminance gradients (Sobel, 0..1 images), relative to the image's own
gradient statistics around the region, so they do not depend on exposure or size.
Shapes: image ``[C,H,W]`` float 0..1, region ``[H,W]`` bool.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from kornia.color import rgb_to_grayscale
from kornia.filters import spatial_gradient
from torch import Tensor

from ..core import masks as M

NEEDS_MODEL = "needs a diffusion model: connect MODEL, VAE and conditionings"
RING = 6  # px: the band just outside (and just inside) a region's outline that is examined
REACH = 12  # px: how far into the region the continuation of an entering edge is looked for
VISIBLE = 8 / 255  # a repaint's region: where it changed some channel by more than this
# the spread of two fills would be twice their error were they independent; PatchMatch's are
# not: on 103 edits on training sources a second fill erred 2.2x its spread (median) and the
# spots' mean 1.4x their estimate, so the spread is put on the spots' footing (2.2 / 1.4)
SPREAD_WEIGHT = 1.5
SPOTS = 3  # places next to a region where the fill's error is read (their mean is the estimate)
EDGE_SIGMA = 1.5  # px: edges are measured after this blur, so noise does not count as structure
THROUGH = 3 * RING  # px: entries of one line this far apart make it a line across the region
# px: the depth steps at which an entering line's reach is read
DEPTHS = (4, 8, 12, 16, 24, 32, 48, 64, 96, 128)


@dataclass(frozen=True)
class Limits:
    """Where a region stops being a blemish (measured: ``benchmarks/bench_fix.py``)."""

    max_area: float = 0.08  # built-in fills leave regions larger than this share of the image
    structured_area: float = 0.02  # ... or than this when structured (inner / crossing below)
    structured_inner: float = 1.5
    max_crossing: float = 0.12  # share of the outer ring crossed by strong edges
    object_inner: float = 3.0  # an inside this much more structured than its ring ...
    object_contrast: float = 0.9  # ... and this different from it (ring std units): an object
    keep_continuity: float = 0.5  # entering edges that must still continue after a repaint
    object_contour: float = 0.35  # an outline this much on strong edges is a silhouette ...
    flatten_contour: float = 0.5  # ... lost when it falls below this share of itself
    flatten: float = 0.35  # contrast may not fall below this share of a distinct region's
    distinct_contrast: float = 2.5  # a region this different from its ring is content
    min_edges: float = 0.03  # a region with this share of edge pixels has structure to keep
    keep_through: float = 0.5  # lines across a region: this share must still cross it after
    keep_depth: float = 0.5  # lines entering it: this share of their reach must stay
    min_departure: float = 3.0  # a repaint must change a region this many times more than
    # the same fill errs (on known content nearby, or from its spread over seeds:
    # ``departure``): else the region is no less plausible than a fill of it, and a different
    # fill is not a better one


def _luma(img: Tensor) -> Tensor:
    """``[H,W]`` luminance (Rec. 601) of a ``[C,H,W]`` image (its first channel if not RGB)."""
    x = img.float()[None]
    return rgb_to_grayscale(x[:, :3])[0, 0] if img.shape[0] >= 3 else x[0, 0]


def _sobel(y: Tensor) -> tuple[Tensor, Tensor]:
    """Normalised Sobel gradients (x, y) of ``[H,W]``, replicated borders."""
    g = spatial_gradient(y[None, None], mode="sobel", normalized=True)[0, 0]
    return g[0], g[1]


@dataclass
class Profile:
    """What a region looks like: ``crossing`` share of the outer ring crossed by strong edges;
    ``contour`` share of the outline lying on a strong edge along it; ``inner`` the inside's
    strong-edge density relative to the ring's; ``contrast`` the colour distance of inside and
    ring means in ring standard deviations; ``area`` share of the image; ``band_edges`` ring
    pixels where strong edges enter the region; ``continued`` the share of them that go on
    into it (one connected strong edge, ``REACH`` px deep); ``edges`` the strong edge pixels
    inside; ``tau`` the edge strength."""

    crossing: float
    contour: float
    inner: float
    contrast: float
    area: float
    band_edges: int
    continued: float
    edges: int
    tau: float
    through: int = 0
    depth: float = 0.0


def _window(region: Tensor, pad: int) -> tuple[slice, slice]:
    x0, y0, x1, y1 = M.box(region)
    h, w = region.shape
    return slice(max(0, y0 - pad), min(h, y1 + pad)), slice(max(0, x0 - pad), min(w, x1 + pad))


def _parts(region: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(outer ring, inner band, normal x, normal y) of a bool ``[h,w]`` region."""
    r = region.float()[None]
    ring = (M.grow(r, RING)[0] > 0) & ~region
    band = region & ~(M.grow(r, -2 * RING)[0] > 0)  # regions come grown: outlines lie in here
    soft = M._blur(r[None], float(RING))[0, 0]  # normals reach across the ring and band
    nx, ny = _sobel(soft)
    norm = (nx**2 + ny**2).sqrt().clamp_min(1e-6)
    return ring, band, nx / norm, ny / norm


def profile(
    image: Tensor, region: Tensor, tau: float | None = None, total_px: int | None = None
) -> Profile:
    """Measure ``region`` of ``image`` (see ``Profile``); ``tau`` defaults to the window's
    strong-edge level (its 85th gradient percentile, at least 0.04). When ``image`` is a
    window of a larger image (at least ``3 * RING`` px around the region where the image
    goes on), ``total_px`` is the whole image's pixel count, so ``area`` stays its share of
    the whole image and the result is the one of the whole image."""
    ys, xs = _window(region, 3 * RING)
    img, reg = image[:, ys, xs], region[ys, xs]
    gx, gy = _sobel(M._blur(_luma(img)[None, None], EDGE_SIGMA)[0, 0])
    mag = (gx**2 + gy**2).sqrt()
    if tau is None:
        tau = max(0.04, float(torch.quantile(mag.flatten(), 0.85)))
    ring, band, nx, ny = _parts(reg)
    strong = mag > tau
    cos = (gx * nx + gy * ny).abs() / mag.clamp_min(1e-6)  # gradient vs the outline's normal
    crossing = strong & (cos < 0.5)  # edge lines that run across the outline
    # a silhouette runs somewhere in the ring + band (regions are grown before they get
    # here), as a strong edge across the normal, about 2 px wide (Sobel): 1.0 = all the way
    along_normal = cos > 0.8
    outline_px = max(1.0, float(ring.sum()) / RING)
    contour = min(1.0, float((strong & along_normal & (ring | band)).sum()) / (2 * outline_px))
    inside = reg & ~band if (reg & ~band).sum() > 16 else reg
    ring_density = float(strong[ring].float().mean()) if ring.any() else 0.0
    inner = float(strong[inside].float().mean()) / max(ring_density, 0.02)
    f = img.float()[:3]
    if ring.any() and reg.any():
        m_in, m_ring = f[:, reg].mean(1), f[:, ring].mean(1)
        s_ring = f[:, ring].std(1).mean() if int(ring.sum()) > 1 else torch.tensor(0.0)
        contrast = float((m_in - m_ring).norm() / (s_ring + 0.02))
    else:
        contrast = 0.0
    # lines that enter from outside: strong edges across the outline in the ring's inner rim,
    # and whether each goes on, as one connected strong edge, REACH px into the region
    entering_ring = crossing & ring
    rim = entering_ring & (M.grow(reg.float()[None], 2)[0] > 0)
    zone = reg & ~(M.grow(reg.float()[None], -REACH)[0] > 0)  # the REACH px inside the outline
    deep = zone & (M.grow(reg.float()[None], -(REACH - 3))[0] > 0)  # its innermost 3 px
    labels, _ = M.label((strong & (zone | rim))[None])
    reached = torch.zeros(int(labels.max()) + 1, dtype=torch.bool, device=labels.device)
    reached[labels[0][deep].long()] = True
    reached[0] = False
    band_edges = int(rim.sum())
    continued = float(reached[labels[0][rim].long()].sum()) / max(1, band_edges)
    through, depth = _lines(strong & (reg | rim), rim, reg)
    return Profile(
        crossing=float(entering_ring.sum()) / max(1, int(ring.sum())),
        contour=contour,
        inner=inner,
        contrast=contrast,
        area=float(region.sum()) / (total_px or region.numel()),
        band_edges=band_edges,
        continued=continued,
        edges=int(strong[M.grow(reg.float()[None], 2)[0] > 0].sum()),  # a line's sides too
        tau=tau,
        through=through,
        depth=depth,
    )


def _lines(edges: Tensor, rim: Tensor, region: Tensor) -> tuple[int, float]:
    """Lines entering ``region`` across ``rim`` (bool ``[h,w]``; ``edges`` its strong edges and
    the rim's): (ring pixels of lines entering at two places ``THROUGH`` px apart or more,
    summed depth in px each entering line reaches, read at the ``DEPTHS`` steps)."""
    labels, (n,) = M.label(edges[None])
    lab = labels[0].long()
    entry = rim & edges
    if n == 0 or not entry.any():
        return 0, 0.0
    ys, xs = torch.nonzero(entry, as_tuple=True)
    ids = lab[ys, xs]
    lo_x = torch.full((n + 1,), 1 << 30, device=ids.device).scatter_reduce(0, ids, xs, "amin")
    hi_x = torch.full((n + 1,), -1, device=ids.device).scatter_reduce(0, ids, xs, "amax")
    lo_y = torch.full((n + 1,), 1 << 30, device=ids.device).scatter_reduce(0, ids, ys, "amin")
    hi_y = torch.full((n + 1,), -1, device=ids.device).scatter_reduce(0, ids, ys, "amax")
    spread = torch.maximum(hi_x - lo_x, hi_y - lo_y)
    crossing = spread >= THROUGH  # per line: enters at two places far apart
    through = int(crossing[ids].sum())
    level = torch.zeros(region.shape, device=region.device)
    for d in DEPTHS:  # depth of each inside pixel, in steps
        inner = M.grow(region.float()[None], -d)[0] > 0
        if not inner.any():
            break
        level[inner] = float(d)
    entering = torch.zeros(n + 1, dtype=torch.bool, device=ids.device)
    entering[ids] = True
    reach = torch.zeros(n + 1, device=ids.device).scatter_reduce(
        0, lab[edges].flatten(), level[edges].flatten(), "amax"
    )
    return through, float(reach[entering].sum())


def triage(p: Profile, limits: Limits = Limits()) -> str | None:
    """Why a built-in fill must leave this region (``NEEDS_MODEL`` with the cause), or None."""
    if p.area > limits.max_area:
        return f"{NEEDS_MODEL} (large: {p.area:.1%} of the image)"
    if p.crossing > limits.max_crossing:
        return f"{NEEDS_MODEL} (cuts through structure: {p.crossing:.0%} of its edge crossed)"
    if p.inner > limits.object_inner and p.contrast > limits.object_contrast:
        return (
            f"{NEEDS_MODEL} (an object, not a blemish: {p.inner:.1f}x the structure "
            f"around it, contrast {p.contrast:.1f})"
        )
    if p.area > limits.structured_area and (
        p.inner > limits.structured_inner or p.crossing > limits.max_crossing / 2
    ):
        return f"{NEEDS_MODEL} (large and structured: {p.area:.1%} of the image)"
    return None


def verdict(
    before: Tensor,
    after: Tensor,
    region: Tensor,
    limits: Limits = Limits(),
    total_px: int | None = None,
) -> str | None:
    """Why the repaint ``after`` of ``region`` must be undone (it removed real content), or
    None. ``before`` / ``after`` ``[C,H,W]``; the edge level is the one measured before.
    They may be windows of larger images (``total_px``: see ``profile``)."""
    if int(region.sum()) < 16:
        return None
    p0 = profile(before, region, total_px=total_px)
    p1 = profile(after, region, tau=p0.tau, total_px=total_px)
    if p0.band_edges >= 12 and p1.continued < limits.keep_continuity * p0.continued:
        return (
            f"removed structure: {p0.continued:.0%} of the edges entering from outside went "
            f"on into the region, now {p1.continued:.0%}"
        )
    if p0.through >= 12 and p1.through < limits.keep_through * p0.through:
        return (
            f"broke a line across it: {p0.through} px of lines crossed the region, now {p1.through}"
        )
    if p0.depth >= 2 * REACH and p1.depth < limits.keep_depth * p0.depth:
        return (
            f"cut short the lines that enter it: they reached {p0.depth:.0f} px into the "
            f"region, now {p1.depth:.0f}"
        )
    if (
        p1.contour > max(2 * p0.contour, limits.object_contour)
        and p0.inner < 1
        and p1.inner > limits.object_inner
    ):
        return (
            f"made a new object: an outline appeared ({p0.contour:.0%} -> {p1.contour:.0%} "
            f"of it on edges) and the region went from {p0.inner:.1f}x to {p1.inner:.1f}x the "
            "structure around it"
        )
    silhouette_lost = (
        p0.contour > limits.object_contour and p1.contour < limits.flatten_contour * p0.contour
    )
    if (
        silhouette_lost
        and p0.inner > limits.structured_inner
        and (p1.inner < limits.keep_continuity * p0.inner)
    ):
        return (
            f"erased an object: its outline and {p0.inner:.1f}x the edges around it are gone "
            f"(now {p1.inner:.1f}x)"
        )
    if (
        p0.edges >= max(24, limits.min_edges * p0.area * (total_px or before[0].numel()))
        and p1.edges < limits.flatten * p0.edges
        and p1.contrast < 0.5 * p0.contrast
    ):
        return (
            f"erased structure: {p0.edges - p1.edges} of its {p0.edges} edge px are gone and "
            f"it now looks like its surroundings (contrast {p0.contrast:.1f} -> "
            f"{p1.contrast:.1f})"
        )
    distinct = (silhouette_lost and p0.contrast > limits.object_contrast) or (
        p0.contrast > limits.distinct_contrast
    )
    if distinct and p1.contrast < limits.flatten * p0.contrast:
        return f"turned an object into background (contrast {p0.contrast:.1f} -> {p1.contrast:.1f})"
    return None


def spots(
    core: Tensor, flagged: Tensor, count: int = 1, image: Tensor | None = None
) -> list[Tensor]:
    """Up to ``count`` copies of ``core`` (bool ``[H,W]``) moved next to it (1.3 or 2.2 times
    its box away, 8 directions) onto known content: inside the image, clear of ``core``, and
    with at most 5 % of it (grown by ``RING``) in ``flagged`` (bool ``[H,W]``). With ``image``
    (``[C,H,W]``), the places whose surroundings are most like the region's come first (mean
    edge strength in the ``RING`` px around each, on a log scale): a fill errs more where
    there is more structure, so its error is measured among structure like the region's."""
    h, w = core.shape
    x0, y0, x1, y1 = M.box(core)
    bh, bw = y1 - y0, x1 - x0
    near = M.grow(core.float()[None], RING)[0] > 0
    found = []
    for reach in (1.3, 2.2):
        for fy, fx in ((0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (-1, -1), (1, -1), (-1, 1)):
            dy, dx = round(fy * reach * bh), round(fx * reach * bw)
            if y0 + dy < 0 or y1 + dy > h or x0 + dx < 0 or x1 + dx > w:
                continue
            moved = torch.zeros_like(core)
            moved[y0 + dy : y1 + dy, x0 + dx : x1 + dx] = core[y0:y1, x0:x1]
            if (moved & near).any():
                continue
            if float(flagged[M.grow(moved.float()[None], RING)[0] > 0].float().mean()) > 0.05:
                continue
            found.append(moved)
            if image is None and len(found) == count:
                return found
    if image is None or len(found) <= 1:
        return found[:count]
    ys, xs = _window(near | torch.stack(found).any(0), RING + 2)
    gx, gy = _sobel(M._blur(_luma(image[:, ys, xs])[None, None], EDGE_SIGMA)[0, 0])
    mag = (gx**2 + gy**2).sqrt()

    def surroundings(m: Tensor) -> float:
        m = m[ys, xs]
        ring = (M.grow(m.float()[None], RING)[0] > 0) & ~m
        return float(torch.log(mag[ring].mean() + 1e-3))

    own = surroundings(core)
    found.sort(key=lambda m: abs(surroundings(m) - own))
    return found[:count]


def departure(
    image: Tensor,
    repainted: Tensor,
    core: Tensor,
    fill_errors: list[float],
    spread: float | None = None,
) -> float:
    """How much more the repaint changed ``core`` than a fill errs: mean squared colour change
    over ``core`` of ``image`` -> ``repainted`` (``[C,H,W]``), over the fill's estimated error
    (the same per-pixel measure). The estimate is the mean of ``fill_errors`` (the fill
    against the truth at ``spots``), or ``SPREAD_WEIGHT`` x ``spread`` (the mean squared
    difference of this repaint from another fill of the same region with another seed) when
    that is larger. Infinite with neither.

    If the region is an artifact, its error and the fill's are independent, so the change is
    about their sum and the fill is the better of the two when the change exceeds twice the
    fill's own error; if the region is real content, the change is just the fill's error.
    Two fills that the context does not determine differ by about twice their error, which
    the spots miss where the region holds more than its surroundings (measured on training
    sources: one repaint changed a face 0.38 against a spot error of 0.018, and a second
    fill differed from it by 0.41)."""
    change = float(((image - repainted) ** 2).sum(0)[core].mean())
    estimates = []
    if fill_errors:
        estimates.append(sum(fill_errors) / len(fill_errors))
    if spread is not None:
        estimates.append(SPREAD_WEIGHT * spread)
    if not estimates:
        return float("inf")
    return change / max(max(estimates), 1e-8)
