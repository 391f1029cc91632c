"""ComfyUI node adapters over the comfyui_pal library (classic node interface).

Each node converts ComfyUI layouts, calls one library function and converts back.
"""

from .comfy_glue import register_model_folder
from .curate_nodes import PALRankBatch, PALSelectBest
from .fix_nodes import PALAutoFix
from .interop_nodes import PALArtifactBoxes, PALArtifactsToSEGS, PALDetectorProvider
from .mask_nodes import PALMaskRefine
from .model_nodes import PALDetectArtifacts, PALModelLoader
from .region_nodes import PALCropRegions, PALStitchRegions
from .zoom_nodes import PALZoomInpaint

_NODES = {
    "PALModelLoader": (PALModelLoader, "PAL Model Loader"),
    "PALDetectArtifacts": (PALDetectArtifacts, "PAL Detect Artifacts"),
    "PALZoomInpaint": (PALZoomInpaint, "PAL Zoom-In Inpaint"),
    "PALAutoFix": (PALAutoFix, "PAL Auto Fix"),
    "PALRankBatch": (PALRankBatch, "PAL Rank Batch"),
    "PALSelectBest": (PALSelectBest, "PAL Select Best"),
    "PALMaskRefine": (PALMaskRefine, "PAL Mask Refine"),
    "PALCropRegions": (PALCropRegions, "PAL Crop Regions"),
    "PALStitchRegions": (PALStitchRegions, "PAL Stitch Regions"),
    "PALArtifactsToSEGS": (PALArtifactsToSEGS, "PAL Artifacts to SEGS"),
    "PALDetectorProvider": (PALDetectorProvider, "PAL Detector Provider"),
    "PALArtifactBoxes": (PALArtifactBoxes, "PAL Artifact Boxes"),
}

register_model_folder()  # once, at import: INPUT_TYPES only reads ComfyUI's listing

NODE_CLASS_MAPPINGS = {name: cls for name, (cls, _) in _NODES.items()}
NODE_DISPLAY_NAME_MAPPINGS = {name: title for name, (_, title) in _NODES.items()}
