"""Automatic fixing: detect -> refine -> zoom-in inpaint -> stitch -> re-detect, until clean.

Each round re-detects the current images and inpaints only the confidently flagged regions,
then stitches them back (pixels outside the blend masks stay bit-exact) and keeps each change
only where the detector then flags less. The built-in PatchMatch (or smooth fill) works on
every region at its native scale; an inpainter callable (e.g. a diffusion sampler) gets all
regions zoomed to one work size as one batch. Images whose PAR is already at or below the
target pass through untouched. Deterministic for a seed.

Shapes: images ``[B,C,H,W]`` float 0..1, masks ``[B,H,W]``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import torch
from torch import Tensor, nn

from ..core import masks as M
from ..core import regions
from ..core.checks import check_image
from ..options import option, validate
from . import acceptance
from .detect import MODES, detect, par
from .inpaint import patchmatch_fill, smooth_fill
from .zoom import Inpainter, zoom_inpaint

INPAINTERS = ("patchmatch", "smooth")
# px of image kept around a region's context window when it is filled on its own: covers the
# crop planner's rounding up to 8 px and the acceptance test's ring (3 x acceptance.RING)
WINDOW_PAD = 3 * acceptance.RING + 8
# progress over a whole job: called with (at, until) when a step starts, fractions 0..1 of the
# job done now and when the step ends; may raise to stop
Span = Callable[[float, float], None]
INPAINT_SHARE = 0.8  # of each round's share of the bar; re-detection takes the rest
SPREAD_SEED = 7919  # seed offset of the acceptance test's second fill of a region

SEED_MAX = 2**64 - 1  # ComfyUI's seed range (0xffffffffffffffff), the same on every node


@dataclass
class FixOptions:
    """Settings of the fix loop, one definition for the library, the node and the CLI."""

    threshold: float = option(0.5, "Artifact probability threshold.", min=0.01, max=0.99, step=0.01)
    target_par: float = option(
        0.0005,
        "Stop when the artifact area ratio is at most this.",
        min=0.0,
        max=1.0,
        step=0.0001,
    )
    max_iterations: int = option(2, "Detect-inpaint rounds at most.", min=0, max=10)
    grow: int = option(6, "Grow detected regions by this many pixels first.", min=0, max=128)
    min_area: float = option(
        24, "Ignore specks smaller than this (px; a value < 1 is a fraction of the image).", min=0
    )
    min_confidence: float = option(
        0.85,
        "Leave regions whose mean artifact probability is lower: on real photos borderline "
        "detections are mostly real structure.",
        min=0.0,
        max=1.0,
        step=0.01,
    )
    fill_holes: bool = option(True, "Fill holes inside detected regions.")
    max_regions: int = option(
        64,
        "Inpaint at most this many regions per image and round (the largest, most confident "
        "first); the rest are reported as skipped. Bounds time and the crop batch.",
        min=1,
        max=100000,
    )
    context_factor: float = option(
        2.0, "Crop this many times the region's size around it, for context.", min=1.0, max=8.0
    )
    min_context: int = option(32, "At least this much context around a region (px).", min=0)
    target_size: int = option(
        512,
        "Long side of the zoomed crops for the diffusion model (px).",
        min=64,
        max=4096,
        step=64,
    )
    multiple: int = option(
        64, "Crop work sizes are rounded up to this multiple (model inpainters).", min=8, max=512
    )
    max_native_size: int = option(
        1024,
        "Built-in fills shrink larger windows to this long side (px; bounds memory).",
        min=64,
        max=8192,
    )
    blend_radius: float = option(
        12, "Soft transition width when pasting back (px).", min=0, max=256, step=1
    )
    inpainter: str = option(
        "patchmatch", "patchmatch continues texture; smooth is fastest.", choices=INPAINTERS
    )
    seed: int = option(
        0,
        "Seed of the inpainter's random search (round r, region k use seed + 1000 r + k, "
        "wrapped to 64 bits).",
        min=0,
        max=SEED_MAX,
    )
    mode: str = option(
        "resize",
        "How the detector looks: resize = the paper's 512x512 pass over the whole image "
        "(fast); tiled = native-resolution windows fused with it (finds small artifacts on "
        "big images, slower).",
        choices=MODES,
    )
    tta: bool = option(
        True, "Detect with a mirrored pass too: fewer false alarms, twice the detection time."
    )
    protect: bool = option(
        True,
        "Never remove real content: undo repaints that break edges entering a region or turn "
        "an object into background, and leave objects, regions cut by structure and large "
        "structured regions to a diffusion model (built-in fills cannot make new content).",
    )

    def __post_init__(self) -> None:
        validate(self)


def builtin_inpainter(name: str) -> Inpainter:
    """The built-in inpainter called ``name`` as an ``Inpainter``."""
    if name == "patchmatch":
        return lambda crops, m, seed: patchmatch_fill(crops, m, seed=seed)
    if name == "smooth":
        return lambda crops, m, seed: smooth_fill(crops, m)
    raise ValueError(f"inpainter must be one of {INPAINTERS}, got {name!r}")


def _detect(model: nn.Module, images: Tensor, opt: FixOptions) -> Tensor:
    """Artifact probabilities ``[B,H,W]`` of ``images`` ``[B,C,H,W]`` as the fix detects."""
    return detect(model, images, mode=opt.mode, tta=opt.tta)


def fix(
    model: nn.Module,
    images: Tensor,
    options: FixOptions | None = None,
    inpaint: Inpainter | None = None,
    progress: Span | None = None,
    probs: Tensor | None = None,
) -> tuple[Tensor, Tensor, list[dict]]:
    """Fix ``images`` ``[B,3,H,W]``; returns ``(fixed, final_mask [B,H,W], history)``.

    ``final_mask`` is what the detector still flags after the last round (thresholded).
    Each connected patch of inpainted pixels is kept only if it lowered the flagged area in and
    around it, and a round that does not lower an image's PAR is undone for that image, so
    fixing never makes the detector's score worse.
    ``progress(at, until)`` (fractions of the whole fix, 0..1) is called when each step starts:
    the fix is ``at`` done and this step ends at ``until`` (each round owns an equal share:
    inpainting, per region for the built-in inpainter, then re-detection); the last call is
    ``(1, 1)``, also when the fix stops early. It may raise to stop. ``history`` lists, per
    round and image, the PAR measured, the regions inpainted and those skipped (with
    reasons), and the time taken.
    ``probs`` may pass in a detection of ``images`` already made (``[B,H,W]``), to save the
    first pass.
    """
    opt = options or FixOptions()
    check_image(images)
    native = inpaint is None
    inpaint = inpaint or builtin_inpainter(opt.inpainter)
    estimator = inpaint if native else builtin_inpainter("patchmatch")  # of a fill's error
    current = images.clone()
    history: list[dict] = []
    rounds = max(1, opt.max_iterations)
    report_progress = progress or (lambda at, until: None)
    report_progress(0.0, 1 / rounds)
    if probs is None:
        probs = _detect(model, current, opt)
    for it in range(opt.max_iterations + 1):
        base = it / rounds
        painting = base + INPAINT_SHARE / rounds  # the rest of the round re-detects
        scores = par(probs, opt.threshold).tolist()
        todo = [i for i, s in enumerate(scores) if s > opt.target_par]
        entry = {
            "iteration": it,
            "par": [round(s, 6) for s in scores],
            "fixed": [],
            "skipped": [],
            "seconds": 0.0,
        }
        history.append(entry)
        if not todo or it == opt.max_iterations:
            reason = "clean" if not todo else "max_iterations reached"
            entry["stopped"] = reason
            break
        t0 = time.perf_counter()
        previous = current.clone()
        mask, unsure = _confident_regions(probs[todo], opt)
        for r in unsure:
            entry["skipped"].append(dict(r, batch_index=todo[r["batch_index"]]))
        seed = (opt.seed + 1000 * it) % (SEED_MAX + 1)
        if native:

            def step(k: int, n: int, base: float = base, top: float = painting) -> None:
                report_progress(base + (top - base) * k / n, base + (top - base) * (k + 1) / n)

            whole = todo == list(range(len(current)))  # edited in place: no batch copy
            sub = current if whole else current[todo]
            sub, report = _inpaint_native(sub, mask, opt, inpaint, seed, step, in_place=True)
            if not whole:
                current[todo] = sub
        else:
            report_progress(base, painting)
            current[todo], report = _inpaint_zoomed(current[todo], mask, opt, inpaint, seed)
        for r in report:
            local = r["batch_index"]
            r = dict(r, batch_index=todo[local])
            if r["status"] == "skipped":
                entry["skipped"].append(r)
                continue
            x0, y0, x1, y1 = r["box"]  # the detector's view of what is repainted
            seen = probs[todo[local], y0:y1, x0:x1][mask[local, y0:y1, x0:x1] > 0]
            if len(seen):
                r.update(
                    mean_prob=round(float(seen.mean()), 3), max_prob=round(float(seen.max()), 3)
                )
            entry["fixed"].append(dict(r, outcome="repainted"))
        if not entry["fixed"] and not unsure:
            for i in todo:
                entry["skipped"].append(
                    {"batch_index": i, "reason": f"only specks below min_area={opt.min_area} px"}
                )
        for n, r in enumerate(entry["fixed"] + entry["skipped"], 1):
            r["region"] = f"{it}.{n}"  # one key per record of the whole history ("id" is a label)
            r.setdefault("outcome", "skipped")
        entry["seconds"] = round(time.perf_counter() - t0, 3)
        report_progress(painting, (it + 1) / rounds)
        new_probs = _detect(model, current, opt)
        fill_error = FillError(opt, estimator, seed + 500, spread=native) if opt.protect else None
        undone = _keep_improvements(
            previous, current, probs, new_probs, todo, opt.threshold, opt.protect, fill_error
        )
        if undone:
            _mark(entry["fixed"], undone, "undone", mask, todo)
            for u in undone:
                del u["pixels"]
            entry["changes_undone"] = undone
            again = sorted({u["batch_index"] for u in undone})  # measure them as they now are
            new_probs[again] = _detect(model, current[again], opt)
        new_scores = par(new_probs, opt.threshold).tolist()
        worse = [i for i in todo if new_scores[i] >= scores[i]]
        if worse:  # a round must lower PAR: keep the previous image where it did not
            current[worse] = previous[worse]
            new_probs[worse] = probs[worse]
            entry["reverted"] = worse
            why = "the round did not lower this image's PAR"
            events = [{"batch_index": i, "reason": why} for i in worse]
            _mark(entry["fixed"], events, "reverted", mask, todo)
        probs = new_probs
        if len(worse) == len(todo):
            history.append(
                {
                    "iteration": it + 1,
                    "par": [round(s, 6) for s in scores],
                    "fixed": [],
                    "skipped": [],
                    "seconds": 0.0,
                    "stopped": "no round lowered PAR any further",
                }
            )
            break
    report_progress(1.0, 1.0)
    final = (probs > opt.threshold).float()
    history.append({"options": asdict(opt)})
    return current, final, history


def _mark(
    records: list[dict], events: list[dict], outcome: str, mask: Tensor, todo: list[int]
) -> None:
    """Set ``outcome`` and ``why`` on the repainted region records each event touches: the
    same image and, for an undone edit (its ``pixels``: rows, columns and bool patch of its
    window), a repainted pixel of the region's box (``mask`` ``[len(todo),H,W]``) inside the
    edit."""
    for e in events:
        for r in records:
            if r["batch_index"] != e["batch_index"] or r.get("outcome") != "repainted":
                continue
            if "pixels" in e:
                wy, wx, patch = e["pixels"]
                x0, y0, x1, y1 = r["box"]
                ys = slice(max(y0, wy.start), min(y1, wy.stop))
                xs = slice(max(x0, wx.start), min(x1, wx.stop))
                if ys.start >= ys.stop or xs.start >= xs.stop:
                    continue
                painted = mask[todo.index(r["batch_index"]), ys, xs] > 0
                edit = patch[
                    ys.start - wy.start : ys.stop - wy.start,
                    xs.start - wx.start : xs.stop - wx.start,
                ]
                if not (painted & edit).any():
                    continue
            r.update(outcome=outcome, why=e["reason"])


def _confident_regions(probs: Tensor, opt: FixOptions) -> tuple[Tensor, list[dict]]:
    """Refined ``[B,H,W]`` mask of the regions worth inpainting, and the ones left out.

    A region (before growing) whose mean probability is below ``min_confidence`` is left
    alone: on real photographs such borderline detections are mostly real structure (thin
    bright lines, highlights) that an inpainter would erase. Of the rest, at most
    ``max_regions`` per image are kept, largest ``area x mean probability`` first.
    """
    flagged = M.refine(probs, threshold=opt.threshold, fill_holes=opt.fill_holes)
    labels, counts = M.label(flagged)
    keep = torch.zeros_like(flagged, dtype=torch.bool)
    ok = [torch.zeros(c + 1, dtype=torch.bool) for c in counts]  # per image, by region id
    skipped, confident = [], [[] for _ in counts]

    def skip(r: M.Region, reason: str) -> None:
        skipped.append(
            {
                "batch_index": r.batch_index,
                "id": r.id,
                "area_px": r.area_px,
                "mean_prob": round(r.mean_prob, 3),
                "reason": reason,
            }
        )

    for r in M.regions_from_labels(labels, counts, probs):
        if r.mean_prob >= opt.min_confidence:
            confident[r.batch_index].append(r)
        else:
            skip(r, f"mean probability below min_confidence={opt.min_confidence}")
    for found in confident:  # the most flagged mass first: specks never crowd out regions
        found.sort(key=lambda r: (-r.area_px * r.mean_prob, r.id))
        for r in found[: opt.max_regions]:
            ok[r.batch_index][r.id] = True
        for r in found[opt.max_regions :]:
            skip(r, f"over max_regions={opt.max_regions} for this image and round")
    for bi, table in enumerate(ok):
        keep[bi] = table[labels[bi].long()]
    mask = M.refine(keep.float(), grow=opt.grow, min_area=opt.min_area)
    return mask, skipped


def _inpaint_zoomed(
    images: Tensor, mask: Tensor, opt: FixOptions, inpaint: Inpainter, seed: int
) -> tuple[Tensor, list[dict]]:
    """All regions of all images as one batch of crops at one shared work size (for models)."""
    fixed, plan = zoom_inpaint(
        images,
        inpaint,
        mask,
        seed=seed,
        blend_radius=opt.blend_radius,
        context_factor=opt.context_factor,
        min_context=opt.min_context,
        target_size=opt.target_size,
        multiple=opt.multiple,
    )
    return fixed, plan.report


def _inpaint_native(
    images: Tensor,
    mask: Tensor,
    opt: FixOptions,
    inpaint: Inpainter,
    seed: int,
    step: Callable[[int, int], None] | None = None,
    in_place: bool = False,
) -> tuple[Tensor, list[dict]]:
    """Each region in its own window at (about) native scale, for the built-in inpainters;
    ``images`` are edited ``in_place`` (and returned) or copied first.

    Exemplar and smooth fills gain nothing from upsampling and lose detail when a large
    window is shrunk to a shared work size, so every region gets a window of its own context
    whose work size is the window's own size (rounded up to 8 px), up to
    ``max_native_size``: PatchMatch holds every patch of its window (about 600 B per pixel),
    so larger windows are filled at that size and scaled back.
    """
    labels, counts = M.label(mask > 0)
    out = images if in_place else images.clone()
    _, _, h, w = images.shape
    report: list[dict] = []
    found = M.regions_from_labels(labels, counts)
    for k, region in enumerate(found):
        bi, rid = region.batch_index, region.id
        if step is not None:  # region k of n starts; may raise to stop (ComfyUI's interrupt)
            step(k, len(found))
        # everything below sees only the region's window (its context, the planner's
        # rounding and the acceptance test's ring): cost follows the region, not the image
        cx0, cy0, cx1, cy1 = regions.context_box(region.box, opt.context_factor, opt.min_context)
        pad = WINDOW_PAD + math.ceil(opt.blend_radius)
        wy, wx = (
            slice(max(0, math.floor(cy0) - pad), min(h, math.ceil(cy1) + pad)),
            slice(max(0, math.floor(cx0) - pad), min(w, math.ceil(cx1) + pad)),
        )
        view = out[bi : bi + 1, :, wy, wx]
        inside = labels[bi : bi + 1, wy, wx] == rid
        if opt.protect:
            why = acceptance.triage(acceptance.profile(view[0], inside[0], total_px=h * w))
            if why is not None:
                report.append(
                    region.to_dict()
                    | {
                        "batch_index": bi,
                        "id": rid,
                        "status": "skipped",
                        "crop": None,
                        "reason": why,
                    }
                )
                continue
        crops, crop_masks, plan = regions.crop_regions(
            view,
            inside.to(mask.dtype),
            context_factor=opt.context_factor,
            min_context=opt.min_context,
            target_size=min(opt.max_native_size, max(8, math.ceil(max(cx1 - cx0, cy1 - cy0)))),
            multiple=8,
        )
        filled = inpaint(crops, crop_masks, seed + len(report))
        out[bi : bi + 1, :, wy, wx] = regions.stitch(
            view, filled, plan, blend_radius=opt.blend_radius
        )
        for r in plan.report:  # boxes back in whole-image pixels
            x0, y0, x1, y1 = r["box"]
            moved = (x0 + wx.start, y0 + wy.start, x1 + wx.start, y1 + wy.start)
            report.append(
                dict(
                    r,
                    batch_index=bi,
                    id=rid,
                    crop=len(report),
                    box=moved,
                    area_ratio=r["area_px"] / (h * w),
                )
            )
    return out, report


def _keep_improvements(
    previous: Tensor,
    current: Tensor,
    before: Tensor,
    after: Tensor,
    todo: list[int],
    threshold: float,
    protect: bool = True,
    fill_error: FillError | None = None,
    limits: acceptance.Limits | None = None,
) -> list[dict]:
    """Undo each edit (``change_patches``) that did not shrink the flagged area, or (with
    ``protect``) that removed real content (``acceptance.verdict``), or that changed its
    region less than ``limits.min_departure`` times the fill's own error on known content
    next to it (``fill_error``; see ``acceptance.departure``).

    An edit counts flagged pixels in and around it (grown by 8 px more, where the detector's
    view of the change reaches) before and after; if there are not fewer, or the verdict
    names a loss, every pixel of it is put back from ``previous`` exactly. ``current`` is
    edited in place. Returns one record per undone edit: image index, patch number, box,
    area, the reason and its ``pixels`` (window rows, columns and bool patch; not reported).
    """
    limits = limits or acceptance.Limits()
    undone = []
    _, _, h, w = previous.shape
    pad = WINDOW_PAD  # covers the 8 px "around" and the acceptance test's ring
    for i in todo:
        labels, counts = change_patches(previous[i : i + 1], current[i : i + 1])
        for r in M.regions_from_labels(labels, counts):  # each edit in its own window
            x0, y0, x1, y1 = r.box
            wy = slice(max(0, y0 - pad), min(h, y1 + pad))
            wx = slice(max(0, x0 - pad), min(w, x1 + pad))
            patch = labels[0, wy, wx] == r.id
            around = M.grow(patch[None].float(), 8)[0] > 0
            was = int((before[i, wy, wx][around] > threshold).sum())
            now = int((after[i, wy, wx][around] > threshold).sum())
            old, new = previous[i, :, wy, wx], current[i, :, wy, wx]
            why = None
            if now >= was:
                why = f"the detector does not flag less there ({was} -> {now} px)"
            elif protect:  # judged where the repaint really changed the image, not its ramp
                core = patch & ((old - new).abs().amax(0) > acceptance.VISIBLE)
                why = acceptance.verdict(old, new, core, limits, total_px=h * w)
                if why is None and fill_error is not None and int(core.sum()) >= 16:
                    why = _implausible(
                        previous[i],
                        current[i],
                        before[i],
                        core,
                        (wy, wx),
                        threshold,
                        fill_error,
                        r.id,
                        limits,
                    )
            if why is not None:
                new[:, patch] = old[:, patch]  # a view: edits current in place
                undone.append(
                    {
                        "batch_index": i,
                        "patch": r.id,
                        "box": list(r.box),
                        "area_px": r.area_px,
                        "reason": why,
                        "pixels": (wy, wx, patch),  # for the region records; not reported
                    }
                )
    return undone


@dataclass
class FillError:
    """The fix's own fill (``inpaint``, as ``opt`` fills a region: in its own context window,
    no acceptance test) on known content: ``(image [C,H,W], spot [H,W] bool, k)`` -> mean
    squared colour error (summed over channels) over ``spot``, seeded ``seed + k``.
    ``spread``: ``inpaint`` is what made the repaints judged, so a second fill of a region
    with another seed tells how far its fills are from determined (not so for a diffusion
    model's repaints, whose error is estimated with a built-in fill)."""

    opt: FixOptions
    inpaint: Inpainter
    seed: int
    spread: bool = True

    def margin(self, bh: int, bw: int) -> tuple[int, int]:
        """px around a ``bh`` x ``bw`` region's box that hold every ``acceptance.spots``
        place (up to 2.2 boxes away) with the context window its fill reads."""
        o = self.opt
        pad = WINDOW_PAD + math.ceil(o.blend_radius) + 2

        def one(b: int) -> int:
            return math.ceil(3.2 * b + max(b * (o.context_factor - 1) / 2, o.min_context)) + pad

        return one(bh), one(bw)

    def __call__(self, image: Tensor, spot: Tensor, k: int, against: Tensor | None = None) -> float:
        """Error of a fill of ``spot`` in ``image``; with ``against`` (``[C,H,W]``), its mean
        squared difference from that image over ``spot`` instead (another fill's spread)."""
        _, h, w = image.shape
        o = self.opt
        cx0, cy0, cx1, cy1 = regions.context_box(M.box(spot), o.context_factor, o.min_context)
        pad = WINDOW_PAD + math.ceil(o.blend_radius)
        wy = slice(max(0, math.floor(cy0) - pad), min(h, math.ceil(cy1) + pad))
        wx = slice(max(0, math.floor(cx0) - pad), min(w, math.ceil(cx1) + pad))
        truth = image[None, :, wy, wx]
        hole = spot[wy, wx]
        plain = replace(o, protect=False)
        filled, _ = _inpaint_native(
            truth.clone(),
            hole[None].to(image.dtype),
            plain,
            self.inpaint,
            self.seed + k,
            in_place=True,
        )
        ref = truth[0] if against is None else against[:, wy, wx]
        return float(((filled[0] - ref) ** 2).sum(0)[hole].mean())


def _implausible(
    previous: Tensor,
    current: Tensor,
    probs: Tensor,
    core: Tensor,
    window: tuple[slice, slice],
    threshold: float,
    fill_error: FillError,
    k: int,
    limits: acceptance.Limits,
) -> str | None:
    """Why the repaint of ``core`` (bool, in ``window`` of the ``[C,H,W]`` images) does not
    depart enough from the region to be a repair (``acceptance.departure``), or None. The
    fill's error is measured at the ``acceptance.SPOTS`` places most like the region that the
    detector (``probs`` ``[H,W]``) does not flag, and by a second fill of the region itself
    (with ``fill_error.spread``), all within a window of the region's reach
    (cost follows the region, not the image); with neither a place nor a second fill (a
    diffusion model's repaint beside no known content), the test is not made."""
    wy, wx = window
    _, h, w = previous.shape
    x0, y0, x1, y1 = M.box(core)
    my, mx = fill_error.margin(y1 - y0, x1 - x0)
    ay = slice(max(0, wy.start + y0 - my), min(h, wy.start + y1 + my))
    ax = slice(max(0, wx.start + x0 - mx), min(w, wx.start + x1 + mx))
    local = torch.zeros(
        ay.stop - ay.start, ax.stop - ax.start, dtype=torch.bool, device=core.device
    )
    local[wy.start - ay.start : wy.stop - ay.start, wx.start - ax.start : wx.stop - ax.start] = core
    area = previous[:, ay, ax]
    places = acceptance.spots(local, probs[ay, ax] > threshold, acceptance.SPOTS, image=area)
    errors = [fill_error(area, s, k) for s in places]
    # the same region filled again with another seed: how far the fill is from determined
    spread = (
        fill_error(area, local, k + SPREAD_SEED, against=current[:, ay, ax])
        if fill_error.spread
        else None
    )
    old, new = previous[:, wy, wx], current[:, wy, wx]
    ratio = acceptance.departure(old, new, core, errors, spread)
    if ratio >= limits.min_departure:
        return None
    by_spots = acceptance.departure(old, new, core, errors)
    if by_spots >= limits.min_departure:  # the spread decided
        return (
            f"no better than the region: another fill of it differs from the repaint by "
            f"{1 / (acceptance.SPREAD_WEIGHT * ratio):.2f}x as much as the repaint changed it "
            f"(a guess, not a repair; needs at most "
            f"{1 / (acceptance.SPREAD_WEIGHT * limits.min_departure):.2f}x)"
        )
    return (
        f"no better than the region: the repaint changed it {ratio:.1f}x as much as the same "
        f"fill errs on known content next to it (needs {limits.min_departure:g}x)"
    )


def changed_mask(before: Tensor, after: Tensor) -> Tensor:
    """``[B,H,W]`` 1 where any channel differs (what the fix touched)."""
    return (before != after).any(1).float()


def change_patches(before: Tensor, after: Tensor) -> tuple[Tensor, list[int]]:
    """The separate edits between two ``[B,C,H,W]`` batches: connected parts of the changed
    pixels grown by 4 px (so a fill and the rounding-level changes of its blend are one).

    Returns ``M.label``'s ``(labels [B,H,W], counts)``.
    """
    return M.label(M.grow(changed_mask(before, after), 4))


def fix_summary(
    image: Tensor, fixed: Tensor, probs: Tensor, final: Tensor, history: list[dict], opt: FixOptions
) -> dict:
    """What one image's fix did, for reports: PAR before (``probs`` ``[1,H,W]`` at
    ``opt.threshold``) and after (``final`` mask), regions tried / repainted (separate edits
    between ``image`` and ``fixed`` ``[1,C,H,W]``) / skipped, rounds, and the rounds' history."""
    rounds = [h for h in history if "iteration" in h]
    _, (repainted,) = change_patches(image, fixed)
    return {
        "par_before": round(float(par(probs, opt.threshold)[0]), 6),
        "par_after": round(float(par(final, 0.5)[0]), 6),
        "regions_tried": sum(len(h["fixed"]) for h in rounds),
        "regions_repainted": repainted,
        "regions_skipped": sum(len(h["skipped"]) for h in rounds),
        "regions_undone": sum(
            r.get("outcome") in ("undone", "reverted") for h in rounds for r in h["fixed"]
        ),
        "rounds": len(rounds) - 1,
        "history": rounds,
    }
