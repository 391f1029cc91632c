"""``comfyui-pal queue``: run an API-format workflow per image or seed on ComfyUI servers."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from .common import device, model_parent, overwrite_parent, write_reports


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "queue",
        help="run a workflow per image or seed on one or more ComfyUI servers",
        parents=[
            model_parent("detector for the PAR report:"),
            overwrite_parent("outputs and the report of an earlier run in --out"),
        ],
    )
    p.add_argument("workflow", help="API-format workflow JSON (examples/api/)")
    p.add_argument(
        "--server",
        action="append",
        default=[],
        help="ComfyUI address; repeat it for more servers (default: http://127.0.0.1:8188)",
    )
    p.add_argument(
        "--servers",
        metavar="FILE",
        help="a file of servers, one 'URL [slots]' a line ('#' comments), besides --server",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", help="folder of images, uploaded into every LoadImage node")
    src.add_argument("--seeds", help="seeds a..b (inclusive) or a,b,c for every seed widget")
    p.add_argument("--out", default="pal_queue", help="output folder (default: pal_queue)")
    p.add_argument(
        "--concurrency", type=int, default=2, help="prompts in flight at once on each server"
    )
    p.add_argument("--retries", type=int, default=3, help="retries of a failed request")
    p.add_argument(
        "--timeout", type=float, default=30, help="seconds a request may stay silent (default 30)"
    )
    p.add_argument(
        "--patience",
        type=float,
        default=300,
        help="seconds to wait for a server to answer again before giving up (default 300)",
    )
    p.add_argument("--resume", action="store_true", help="skip jobs finished before")
    p.add_argument("--no-score", dest="score", action="store_false", help="skip PAR of the outputs")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Fill a workflow per image / seed, run it on the ComfyUI servers, collect outputs and
    PAR into one report (which server ran each job, in how many attempts)."""
    from ..io.comfy_client import Job, QueueError, load_workflow, parse_seeds
    from ..io.dispatch import parse_servers, run_queue
    from ..io.images import list_images, load_image

    out_dir = Path(args.out)
    try:
        workflow = load_workflow(Path(args.workflow))
        if args.images:
            images = list_images([args.images])
            total, jobs = len(images), (Job(p.stem, image=p) for p in images)
        else:
            seeds = parse_seeds(args.seeds)
            total, jobs = len(seeds), (Job(f"seed{s}", seed=s) for s in seeds)
        lines = _read_lines(args.servers) if args.servers else []
        urls = args.server or ([] if lines else ["http://127.0.0.1:8188"])
        pool = parse_servers(
            urls, lines, max(1, args.concurrency), retries=args.retries, timeout=args.timeout
        )
        done = run_queue(
            workflow,
            jobs,
            out_dir,
            pool,
            resume=args.resume,
            overwrite=args.overwrite,
            patience=args.patience,
        )
    except (QueueError, ValueError, FileNotFoundError) as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    rows = [
        {"job": j.name, "output": o, "server": j.server, "attempts": j.attempts}
        for j in done
        for o in j.outputs
    ]
    if args.score and rows:
        from ..cache import load_model
        from ..pipelines.detect import detect, par

        model = load_model(args.model, device(args))
        for r in rows:
            probs = detect(model, load_image(out_dir / r["output"]))
            r["par"] = round(float(par(probs)[0]), 6)
    write_reports(out_dir, rows, ["job", "output", "server", "attempts", "par"])
    if len(pool) > 1:
        ran = Counter(j.server for j in done)
        print("; ".join(f"{s.url}: {ran[s.url]} job(s)" for s in pool))
    print(f"{len(done)}/{total} job(s) done, {len(rows)} output(s) in {out_dir}")
    return 0 if len(done) == total else 1


def _read_lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read --servers {path}: {exc}") from None
