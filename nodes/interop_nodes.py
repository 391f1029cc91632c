"""Interop with the graphs people already use: PAL artifacts as Impact Pack SEGS, as an
Impact detector, and as ComfyUI's ``BOUNDING_BOX`` boxes.

Impact Pack is not imported: its ``SEGS`` value is plain data, ``((H, W), [SEG, ...])`` with
``SEG`` a named tuple (cropped_image, cropped_mask, confidence, crop_region, bbox, label,
control_net_wrapper); boxes are ``[x1, y1, x2, y2]`` pixels, ``cropped_mask`` a float32 numpy
array over ``crop_region``. Its detector inputs (``BBOX_DETECTOR`` / ``SEGM_DETECTOR``) are
objects with ``detect(image, threshold, dilation, crop_factor, drop_size, detailer_hook)``
-> SEGS, ``detect_combined(image, threshold, dilation)`` -> MASK and ``setAux``.
``BOUNDING_BOX`` (a core type of newer ComfyUI, e.g. RT-DETR Detect -> Draw BBoxes) is a list
per image of ``{x, y, width, height, label, score}`` dicts.
"""

from __future__ import annotations

from collections import namedtuple

import torch

from comfyui_pal.core.detections import artifact_detections, bounding_boxes
from comfyui_pal.core.layout import comfy_mask, image_to_bchw
from comfyui_pal.options import comfy_inputs
from comfyui_pal.pipelines import detect as detection

from .comfy_glue import threshold_input

SEG = namedtuple(
    "SEG",
    ["cropped_image", "cropped_mask", "confidence", "crop_region", "bbox", "label",
     "control_net_wrapper"],
    defaults=[None],
)  # fmt: skip
LABEL = "artifact"

DROP_SIZE = (
    "INT",
    {
        "default": 16,
        "min": 1,
        "max": 2**20,
        "tooltip": "Regions smaller than this many pixels are dropped.",
    },
)


def _dilation(default: int) -> tuple:
    """The ``dilation`` widget of the region nodes, starting at ``default`` px."""
    tip = "Grow (or shrink, < 0) each region by this many pixels."
    return ("INT", {"default": default, "min": -512, "max": 512, "tooltip": tip})


def to_segs(image: torch.Tensor | None, probs: torch.Tensor, label: str = LABEL, **kw) -> tuple:
    """SEGS of one image: ``probs`` ``[H,W]``, ``image`` IMAGE ``[1,H,W,C]`` (crops) or None;
    ``kw`` go to ``artifact_detections`` (threshold, dilation, crop_factor, min_area)."""
    h, w = probs.shape[-2:]
    segs = []
    for d in artifact_detections(probs, **kw):
        x0, y0, x1, y1 = d.crop_region
        crop = image[:, y0:y1, x0:x1, :] if image is not None else None
        mask = d.mask.cpu().numpy().astype("float32")
        segs.append(SEG(crop, mask, d.confidence, list(d.crop_region), list(d.bbox), label))
    return ((h, w), segs)


def _one_image(image: torch.Tensor, what: str) -> None:
    if image.shape[0] != 1:
        raise ValueError(
            f"{what}: SEGS describe one image, got a batch of {image.shape[0]}; split it first "
            "(e.g. ImageFromBatch) or use PAL Auto Fix on the whole batch"
        )


class PALArtifactsToSEGS:
    DESCRIPTION = (
        "Turn PAL's artifact probability into Impact Pack SEGS (one segment per artifact "
        "region, with its box, context crop and mask) so Detailer (SEGS) nodes repaint them."
    )
    CATEGORY = "PAL/regions"
    RETURN_TYPES = ("SEGS",)
    RETURN_NAMES = ("segs",)
    OUTPUT_TOOLTIPS = ("Impact Pack SEGS: ((H, W), [SEG per artifact region]), largest first.",)
    SEARCH_ALIASES = ("segs", "impact", "detailer", "artifact", "bbox")
    FUNCTION = "convert"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The image the probability was detected on."}),
                "probability": ("MASK", {"tooltip": "PAL Detect Artifacts' probability."}),
                **threshold_input("Probability above which a pixel is an artifact."),
                "dilation": _dilation(8),
                "crop_factor": (
                    "FLOAT",
                    {
                        "default": 3.0,
                        "min": 1.0,
                        "max": 100.0,
                        "step": 0.1,
                        "tooltip": "Context crop around each region, times its box size.",
                    },
                ),
                "drop_size": DROP_SIZE,
                "label": ("STRING", {"default": LABEL, "tooltip": "Label of every segment."}),
            }
        }

    def convert(self, image, probability, threshold, dilation, crop_factor, drop_size, label):
        _one_image(image, "PAL Artifacts to SEGS")
        probs = comfy_mask(probability)
        if probs.shape[0] != 1 or tuple(probs.shape[-2:]) != tuple(image.shape[1:3]):
            raise ValueError(
                f"probability {tuple(probs.shape)} does not match image {tuple(image.shape)}; "
                "connect the probability detected on this image"
            )
        segs = to_segs(image, probs[0], label, threshold=threshold, dilation=dilation,
                       crop_factor=crop_factor, min_area=drop_size)  # fmt: skip
        return (segs,)


class PALDetector:
    """PAL as an Impact Pack ``BBOX_DETECTOR`` / ``SEGM_DETECTOR`` (FaceDetailer & co.)."""

    def __init__(self, pal_model, mode: str = "resize") -> None:
        self.pal_model, self.mode, self.aux = pal_model, mode, None

    def _probs(self, image: torch.Tensor) -> torch.Tensor:
        _one_image(image, "PAL detector")
        with torch.inference_mode():
            return detection.detect(self.pal_model.model, image_to_bchw(image), mode=self.mode)[0]

    def detect(self, image, threshold, dilation, crop_factor, drop_size=1, detailer_hook=None):
        probs = self._probs(image)
        return to_segs(image, probs, threshold=threshold, dilation=int(dilation),
                       crop_factor=crop_factor, min_area=max(1, int(drop_size)))  # fmt: skip

    def detect_combined(self, image, threshold, dilation):
        """The union of the regions ``[H,W]`` float 0/1, as Impact's combined mask."""
        (h, w), segs = self.detect(image, threshold, dilation, 1.0)
        out = torch.zeros(h, w)
        for s in segs:
            x0, y0, x1, y1 = s.crop_region
            out[y0:y1, x0:x1] = torch.maximum(out[y0:y1, x0:x1], torch.from_numpy(s.cropped_mask))
        return out

    def setAux(self, x) -> None:  # Impact calls it so
        self.aux = x


class PALDetectorProvider:
    DESCRIPTION = (
        "Use the PAL artifact detector wherever Impact Pack takes a bbox or segm detector "
        "(FaceDetailer, Detailer): it detects artifacts instead of faces."
    )
    CATEGORY = "PAL/detect"
    RETURN_TYPES = ("BBOX_DETECTOR", "SEGM_DETECTOR")
    RETURN_NAMES = ("bbox_detector", "segm_detector")
    OUTPUT_TOOLTIPS = (
        "For FaceDetailer's bbox_detector (artifact regions as boxes).",
        "For segm_detector_opt (artifact regions with their masks).",
    )
    SEARCH_ALIASES = ("detector provider", "impact", "face detailer", "bbox detector", "artifact")
    FUNCTION = "provide"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "pal_model": ("PAL_MODEL", {"tooltip": "From PAL Model Loader."}),
                **comfy_inputs(detection.DetectOptions, ["mode"]),
            }
        }

    def provide(self, pal_model, mode):
        detector = PALDetector(pal_model, mode)
        return (detector, detector)


class PALArtifactBoxes:
    DESCRIPTION = (
        "PAL's artifact regions as bounding boxes (ComfyUI's BOUNDING_BOX: per image a list "
        "of {x, y, width, height, label, score}), for box consumers such as Draw BBoxes or "
        "crop-by-box nodes."
    )
    CATEGORY = "PAL/regions"
    RETURN_TYPES = ("BOUNDING_BOX",)
    RETURN_NAMES = ("boxes",)
    OUTPUT_TOOLTIPS = (
        "Per image, one box per artifact region in pixels; score = its mean probability, "
        "most confident first.",
    )
    SEARCH_ALIASES = ("bbox", "bounding box", "artifact boxes", "detections")
    FUNCTION = "boxes"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "probability": ("MASK", {"tooltip": "PAL Detect Artifacts' probability."}),
                **threshold_input("Probability above which a pixel is an artifact."),
                "dilation": _dilation(0),
                "drop_size": DROP_SIZE,
                "label": ("STRING", {"default": LABEL, "tooltip": "Label of every box."}),
            }
        }

    def boxes(self, probability, threshold, dilation, drop_size, label):
        probs = comfy_mask(probability)
        found = bounding_boxes(probs, threshold, dilation=dilation, min_area=drop_size, label=label)
        return (found,)
