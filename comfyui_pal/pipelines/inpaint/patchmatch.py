"""Exemplar inpainting: multi-scale PatchMatch with patch voting, vectorised in torch.

Coarse to fine (Wexler et al. 2007 completion with Barnes et al. 2009 PatchMatch): at each
scale a nearest-neighbour field maps every patch touching the hole to a fully known source
patch; it improves by propagation (neighbours' matches, shifted) and random search (windows
shrinking by half), all target pixels at once; then every hole pixel takes the weighted vote
of the source pixels its overlapping patches point at. The smooth fill initialises the
coarsest scale, and each scale's field and image start the next, so structure from far away
continues into the hole instead of blurring.

Patch distances are confidence-weighted (Wexler et al.): known pixels count fully, hole
pixels less the deeper they lie (``CONFIDENCE ** -distance``), so matches are driven by the
real surroundings, not by the current guess. The coarsest scale starts by onion peeling:
ring by ring from the hole's edge inwards, each ring is matched on known pixels only, so the
first estimate is already texture from nearby, not a blur that would attract flat sources.

Pixels outside the hole come back bit for bit. Deterministic for a seed. Runs on the device
of its input; random numbers are drawn from a CPU generator and moved there, so a seed picks
the same draws on every device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ...core.checks import check_image, check_mask, match_masks
from .smooth import smooth_fill

PATCH = 7
MIN_LEVEL_SIDE = 32
CONFIDENCE = 1.3  # hole pixels weigh CONFIDENCE ** -(distance to the known region, px)
DETAIL_SPREAD = 3.0  # finest-octave copies weigh exp(-d / (2 * this * median d))
ONION_ITERS = 2  # PatchMatch iterations per ring of the coarsest scale's onion peel
MAX_DEPTH = 24  # deeper hole pixels keep the weight of this depth


def _level_iterations(level: int, levels: int, side: int) -> tuple[int, int, float]:
    """(EM iterations, PatchMatch iterations per EM step, random-search radius in px).

    Coarse scales, where it is cheap, search the whole image; finer scales refine locally
    around what the coarser scale found. Large scales (``side`` px) cost the most and gain
    the least: above 256 px the finest scale only adds its octave of detail
    (``_detail_fill``), and fewer iterations at 128-256 px cost no quality on 512x512 crops
    (19.8 dB either way). Small crops, the usual native fix window, keep the full schedule:
    cutting it there cost 2-3 dB (measured on 64-128 px crops).
    """
    if level == levels - 1:
        return (3, 2, side / 2) if levels > 3 else (6, 3, side / 2)
    if level == 0 and levels > 1 and side > 256:
        return 0, 0, 0
    if level == 0:
        return 2, 1, 4
    if side > 192:
        return 1, 1, 4
    if side > 96:
        return 2, 1, 16
    return 3, 2, min(side / 2, 16 * 2 ** (level - 1))


class _Level:
    """Index helpers and the fixed source data of one pyramid level."""

    def __init__(self, image: Tensor, hole: Tensor, patch: int) -> None:
        c, h, w = image.shape
        r = patch // 2
        dev = image.device
        self.h, self.w, self.r, self.c = h, w, r, c
        # patches are rows [C*K], channel-major as F.unfold lays them out
        self.padded = F.pad(image[None], (r,) * 4)[0]
        self._feat: Tensor | None = None
        self.hole = hole
        self.image = image
        # pixels within a patch of the hole: they are the target centres (their patches overlap
        # the hole) and can never be source centres
        near = _dilate(hole, r)
        # valid source centres: the whole patch inside the image and free of hole pixels
        inside = torch.zeros(h, w, dtype=torch.bool, device=dev)
        if h > 2 * r and w > 2 * r:
            inside[r : h - r, r : w - r] = True
        self.valid = (inside & ~near).flatten()
        self.valid_idx = self.valid.nonzero()[:, 0]
        self.targets = near.flatten().nonzero()[:, 0]
        ty, tx = self.targets // w, self.targets % w
        self.ty, self.tx = ty, tx
        off = torch.arange(-r, r + 1, device=dev)
        oy, ox = torch.meshgrid(off, off, indexing="ij")
        self.oy, self.ox = oy.flatten(), ox.flatten()
        self.map = torch.full((h * w,), -1, dtype=torch.long, device=dev)
        self.map[self.targets] = torch.arange(len(self.targets), device=dev)
        # voting, gathered per hole pixel: voters[k, j] is the target whose patch covers hole
        # pixel j at offset k (its centre is the pixel minus the offset); -1 off the image
        self.hole_pix = hole.flatten().nonzero()[:, 0]
        hy, hx = self.hole_pix // w, self.hole_pix % w
        cy, cx = hy[None] - self.oy[:, None], hx[None] - self.ox[:, None]
        on = (cy >= 0) & (cy < h) & (cx >= 0) & (cx < w)
        voters = self.map[cy.clamp(0, h - 1) * w + cx.clamp(0, w - 1)]
        self.voters = torch.where(on, voters, -1)
        self.voter_offset = (self.oy * w + self.ox)[:, None]  # source pixel = centre + offset
        wp = w + 2 * r
        # padded flat indices of every target patch pixel [N, K]
        self.t_patch = (ty[:, None] + r + self.oy) * wp + (tx[:, None] + r + self.ox)
        self.set_weights(_confidence(hole))

    def set_weights(self, pixel_weight: Tensor) -> None:
        """Weigh each target patch's pixels by ``pixel_weight`` ``[h,w]`` (0 off the image).

        Stores ``[N, C*K]`` weights in the patches' channel-major layout, normalised to mean 1
        per patch (uniform for a patch with no weight at all), and each patch's total weight.
        """
        padded = F.pad(pixel_weight[None, None], (self.r,) * 4)[0, 0].flatten()
        wk = padded[self.t_patch]  # [N, K]
        total = wk.sum(1, keepdim=True)
        k = wk.shape[1]
        wk = torch.where(total > 0, wk * (k / total.clamp(min=1e-12)), torch.ones_like(wk))
        self.weight = wk.repeat(1, self.c)
        self.support = total[:, 0] / k

    def target_patches(self, cur: Tensor) -> Tensor:
        """``[N, C*K]`` target patches of the current estimate ``cur`` ``[C,h,w]``."""
        padded = F.pad(cur[None], (self.r,) * 4, mode="replicate")[0].reshape(self.c, -1)
        return padded[:, self.t_patch].permute(1, 0, 2).reshape(len(self.targets), -1)

    def build_features(self) -> None:
        """Lay out every patch as a row ``[h*w, C*K]``: worth it when searching many times."""
        p = 2 * self.r + 1
        windows = self.padded.unfold(1, p, 1).unfold(2, p, 1)  # [C, h, w, p, p]
        self._feat = windows.permute(1, 2, 0, 3, 4).reshape(self.h * self.w, -1)

    def source_patches(self, q: Tensor) -> Tensor:
        """``[N, C*K]`` source patches centred at flat pixels ``q``."""
        if self._feat is not None:  # index_select: a third faster than indexing rows
            return torch.index_select(self._feat, 0, q)
        wp = self.w + 2 * self.r
        idx = (q // self.w + self.r)[:, None] * wp + (q % self.w + self.r)[:, None]
        idx = idx + (self.oy * wp + self.ox)[None]
        flat = self.padded.reshape(self.c, -1)
        return flat[:, idx].permute(1, 0, 2).reshape(len(q), -1)

    def distance(self, tp: Tensor, q: Tensor) -> Tensor:
        """Confidence-weighted squared distance of target patches ``tp`` ``[N,C*K]`` to the
        sources ``q`` ``[N]`` or ``[M,N]`` (``M`` candidates per target); shaped like ``q``."""
        src = self.source_patches(q.flatten()).view(*q.shape, tp.shape[1])
        # in place and a batched dot product: half the time of (src - tp)^2 * w summed
        return torch.einsum("...nk,nk->...n", src.sub_(tp).square_(), self.weight)

    def random_valid(self, n: int, g: torch.Generator) -> Tensor:
        """``n`` valid source centres drawn uniformly with the CPU generator ``g``."""
        pick = torch.randint(0, len(self.valid_idx), (n,), generator=g, device=g.device)
        return self.valid_idx[_to(pick, self.valid_idx.device)]


def _to(x: Tensor, device: torch.device) -> Tensor:
    """A small CPU tensor (random draws, constants) on ``device`` without the stream sync of a
    blocking copy: a copy from pageable CPU memory is staged before ``to`` returns."""
    return x.to(device, non_blocking=True)


def _dilate(x: Tensor, r: int) -> Tensor:
    """Square ``(2r+1)``-wide dilation of a bool ``[h,w]`` map (outside counts as unset), as
    shifted ORs along each axis: several times faster than max pooling on small maps."""
    rows = x.clone()
    for k in range(1, r + 1):
        rows[k:] |= x[:-k]
        rows[:-k] |= x[k:]
    out = rows.clone()
    for k in range(1, r + 1):
        out[:, k:] |= rows[:, :-k]
        out[:, :-k] |= rows[:, k:]
    return out


def _confidence(hole: Tensor) -> Tensor:
    """``[h,w]`` weights: 1 on known pixels, ``CONFIDENCE ** -depth`` inside the hole."""
    out = torch.ones(hole.shape, device=hole.device)
    if not hole.any():
        return out
    ys, xs = torch.nonzero(hole, as_tuple=True)  # work on the hole's box only
    y0, y1 = max(int(ys.min()) - 1, 0), int(ys.max()) + 2
    x0, x1 = max(int(xs.min()) - 1, 0), int(xs.max()) + 2
    front = hole[y0:y1, x0:x1].clone()
    depth = torch.zeros(front.shape, device=hole.device)
    for step in range(1, MAX_DEPTH + 1):  # grow the known region one ring at a time
        if not front.any():
            break
        depth.masked_fill_(front, step)
        front = ~_dilate(~front, 1)  # erode: off the image counts as hole
    box = hole[y0:y1, x0:x1]
    out[y0:y1, x0:x1] = torch.where(box, CONFIDENCE**-depth, 1.0)
    return out


def _improve(lv: _Level, q: Tensor, d: Tensor, tp: Tensor, cand: Tensor) -> tuple[Tensor, Tensor]:
    """Keep, per target, the best of its match ``q`` and the candidates ``cand`` ``[M,N]``.

    All candidates are scored in one batched distance; invalid ones (off the image, or patches
    touching the hole; marked by any index outside ``0..h*w-1`` or an invalid centre) lose.
    """
    inside = (cand >= 0) & (cand < lv.h * lv.w)
    ok = inside & lv.valid[cand.clamp(0, lv.h * lv.w - 1)]
    cand = torch.where(ok, cand, q[None])
    dc = lv.distance(tp, cand)
    dc = torch.where(ok, dc, torch.inf)
    best, which = dc.min(0)
    better = best < d
    pick = cand.gather(0, which[None])[0]
    return torch.where(better, pick, q), torch.where(better, best, d)


_STEPS = torch.tensor([(0, 1), (1, 0), (0, -1), (-1, 0)], device="cpu")  # moved by _to


def _patchmatch(
    lv: _Level, q: Tensor, tp: Tensor, iters: int, g: torch.Generator, search: float
) -> tuple[Tensor, Tensor]:
    """``iters`` rounds of propagation then random search (``search`` px, 0: none)."""
    d = lv.distance(tp, q)
    h, w = lv.h, lv.w
    radii = []
    radius = search
    while radius >= 1:  # random search in windows shrinking by half
        radii.append(int(radius))
        radius /= 2
    dev = q.device
    r = _to(torch.tensor(radii, dtype=torch.long, device="cpu")[:, None], dev)
    steps = _to(_STEPS, dev)
    dy, dx = steps[:, :1], steps[:, 1:]
    ny, nx = lv.ty[None] - dy, lv.tx[None] - dx  # the neighbours' target index, -1 for none
    nidx = lv.map[ny.clamp(0, h - 1) * w + nx.clamp(0, w - 1)]
    has = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w) & (nidx >= 0)
    for _ in range(iters):
        # propagation: each neighbour's match, shifted back by the step to the neighbour
        nq = q[nidx.clamp(min=0)]  # [4, N]
        cy, cx = nq // w + dy, nq % w + dx
        ok = has & (cy >= 0) & (cy < h) & (cx >= 0) & (cx < w)
        q, d = _improve(lv, q, d, tp, torch.where(ok, cy * w + cx, -1))
        if not radii:
            continue
        qy, qx = q // w, q % w
        shape = (len(radii), len(q))
        ry = (_to(torch.rand(shape, generator=g, device=g.device), dev) * (2 * r + 1)).long() - r
        rx = (_to(torch.rand(shape, generator=g, device=g.device), dev) * (2 * r + 1)).long() - r
        cand = (qy + ry).clamp(0, h - 1) * w + (qx + rx).clamp(0, w - 1)
        cand = torch.cat([cand, lv.random_valid(len(q), g)[None]])  # and a global guess
        q, d = _improve(lv, q, d, tp, cand)
    return q, d


def _vote(lv: _Level, q: Tensor, d: Tensor, cur: Tensor, only: Tensor | None = None) -> Tensor:
    """New estimate: each hole pixel = weighted mean of the source pixels voted for it.

    A patch's vote weighs ``exp(-d / 2 sigma^2)`` times its confidence support; ``only``
    ``[h*w]`` bool restricts which hole pixels are updated.
    """
    sigma2 = d.median().clamp(min=1e-6)
    patch_w = torch.exp(-d / (2 * sigma2)) * lv.support  # [N]
    voters = lv.voters  # [K, Nh]
    has = voters >= 0
    v = voters.clamp(min=0)
    wgt = torch.where(has, patch_w[v], 0.0)  # [K, Nh]
    src = q[v] + lv.voter_offset  # the voted source pixels, always inside the image
    img = lv.image.reshape(lv.c, -1)
    acc = (img[:, src] * wgt).sum(1)  # [C, Nh]
    tot = wgt.sum(0)
    upd = tot > 1e-12
    if only is not None:
        upd = upd & only[lv.hole_pix]
    flat = cur.reshape(lv.c, -1).clone()
    # pixels without a vote keep their value: a select, not a shape-changing mask (no sync)
    flat[:, lv.hole_pix] = torch.where(upd, acc / tot.clamp(min=1e-12), flat[:, lv.hole_pix])
    return flat.reshape(cur.shape)


def _onion_peel(lv: _Level, q: Tensor, cur: Tensor, g: torch.Generator, search: float) -> Tensor:
    """Fill the hole ring by ring from its edge, matching on filled pixels only."""
    known = ~lv.hole
    while not known.all():
        ring = ~known & _dilate(known, 1)
        if not ring.any():  # nothing known touches the rest: leave it to the smooth start
            break
        lv.set_weights(known.float())
        tp = lv.target_patches(cur)
        q, _ = _patchmatch(lv, q, tp, ONION_ITERS, g, search)
        # each ring pixel copies the centre of its own patch's match: no averaging, no blur
        idx = lv.map[ring.flatten().nonzero()[:, 0]]
        flat = cur.reshape(lv.c, -1).clone()
        src = lv.image.reshape(lv.c, -1)
        flat[:, lv.targets[idx]] = src[:, q[idx]]
        cur = flat.reshape(cur.shape)
        known = known | ring
    lv.set_weights(_confidence(lv.hole))
    return cur, q


def _double(
    q: Tensor, coarse: _Level, fy: Tensor, fx: Tensor, size: tuple[int, int]
) -> tuple[Tensor, Tensor]:
    """Where the coarse field points for fine pixels ``(fy, fx)`` (same offset, doubled) in
    a fine image of ``size`` ``(h, w)``: flat fine sources (clamped into the image) and which
    are real (the coarse pixel is a coarse target and the doubled source lies inside)."""
    h, w = size
    cy, cx = (fy // 2).clamp(max=coarse.h - 1), (fx // 2).clamp(max=coarse.w - 1)
    cidx = coarse.map[cy * coarse.w + cx]
    cq = q[cidx.clamp(min=0)]
    sy = (cq // coarse.w) * 2 + (fy - cy * 2)
    sx = (cq % coarse.w) * 2 + (fx - cx * 2)
    ok = (cidx >= 0) & (sy >= 0) & (sy < h) & (sx >= 0) & (sx < w)
    return sy.clamp(0, h - 1) * w + sx.clamp(0, w - 1), ok


def _upsample_field(q: Tensor, coarse: _Level, fine: _Level) -> tuple[Tensor, Tensor]:
    """Map the coarse field onto the fine targets (same offset, doubled).

    Returns the fine field ``[N]`` and which of its entries are valid sources ``[N]`` bool.
    """
    cand, ok = _double(q, coarse, fine.ty, fine.tx, (fine.h, fine.w))
    return cand, ok & fine.valid[cand]


def _detail_fill(
    image: Tensor, hole: Tensor, cur: Tensor, coarse: _Level, q: Tensor, d: Tensor
) -> Tensor:
    """The finest scale without a search: the coarse fill, upsampled, plus the finest octave
    (``image`` minus its blur) copied from where the coarse field points.

    ``cur`` ``[C,h/2,w/2]`` is the coarse estimate, ``q``/``d`` its field and distances on
    ``coarse``'s targets. Each hole pixel takes the detail of the source pixel at the same
    offset inside its coarse target's match, weighed by ``exp(-d / (2 DETAIL_SPREAD m))``
    (``m`` the median distance), so badly matched patches add little texture instead of wrong
    texture. One gather per hole pixel: voting 49 patches at full size costs 10x more and
    blurs the octave it is meant to add (measured on the benchmark's holes).
    """
    c, h, w = image.shape
    size = (h, w)
    up = F.interpolate(cur[None], size=size, mode="bilinear", align_corners=False)[0]
    blur = F.interpolate(
        F.avg_pool2d(image[None], 2, ceil_mode=True),
        size=size,
        mode="bilinear",
        align_corners=False,
    )
    octave = (image - blur[0]).reshape(c, -1)
    pix = hole.flatten().nonzero()[:, 0]
    hy, hx = pix // w, pix % w
    src, ok = _double(q, coarse, hy, hx, (h, w))
    src = torch.where(ok, src, pix)
    # every hole pixel's coarse pixel is a coarse target: its match distance weighs the copy
    t = coarse.map[(hy // 2).clamp(max=coarse.h - 1) * coarse.w + (hx // 2).clamp(max=coarse.w - 1)]
    spread = 2 * DETAIL_SPREAD * d.median().clamp(min=1e-6)
    weight = torch.where(ok, torch.exp(-d[t.clamp(min=0)] / spread), 0.0)
    flat = up.reshape(c, -1).clone()
    flat[:, pix] += octave[:, src] * weight
    return torch.where(hole[None], flat.reshape(c, h, w).clamp(0, 1), image)


def _fill_one(image: Tensor, hole: Tensor, seed: int, patch: int) -> Tensor:
    _, h, w = image.shape
    levels = 1
    while min(h, w) / 2**levels >= MIN_LEVEL_SIDE:
        levels += 1
    images, holes = [image], [hole]
    for _ in range(levels - 1):
        images.append(F.avg_pool2d(images[-1][None], 2, ceil_mode=True)[0])
        holes.append(F.max_pool2d(holes[-1][None, None].float(), 2, ceil_mode=True)[0, 0] > 0)
    # a CPU generator on every device: the same draws for a seed (ComfyUI seeds are 64-bit: wrap)
    g = torch.Generator("cpu").manual_seed(seed % 2**64)
    cur = q = d = prev = None
    for li in range(levels - 1, -1, -1):
        img, hl = images[li], holes[li]
        em, pm, search = _level_iterations(li, levels, max(img.shape[1:]))
        if em == 0 and cur is not None and prev is not None:  # no search (see _detail_fill)
            return _detail_fill(img, hl, cur, prev, q, d)
        if em == 0:  # the coarser scale found no sources to point at: search here after all
            em, pm, search = _level_iterations(0, 1, max(img.shape[1:]))
        if cur is not None:
            up = F.interpolate(cur[None], size=hl.shape, mode="bilinear", align_corners=False)
            cur = torch.where(hl[None], up[0], img)
        lv = _Level(img, hl, patch)
        if len(lv.valid_idx) == 0 or len(lv.targets) == 0:
            if cur is None:
                cur = smooth_fill(img[None], hl[None].float())[0]
            prev = None
            continue
        if em * pm > 2 or search > 0:
            lv.build_features()
        if prev is not None:
            q, ok = _upsample_field(q, prev, lv)
            q = torch.where(ok, q, lv.random_valid(len(q), g))
        else:
            q = lv.random_valid(len(lv.targets), g)
            if cur is None:
                cur = smooth_fill(img[None], hl[None].float())[0]
                cur, q = _onion_peel(lv, q, cur, g, search)
        for _ in range(em):
            q, d = _patchmatch(lv, q, lv.target_patches(cur), pm, g, search)
            cur = _vote(lv, q, d, cur)
        prev = lv
    return torch.where(hole[None], cur, image)


def patchmatch_fill(image: Tensor, mask: Tensor, seed: int = 0, patch: int = PATCH) -> Tensor:
    """Fill ``mask > 0`` pixels of ``image`` ``[B,C,H,W]`` from the rest of each image.

    ``mask`` is ``[1|B,H,W]``. Textures and structure continue into the hole; pixels outside
    come back bit for bit. Falls back to the smooth fill when no whole patch is known.
    Deterministic for ``seed`` (image ``i`` uses ``seed + i``). Computed in float32 on
    ``image``'s device (``mask`` is moved there); the result has ``image``'s dtype and device.
    """
    check_image(image)
    holes = match_masks(check_mask(mask), image).to(image.device) > 0
    if patch < 3 or patch % 2 == 0:
        raise ValueError(f"patch must be an odd size >= 3, got {patch}")
    out = []
    for i in range(image.shape[0]):
        if not holes[i].any():
            out.append(image[i].clone())
            continue
        filled = _fill_one(image[i].float(), holes[i], seed + i, patch)
        out.append(torch.where(holes[i][None], filled.to(image), image[i]))
    return torch.stack(out)
