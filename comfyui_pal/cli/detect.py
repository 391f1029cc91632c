"""``comfyui-pal detect``: masks, overlays and a PAR report for image files / folders."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..options import add_arguments, fields
from ..pipelines.detect import DetectOptions
from ..pipelines.fix import FixOptions
from .common import (
    add_inputs,
    engine_cluster,
    engine_parent,
    make_job,
    model_parent,
    overwrite_parent,
    prepare,
    process_folder,
    run_on_ray,
    write_reports,
)

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
        parents=[
            model_parent(),
            overwrite_parent("existing outputs (with --engine ray: and start its results over)"),
            engine_parent(),
        ],
    )
    add_inputs(p, "pal_out")
    add_arguments(p, DetectOptions, ["mode", "tta", "batch_size"])
    add_threshold(p)
    p.add_argument("--resume", action="store_true", help="skip images an earlier run finished")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Detect artifacts in files / folders; write mask + overlay per image and a PAR report,
    saved after every image (``--resume`` continues an interrupted run). With ``--engine ray``
    the actors write the masks and overlays, the driver the Parquet parts in
    ``--out``/results as they come (``scale.results``) and the report at the end."""
    from ..io.journal import Journal

    cluster = engine_cluster(args)
    out_dir, files, opts, model = prepare(args, DetectOptions)
    job = make_job(args, model, opts, out_dir)
    if cluster is not None:
        Journal(out_dir, FIELDS, args.resume, args.overwrite)  # an earlier report: refused
        rows, failed = run_on_ray(args, job, files, out_dir, cluster)
        report = [
            {
                "image": image,
                "par": round(row["par"], 6),
                "seconds": round(row["seconds"], 3),
                "input": [row["bytes"], row["mtime_ns"]],
                "status": "done",
            }
            for image, row in rows.items()
        ]
        write_reports(out_dir, report, FIELDS)  # the Journal's layout: --engine local resumes it
        return 1 if failed else 0

    def work(path: Path, replace: bool) -> dict:
        t0 = time.perf_counter()
        row = job.apply(model, path, job.load(path), replace)
        return {"par": round(row["par"], 6), "seconds": round(time.perf_counter() - t0, 3)}

    def show(row: dict) -> str:
        return f"PAR {row['par']:.4f} ({row['seconds'] * 1000:.0f} ms)"

    try:
        failed = process_folder(files, out_dir, FIELDS, job.outputs, work, show, args)
    except FileExistsError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    return 1 if failed else 0
