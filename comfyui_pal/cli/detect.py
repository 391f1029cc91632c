"""``comfyui-pal detect``: masks, overlays and a PAR report for image files / folders."""

from __future__ import annotations

import argparse
import sys
import time

from ..options import add_arguments
from ..pipelines.detect import DetectOptions
from .common import add_inputs, model_parent, overwrite_parent, prepare, write_reports


def add_threshold(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="probability above which a pixel is an artifact (default: 0.5)",
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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Detect artifacts in files / folders; write mask + overlay per image and a PAR report."""
    from ..core.preview import overlay
    from ..io.images import load_image, save_image
    from ..pipelines.detect import detect, par

    out_dir, files, opts, model = prepare(args, DetectOptions)
    rows, failed = [], 0
    for k, path in enumerate(files, 1):
        t0 = time.perf_counter()
        try:
            image = load_image(path)
            probs = detect(model, image, opts)
            score = float(par(probs, args.threshold)[0])
            mask = (probs[0] > args.threshold).float()
            save_image(mask, out_dir / f"{path.stem}_mask.png", args.overwrite)
            shown = overlay(image, probs, args.threshold)[0]
            save_image(shown, out_dir / f"{path.stem}_overlay.png", args.overwrite)
        except (ValueError, FileExistsError) as exc:
            print(f"FAILED {path}: {exc}", file=sys.stderr)
            failed += 1
            continue
        secs = time.perf_counter() - t0
        rows.append({"image": str(path), "par": round(score, 6), "seconds": round(secs, 3)})
        print(f"[{k}/{len(files)}] {path.name}: PAR {score:.4f} ({secs * 1000:.0f} ms)")
    write_reports(out_dir, rows, ["image", "par", "seconds"])
    return 1 if failed else 0
