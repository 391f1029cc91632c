"""Curation nodes: rank a batch by PAR, select the best of N."""

from __future__ import annotations

import json

import torch

from comfyui_pal.core.layout import comfy_mask
from comfyui_pal.options import comfy_inputs
from comfyui_pal.pipelines import detect as detection
from comfyui_pal.pipelines.curate import EMPTY_POLICIES, rank, select_best

from .comfy_glue import threshold_input


def _score_inputs() -> dict:
    return {
        "pal_model": ("PAL_MODEL", {"tooltip": "Detect with this model (or give probability)."}),
        "probability": (
            "MASK",
            {"tooltip": "Probabilities from PAL Detect Artifacts, to skip detecting again."},
        ),
        **threshold_input("Probability above which a pixel counts as an artifact."),
        **comfy_inputs(detection.DetectOptions, ["mode"]),
    }


def _pars(image, pal_model, probability, threshold, mode) -> torch.Tensor:
    """``[B]`` PAR of each image, from precomputed probabilities or a detection pass."""
    if probability is not None:
        probs = comfy_mask(probability)
        if probs.shape[0] != image.shape[0] or probs.shape[1:] != image.shape[1:3]:
            raise ValueError(
                f"probability is {tuple(probs.shape)} but the images are "
                f"{tuple(image.shape[:3])}; connect the probability output detected from "
                "these same images"
            )
    elif pal_model is not None:
        probs = pal_model.detect(image, mode)
    else:
        raise ValueError("connect pal_model (to detect) or probability (already detected)")
    return detection.par(probs, threshold)


def _summary(order: torch.Tensor, pars: torch.Tensor) -> str:
    return json.dumps([{"index": int(i), "par": round(float(pars[i]), 6)} for i in order])


class PALRankBatch:
    DESCRIPTION = (
        "Sort a batch from fewest to most artifacts (PAR, lower is better). Outputs the sorted "
        "images, their PARs and their original batch indices."
    )
    CATEGORY = "PAL/curate"
    OUTPUT_TOOLTIPS = (
        "The batch sorted best first (lowest PAR first).",
        "PAR of each sorted image (fraction of artifact pixels; lower is better).",
        "Original batch index of each sorted image.",
        "One line per image: rank, index and PAR.",
    )
    SEARCH_ALIASES = (
        "rank",
        "sort",
        "quality score",
        "best of n",
        "artifact",
        "curate",
    )  # newer ComfyUI search; harmless elsewhere
    RETURN_TYPES = ("IMAGE", "FLOAT", "INT", "STRING")
    RETURN_NAMES = ("images", "par", "index", "summary")
    OUTPUT_IS_LIST = (False, True, True, False)
    FUNCTION = "rank"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {"image": ("IMAGE", {"tooltip": "The batch to rank [B,H,W,C]."})},
            "optional": _score_inputs(),
        }

    def rank(self, image, pal_model=None, probability=None, threshold=0.5, mode="resize"):
        pars = _pars(image, pal_model, probability, threshold, mode)
        order = rank(pars)
        return (
            image[order],
            [float(pars[i]) for i in order],
            [int(i) for i in order],
            _summary(order, pars),
        )


class PALSelectBest:
    DESCRIPTION = (
        "Keep the best images of a batch: the top_k lowest PARs and/or those with PAR <= "
        "max_par. When none passes, when_none decides: keep the best one anyway, output an "
        "empty batch, or stop with an error."
    )
    CATEGORY = "PAL/curate"
    OUTPUT_TOOLTIPS = (
        "The images kept (top_k lowest PARs and / or PAR <= max_par), best first.",
        "PAR of each kept image (lower is better).",
        "Original batch index of each kept image.",
        "What was kept and why, and what happened when none passed.",
    )
    SEARCH_ALIASES = (
        "best of n",
        "select",
        "filter",
        "quality score",
        "cherry pick",
        "artifact",
    )  # newer ComfyUI search; harmless elsewhere
    RETURN_TYPES = ("IMAGE", "FLOAT", "INT", "STRING")
    RETURN_NAMES = ("images", "par", "index", "summary")
    OUTPUT_IS_LIST = (False, True, True, False)
    FUNCTION = "select"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The batch to choose from [B,H,W,C]."}),
                "top_k": (
                    "INT",
                    {"default": 1, "min": 0, "max": 4096, "tooltip": "Keep at most k (0 = all)."},
                ),
                "max_par": (
                    "FLOAT",
                    {
                        "default": 1.0,
                        "min": 0.0,
                        "max": 1.0,
                        "step": 0.0001,
                        "tooltip": "Keep only images with PAR at most this (1 = any).",
                    },
                ),
                "when_none": (
                    list(EMPTY_POLICIES),
                    {
                        "default": "best_one",
                        "tooltip": "If no image passes: keep the best one, output an empty "
                        "batch (downstream nodes may not accept it), or raise an error.",
                    },
                ),
            },
            "optional": _score_inputs(),
        }

    def select(
        self,
        image,
        top_k,
        max_par,
        when_none,
        pal_model=None,
        probability=None,
        threshold=0.5,
        mode="resize",
    ):
        pars = _pars(image, pal_model, probability, threshold, mode)
        keep = select_best(pars, top_k, max_par, when_none)
        return (
            image[keep],
            [float(pars[i]) for i in keep],
            [int(i) for i in keep],
            _summary(keep, pars),
        )
