"""``comfyui-pal convert``: any supported detector checkpoint -> our safetensors."""

from __future__ import annotations

import argparse
import sys

from .common import overwrite_parent


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert a detector checkpoint to safetensors",
        parents=[overwrite_parent("an existing output")],
    )
    p.add_argument("src", help="official .pth, end2end.pt or .safetensors")
    p.add_argument("dst", help="output .safetensors")
    p.add_argument("--half", action="store_true", help="store float weights as fp16")
    p.add_argument(
        "--keep-aux",
        action="store_true",
        help="keep the auxiliary FCN head (only useful for fine-tuning)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Convert an mmseg .pth / TorchScript end2end.pt / safetensors to our safetensors."""
    from ..models.loading import convert

    try:
        out = convert(
            args.src, args.dst, half=args.half, keep_aux=args.keep_aux, overwrite=args.overwrite
        )
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"convert failed: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB)")
    return 0
