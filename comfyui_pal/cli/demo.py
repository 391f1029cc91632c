"""``comfyui-pal demo``: zoom-in crop -> built-in smooth fill -> stitch, on images with masks."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .common import inputs, overwrite_parent


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="crop -> smooth fill -> stitch on images with masks",
        parents=[overwrite_parent()],
    )
    p.add_argument(
        "inputs",
        nargs="*",
        default=["examples/images"],
        help="image files or folders (masks in masks/NAME.png beside them)",
    )
    p.add_argument("--out", default="pal_out", help="output folder (default: pal_out)")
    p.add_argument("--target-size", type=int, default=512)
    p.add_argument("--context-factor", type=float, default=2.0)
    p.add_argument("--blend-radius", type=float, default=16)
    p.set_defaults(func=run)


def find_mask(image_path: Path) -> Path | None:
    """The mask of ``dir/name.ext``: ``dir/masks/name.png`` or ``dir/name_mask.png``."""
    for cand in (
        image_path.parent / "masks" / f"{image_path.stem}.png",
        image_path.with_name(f"{image_path.stem}_mask.png"),
    ):
        if cand.exists():
            return cand
    return None


def run(args: argparse.Namespace) -> int:
    """Crop every masked region, fill it with the smooth inpainter at work size, stitch back."""
    import torch

    from ..core import regions
    from ..io.images import load_image, load_mask, save_image, write_atomic
    from ..pipelines.inpaint import smooth_fill

    out_dir = Path(args.out)
    files = [p for p in inputs(args, out_dir) if not p.stem.endswith("_mask")]
    report_path = out_dir / "report.json"
    if report_path.exists() and not args.overwrite:
        print(f"FAILED: {report_path} exists; pass --overwrite or another --out", file=sys.stderr)
        return 1
    report, failed = [], 0
    for path in files:
        mask_path = find_mask(path)
        if mask_path is None:
            print(f"skip {path}: no mask (expected masks/{path.stem}.png beside it)")
            continue
        t0 = time.perf_counter()
        try:
            image = load_image(path)
            mask = load_mask(mask_path)
            crops, crop_masks, plan = regions.crop_regions(
                image, mask, target_size=args.target_size, context_factor=args.context_factor
            )
            filled = smooth_fill(crops, crop_masks)
            fixed = regions.stitch(image, filled, plan, blend_radius=args.blend_radius)
            save_image(fixed[0], out_dir / f"{path.stem}_fixed.png", args.overwrite)
            strip = torch.cat(list(filled), dim=2)
            save_image(strip, out_dir / f"{path.stem}_crops.png", args.overwrite)
        except (ValueError, FileExistsError) as exc:
            print(f"FAILED {path}: {exc}", file=sys.stderr)
            failed += 1
            continue
        secs = time.perf_counter() - t0
        print(
            f"{path.name}: {len(plan.used_crops)} crop(s) at {plan.work_size[1]}x"
            f"{plan.work_size[0]}, {len(plan.report)} region(s), {secs * 1000:.0f} ms -> {out_dir}"
        )
        report.append(
            {
                "image": str(path),
                "mask": str(mask_path),
                "seconds": secs,
                "plan": plan.to_dict(include_masks=False),
            }
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(report_path, json.dumps(report, indent=1))
    return 1 if failed else 0
