"""Stand-ins for the parts of ComfyUI the pack touches, for tests on machines without it.

``install(monkeypatch)`` puts fake ``nodes``, ``comfy.model_management``, ``comfy.model_patcher``,
``comfy.utils`` and ``comfy.samplers`` modules in ``sys.modules`` and returns a log of what
the pack handed them. The sampler is deterministic for a seed and draws one noise tensor per
call, the way ComfyUI does for a batch; the VAE scales by 8. ``CORE`` holds stand-ins for the
core nodes the example workflows use, for running them in-process.
"""

from __future__ import annotations

import sys
import types

import torch
import torch.nn.functional as F


class Interrupted(Exception):
    pass


class FakeVAE:
    """8x down / up sampling 'VAE' on ComfyUI layouts."""

    def encode(self, pixels):  # [B,H,W,C] -> [B,4,H/8,W/8]
        x = F.avg_pool2d(pixels.permute(0, 3, 1, 2), 8)
        return torch.cat([x, x.mean(1, keepdim=True)], 1)

    def decode(self, latent):  # [B,4,h,w] -> [B,8h,8w,3]
        return F.interpolate(latent[:, :3], scale_factor=8, mode="nearest").permute(0, 2, 3, 1)


def install(monkeypatch) -> dict:
    log = {
        "encode": [],
        "sample": [],
        "progress": [],
        "previews": [],
        "bars": 0,
        "interrupt_after": None,
        "checks": 0,
        "load_models_gpu": [],
    }

    class InpaintModelConditioning:
        def encode(self, positive, negative, pixels, vae, mask, noise_mask=True):
            log["encode"].append((tuple(pixels.shape), tuple(mask.shape), noise_mask))
            latent = {
                "samples": vae.encode(pixels),
                "noise_mask": mask.reshape(-1, 1, *mask.shape[-2:]),
            }
            return positive, negative, latent

    def common_ksampler(
        model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent, denoise=1.0
    ):
        log["sample"].append((seed, latent["samples"].shape[0], steps, sampler_name))
        bar = ProgressBar(steps)  # KSampler's own per-step bar (latent_preview's callback)
        for step in range(steps):
            bar.update_absolute(step + 1, steps, ("JPEG", f"preview {step}"))
        x = latent["samples"]
        noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(seed))
        if "noise_mask" not in latent:
            return ({"samples": noise},)
        m = F.interpolate(latent["noise_mask"], size=x.shape[-2:], mode="bilinear") > 0
        return ({"samples": torch.where(m, noise, x)},)

    def check():
        log["checks"] += 1
        if log["interrupt_after"] is not None and log["checks"] > log["interrupt_after"]:
            raise Interrupted

    class ProgressBar:  # as ComfyUI's: the hook is the one set when the bar is made
        def __init__(self, total):
            self.total = total
            self.hook = utils.PROGRESS_BAR_HOOK
            log["bars"] += 1

        def update_absolute(self, done, total=None, preview=None):
            self.hook(done, total, preview, node_id=None)

    class ModelPatcher:
        def __init__(self, model, load_device, offload_device, size=0):
            self.model, self.load_device, self.offload_device = model, load_device, offload_device
            self.size = size

    nodes = types.ModuleType("nodes")
    nodes.InpaintModelConditioning = InpaintModelConditioning
    nodes.common_ksampler = common_ksampler
    mm = types.ModuleType("comfy.model_management")
    mm.throw_exception_if_processing_interrupted = check
    mm.get_torch_device = lambda: torch.device("cpu")
    mm.unet_offload_device = lambda: torch.device("cpu")
    mm.load_models_gpu = lambda patchers, memory_required=0, force_full_load=False: log[
        "load_models_gpu"
    ].append((patchers, memory_required, force_full_load))
    mp = types.ModuleType("comfy.model_patcher")
    mp.ModelPatcher = ModelPatcher
    utils = types.ModuleType("comfy.utils")
    utils.ProgressBar = ProgressBar

    def hook(done, total, preview=None, node_id=None):  # ComfyUI's server hook: the UI's bar
        log["progress"].append((done, total))
        if preview is not None:
            log["previews"].append((done, preview))

    utils.PROGRESS_BAR_HOOK = hook
    samplers = types.ModuleType("comfy.samplers")
    samplers.KSampler = types.SimpleNamespace(SAMPLERS=["euler", "dpmpp_2m"], SCHEDULERS=["normal"])
    pkg = types.ModuleType("comfy")
    pkg.model_management, pkg.model_patcher, pkg.utils, pkg.samplers = mm, mp, utils, samplers
    for name, mod in {
        "nodes": nodes,
        "comfy": pkg,
        "comfy.model_management": mm,
        "comfy.model_patcher": mp,
        "comfy.utils": utils,
        "comfy.samplers": samplers,
    }.items():
        monkeypatch.setitem(sys.modules, name, mod)
    return log


def core_nodes(image_dir, saved: list) -> dict:
    """Callables standing in for the ComfyUI core nodes of the examples (API input names)."""
    from comfyui_pal.io.images import load_image

    def sampler(**kw):
        nodes = sys.modules["nodes"]
        keys = ("model", "seed", "steps", "cfg", "sampler_name", "scheduler", "positive")
        args = [kw[k] for k in keys] + [kw["negative"], kw["latent_image"]]
        return nodes.common_ksampler(*args, denoise=kw["denoise"])

    return {
        "LoadImage": lambda image: (
            load_image(image_dir / image).permute(0, 2, 3, 1),
            torch.zeros(1, 64, 64),  # ComfyUI's mask for a file without alpha
        ),
        "SaveImage": lambda images, filename_prefix: saved.append((filename_prefix, images)) or (),
        "PreviewImage": lambda images: saved.append(("preview", images)) or (),
        "PreviewAny": lambda source: {"ui": {"text": (str(source),)}},
        "CheckpointLoaderSimple": lambda ckpt_name: ("MODEL", "CLIP", FakeVAE()),
        "CLIPTextEncode": lambda text, clip: ([[text, {}]],),
        "EmptyLatentImage": lambda width, height, batch_size: (
            {"samples": torch.zeros(batch_size, 4, height // 8, width // 8)},
        ),
        "KSampler": sampler,
        "MaskComposite": lambda destination, source, x, y, operation: (
            _composite(destination, source, x, y, operation),
        ),
        "DifferentialDiffusion": lambda model, strength=1.0: (model,),  # a sampler matter
        "VAEDecode": lambda samples, vae: (vae.decode(samples["samples"]),),
        "InpaintModelConditioning": lambda positive, negative, vae, pixels, mask, noise_mask: (
            sys.modules["nodes"]
            .InpaintModelConditioning()
            .encode(positive, negative, pixels, vae, mask, noise_mask)
        ),
    }


def _composite(destination, source, x, y, operation):
    """ComfyUI's MaskComposite for the operations the examples use (multiply at 0, 0)."""
    if operation != "multiply" or x or y:
        raise NotImplementedError(f"stand-in MaskComposite: {operation} at {x}, {y}")
    return destination * source
