"""Detector loading and artifact detection nodes."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from comfyui_pal import cache
from comfyui_pal.core import preview
from comfyui_pal.core.layout import bchw_to_image, image_to_bchw
from comfyui_pal.io import download as official
from comfyui_pal.options import comfy_inputs
from comfyui_pal.pipelines import detect as detection

from .comfy_glue import (
    MODEL_EXTENSIONS,
    comfy_progress,
    pal_model_dirs,
    pal_model_names,
    threshold_input,
)

SHIPPED_DIR = Path(__file__).resolve().parents[1] / "weights"
SHIPPED_PREFIX = "shipped/"
DOWNLOAD_CHOICES = {f"PAL4VST {name} (download)": name for name in official.RELEASES}


@dataclass
class PalModel:
    """The PAL_MODEL value passed between nodes: a cached detector and how to run it."""

    model: torch.nn.Module
    name: str
    precision: str = "auto"

    def detect(self, image: torch.Tensor, mode: str, tta: bool = False) -> torch.Tensor:
        """Probabilities ``[B,H,W]`` of ComfyUI IMAGE ``image`` ``[B,H,W,C]``, with ComfyUI's
        progress bar (the one layout conversion of every detecting node)."""
        return detection.detect(
            self.model,
            image_to_bchw(image),
            mode=mode,
            tta=tta,
            precision=self.precision,
            progress=comfy_progress(),
        )


def model_dirs() -> list[Path]:
    """Folders searched for user checkpoints: ComfyUI's models/pal, else $PAL_MODELS_DIR."""
    dirs = pal_model_dirs()
    if dirs is None:
        env = os.environ.get("PAL_MODELS_DIR")
        dirs = [Path(env)] if env else []
    return dirs


def model_choices() -> list[str]:
    """Shipped weights first (``shipped/NAME``), then every checkpoint in the model folders."""
    names = [f"{SHIPPED_PREFIX}{p.name}" for p in sorted(SHIPPED_DIR.glob("*.safetensors"))]
    listed = pal_model_names()
    if listed is not None:  # inside ComfyUI: its cached listing of models/pal
        names += sorted(n for n in listed if Path(n).suffix.lower() in MODEL_EXTENSIONS)
    for d in model_dirs() if listed is None else []:
        if d.is_dir():
            names += sorted(
                str(p.relative_to(d)) for p in d.rglob("*") if p.suffix.lower() in MODEL_EXTENSIONS
            )
    if listed is not None or model_dirs():  # official releases not downloaded yet
        names += [
            choice
            for choice, release in DOWNLOAD_CHOICES.items()
            if official.RELEASES[release].file_name("pytorch") not in names
        ]
    return names or ["(no models: put PAL4VST checkpoints in models/pal)"]


def download_target(name: str) -> Path | None:
    """Where a "PAL4VST NAME (download)" choice lives once fetched (the first models/pal
    folder); None for other choices."""
    if name not in DOWNLOAD_CHOICES:
        return None
    dirs = model_dirs()
    if not dirs:
        raise FileNotFoundError(
            f"{name}: no models/pal folder to download into (run inside ComfyUI, or set "
            "PAL_MODELS_DIR)"
        )
    return dirs[0] / official.RELEASES[DOWNLOAD_CHOICES[name]].file_name("pytorch")


def fetch_official(name: str) -> Path:
    """Download a "(download)" choice into models/pal (checked, resumable; see
    ``comfyui_pal.io.download``) with ComfyUI's progress bar, unless it is there."""
    target = download_target(name)
    if target.is_file():
        return target
    bar = comfy_progress()
    official.download(
        DOWNLOAD_CHOICES[name],
        target.parent,
        progress=(lambda done, total: bar(done, max(total, done))) if bar else None,
    )
    return target


def resolve_model(name: str) -> Path:
    """The file of a ``model_name`` choice: a shipped one or one inside a model folder. An
    absolute path or one with ``..`` is refused (``ValueError``): the widget names files in
    ``models/pal``, and an API prompt must not read files elsewhere."""
    rel = Path(name.replace("\\", "/"))
    if rel.is_absolute() or ".." in rel.parts or not name.strip():
        raise ValueError(
            f"model {name!r} is not a file name inside models/pal; pick one of the listed "
            "checkpoints (put your own in ComfyUI's models/pal folder)"
        )
    target = download_target(name)
    if target is not None and target.is_file():
        return target
    if name.startswith(SHIPPED_PREFIX):
        path = SHIPPED_DIR / name[len(SHIPPED_PREFIX) :]
        if path.is_file():
            return path
    for d in model_dirs():
        if (d / name).is_file():
            return d / name
    raise FileNotFoundError(
        f"model {name!r} not found in {SHIPPED_DIR} or {[str(d) for d in model_dirs()]}; put "
        "checkpoints (.safetensors, mmseg .pth, end2end.pt) in ComfyUI's models/pal folder"
    )


def check_device(device: str) -> None:
    """Refuse a ``device`` choice this machine does not have (ComfyUI shows the message),
    instead of running somewhere else or failing deep inside torch."""
    missing = {
        "cuda": not torch.cuda.is_available(),
        "mps": not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()),
    }
    if missing.get(device):
        raise RuntimeError(
            f"PAL Model Loader: device={device} but this machine (torch {torch.__version__}) has "
            f"no {device.upper()} device; choose auto (ComfyUI's device) or cpu"
        )


class PALModelLoader:
    DESCRIPTION = (
        "Load a PAL artifact detector (the shipped default, or official PAL4VST .pth / "
        "end2end.pt / converted .safetensors from models/pal; a 'PAL4VST ... (download)' "
        "choice fetches the authors' checkpoint into models/pal the first time it runs). One "
        "copy per device is shared by every node and queued prompt."
    )
    CATEGORY = "PAL/detect"
    OUTPUT_TOOLTIPS = (
        "The detector, shared by every node and queued prompt (one cached copy per device).",
    )
    SEARCH_ALIASES = (
        "artifact detector",
        "PAL4VST",
        "load",
        "model",
    )  # newer ComfyUI search; harmless elsewhere
    RETURN_TYPES = ("PAL_MODEL",)
    RETURN_NAMES = ("pal_model",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "model_name": (
                    model_choices(),
                    {
                        "tooltip": "Checkpoint to load. A 'PAL4VST ... (download)' choice "
                        "fetches the authors' checkpoint into models/pal when first run."
                    },
                ),
                "device": (
                    ["auto", "cpu", "cuda", "mps"],
                    {"default": "auto", "tooltip": "auto = ComfyUI's device (or CUDA, MPS, CPU)."},
                ),
                **comfy_inputs(detection.DetectOptions, ["precision"]),
            }
        }

    @classmethod
    def IS_CHANGED(cls, model_name, device, precision):
        """The resolved file's size and mtime: a checkpoint replaced under the same name
        reloads (the cache keys on them too)."""
        try:
            st = resolve_model(model_name).stat()
        except (OSError, ValueError):
            return model_name  # load() reports the problem
        return f"{model_name}:{st.st_size}:{st.st_mtime_ns}:{device}:{precision}"

    def load(self, model_name, device, precision):
        fetch = model_name in DOWNLOAD_CHOICES
        path = fetch_official(model_name) if fetch else resolve_model(model_name)
        check_device(device)
        dev = None if device == "auto" else torch.device(device)
        return (PalModel(cache.load_model(path, dev), model_name, precision),)


class PALDetectArtifacts:
    DESCRIPTION = (
        "Find perceptual artifacts: per-pixel artifact probability, a binary mask at the "
        "threshold, a red overlay preview, and PAR (artifact area ratio, lower is better) per "
        "image."
    )
    CATEGORY = "PAL/detect"
    OUTPUT_TOOLTIPS = (
        "Per-pixel artifact probability [B,H,W] in 0..1 (soft: for DifferentialDiffusion "
        "or a mask node).",
        "Binary artifact mask: probability above threshold.",
        "The images with artifacts tinted red (for a Preview Image node).",
        "PAR per image: the fraction of pixels flagged (lower is better).",
        "PAR per image as text.",
    )
    SEARCH_ALIASES = (
        "artifact",
        "defect",
        "glitch",
        "detect",
        "quality score",
        "PAR",
        "segment artifacts",
    )  # newer ComfyUI search; harmless elsewhere
    RETURN_TYPES = ("MASK", "MASK", "IMAGE", "FLOAT", "STRING")
    RETURN_NAMES = ("probability", "mask", "preview", "par", "summary")
    OUTPUT_IS_LIST = (False, False, False, True, False)
    FUNCTION = "detect"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "Generated images [B,H,W,C]."}),
                "pal_model": ("PAL_MODEL", {"tooltip": "From PAL Model Loader."}),
                **comfy_inputs(detection.DetectOptions, ["mode"]),
                **threshold_input(
                    "Probability above which a pixel is an artifact (0.5 = the model's argmax)."
                ),
            },
            "optional": {
                **comfy_inputs(detection.DetectOptions, ["tta"]),
            },
        }

    def detect(self, image, pal_model, mode, threshold, tta=False):
        probs = pal_model.detect(image, mode, tta)
        binary = (probs > threshold).float()
        pars = detection.par(probs, threshold).tolist()
        rgb = detection.as_rgb_bchw(image_to_bchw(image))
        shown = bchw_to_image(preview.overlay(rgb, probs, threshold))
        summary = json.dumps(
            {
                "model": pal_model.name,
                "mode": mode,
                "threshold": threshold,
                "par": [round(p, 5) for p in pars],
            }
        )
        return probs, binary, shown, pars, summary
