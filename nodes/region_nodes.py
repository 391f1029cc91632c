"""Zoom-in crop and stitch nodes: cut artifact regions out at work size, paste results back."""

from __future__ import annotations

import json

from comfyui_pal.core import regions
from comfyui_pal.core.layout import bchw_to_image, comfy_mask, image_to_bchw


def plan_report(plan: regions.StitchPlan) -> str:
    """JSON summary of a stitch plan: work size, crops and every region's fate."""
    summary = plan.to_dict(include_masks=False)
    summary["regions"] = summary.pop("report")
    return json.dumps(summary, indent=1)


class PALCropRegions:
    DESCRIPTION = (
        "Cut every masked region out with context and zoom it to one work size, as one IMAGE "
        "batch for any inpainting graph; PAL Stitch Regions pastes the results back. With an "
        "empty mask it returns one unused placeholder crop, and stitch returns the input."
    )
    CATEGORY = "PAL/regions"
    OUTPUT_TOOLTIPS = (
        "Every masked region cut out with context and zoomed to one work size, as one IMAGE batch.",
        "The inpainting mask of each crop.",
        "The plan PAL Stitch Regions (or PAL Zoom Inpaint) needs to paste the crops back.",
        "The regions and crops as JSON (boxes, areas, scale).",
    )
    SEARCH_ALIASES = (
        "crop",
        "zoom",
        "detailer",
        "regions",
        "inpaint crop",
    )  # newer ComfyUI search; harmless elsewhere
    RETURN_TYPES = ("IMAGE", "MASK", "PAL_STITCH", "STRING")
    RETURN_NAMES = ("crops", "crop_masks", "stitch", "report")
    FUNCTION = "crop"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "Images [B,H,W,C] to cut regions from."}),
                "mask": (
                    "MASK",
                    {"tooltip": "Regions to fix (> 0); one mask per image, or one for all."},
                ),
                "context_factor": (
                    "FLOAT",
                    {
                        "default": 2.0,
                        "min": 1.0,
                        "max": 8.0,
                        "step": 0.1,
                        "tooltip": "Crop window = region box times this.",
                    },
                ),
                "min_context": (
                    "INT",
                    {
                        "default": 32,
                        "min": 0,
                        "max": 1024,
                        "step": 1,
                        "tooltip": "At least this many pixels of context on each side of a region.",
                    },
                ),
                "target_size": (
                    "INT",
                    {
                        "default": 512,
                        "min": 64,
                        "max": 4096,
                        "step": 8,
                        "tooltip": "Work size of the side chosen by 'side' "
                        "(the inpainter's native resolution).",
                    },
                ),
                "multiple": (
                    "INT",
                    {
                        "default": 64,
                        "min": 8,
                        "max": 256,
                        "step": 8,
                        "tooltip": "Round the work size up to a multiple of this "
                        "(by adding context, never cutting).",
                    },
                ),
                "max_regions": (
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": 256,
                        "step": 1,
                        "tooltip": "Keep at most this many crops per image, the "
                        "largest first (0 = all).",
                    },
                ),
                "merge": (
                    "BOOLEAN",
                    {
                        "default": True,
                        "tooltip": "Merge regions whose context windows overlap into one crop.",
                    },
                ),
            },
            "optional": {
                "side": (
                    list(regions.SIZE_MODES),
                    {
                        "default": "long",
                        "tooltip": "Which side of the work size equals target_size.",
                    },
                ),
                "pad_mode": (
                    list(regions.PAD_MODES),
                    {
                        "default": "reflect",
                        "tooltip": "How windows larger than the image are padded.",
                    },
                ),
            },
        }

    def crop(
        self,
        image,
        mask,
        context_factor,
        min_context,
        target_size,
        multiple,
        max_regions,
        merge,
        side="long",
        pad_mode="reflect",
    ):
        crops, crop_masks, plan = regions.crop_regions(
            image_to_bchw(image),
            comfy_mask(mask),
            context_factor=context_factor,
            min_context=min_context,
            target_size=target_size,
            multiple=multiple,
            max_regions=max_regions,
            merge=merge,
            side=side,
            pad_mode=pad_mode,
        )
        return bchw_to_image(crops), crop_masks, plan, plan_report(plan)


class PALStitchRegions:
    DESCRIPTION = (
        "Paste inpainted crops back into the original images using the PAL_STITCH plan. Pixels "
        "farther than 1.25 x blend_radius from the mask come back bit for bit."
    )
    CATEGORY = "PAL/regions"
    OUTPUT_TOOLTIPS = (
        "The images with the inpainted crops pasted back; pixels far from the mask are "
        "bit-identical.",
    )
    SEARCH_ALIASES = (
        "stitch",
        "paste",
        "uncrop",
        "detailer",
    )  # newer ComfyUI search; harmless elsewhere
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    FUNCTION = "stitch"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "original": ("IMAGE", {"tooltip": "The images the crops were cut from."}),
                "stitch": ("PAL_STITCH", {"tooltip": "Plan from PAL Crop Regions."}),
                "inpainted": (
                    "IMAGE",
                    {"tooltip": "The crop batch after inpainting, same order and count."},
                ),
                "blend_radius": (
                    "INT",
                    {
                        "default": 16,
                        "min": 0,
                        "max": 256,
                        "step": 1,
                        "tooltip": "Width in pixels of the soft transition around the mask.",
                    },
                ),
                "color_match": (
                    "BOOLEAN",
                    {
                        "default": False,
                        "tooltip": "Match each crop's colours (Lab mean / "
                        "std) to a ring around its mask.",
                    },
                ),
            }
        }

    def stitch(self, original, stitch, inpainted, blend_radius, color_match):
        out = regions.stitch(
            image_to_bchw(original),
            image_to_bchw(inpainted),
            stitch,
            blend_radius=blend_radius,
            color_match=color_match,
        )
        return (bchw_to_image(out),)
