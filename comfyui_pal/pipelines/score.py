"""Scoring one image, in two steps that may run in different processes.

``prepare`` is the CPU half (layout conversion and the resize to the model's square input,
no model needed); ``score`` the model half (inference, PAR, artifact regions). A folder run
calls both in one process (``--engine local``) or ``prepare`` in CPU tasks and ``score`` in
model actors (``--engine ray``): the same two functions on the same tensors, so both engines
give the same scores. ``score(model, prepare(image, input_resample(model),
upsample=upsamples_input(model)), options)`` equals ``par(detect(model, image, options))`` on
the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from ..constants import PAR_THRESHOLD
from ..core.masks import label
from .detect import DetectOptions, as_rgb_bchw, detect_resized, par, resize_input, work_size


@dataclass
class Prepared:
    """One image ready for the model.

    ``resized`` ``[1,3,S,S]`` float32 RGB 0..1 is the global pass's input (``S`` the
    ``work_size``, 512 unless the model sees small images at their own size); ``size`` the
    image's ``(H, W)`` in px; ``full`` ``[1,3,H,W]`` float32 RGB 0..1 the image itself, kept
    only when asked for (the tiled mode reads it, overlays are drawn on it).
    """

    resized: Tensor
    size: tuple[int, int]
    full: Tensor | None = None


@dataclass
class Score:
    """What the detector says of one image: ``par`` the fraction of pixels above the
    threshold (0..1, lower is better), ``regions`` the number of connected (8-neighbour)
    artifact regions, ``probs`` ``[1,H,W]`` the artifact probability."""

    par: float
    regions: int
    probs: Tensor


def prepare(
    image: Tensor, resample: str, keep_full: bool = False, upsample: bool = True
) -> Prepared:
    """``[1,C,H,W]`` float 0..1 (C = 1, 3 or 4) -> ``Prepared``, resized with ``resample``
    (the model's ``input_resample``) to ``work_size`` (``upsample``: the model's
    ``upsamples_input``); ``keep_full`` keeps the RGB image too."""
    if image.dim() != 4 or image.shape[0] != 1:
        raise ValueError(f"prepare takes one image [1,C,H,W], got {tuple(image.shape)}")
    x = as_rgb_bchw(image)
    resized = resize_input(x, work_size(*x.shape[-2:], upsample), resample)
    return Prepared(resized, (x.shape[-2], x.shape[-1]), x if keep_full else None)


def score(
    model: nn.Module,
    prepared: Prepared,
    options: DetectOptions | None = None,
    threshold: float = PAR_THRESHOLD,
) -> Score:
    """Run ``model`` on ``prepared`` (``options``: the mode, TTA, ...) and score the result
    at ``threshold``. The tiled mode needs ``prepared.full``. Regions are counted on the
    model's device (on an H200, 3 ms per 1024 px mask against 25 ms on one CPU core)."""
    from ..cache import CACHE

    probs = detect_resized(model, prepared.resized, prepared.size, options, full=prepared.full)
    _, counts = label((probs > threshold).to(CACHE.prepare(model)))
    return Score(float(par(probs, threshold)[0]), counts[0], probs)
