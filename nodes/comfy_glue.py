"""The one place the nodes touch ComfyUI's own modules (each imported only when called).

- ``comfy_progress()``: ComfyUI's progress bar and interrupt as a ``(done, total)`` callback;
- ``JobBar``: one bar over a whole node (``span(at, until)`` from the fix loop, ``sub(done,
  total)`` from the inpainter inside the current span, sampler steps included);
- ``pal_model_dirs()``: ComfyUI's ``models/pal`` folders (registered with ``folder_paths``);
- ``diffusion_inpainter``: ComfyUI's sampling as a ``comfyui_pal`` inpainter.

The crops are encoded like the InpaintModelConditioning node does (a noise mask on the latent,
and the masked pixels added to the conditioning for dedicated inpainting checkpoints, which
ordinary checkpoints ignore), sampled with ``common_ksampler`` (the KSampler node's own
function) and decoded; while it samples, the sampler's own per-step bar is folded into the
node's one bar (``_steps_into``). ``per_region`` seeds region k with ``seed + k`` and samples
it alone, so a region's result does not depend on the others; ``batch`` samples all crops at
once with one seed, exactly as a KSampler fed by PAL Crop Regions would.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from comfyui_pal.core.layout import bchw_to_image, image_to_bchw
from comfyui_pal.options import comfy_inputs, option, validate
from comfyui_pal.pipelines.fix import FixOptions

SEED_MODES = ("per_region", "batch")
DEFAULT_SAMPLERS = ["euler"]
DEFAULT_SCHEDULERS = ["normal"]
MODEL_EXTENSIONS = {".safetensors", ".pth", ".pt"}


def comfy_progress() -> Callable[[int, int], None] | None:
    """ComfyUI's progress bar (made on the first call) that checks the interrupt before every
    update; None outside ComfyUI."""
    try:
        import comfy.model_management as mm
        import comfy.utils
    except ImportError:
        return None
    bar = {}

    def update(done: int, total: int) -> None:
        mm.throw_exception_if_processing_interrupted()
        if "bar" not in bar:
            bar["bar"] = comfy.utils.ProgressBar(total)
        bar["bar"].update_absolute(done, total)

    return update


class JobBar:
    """One ComfyUI progress bar with one total for a whole node, shown at once.

    ``span(at, until)``: a step starts (fractions 0..1 of the node's work, as
    ``comfyui_pal.pipelines.fix.fix`` reports them); ``sub(done, total, preview)``: ``done``
    (a float: sampler steps count as fractions) of ``total`` parts of the current step are
    finished (the diffusion inpainter's crops), with the sampler's preview if any. Both
    check the interrupt first, except for the final span (``at`` 1), so finished work is
    never interrupted away. ``finish()`` fills the bar. ``make()`` is None outside ComfyUI.
    """

    STEPS = 1000

    def __init__(self, bar, interrupted: Callable[[], None]) -> None:
        self.bar, self.interrupted = bar, interrupted
        self.at, self.until = 0.0, 1.0
        self._show(0.0)

    @classmethod
    def make(cls) -> JobBar | None:
        try:
            import comfy.model_management as mm
            import comfy.utils
        except ImportError:
            return None
        return cls(comfy.utils.ProgressBar(cls.STEPS), mm.throw_exception_if_processing_interrupted)

    def _show(self, fraction: float, preview=None) -> None:
        value = round(min(max(fraction, 0.0), 1.0) * self.STEPS)
        if preview is None:
            self.bar.update_absolute(value, self.STEPS)
        else:
            self.bar.update_absolute(value, self.STEPS, preview)

    def span(self, at: float, until: float) -> None:
        if at < 1:  # the end of finished work is never interrupted away
            self.interrupted()
        self.at, self.until = at, until
        self._show(at)

    def sub(self, done: float, total: int, preview=None) -> None:
        self.interrupted()
        self._show(self.at + (self.until - self.at) * done / max(1, total), preview)

    def finish(self) -> None:
        self._show(1.0)


def register_model_folder() -> bool:
    """Register ComfyUI's ``models/pal`` folder (and our extensions) with ``folder_paths``,
    once, at import of the pack; False outside ComfyUI."""
    try:
        import folder_paths
    except ImportError:
        return False
    if "pal" not in folder_paths.folder_names_and_paths:
        folder_paths.add_model_folder_path("pal", os.path.join(folder_paths.models_dir, "pal"))
    paths, exts = folder_paths.folder_names_and_paths["pal"]
    if not MODEL_EXTENSIONS <= set(exts):
        folder_paths.folder_names_and_paths["pal"] = (paths, set(exts) | MODEL_EXTENSIONS)
    return True


def pal_model_dirs() -> list[Path] | None:
    """ComfyUI's ``models/pal`` folders, or None outside ComfyUI."""
    if not register_model_folder():  # a no-op after the import-time registration
        return None
    import folder_paths

    return [Path(p) for p in folder_paths.get_folder_paths("pal")]


def pal_model_names() -> list[str] | None:
    """The checkpoints in ``models/pal`` as ComfyUI lists them (its cached, mtime-checked
    listing: no folder walk per call), or None outside ComfyUI."""
    if not register_model_folder():
        return None
    import folder_paths

    return list(folder_paths.get_filename_list("pal"))


@dataclass
class SamplingOptions:
    """KSampler-like settings of the diffusion inpainter (the zoom-in and auto-fix nodes)."""

    steps: int = option(20, "Sampling steps.", min=1, max=10000)
    cfg: float = option(7.0, "Classifier-free guidance scale.", min=0.0, max=100.0, step=0.1)
    sampler_name: str = option("euler", "Sampling algorithm.")
    scheduler: str = option("normal", "Noise schedule.")
    denoise: float = option(
        1.0, "How much of each masked crop is re-imagined (1 = all).", min=0.0, max=1.0, step=0.01
    )

    def __post_init__(self) -> None:
        validate(self)


def sampler_choices() -> tuple[list[str], list[str]]:
    """ComfyUI's sampler and scheduler names (a minimal list outside ComfyUI)."""
    try:
        import comfy.samplers
    except ImportError:
        return DEFAULT_SAMPLERS, DEFAULT_SCHEDULERS
    return list(comfy.samplers.KSampler.SAMPLERS), list(comfy.samplers.KSampler.SCHEDULERS)


def threshold_input(tooltip: str) -> dict:
    """The artifact-probability ``threshold`` widget: ``FixOptions.threshold``'s default and
    range (the one definition), with a node's own ``tooltip``."""
    ((name, (kind, spec)),) = comfy_inputs(FixOptions, ["threshold"]).items()
    return {name: (kind, {**spec, "tooltip": tooltip})}


def sampling_inputs() -> dict:
    """The widgets of ``SamplingOptions``; sampler and scheduler list ComfyUI's choices."""
    samplers, schedulers = sampler_choices()
    inputs = comfy_inputs(SamplingOptions, ["steps", "cfg", "sampler_name", "scheduler", "denoise"])
    inputs["cfg"][1]["round"] = 0.01
    defaults = SamplingOptions()
    for name, choices in (("sampler_name", samplers), ("scheduler", schedulers)):
        spec = {"tooltip": inputs[name][1]["tooltip"]}
        if getattr(defaults, name) in choices:  # a new node starts like the templates
            spec["default"] = getattr(defaults, name)
        inputs[name] = (choices, spec)
    return inputs


@contextmanager
def _steps_into(progress: Callable[..., None] | None, done: int, total: int):
    """While the block runs, ComfyUI progress bars made in it (the sampler's per-step bar,
    which ``comfy.utils.ProgressBar`` ties to the hook set when it is made) report into
    ``progress(done + step / steps, total, preview)`` instead of showing a bar of their own."""
    if progress is None:
        yield
        return
    import comfy.utils

    def folded(value, steps, preview=None, *args, **kwargs) -> None:
        progress(done + min(value, steps) / max(1, steps), total, preview)

    saved = comfy.utils.PROGRESS_BAR_HOOK
    comfy.utils.PROGRESS_BAR_HOOK = folded
    try:
        yield
    finally:
        comfy.utils.PROGRESS_BAR_HOOK = saved


def diffusion_inpainter(
    model,
    vae,
    positive,
    negative,
    options: SamplingOptions,
    *,
    seed_mode: str = "per_region",
    progress: Callable[..., None] | None = None,
):
    """An ``Inpainter`` (crops ``[N,C,h,w]``, masks ``[N,h,w]``, seed) over ComfyUI sampling;
    ``progress(done, total, preview=None)`` hears each finished crop and, in between, each
    sampler step as a fraction of its crop."""
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
            with _steps_into(progress, done, len(jobs)):
                (samples,) = comfy_nodes.common_ksampler(
                    model,
                    s,
                    options.steps,
                    options.cfg,
                    options.sampler_name,
                    options.scheduler,
                    pos,
                    neg,
                    latent,
                    denoise=options.denoise,
                )
            images = vae.decode(samples["samples"])
            if images.ndim == 5:  # video VAEs decode [B,T,H,W,C]
                images = images.reshape(-1, *images.shape[-3:])
            out.append(images)
            if progress is not None:
                progress(done + 1, len(jobs))
        return image_to_bchw(torch.cat(out)).to(crops)

    return inpaint
