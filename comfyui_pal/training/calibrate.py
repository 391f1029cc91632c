"""Threshold calibration: move a model's decision point to the F1-best threshold of a
validation set, baked into the classifier bias so that 0.5 (the argmax, hence PAR) uses it.

The validation set is made from *training* sources with its own seed, never from the
held-out benchmark.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ..models.base import Segmentor
from ..pipelines.detect import detect
from .datasets import benchmark_samples, find_sources, load_source_u8, random_view, split_sources
from .metrics import Counts

VALIDATION_SEED = 99
# at most this fraction of a clean image may be flagged at the chosen threshold (mean PAR),
# and the clean views' 95th-percentile PAR at most MAX_CLEAN_P95 (few images flagged at all)
MAX_CLEAN_PAR = 0.002
MAX_CLEAN_P95 = 0.01


def best_threshold(
    model: Segmentor, count: int = 200, size: int = 384, seed: int = VALIDATION_SEED
) -> tuple[float, dict[float, dict]]:
    """F1-best probability threshold on a validation set among those that flag at most
    ``MAX_CLEAN_PAR`` of clean validation views on average and at most ``MAX_CLEAN_P95`` at
    their 95th percentile; returns (threshold, stats per threshold)."""
    train_src, _ = split_sources(find_sources())
    grid = [round(0.05 * k, 2) for k in range(1, 20)]
    counts = {t: Counts() for t in grid}
    clean_pars: dict[float, list[float]] = {t: [] for t in grid}
    g = torch.Generator().manual_seed(seed + 1)
    images = [load_source_u8(p) for p in train_src]
    for k, (_, image, mask) in enumerate(benchmark_samples(train_src, count, size, seed)):
        probs = detect(model, image[None])
        truth = mask[None] > 0.5
        clean = random_view(images[k % len(images)].float() / 255, size, g) if images else image
        clean_probs = detect(model, clean[None])
        for t in grid:
            counts[t].add(probs > t, truth)
            clean_pars[t].append(float((clean_probs > t).float().mean()))
    stats = {
        t: {
            "f1": counts[t].summary()["f1"],
            "clean_par": sum(clean_pars[t]) / len(clean_pars[t]),
            "clean_p95": float(torch.quantile(torch.tensor(clean_pars[t]), 0.95)),
        }
        for t in grid
    }
    allowed = [
        t
        for t in grid
        if stats[t]["clean_par"] <= MAX_CLEAN_PAR and stats[t]["clean_p95"] <= MAX_CLEAN_P95
    ] or [0.5]
    return max(allowed, key=lambda t: stats[t]["f1"]), stats


def shift_decision(model: Segmentor, threshold: float) -> None:
    """Make ``p > 0.5`` of the model equal ``p > threshold`` before (in place).

    ``p = sigmoid(l1 - l0)`` for 2 classes, so lowering the class-1 bias of the final 1x1
    classifier by ``logit(threshold)`` moves the decision point; the resize after it is linear
    with weights summing to 1, so the shift is exact at every pixel.
    """
    if not 0 < threshold < 1:
        raise ValueError(
            f"threshold {threshold} is not a probability in (0, 1); pass one strictly between"
        )
    with torch.no_grad():
        model.classifier.bias[1] -= math.log(threshold / (1 - threshold))


def calibrate(src: str | Path, dst: str | Path, count: int = 200) -> tuple[float, dict]:
    # the returned dict maps each threshold to its validation F1 and clean-image PAR
    """Write a calibrated copy of checkpoint ``src`` to ``dst``; returns (threshold, F1s)."""
    from ..models.loading import build_model, read_checkpoint, save_checkpoint

    ckpt = read_checkpoint(src)
    model = build_model(ckpt)
    t, f1 = best_threshold(model, count)
    shift_decision(model, t)
    half = ckpt.metadata.get("dtype") == "float16"
    meta = {
        k: v
        for k, v in ckpt.metadata.items()
        if k not in ("format", "format_version", "arch", "config", "dtype")
    }
    meta |= {
        "calibrated_threshold": t,
        "calibration": f"F1-best on {count} validation images "
        f"(training sources, seed {VALIDATION_SEED})",
    }
    save_checkpoint(model, dst, half=half, extra=meta)
    return t, f1
