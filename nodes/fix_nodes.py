"""Automatic fixing node: detect, inpaint the flagged regions zoomed in, repeat until clean."""

from __future__ import annotations

import json

from comfyui_pal.core.layout import bchw_to_image, image_to_bchw
from comfyui_pal.options import comfy_inputs, pick
from comfyui_pal.pipelines.fix import FixOptions, fix

from .comfy_glue import JobBar, SamplingOptions, diffusion_inpainter, sampling_inputs

DIFFUSION_ONLY = " Used only with MODEL, VAE, positive and negative connected."


def _diffusion_only(inputs: dict) -> dict:
    """The diffusion inpainter's widgets, their tooltips saying when they apply."""
    return {
        k: (t, {**spec, "tooltip": spec.get("tooltip", "") + DIFFUSION_ONLY})
        for k, (t, spec) in inputs.items()
    }


class PALAutoFix:
    DESCRIPTION = (
        "Find artifacts and inpaint them away: with the built-in inpainter (no diffusion model "
        "needed), or zoomed in with your model when MODEL, VAE and both conditionings are "
        "connected. Each round re-detects and re-inpaints only what is still flagged, until "
        "PAR <= target_par or max_iterations; a change the detector does not like better is "
        "undone. Pixels away from artifacts come back bit for bit."
    )
    CATEGORY = "PAL/fix"
    OUTPUT_TOOLTIPS = (
        "The fixed images; pixels away from repaired artifacts are bit-identical to the input.",
        "What the detector still flags after the last round (thresholded).",
        "The rounds as JSON: PAR per round, regions repainted, skipped (with reasons) or undone.",
    )
    SEARCH_ALIASES = (
        "fix",
        "auto fix",
        "fix hands",
        "artifact",
        "defect",
        "glitch",
        "detailer",
        "repair",
        "inpaint",
    )  # newer ComfyUI search; harmless elsewhere
    RETURN_TYPES = ("IMAGE", "MASK", "STRING")
    RETURN_NAMES = ("image", "mask", "history")
    FUNCTION = "fix"

    WIDGETS = (
        "inpainter",
        "threshold",
        "target_par",
        "max_iterations",
        "min_confidence",
        "grow",
        "blend_radius",
        "seed",
    )
    OPTIONAL_WIDGETS = ("mode", "tta", "protect", "max_regions")
    OPTIONS = (FixOptions, SamplingOptions)  # what **widgets are

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        """Widgets derived from ``FixOptions`` (defaults, ranges, choices, tooltips)."""
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "Images [B,H,W,C] to fix."}),
                "pal_model": ("PAL_MODEL", {"tooltip": "From PAL Model Loader."}),
                **comfy_inputs(FixOptions, cls.WIDGETS),
            },
            "optional": {
                **comfy_inputs(FixOptions, cls.OPTIONAL_WIDGETS),
                "model": (
                    "MODEL",
                    {
                        "tooltip": "Connect (with vae, positive, negative) to "
                        "inpaint with your diffusion model instead."
                    },
                ),
                "vae": ("VAE", {"tooltip": "The diffusion model's VAE."}),
                "positive": ("CONDITIONING", {"tooltip": "What the fixed regions should show."}),
                "negative": ("CONDITIONING", {"tooltip": "What they should not."}),
                **_diffusion_only(
                    {**sampling_inputs(), **comfy_inputs(FixOptions, ["target_size"])}
                ),
            },
        }

    def fix(self, image, pal_model, model=None, vae=None, positive=None, negative=None, **widgets):
        """``widgets`` are the ``FixOptions`` and ``SamplingOptions`` fields shown above."""
        opts = pick(FixOptions, widgets)
        bar = JobBar.make()  # one bar over the whole fix, shown at once
        diffusion = [model, vae, positive, negative]
        inpaint = None
        if any(x is not None for x in diffusion):
            if any(x is None for x in diffusion):
                raise ValueError(
                    "to fix with a diffusion model connect all of model, vae, positive and "
                    "negative (or none of them for the built-in inpainter)"
                )
            inpaint = diffusion_inpainter(
                model,
                vae,
                positive,
                negative,
                pick(SamplingOptions, widgets),
                progress=bar.sub if bar else None,
            )
        fixed, mask, history = fix(
            pal_model.model,
            image_to_bchw(image),
            opts,
            inpaint=inpaint,
            progress=bar.span if bar else None,
        )
        return bchw_to_image(fixed), mask, json.dumps(history, indent=1)
