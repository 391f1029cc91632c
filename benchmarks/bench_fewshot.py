"""Few-shot adaptation (the paper's finding), measured in one run (not a test).

    python benchmarks/bench_fewshot.py [MODEL] [--shots 30] [--steps 150] [--workdir DIR]

The base model never saw the ``--family`` (one of ``synth.HELD_OUT_FAMILIES``). We label
``--shots`` images of it (made from training sources, written in the PAL folder layout),
fine-tune on them mixed with the usual synthetic families, and score F1 / IoU on a held-out
split of that family (held-out source photographs, another seed) and on the standard
held-out benchmark, before and after.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from comfyui_pal.cache import load_model, resolve_model_path
from comfyui_pal.io.images import save_image
from comfyui_pal.models.loading import load_model_file
from comfyui_pal.training.datasets import benchmark_samples, find_sources, split_sources
from comfyui_pal.training.evaluate import evaluate_pairs
from comfyui_pal.training.synth import FAMILIES, HELD_OUT_FAMILIES
from comfyui_pal.training.train import TrainConfig, train


def write_shots(folder: Path, count: int, size: int, seed: int, family: str) -> None:
    train_src, _ = split_sources(find_sources())
    for name, image, mask in benchmark_samples(train_src, count, size, seed, (family,)):
        save_image(image, folder / "images" / f"{name}.png", overwrite=True)
        save_image(mask, folder / "masks" / f"{name}.png", overwrite=True)


def scores(model, held, count: int, seed: int, families) -> dict:
    c = evaluate_pairs(model, benchmark_samples(held, count, 384, seed, families))
    s = c.summary()
    return {k: round(s[k], 4) for k in ("f1", "iou", "precision", "recall")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default="default")
    ap.add_argument("--shots", type=int, default=30)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--eval-count", type=int, default=60)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--family", default=HELD_OUT_FAMILIES[0], choices=HELD_OUT_FAMILIES)
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="pal_fewshot_"))
    _, held = split_sources(find_sources())
    base = load_model(args.model, "cpu")
    t0 = time.perf_counter()
    before_new = scores(base, held, args.eval_count, 777, (args.family,))
    before_old = scores(base, held, args.eval_count, 2023, FAMILIES)
    print(f"base model on unseen '{args.family}': {before_new}", flush=True)

    write_shots(work / "shots", args.shots, 320, 4242, args.family)
    cfg = TrainConfig(
        out=work / "adapted.safetensors",
        workdir=work / "run",
        init=resolve_model_path(args.model),
        data=[work / "shots"],
        steps=args.steps,
        lr=3e-4,
        warmup=10,
        batch=8,
        size=256,
        ckpt_every=10_000,
        resume=False,
    )
    train(cfg, log=lambda m: print(m, flush=True))
    adapted = load_model_file(cfg.out)
    after_new = scores(adapted, held, args.eval_count, 777, (args.family,))
    after_old = scores(adapted, held, args.eval_count, 2023, FAMILIES)
    result = {
        "shots": args.shots,
        "steps": args.steps,
        "family": args.family,
        "unseen_family_before": before_new,
        "unseen_family_after": after_new,
        "standard_benchmark_before": before_old,
        "standard_benchmark_after": after_old,
        "seconds": round(time.perf_counter() - t0),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
