"""``comfyui-pal rank``: copy images best first as ``NNN_parX.XXX_<name>`` with ranking.csv."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..options import add_arguments
from ..pipelines.detect import DetectOptions
from .common import (
    add_inputs,
    engine_cluster,
    engine_parent,
    make_job,
    model_parent,
    overwrite_parent,
    prepare,
    run_on_ray,
)
from .detect import add_threshold


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rank",
        help="copy images best first by PAR, with ranking.csv",
        parents=[
            model_parent(),
            overwrite_parent("clashing copies (and, with --engine ray, start its results over)"),
            engine_parent(),
        ],
    )
    add_inputs(p, "pal_ranked")
    add_arguments(p, DetectOptions, ["mode", "tta"])
    add_threshold(p)
    p.add_argument("--resume", action="store_true", help="reuse scores of an earlier run")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Rank image files by PAR into renamed copies plus ranking.csv; resumable. With
    ``--engine ray`` the scores are Parquet parts in ``--out``/results (``scale.results``)
    instead of scores.json."""
    from ..io.ranking import score_files, write_ranking

    cluster = engine_cluster(args)
    out_dir, files, opts, model = prepare(args, DetectOptions, unique_stems=False)
    job = make_job(args, model, opts)
    if cluster is None:

        def score(path: Path) -> float:
            return job.apply(model, path, job.load(path), replace=False)["par"]

        scores, failed = score_files(files, out_dir, score, args.resume)
    else:
        scored, failed = run_on_ray(args, job, files, out_dir, cluster)
        scores = {image: row["par"] for image, row in scored.items()}
    try:
        rows = write_ranking(scores, out_dir, args.overwrite)
    except FileExistsError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    if rows:
        print(f"best: {rows[0]['copy'].name}; ranking of {len(rows)} in {out_dir / 'ranking.csv'}")
    return 1 if failed else 0
