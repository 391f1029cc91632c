"""Zoom-in inpainting (the paper's pipeline) around any inpainter: crop, zoom, fill, stitch.

The inpainter is a callable ``inpaint(crops [N,C,h,w], crop_masks [N,h,w], seed) -> crops``
(a diffusion sampler inside ComfyUI, or a built-in fill). Every region of every image is cut
with context at one shared work size, so they go to the inpainter as one batch, and pasted
back through feathered blend masks: pixels outside them come back bit for bit.

Shapes: images ``[B,C,H,W]`` float 0..1, masks ``[1|B,H,W]``.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from ..core import masks as M
from ..core import regions
from ..core.checks import check_image, check_mask, match_masks

# inpaint(crops [N,C,h,w], crop_masks [N,h,w], seed) -> inpainted crops [N,C,h',w']
Inpainter = Callable[[Tensor, Tensor, int], Tensor]


def zoom_inpaint(
    images: Tensor,
    inpaint: Inpainter,
    mask: Tensor | None = None,
    plan: regions.StitchPlan | None = None,
    *,
    seed: int = 0,
    grow: int = 0,
    blend_radius: float = 16,
    **plan_options: object,
) -> tuple[Tensor, regions.StitchPlan]:
    """Inpaint the ``mask`` regions (grown by ``grow`` px) of ``images``, zoomed in.

    Give either ``mask`` (planned here with ``plan_options``, see ``regions.plan_crops``) or
    a ready ``plan`` (from the crop node). Returns ``(images, plan)``; with nothing to fix the
    images come back unchanged and ``inpaint`` is not called.
    """
    check_image(images)
    if (mask is None) == (plan is None):
        raise ValueError("give either a mask or a stitch plan (PAL_STITCH), not both or none")
    if plan is None:
        mask = match_masks(check_mask(mask), images)
        if grow:
            mask = M.grow(mask > 0, grow).to(images.dtype)
        crops, crop_masks, plan = regions.crop_regions(images, mask, **plan_options)
    else:
        crops, crop_masks = regions.zoom_crops(images, plan)
    if not plan.used_crops:
        return images.clone(), plan
    filled = inpaint(crops, crop_masks, seed)
    if filled.shape[0] != crops.shape[0]:
        raise ValueError(
            f"the inpainter returned {filled.shape[0]} crops for {crops.shape[0]}; "
            "it must keep the batch whole and in order"
        )
    return regions.stitch(images, filled, plan, blend_radius=blend_radius), plan
