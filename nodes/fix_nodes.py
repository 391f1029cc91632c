"""Automatic fixing node: detect, inpaint the flagged regions zoomed in, repeat until clean."""

from __future__ import annotations

import json

from comfyui_pal.detection import MODES
from comfyui_pal.fix import INPAINTERS, FixOptions, fix
from comfyui_pal.layout import bchw_to_image, image_to_bchw

from .model_nodes import _progress
from .sampling import diffusion_inpainter, sampling_inputs

CATEGORY = "PAL"


def _round_progress(max_iterations: int):
    """Inside ComfyUI: a progress bar over the rounds, and the interrupt checked before every
    region and after every round. None outside ComfyUI."""
    update = _progress()
    if update is None:
        return None
    rounds = {"done": 0}

    def report(message: str) -> None:
        if message.startswith("round"):
            rounds["done"] += 1
        update(rounds["done"], max(1, max_iterations))  # checks the interrupt first

    return report


class PALAutoFix:
    DESCRIPTION = (
        "Find artifacts and inpaint them away: with the built-in inpainter (no diffusion model "
        "needed), or zoomed in with your model when MODEL, VAE and both conditionings are "
        "connected. Each round re-detects and re-inpaints only what is still flagged, until "
        "PAR <= target_par or max_iterations; a change the detector does not like better is "
        "undone. Pixels away from artifacts come back bit for bit."
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
                "tta": (
                    "BOOLEAN",
                    {
                        "default": True,
                        "tooltip": "Detect with a mirrored pass too: fewer false alarms, "
                        "twice the detection time.",
                    },
                ),
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
                **sampling_inputs(),
                "target_size": (
                    "INT",
                    {
                        "default": 512,
                        "min": 64,
                        "max": 4096,
                        "step": 64,
                        "tooltip": "Long side of the zoomed crops for the diffusion model.",
                    },
                ),
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
        tta=True,
        model=None,
        vae=None,
        positive=None,
        negative=None,
        steps=20,
        cfg=7.0,
        sampler_name="euler",
        scheduler="normal",
        denoise=1.0,
        target_size=512,
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
            tta=tta,
            target_size=target_size,
        )
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
                steps=steps,
                cfg=cfg,
                sampler_name=sampler_name,
                scheduler=scheduler,
                denoise=denoise,
                progress=_progress(),
            )
        fixed, mask, history = fix(
            pal_model.model,
            image_to_bchw(image),
            opts,
            inpaint=inpaint,
            progress=_round_progress(max_iterations),
        )
        return bchw_to_image(fixed), mask, json.dumps(history, indent=1)
