"""Evaluation: ``python -m comfyui_pal eval`` on PAL-layout folders and/or the held-out
synthetic benchmark; per-folder and overall metrics as JSON."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from ..io.images import load_image, load_mask
from ..pipelines.detect import detect
from .datasets import benchmark_samples, find_sources, pal_folder, split_sources
from .metrics import Counts


def evaluate_pairs(
    model: nn.Module,
    samples: Iterable[tuple[str, torch.Tensor, torch.Tensor]],
    *,
    mode: str = "resize",
    threshold: float = 0.5,
) -> Counts:
    """Accumulate metrics over (name, image ``[3,H,W]``, mask ``[H,W]``) samples."""
    counts = Counts()
    for _, image, mask in samples:
        probs = detect(model, image[None], mode=mode)
        counts.add(probs > threshold, mask[None] > 0.5)
    return counts


def folder_samples(root: str | Path):
    for img, msk in pal_folder(root):
        yield img.stem, load_image(img)[0], load_mask(msk)[0]


def synthetic_benchmark(count: int = 200, size: int = 384, seed: int = 2023):
    """The held-out synthetic benchmark: held-out sources only, fixed seed."""
    _, held = split_sources(find_sources())
    return benchmark_samples(held, count, size, seed)


def evaluate(
    model: nn.Module,
    folders: list[str | Path] = (),
    synthetic: int = 0,
    *,
    size: int = 384,
    seed: int = 2023,
    mode: str = "resize",
    threshold: float = 0.5,
) -> dict:
    """Metrics per folder (and ``synthetic`` when asked) plus ``overall``."""
    report, total = {}, Counts()
    for f in folders:
        c = evaluate_pairs(model, folder_samples(f), mode=mode, threshold=threshold)
        report[str(f)] = c.summary()
        total = total.merge(c)
    if synthetic:
        c = evaluate_pairs(
            model, synthetic_benchmark(synthetic, size, seed), mode=mode, threshold=threshold
        )
        report["synthetic"] = c.summary() | {"size": size, "seed": seed}
        total = total.merge(c)
    report["overall"] = total.summary()
    return report
