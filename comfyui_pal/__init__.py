"""comfyui-pal: find perceptual artifacts in generated images and fix them.

A plain PyTorch library (PAL4VST, ICCV 2023) under a ComfyUI node pack. It never imports
ComfyUI at module level. Tensors: IMAGE ``[B,H,W,C]`` at the ComfyUI boundary, ``[B,C,H,W]``
float 0..1 inside the library; MASK ``[B,H,W]`` float 0..1.
"""

from .cache import DEFAULT_WEIGHTS, load_model
from .detection import detect, par
from .masks import Region, feather, fill_holes, find_regions, grow, invert, label, remove_small
from .masks import threshold as threshold_mask
from .regions import CropPlan, StitchPlan, crop_regions, plan_crops, stitch, zoom_crops

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_WEIGHTS",
    "CropPlan",
    "Region",
    "StitchPlan",
    "__version__",
    "crop_regions",
    "detect",
    "feather",
    "fill_holes",
    "find_regions",
    "grow",
    "invert",
    "label",
    "load_model",
    "par",
    "plan_crops",
    "remove_small",
    "stitch",
    "threshold_mask",
    "zoom_crops",
]
