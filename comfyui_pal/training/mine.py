"""Hard negatives: the model's own false alarms on clean training views, for the next round.

``mine_false_alarms`` runs a detector over clean augmented views of the *training* sources
(some with real thin / bright / saturated / hair structures drawn in, as in training), keeps
the views it flags most, and writes them as a PAL-layout folder with empty masks, so that a
later round (``train --data FOLDER --data-share S``) weights them up. The report lists what
was kept per source folder (which content still triggers the model).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from ..io.images import save_image
from ..pipelines.detect import detect, par
from .datasets import (
    draw_hard_structures,
    find_sources,
    load_source_u8,
    random_view,
    source_weights,
    split_sources,
)


def mine_false_alarms(
    model: nn.Module,
    out: str | Path,
    *,
    count: int = 400,
    keep: int = 100,
    size: int = 288,
    seed: int = 5,
    hard: float = 0.3,
    log=print,
) -> list[dict]:
    """Write the ``keep`` clean views (of ``count``) with the highest PAR to ``out``
    (``images/`` + empty ``masks/``) with ``mined.json``; returns their records."""
    out = Path(out)
    train_src, _ = split_sources(find_sources())
    if not train_src:
        raise ValueError("no training sources: run `comfyui-pal data` first")
    images = [load_source_u8(p) for p in train_src]
    weights = source_weights(train_src)
    g = torch.Generator().manual_seed(seed)
    found = []
    for k in range(count):
        j = int(torch.multinomial(weights, 1, generator=g))
        view = random_view(images[j].float() / 255, size, g)
        if float(torch.rand((), generator=g)) < hard:
            view = draw_hard_structures(view, g)
        score = float(par(detect(model, view[None]))[0])
        found.append((score, k, j, view))
        if (k + 1) % 100 == 0:
            log(f"mined {k + 1}/{count}")
    found.sort(key=lambda t: -t[0])
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    records = []
    for score, k, j, view in found[:keep]:
        name = f"mined_{k:05d}"
        save_image(view, out / "images" / f"{name}.png", overwrite=True)
        save_image(torch.zeros(size, size), out / "masks" / f"{name}.png", overwrite=True)
        records.append({"name": name, "par": round(score, 5), "source": str(train_src[j])})
    (out / "mined.json").write_text(json.dumps(records, indent=1))
    return records
