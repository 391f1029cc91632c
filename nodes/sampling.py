"""ComfyUI's own sampling as a ``comfyui_pal`` inpainter (imports ComfyUI when called).

The crops are encoded like the InpaintModelConditioning node does (a noise mask on the latent,
and the masked pixels added to the conditioning for dedicated inpainting checkpoints, which
ordinary checkpoints ignore), sampled with ``common_ksampler`` (the KSampler node's own
function) and decoded. ``per_region`` seeds region k with ``seed + k`` and samples it alone, so
a region's result does not depend on the others; ``batch`` samples all crops at once with one
seed, exactly as a KSampler fed by PAL Crop Regions would.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from comfyui_pal.layout import bchw_to_image, image_to_bchw

SEED_MODES = ("per_region", "batch")
DEFAULT_SAMPLERS = ["euler"]
DEFAULT_SCHEDULERS = ["normal"]


def sampler_choices() -> tuple[list[str], list[str]]:
    """ComfyUI's sampler and scheduler names (a minimal list outside ComfyUI)."""
    try:
        import comfy.samplers
    except ImportError:
        return DEFAULT_SAMPLERS, DEFAULT_SCHEDULERS
    return list(comfy.samplers.KSampler.SAMPLERS), list(comfy.samplers.KSampler.SCHEDULERS)


def sampling_inputs() -> dict:
    """The KSampler-like widgets shared by the zoom-in and auto-fix nodes."""
    samplers, schedulers = sampler_choices()
    return {
        "steps": ("INT", {"default": 20, "min": 1, "max": 10000, "tooltip": "Sampling steps."}),
        "cfg": (
            "FLOAT",
            {
                "default": 7.0,
                "min": 0.0,
                "max": 100.0,
                "step": 0.1,
                "round": 0.01,
                "tooltip": "Classifier-free guidance scale.",
            },
        ),
        "sampler_name": (samplers, {"tooltip": "Sampling algorithm."}),
        "scheduler": (schedulers, {"tooltip": "Noise schedule."}),
        "denoise": (
            "FLOAT",
            {
                "default": 1.0,
                "min": 0.0,
                "max": 1.0,
                "step": 0.01,
                "tooltip": "How much of each masked crop is re-imagined (1 = all).",
            },
        ),
    }


def diffusion_inpainter(
    model,
    vae,
    positive,
    negative,
    *,
    steps: int,
    cfg: float,
    sampler_name: str,
    scheduler: str,
    denoise: float,
    seed_mode: str = "per_region",
    progress: Callable[[int, int], None] | None = None,
):
    """An ``Inpainter`` (crops ``[N,C,h,w]``, masks ``[N,h,w]``, seed) over ComfyUI sampling."""
    if seed_mode not in SEED_MODES:
        raise ValueError(f"seed_mode must be one of {SEED_MODES}, got {seed_mode!r}")
    import comfy.model_management as mm

    import nodes as comfy_nodes  # ComfyUI's built-in nodes module

    def inpaint(crops: torch.Tensor, crop_masks: torch.Tensor, seed: int) -> torch.Tensor:
        pixels = bchw_to_image(crops)
        n = pixels.shape[0]
        if seed_mode == "batch":
            jobs = [(list(range(n)), seed % 2**64)]
        else:  # ComfyUI seeds are 64-bit: wrap instead of overflowing near the top
            jobs = [([k], (seed + k) % 2**64) for k in range(n)]
        out = []
        for done, (idx, s) in enumerate(jobs):
            mm.throw_exception_if_processing_interrupted()
            pos, neg, latent = comfy_nodes.InpaintModelConditioning().encode(
                positive, negative, pixels[idx], vae, crop_masks[idx], noise_mask=True
            )
            (samples,) = comfy_nodes.common_ksampler(
                model, s, steps, cfg, sampler_name, scheduler, pos, neg, latent, denoise=denoise
            )
            images = vae.decode(samples["samples"])
            if images.ndim == 5:  # video VAEs decode [B,T,H,W,C]
                images = images.reshape(-1, *images.shape[-3:])
            out.append(images)
            if progress is not None:
                progress(done + 1, len(jobs))
        return image_to_bchw(torch.cat(out)).to(crops)

    return inpaint
