"""``comfyui-pal fix``: the main job; detect artifacts and inpaint them away, until clean."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..options import add_arguments
from ..pipelines.fix import FixOptions
from .common import add_inputs, model_parent, overwrite_parent, prepare, process_folder

FIELDS = [
    "image",
    "par_before",
    "par_after",
    "regions_tried",
    "regions_repainted",
    "regions_undone",
    "regions_skipped",
    "rounds",
    "seconds",
]
OPTIONS = (
    "inpainter",
    "max_iterations",
    "target_par",
    "threshold",
    "min_confidence",
    "grow",
    "tta",
    "mode",
    "seed",
    "protect",
    "max_regions",
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fix",
        help="the main job: find and inpaint artifacts",
        parents=[model_parent(), overwrite_parent()],
    )
    add_inputs(p, "pal_out")
    add_arguments(p, FixOptions, OPTIONS)
    p.add_argument("--resume", action="store_true", help="skip images already fixed")
    p.set_defaults(func=run)


def fix_file(path: Path, out_dir: Path, model, opts: FixOptions, overwrite: bool) -> dict:
    """Fix one image file; writes ``outputs(path, out_dir)`` (``NAME_fixed.png``,
    ``NAME_mask.png``, ``NAME_compare.png``) and returns its report row."""
    from ..core.preview import compare
    from ..io.images import load_image, save_image
    from ..pipelines.detect import detect
    from ..pipelines.fix import fix, fix_summary

    t0 = time.perf_counter()
    image = load_image(path)
    probs = detect(model, image, mode=opts.mode, tta=opts.tta)
    fixed, final, history = fix(model, image, opts, probs=probs)
    save_image(fixed[0], out_dir / f"{path.stem}_fixed.png", overwrite)
    save_image((probs[0] > opts.threshold).float(), out_dir / f"{path.stem}_mask.png", overwrite)
    panel = compare(image, probs, fixed, opts.threshold)
    save_image(panel, out_dir / f"{path.stem}_compare.png", overwrite)
    row = fix_summary(image, fixed, probs, final, history, opts)
    row["seconds"] = round(time.perf_counter() - t0, 3)
    return row


def outputs(path: Path, out_dir: Path) -> list[Path]:
    """The files ``fix`` writes for the input ``path``."""
    return [out_dir / f"{path.stem}_{kind}.png" for kind in ("fixed", "mask", "compare")]


def run(args: argparse.Namespace) -> int:
    """Detect and fix artifacts in files / folders; resumable, never overwriting."""
    out_dir, files, opts, model = prepare(args, FixOptions)

    def show(row: dict) -> str:
        return (
            f"PAR {row['par_before']:.4f} -> {row['par_after']:.4f}, "
            f"{row['regions_repainted']} region(s) repainted, {row['seconds']:.1f} s"
        )

    try:
        failed = process_folder(
            files,
            out_dir,
            FIELDS,
            lambda p: outputs(p, out_dir),
            lambda p, replace: fix_file(p, out_dir, model, opts, replace),
            show,
            args,
        )
    except FileExistsError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    return 1 if failed else 0
