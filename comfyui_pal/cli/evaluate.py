"""``comfyui-pal eval``: precision / recall / F1 / IoU / mIoU / PAR correlation of a model."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..options import add_arguments
from ..pipelines.detect import DetectOptions
from .common import device, overwrite_parent
from .detect import add_threshold


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval", help="evaluate a detector", parents=[overwrite_parent("an existing --json file")]
    )
    p.add_argument(
        "model", nargs="?", default="default", help="checkpoint (default: the shipped model)"
    )
    p.add_argument("--cpu", action="store_true", help="run on the CPU even with a GPU")
    p.add_argument("--data", nargs="*", default=[], help="PAL-layout folders")
    p.add_argument(
        "--synthetic",
        type=int,
        default=0,
        help="also score N images of the held-out synthetic benchmark",
    )
    p.add_argument("--size", type=int, default=384, help="synthetic benchmark image size")
    p.add_argument("--seed", type=int, default=2023, help="synthetic benchmark seed")
    add_arguments(p, DetectOptions, ["mode"])
    add_threshold(p)
    p.add_argument("--json", help="also write the report here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate a model on PAL-layout folders and/or the synthetic held-out benchmark."""
    from ..cache import load_model
    from ..io.images import write_atomic
    from ..training.evaluate import evaluate

    if not args.data and not args.synthetic:
        print("nothing to evaluate: pass --data FOLDER and/or --synthetic N", file=sys.stderr)
        return 2
    if args.json and Path(args.json).exists() and not args.overwrite:
        print(f"FAILED: {args.json} exists; pass --overwrite to replace it", file=sys.stderr)
        return 1
    model = load_model(args.model, device(args))
    report = evaluate(
        model,
        args.data,
        args.synthetic,
        size=args.size,
        seed=args.seed,
        mode=args.mode,
        threshold=args.threshold,
    )
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        write_atomic(args.json, text)
    return 0
