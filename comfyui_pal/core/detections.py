"""Artifact regions as detections: boxes, crop regions with context and per-region masks.

What detailer-style graphs (Impact Pack's SEGS, bounding-box consumers) need from a PAL
probability map: one record per connected artifact region, in source pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor

from . import masks as M
from .checks import check_mask


@dataclass
class Detection:
    """One artifact region of one image.

    ``bbox`` and ``crop_region`` are half-open ``(x0, y0, x1, y1)`` source pixels
    (``crop_region`` holds ``bbox``, grown around its centre by ``crop_factor`` and shifted /
    clamped into the image); ``mask`` ``[h,w]`` float 0/1 is the region over ``crop_region``;
    ``confidence`` its mean artifact probability.
    """

    bbox: tuple[int, int, int, int]
    crop_region: tuple[int, int, int, int]
    mask: Tensor
    confidence: float
    area_px: int


def crop_region(
    bbox: tuple[int, int, int, int], crop_factor: float, width: int, height: int
) -> tuple[int, int, int, int]:
    """``bbox`` grown ``crop_factor`` times around its centre (at least the box itself),
    shifted back inside a ``width`` x ``height`` image and clamped to it."""
    x0, y0, x1, y1 = bbox
    out = []
    for lo, hi, size in ((x0, x1, width), (y0, y1, height)):
        side = min(size, max(hi - lo, math.ceil((hi - lo) * crop_factor)))
        start = round((lo + hi) / 2 - side / 2)
        start = min(max(0, start), size - side)
        out.append((start, start + side))
    (cx0, cx1), (cy0, cy1) = out
    return cx0, cy0, cx1, cy1


def artifact_detections(
    probs: Tensor,
    threshold: float = 0.5,
    *,
    dilation: int = 0,
    crop_factor: float = 3.0,
    min_area: int = 1,
    min_confidence: float = 0.0,
) -> list[Detection]:
    """Detections of the regions of one probability map ``[H,W]`` (or ``[1,H,W]``) 0..1.

    Pixels above ``threshold`` are grown (``dilation`` > 0) or shrunk (< 0) by that many px,
    split into 8-connected regions, and regions under ``min_area`` px or with a mean
    probability under ``min_confidence`` are dropped. Largest first.
    """
    if crop_factor < 1:
        raise ValueError(f"crop_factor must be >= 1 (1 = the box itself), got {crop_factor}")
    probs = check_mask(probs[None] if probs.dim() == 2 else probs, "probs")
    if probs.shape[0] != 1:
        raise ValueError(f"artifact_detections takes one image's map, got {probs.shape[0]}")
    h, w = probs.shape[-2:]
    mask = M.grow(M.threshold(probs.float(), threshold), dilation)
    labels, counts = M.label(mask)
    out = []
    for r in M.regions_from_labels(labels, counts, probs.float()):
        if r.area_px < min_area or r.mean_prob < min_confidence:
            continue
        cx0, cy0, cx1, cy1 = region = crop_region(r.box, crop_factor, w, h)
        crop = (labels[0, cy0:cy1, cx0:cx1] == r.id).float()
        out.append(Detection(tuple(r.box), region, crop, float(r.mean_prob), r.area_px))
    out.sort(key=lambda d: -d.area_px)
    return out


def bounding_boxes(
    probs: Tensor,
    threshold: float = 0.5,
    *,
    dilation: int = 0,
    min_area: int = 1,
    label: str = "artifact",
) -> list[list[dict]]:
    """Per image of ``probs`` ``[B,H,W]`` 0..1, its artifact regions as ComfyUI's
    ``BOUNDING_BOX`` records: ``{"x", "y", "width", "height"}`` in source pixels (floats),
    ``"score"`` the region's mean probability and ``"label"``; most confident first."""
    probs = check_mask(probs[None] if probs.dim() == 2 else probs, "probs")
    out = []
    for one in probs:
        found = artifact_detections(
            one, threshold, dilation=dilation, crop_factor=1.0, min_area=min_area
        )
        boxes = [
            {
                "x": float(d.bbox[0]),
                "y": float(d.bbox[1]),
                "width": float(d.bbox[2] - d.bbox[0]),
                "height": float(d.bbox[3] - d.bbox[1]),
                "score": round(d.confidence, 6),
                "label": label,
            }
            for d in found
        ]
        out.append(sorted(boxes, key=lambda b: -b["score"]))
    return out
