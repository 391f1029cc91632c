"""Automatic fixing node: detect, inpaint the flagged regions zoomed in, repeat until clean."""

from __future__ import annotations

import json

from comfyui_pal.detection import MODES
from comfyui_pal.fix import INPAINTERS, FixOptions, fix
from comfyui_pal.layout import bchw_to_image, image_to_bchw

CATEGORY = "PAL"


class PALAutoFix:
    DESCRIPTION = (
        "Find artifacts and inpaint them away with the built-in inpainter (no diffusion model "
        "needed): each round re-detects and re-inpaints only what is still flagged, until PAR "
        "<= target_par or max_iterations. Pixels away from artifacts come back bit for bit."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", "MASK", "STRING")
    RETURN_NAMES = ("image", "mask", "history")
    FUNCTION = "fix"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "Images [B,H,W,C] to fix."}),
                "pal_model": ("PAL_MODEL", {"tooltip": "From PAL Model Loader."}),
                "inpainter": (
                    list(INPAINTERS),
                    {
                        "default": "patchmatch",
                        "tooltip": "patchmatch continues texture; smooth is fastest.",
                    },
                ),
                "threshold": (
                    "FLOAT",
                    {
                        "default": 0.5,
                        "min": 0.01,
                        "max": 0.99,
                        "step": 0.01,
                        "tooltip": "Artifact probability threshold.",
                    },
                ),
                "target_par": (
                    "FLOAT",
                    {
                        "default": 0.0005,
                        "min": 0.0,
                        "max": 1.0,
                        "step": 0.0001,
                        "tooltip": "Stop when the artifact area ratio is at most this.",
                    },
                ),
                "max_iterations": (
                    "INT",
                    {
                        "default": 2,
                        "min": 0,
                        "max": 10,
                        "tooltip": "Detect-inpaint rounds at most.",
                    },
                ),
                "min_confidence": (
                    "FLOAT",
                    {
                        "default": 0.85,
                        "min": 0.0,
                        "max": 1.0,
                        "step": 0.01,
                        "tooltip": "Leave regions whose mean artifact probability is lower: "
                        "on real photos borderline detections are mostly real structure.",
                    },
                ),
                "grow": (
                    "INT",
                    {
                        "default": 6,
                        "min": 0,
                        "max": 128,
                        "tooltip": "Grow detected regions by this many pixels first.",
                    },
                ),
                "blend_radius": (
                    "INT",
                    {
                        "default": 12,
                        "min": 0,
                        "max": 256,
                        "tooltip": "Soft transition width when pasting back.",
                    },
                ),
                "seed": (
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": 2**31 - 1,
                        "tooltip": "Seed of the inpainter's random search.",
                    },
                ),
            },
            "optional": {
                "mode": (list(MODES), {"default": "resize", "tooltip": "Detection mode."}),
            },
        }

    def fix(
        self,
        image,
        pal_model,
        inpainter,
        threshold,
        target_par,
        max_iterations,
        min_confidence,
        grow,
        blend_radius,
        seed,
        mode="resize",
    ):
        opts = FixOptions(
            threshold=threshold,
            target_par=target_par,
            max_iterations=max_iterations,
            min_confidence=min_confidence,
            grow=grow,
            blend_radius=blend_radius,
            inpainter=inpainter,
            seed=seed,
            mode=mode,
        )
        fixed, mask, history = fix(pal_model.model, image_to_bchw(image), opts)
        return bchw_to_image(fixed), mask, json.dumps(history, indent=1)
