"""``comfyui-pal data``: build the training base set from installed packages' images."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "data",
        help="build the training base images from installed packages (never the network)",
    )
    p.add_argument("--out", default="runs/data", help="folder for train/, heldout/, manifest")
    p.add_argument("--max-side", type=int, default=1024, help="long side of stored images, px")
    p.add_argument("--text-scenes", type=int, default=400, help="typeset text scenes to make")
    p.add_argument("--composites", type=int, default=3, help="composites per portrait cut-out")
    p.add_argument(
        "--webp",
        type=int,
        metavar="Q",
        help="store the training split as WebP at quality Q (about 1/12 of the PNG size)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--overwrite", action="store_true", help="rebuild a folder that already has a manifest"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the set, print images per source and split."""
    from ..training.sources import build_bases, summarize

    out = Path(args.out)
    if (out / "manifest.json").exists() and not args.overwrite:
        print(f"{out} already holds a base set; pass --overwrite to rebuild it", file=sys.stderr)
        return 2
    manifest = build_bases(
        out,
        max_side=args.max_side,
        webp=args.webp,
        composites_per_portrait=args.composites,
        text_scenes=args.text_scenes,
        seed=args.seed,
        log=lambda m: print(m, flush=True),
    )
    print(json.dumps(summarize(manifest), indent=1))
    if not any(e["split"] == "train" for e in manifest["images"]):
        print("no training images found: install the packages named above", file=sys.stderr)
        return 1
    return 0
