"""``comfyui-pal detect``: masks, overlays and a PAR report for image files / folders."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..options import add_arguments, fields
from ..pipelines.detect import DetectOptions
from ..pipelines.fix import FixOptions
from .common import add_inputs, model_parent, overwrite_parent, prepare, process_folder

FIELDS = ["image", "par", "seconds"]


def probability(text: str) -> float:
    """``--threshold``'s type: a probability in ``FixOptions.threshold``'s range, as the nodes
    allow (the one definition)."""
    spec = fields(FixOptions)["threshold"][2]
    lo, hi = spec.min, spec.max
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not lo <= value <= hi:
        raise argparse.ArgumentTypeError(f"{text} is outside [{lo}, {hi}]")
    return value


def add_threshold(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threshold",
        type=probability,
        default=0.5,
        help="probability above which a pixel is an artifact, 0.01..0.99 (default: 0.5)",
    )


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "detect",
        help="find artifacts: masks, overlays, PAR report",
        parents=[model_parent(), overwrite_parent()],
    )
    add_inputs(p, "pal_out")
    add_arguments(p, DetectOptions, ["mode", "tta", "batch_size"])
    add_threshold(p)
    p.add_argument("--resume", action="store_true", help="skip images an earlier run finished")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Detect artifacts in files / folders; write mask + overlay per image and a PAR report,
    saved after every image (``--resume`` continues an interrupted run)."""
    from ..core.preview import overlay
    from ..io.images import load_image, save_image
    from ..pipelines.detect import detect, par

    out_dir, files, opts, model = prepare(args, DetectOptions)

    def outputs(path: Path) -> list[Path]:
        return [out_dir / f"{path.stem}_{kind}.png" for kind in ("mask", "overlay")]

    def work(path: Path, replace: bool) -> dict:
        t0 = time.perf_counter()
        image = load_image(path)
        probs = detect(model, image, opts)
        score = float(par(probs, args.threshold)[0])
        mask_path, overlay_path = outputs(path)
        save_image((probs[0] > args.threshold).float(), mask_path, replace)
        save_image(overlay(image, probs, args.threshold)[0], overlay_path, replace)
        return {"par": round(score, 6), "seconds": round(time.perf_counter() - t0, 3)}

    def show(row: dict) -> str:
        return f"PAR {row['par']:.4f} ({row['seconds'] * 1000:.0f} ms)"

    try:
        failed = process_folder(files, out_dir, FIELDS, outputs, work, show, args)
    except FileExistsError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    return 1 if failed else 0
