"""comfyui-pal: find perceptual artifacts in generated images and fix them.

A plain PyTorch library (PAL4VST, ICCV 2023) under a ComfyUI node pack. It never imports
ComfyUI at module level. Tensors: IMAGE ``[B,H,W,C]`` at the ComfyUI boundary, ``[B,C,H,W]``
float 0..1 inside the library; MASK ``[B,H,W]`` float 0..1.

Layers (each folder imports only the ones above it in this list):
``core`` (tensors and geometry) · ``models`` · ``cache`` · ``pipelines`` (detect, zoom, fix,
curate, inpaint) · ``io`` (files, ComfyUI client, workflows) · ``training`` (optional) ·
``cli``. The ComfyUI nodes live in ``nodes/`` beside this package.
"""

import sys as _sys

from .cache import DEFAULT_WEIGHTS, load_model
from .core import masks, regions
from .core.masks import Region, feather, fill_holes, find_regions, grow, invert, label, remove_small
from .core.masks import threshold as threshold_mask
from .core.regions import CropPlan, StitchPlan, crop_regions, plan_crops, stitch, zoom_crops
from .pipelines.detect import DetectOptions, detect, par
from .pipelines.fix import FixOptions, fix
from .pipelines.zoom import zoom_inpaint

# ``comfyui_pal.masks`` / ``comfyui_pal.regions`` are documented import paths: the same module
# objects as ``comfyui_pal.core.masks`` / ``comfyui_pal.core.regions``, not copies.
_sys.modules.setdefault(__name__ + ".masks", masks)
_sys.modules.setdefault(__name__ + ".regions", regions)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_WEIGHTS",
    "CropPlan",
    "DetectOptions",
    "FixOptions",
    "Region",
    "StitchPlan",
    "__version__",
    "crop_regions",
    "detect",
    "feather",
    "fill_holes",
    "find_regions",
    "fix",
    "grow",
    "invert",
    "label",
    "load_model",
    "masks",
    "par",
    "plan_crops",
    "regions",
    "remove_small",
    "stitch",
    "threshold_mask",
    "zoom_crops",
    "zoom_inpaint",
]
