"""``comfyui-pal rank``: copy images best first as ``NNN_parX.XXX_<name>`` with ranking.csv."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..options import add_arguments
from ..pipelines.detect import DetectOptions
from .common import add_inputs, model_parent, overwrite_parent, prepare
from .detect import add_threshold


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rank",
        help="copy images best first by PAR, with ranking.csv",
        parents=[model_parent(), overwrite_parent("clashing copies")],
    )
    add_inputs(p, "pal_ranked")
    add_arguments(p, DetectOptions, ["mode", "tta"])
    add_threshold(p)
    p.add_argument("--resume", action="store_true", help="reuse scores of an earlier run")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Rank image files by PAR into renamed copies plus ranking.csv; resumable."""
    from ..io.images import load_image
    from ..io.ranking import score_files, write_ranking
    from ..pipelines.detect import detect, par

    out_dir, files, opts, model = prepare(args, DetectOptions, unique_stems=False)

    def score(path: Path) -> float:
        return float(par(detect(model, load_image(path), opts), args.threshold)[0])

    scores, failed = score_files(files, out_dir, score, args.resume)
    try:
        rows = write_ranking(scores, out_dir, args.overwrite)
    except FileExistsError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    if rows:
        print(f"best: {rows[0]['copy'].name}; ranking of {len(rows)} in {out_dir / 'ranking.csv'}")
    return 1 if failed else 0
