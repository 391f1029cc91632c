"""Mask refinement node."""

from __future__ import annotations

from comfyui_pal.core import masks
from comfyui_pal.core.layout import comfy_mask


class PALMaskRefine:
    DESCRIPTION = (
        "Clean up an artifact mask: threshold, grow or shrink with a round footprint, fill "
        "holes, drop small specks, feather outward, invert (applied in that order)."
    )
    CATEGORY = "PAL/regions"
    OUTPUT_TOOLTIPS = ("The refined mask [B,H,W] in 0..1.",)
    SEARCH_ALIASES = (
        "mask",
        "grow",
        "feather",
        "fill holes",
        "threshold",
        "refine",
    )  # newer ComfyUI search; harmless elsewhere
    RETURN_TYPES = ("MASK",)
    RETURN_NAMES = ("mask",)
    FUNCTION = "refine"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "mask": ("MASK", {"tooltip": "Mask or probability map [B,H,W] in 0..1."}),
                "threshold": (
                    "FLOAT",
                    {
                        "default": 0.5,
                        "min": 0.0,
                        "max": 0.99,
                        "step": 0.01,
                        "tooltip": "Pixels above this value become 1, others 0.",
                    },
                ),
                "grow": (
                    "INT",
                    {
                        "default": 0,
                        "min": -512,
                        "max": 512,
                        "step": 1,
                        "tooltip": "Grow (>0) or shrink (<0) by this many pixels, "
                        "with a round footprint.",
                    },
                ),
                "fill_holes": (
                    "BOOLEAN",
                    {"default": False, "tooltip": "Fill enclosed holes inside regions."},
                ),
                "min_area": (
                    "FLOAT",
                    {
                        "default": 0.0,
                        "min": 0.0,
                        "max": 1e8,
                        "step": 1.0,
                        "tooltip": "Drop regions smaller than this: a pixel count "
                        "(>= 1) or a fraction of the image (< 1).",
                    },
                ),
                "feather": (
                    "FLOAT",
                    {
                        "default": 0.0,
                        "min": 0.0,
                        "max": 256.0,
                        "step": 0.5,
                        "tooltip": "Gaussian feather sigma in pixels, outward "
                        "only (the mask itself stays 1).",
                    },
                ),
                "invert": ("BOOLEAN", {"default": False, "tooltip": "Invert the result."}),
            }
        }

    def refine(self, mask, threshold, grow, fill_holes, min_area, feather, invert):
        return (
            masks.refine(
                comfy_mask(mask),
                threshold=threshold,
                grow=grow,
                fill_holes=fill_holes,
                min_area=min_area,
                feather=feather,
                invert=invert,
            ),
        )
