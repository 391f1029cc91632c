"""``comfyui-pal train`` and ``calibrate``: train / fine-tune a detector; bake its threshold."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .common import overwrite_parent


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train / fine-tune a detector", parents=[overwrite_parent("--out")]
    )
    p.add_argument("--out", required=True, help="output .safetensors")
    p.add_argument("--workdir", default="runs/train", help="checkpoints (resumable)")
    p.add_argument("--init", help="checkpoint to fine-tune (default: ImageNet Lite0)")
    p.add_argument("--decoder-only", action="store_true", help="freeze the encoder")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=256, help="training crop size in px")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=100, help="warm-up steps before cosine decay")
    p.add_argument(
        "--sources",
        nargs="*",
        default=[],
        help="folders of clean photos (default: scikit-image + Debian wallpapers)",
    )
    p.add_argument("--data", nargs="*", default=[], help="PAL-layout folders (images/, masks/)")
    p.add_argument("--no-synthetic", action="store_true", help="train on --data only")
    p.add_argument(
        "--data-share", type=float, default=0.5, help="share of samples from --data folders"
    )
    p.add_argument("--families", help="comma-separated synthetic families (default: all)")
    p.add_argument(
        "--clean", type=float, default=0.35, help="share of synthetic samples left clean"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1, help="data-loading processes")
    p.add_argument("--restart", action="store_true", help="ignore WORKDIR/last.pt")
    p.add_argument("--device", default="cpu", help="cpu, or cuda to train on a GPU (bf16)")
    p.add_argument(
        "--max-minutes",
        type=float,
        help="stop early after this long, checkpointed and exported (schedule of --steps kept)",
    )
    p.add_argument("--fp32", action="store_true", help="write fp32 instead of fp16 weights")
    p.set_defaults(func=run)

    mine = sub.add_parser(
        "mine",
        help="collect a model's false alarms on clean training views (hard negatives)",
    )
    mine.add_argument("model")
    mine.add_argument("--out", required=True, help="PAL-layout folder to write (empty masks)")
    mine.add_argument("--count", type=int, default=400, help="clean views to score")
    mine.add_argument("--keep", type=int, default=100, help="views kept, highest PAR first")
    mine.add_argument("--size", type=int, default=288)
    mine.add_argument("--seed", type=int, default=5)
    mine.set_defaults(func=run_mine)

    cal = sub.add_parser(
        "calibrate",
        help="bake the F1-best threshold into a checkpoint",
        parents=[overwrite_parent("dst")],
    )
    cal.add_argument("src")
    cal.add_argument("dst")
    cal.add_argument("--count", type=int, default=200, help="validation images")
    cal.set_defaults(func=run_calibrate)


def run(args: argparse.Namespace) -> int:
    """Train or fine-tune; resumes from WORKDIR/last.pt when present."""
    from ..training.synth import FAMILIES
    from ..training.train import TrainConfig, train

    families = tuple(args.families.split(",")) if args.families else FAMILIES
    cfg = TrainConfig(
        out=Path(args.out),
        workdir=Path(args.workdir),
        steps=args.steps,
        batch=args.batch,
        size=args.size,
        lr=args.lr,
        warmup=args.warmup,
        init=Path(args.init) if args.init else None,
        decoder_only=args.decoder_only,
        sources=[Path(p) for p in args.sources],
        data=[Path(p) for p in args.data],
        synthetic=not args.no_synthetic,
        families=families,
        clean=args.clean,
        data_share=args.data_share,
        seed=args.seed,
        workers=args.workers,
        resume=not args.restart,
        half=not args.fp32,
        device=args.device,
        max_minutes=args.max_minutes,
    )
    if cfg.out.exists() and not args.overwrite:
        print(f"{cfg.out} exists; pass --overwrite to replace it", file=sys.stderr)
        return 2
    print(f"wrote {train(cfg, log=lambda m: print(m, flush=True))}")
    return 0


def run_calibrate(args: argparse.Namespace) -> int:
    """Bake the F1-best validation threshold into a checkpoint's classifier bias."""
    from ..training.calibrate import calibrate

    if Path(args.dst).exists() and not args.overwrite:
        print(f"{args.dst} exists; pass --overwrite to replace it", file=sys.stderr)
        return 2
    t, f1 = calibrate(args.src, args.dst, args.count)
    print(f"F1 by threshold: {json.dumps(f1)}\nbest {t}: wrote {args.dst}")
    return 0


def run_mine(args: argparse.Namespace) -> int:
    """Write the hard negatives; print the sources that trigger the model most."""
    from collections import Counter

    from ..cache import load_model
    from ..training.mine import mine_false_alarms

    records = mine_false_alarms(
        load_model(args.model, "cpu"),
        args.out,
        count=args.count,
        keep=args.keep,
        size=args.size,
        seed=args.seed,
        log=lambda m: print(m, flush=True),
    )
    kinds = Counter(Path(r["source"]).parent.name for r in records)
    print(f"kept {len(records)}: PAR {records[0]['par']:.4f} .. {records[-1]['par']:.4f}")
    print("by source: " + ", ".join(f"{k} {n}" for k, n in kinds.most_common()))
    return 0
