"""PAL Zoom-In Inpaint: the paper's crop -> zoom -> inpaint -> stitch with the user's model."""

from __future__ import annotations

from comfyui_pal.core.layout import bchw_to_image, comfy_mask, image_to_bchw
from comfyui_pal.options import pick
from comfyui_pal.pipelines.zoom import zoom_inpaint

from .comfy_glue import SEED_MODES, JobBar, SamplingOptions, diffusion_inpainter, sampling_inputs


class PALZoomInpaint:
    DESCRIPTION = (
        "Inpaint each masked region zoomed in with your own diffusion model: crop it with "
        "context, scale it to target_size, encode with a noise mask (works with inpainting and "
        "ordinary checkpoints), sample, decode, scale back and stitch. Pixels away from the "
        "regions come back bit for bit. Give a mask, or the stitch plan of PAL Crop Regions."
    )
    CATEGORY = "PAL/fix"
    OUTPUT_TOOLTIPS = (
        "The images with every region inpainted zoomed in and pasted back.",
        "The inpainted crops at work size (to inspect them).",
        "The stitch plan used.",
    )
    SEARCH_ALIASES = (
        "zoom inpaint",
        "detailer",
        "fix hands",
        "inpaint",
        "artifact",
        "fix",
    )  # newer ComfyUI search; harmless elsewhere
    RETURN_TYPES = ("IMAGE", "IMAGE", "PAL_STITCH")
    RETURN_NAMES = ("image", "inpainted_crops", "stitch")
    FUNCTION = "inpaint"
    OPTIONS = (SamplingOptions,)  # what **sampling is

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "Images [B,H,W,C] to fix."}),
                "model": ("MODEL", {"tooltip": "The diffusion model to inpaint with."}),
                "vae": ("VAE", {"tooltip": "Its VAE."}),
                "positive": ("CONDITIONING", {"tooltip": "What the regions should show."}),
                "negative": ("CONDITIONING", {"tooltip": "What they should not."}),
                "seed": (
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": 0xFFFFFFFFFFFFFFFF,
                        "control_after_generate": True,
                        "tooltip": "Noise seed (region k uses seed + k in per_region mode).",
                    },
                ),
                **sampling_inputs(),
                "target_size": (
                    "INT",
                    {
                        "default": 512,
                        "min": 64,
                        "max": 4096,
                        "step": 64,
                        "tooltip": "Long side of every zoomed crop: the model's native size.",
                    },
                ),
                "context_factor": (
                    "FLOAT",
                    {
                        "default": 2.0,
                        "min": 1.0,
                        "max": 8.0,
                        "step": 0.1,
                        "tooltip": "Crop window = region box times this (more = more context).",
                    },
                ),
                "grow": (
                    "INT",
                    {
                        "default": 8,
                        "min": 0,
                        "max": 256,
                        "tooltip": "Grow the mask by this many pixels before cropping.",
                    },
                ),
                "feather": (
                    "INT",
                    {
                        "default": 16,
                        "min": 0,
                        "max": 256,
                        "tooltip": "Soft transition width (px) when pasting back.",
                    },
                ),
            },
            "optional": {
                "mask": ("MASK", {"tooltip": "Regions to inpaint (> 0); or give 'stitch'."}),
                "stitch": (
                    "PAL_STITCH",
                    {"tooltip": "A plan from PAL Crop Regions, instead of a mask."},
                ),
                "seed_mode": (
                    list(SEED_MODES),
                    {
                        "default": "per_region",
                        "tooltip": "per_region: region k alone with seed + k; batch: all crops "
                        "in one batch with one seed, as a KSampler after PAL Crop Regions.",
                    },
                ),
            },
        }

    def inpaint(
        self,
        image,
        model,
        vae,
        positive,
        negative,
        seed,
        target_size,
        context_factor,
        grow,
        feather,
        mask=None,
        stitch=None,
        seed_mode="per_region",
        **sampling,
    ):
        """``sampling`` are the ``SamplingOptions`` widgets (steps, cfg, sampler, ...)."""
        bar = JobBar.make()  # one bar over the node, shown at once; the crops fill it
        sample = diffusion_inpainter(
            model,
            vae,
            positive,
            negative,
            pick(SamplingOptions, sampling),
            seed_mode=seed_mode,
            progress=bar.sub if bar else None,
        )
        seen = {}

        def keep_crops(crops, crop_masks, s):
            seen["crops"] = sample(crops, crop_masks, s)
            return seen["crops"]

        fixed, plan = zoom_inpaint(
            image_to_bchw(image),
            keep_crops,
            None if mask is None or stitch is not None else comfy_mask(mask),
            stitch,
            seed=seed,
            grow=grow,
            blend_radius=feather,
            target_size=target_size,
            context_factor=context_factor,
        )
        if bar is not None:
            bar.finish()
        crops = seen.get("crops")
        crops = bchw_to_image(crops) if crops is not None else image[:1]
        return bchw_to_image(fixed), crops, plan
