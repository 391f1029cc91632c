"""Automatic fixing: detect -> refine -> zoom-in inpaint -> stitch -> re-detect, until clean.

Each round re-detects the current images and inpaints only the regions still flagged, at
the zoomed work size, then stitches them back (pixels outside the blend masks stay bit-exact).
Images whose PAR is already at or below the target pass through untouched. The inpainter is
the built-in PatchMatch (or smooth fill) unless a callable is given, e.g. a diffusion
sampler. Deterministic for a seed.

Shapes: images ``[B,C,H,W]`` float 0..1, masks ``[B,H,W]``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from torch import Tensor, nn

from . import masks as M
from . import regions
from .checks import check_image
from .detection import detect, par
from .inpaint import patchmatch_fill, smooth_fill

# inpaint(crops [N,C,h,w], crop_masks [N,h,w], seed) -> inpainted crops [N,C,h',w']
Inpainter = Callable[[Tensor, Tensor, int], Tensor]
INPAINTERS = ("patchmatch", "smooth")


@dataclass
class FixOptions:
    """Settings of the fix loop (pixels unless noted)."""

    threshold: float = 0.5  # artifact probability threshold
    target_par: float = 0.0005  # stop when PAR <= this (fraction of the image)
    max_iterations: int = 2
    grow: int = 6  # grow the detected mask before inpainting
    min_area: float = 24  # ignore specks smaller than this (px, or fraction if < 1)
    fill_holes: bool = True
    context_factor: float = 2.0
    min_context: int = 32
    target_size: int = 256  # work size of the long side for the built-in inpainters
    multiple: int = 8
    blend_radius: float = 12
    inpainter: str = "patchmatch"
    seed: int = 0
    mode: str = "resize"  # detection mode


def builtin_inpainter(name: str) -> Inpainter:
    """The built-in inpainter called ``name`` as an ``Inpainter``."""
    if name == "patchmatch":
        return lambda crops, m, seed: patchmatch_fill(crops, m, seed=seed)
    if name == "smooth":
        return lambda crops, m, seed: smooth_fill(crops, m)
    raise ValueError(f"inpainter must be one of {INPAINTERS}, got {name!r}")


def _probs(model: nn.Module, images: Tensor, mode: str) -> Tensor:
    return detect(model, images.permute(0, 2, 3, 1), mode)


def fix(
    model: nn.Module,
    images: Tensor,
    options: FixOptions | None = None,
    inpaint: Inpainter | None = None,
    progress: Callable[[str], None] | None = None,
    probs: Tensor | None = None,
) -> tuple[Tensor, Tensor, list[dict]]:
    """Fix ``images`` ``[B,3,H,W]``; returns ``(fixed, final_mask [B,H,W], history)``.

    ``final_mask`` is what the detector still flags after the last round (thresholded).
    A round that does not lower an image's PAR is undone for that image, so fixing never
    makes the detector's score worse.
    ``history`` lists, per round and image, the PAR measured, the regions inpainted and those
    skipped (with reasons), and the time taken. ``probs`` may pass in a detection of
    ``images`` already made (``[B,H,W]``), to save the first pass.
    """
    opt = options or FixOptions()
    check_image(images)
    if opt.max_iterations < 0:
        raise ValueError(f"max_iterations must be >= 0, got {opt.max_iterations}")
    inpaint = inpaint or builtin_inpainter(opt.inpainter)
    current = images.clone()
    history: list[dict] = []
    if probs is None:
        probs = _probs(model, current, opt.mode)
    for it in range(opt.max_iterations + 1):
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
        mask = M.refine(
            probs[todo],
            threshold=opt.threshold,
            grow=opt.grow,
            fill_holes=opt.fill_holes,
            min_area=opt.min_area,
        )
        crops, crop_masks, plan = regions.crop_regions(
            current[todo],
            mask,
            context_factor=opt.context_factor,
            min_context=opt.min_context,
            target_size=opt.target_size,
            multiple=opt.multiple,
        )
        for r in plan.report:
            r = dict(r, batch_index=todo[r["batch_index"]])
            (entry["fixed"] if r["status"] != "skipped" else entry["skipped"]).append(r)
        if plan.used_crops:
            filled = inpaint(crops, crop_masks, opt.seed + 1000 * it)
            current[todo] = regions.stitch(
                current[todo], filled, plan, blend_radius=opt.blend_radius
            )
        else:
            for i in todo:
                entry["skipped"].append(
                    {"batch_index": i, "reason": f"only specks below min_area={opt.min_area} px"}
                )
        entry["seconds"] = round(time.perf_counter() - t0, 3)
        if progress is not None:
            progress(f"round {it + 1}: inpainted {len(entry['fixed'])} region(s)")
        new_probs = _probs(model, current, opt.mode)
        new_scores = par(new_probs, opt.threshold).tolist()
        worse = [i for i in todo if new_scores[i] >= scores[i]]
        if worse:  # a round must lower PAR: keep the previous image where it did not
            current[worse] = previous[worse]
            new_probs[worse] = probs[worse]
            entry["reverted"] = worse
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
    final = (probs > opt.threshold).float()
    history.append({"options": asdict(opt)})
    return current, final, history


def changed_mask(before: Tensor, after: Tensor) -> Tensor:
    """``[B,H,W]`` 1 where any channel differs (what the fix touched)."""
    return (before != after).any(1).float()
