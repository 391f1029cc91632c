"""What every command shares: parent parsers for the common options, input listing, reports."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..io.images import INPUT_SUFFIXES, list_images, write_atomic
from ..io.journal import Journal
from ..options import pick

if TYPE_CHECKING:
    from torch import nn

    from ..scale.job import Job
    from ..scale.ray_engine import Cluster

ENGINES = ("local", "ray")
SCALE_EXTRA = 'pip install "comfyui-pal[scale]"'  # what --engine ray needs


def model_parent(what: str = "detector") -> argparse.ArgumentParser:
    """``--model`` and ``--cpu``."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--model", default="default", help=f"{what} checkpoint (default: shipped model)")
    p.add_argument("--cpu", action="store_true", help="run on the CPU even with a GPU")
    return p


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is below 1")
    return value


def _gpus(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text} is negative; pass 0 for CPU actors")
    return value


def engine_parent() -> argparse.ArgumentParser:
    """``--engine``, ``--address``, ``--actors``, ``--num-gpus``: run in this process or on a
    Ray cluster (``comfyui_pal.scale.ray_engine``; read ``engine_cluster``)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default="local",
        help="local: one image after another in this process (default); ray: on a Ray cluster, "
        f"decoding in CPU tasks and scoring in model actors ({SCALE_EXTRA}). On several "
        "nodes the inputs, the model and --out must be shared storage",
    )
    p.add_argument(
        "--address",
        help="Ray cluster to join (auto: the one this node belongs to, or HEAD:6379); default: "
        "start one on this machine",
    )
    p.add_argument(
        "--actors",
        type=_positive_int,
        help="scoring actors, each holding one model (default: one per GPU, else one per CPU "
        "but one)",
    )
    p.add_argument(
        "--num-gpus",
        type=_gpus,
        help="GPUs per actor (default: 1 when the cluster has GPUs, else 0: CPU actors; 0.5 "
        "puts two actors on a GPU)",
    )
    return p


def engine_cluster(args: argparse.Namespace) -> Cluster | None:
    """The ``scale.ray_engine.Cluster`` the ``engine_parent`` flags ask for, None for
    ``--engine local``; a ``ValueError`` for Ray flags without ``--engine ray``, for
    ``--cpu`` with GPUs, and when Ray is not installed (naming the extra to install)."""
    flags = {"--address": args.address, "--actors": args.actors, "--num-gpus": args.num_gpus}
    if args.engine == "local":
        given = [name for name, value in flags.items() if value is not None]
        if given:
            raise ValueError(f"{given[0]} is a Ray setting; add --engine ray (or drop it)")
        return None
    if getattr(args, "cpu", False) and args.num_gpus:
        raise ValueError(f"--cpu and --num-gpus {args.num_gpus:g} contradict; drop one")
    try:
        import ray.data  # noqa: F401
    except ImportError:
        raise ValueError(f"--engine ray needs Ray Data, not installed: {SCALE_EXTRA}") from None
    from ..scale.ray_engine import Cluster

    return Cluster(args.address, args.actors, args.num_gpus, getattr(args, "cpu", False))


def overwrite_parent(what: str = "existing outputs") -> argparse.ArgumentParser:
    """``--overwrite``."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--overwrite", action="store_true", help=f"replace {what}")
    return p


def add_inputs(p: argparse.ArgumentParser, out: str) -> None:
    """Positional image files / folders and ``--out`` (default ``out``)."""
    p.add_argument("inputs", nargs="+", help="image files or folders")
    p.add_argument("--out", default=out, help=f"output folder (default: {out})")


def device(args: argparse.Namespace) -> str | None:
    """The device ``--cpu`` asks for (None: the best available)."""
    return "cpu" if getattr(args, "cpu", False) else None


def inputs(args: argparse.Namespace, out_dir: Path, unique_stems: bool = True) -> list[Path]:
    """Image files named on the command line (each once). Raises ``ValueError`` for what
    would lose or mix files: ``--out`` naming a file, an input that is the output folder or
    inside it, no images at all, and (``unique_stems``) two inputs whose outputs would share
    a name (``a/x.png`` and ``b/x.jpg`` both write ``x_*``)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir} is a file, not a folder; pass a folder to write into")
    out = out_dir.resolve()
    for item in map(Path, args.inputs):
        where = item.resolve()
        if where == out or out in where.parents:
            raise ValueError(
                f"input {item} is the output folder or inside it; pass another --out so "
                "outputs never mix with (or replace) the inputs"
            )
    once: dict[Path, Path] = {}  # a file named twice (directly and in its folder) runs once
    for p in list_images(args.inputs):
        once.setdefault(p.resolve(), p)
    files = list(once.values())
    if not files:
        raise ValueError(
            f"no images in {', '.join(args.inputs)} (reading {', '.join(INPUT_SUFFIXES)})"
        )
    if unique_stems:
        seen: dict[str, Path] = {}
        for p in files:
            if p.stem in seen:
                raise ValueError(
                    f"{seen[p.stem]} and {p} would write the same outputs ({p.stem}_*); "
                    "rename one or run them into separate --out folders"
                )
            seen[p.stem] = p
    return files


def prepare(
    args: argparse.Namespace, options: type, unique_stems: bool = True
) -> tuple[Path, list[Path], Any, Any]:
    """What an image-folder command starts with: ``(out_dir, input files, options object of
    class options from the flags, the --model detector on the --cpu / best device)``."""
    from ..cache import load_model

    out_dir = Path(args.out)
    files = inputs(args, out_dir, unique_stems)
    return out_dir, files, pick(options, args), load_model(args.model, device(args))


def make_job(
    args: argparse.Namespace, model: nn.Module, options: Any, out_dir: Path | None = None
) -> Job:
    """The per-image work of ``rank`` / ``detect`` (``scale.job.Job``): ``model`` (loaded
    from ``--model``) with ``options`` at ``--threshold``, writing outputs into ``out_dir``."""
    from ..cache import resolve_model_path
    from ..scale.job import Job

    return Job.of(model, resolve_model_path(args.model), options, args.threshold, out_dir)


def run_on_ray(
    args: argparse.Namespace, job: Job, files: list[Path], out_dir: Path, cluster: Cluster
) -> tuple[dict[str, dict], list[dict]]:
    """Run ``job`` over ``files`` with ``--engine ray`` (``scale.ray_engine``), results in
    ``out_dir``/results (``--resume`` continues them, ``--overwrite`` starts over); returns
    ``(the rows of every file scored, by path in input order; this run's failures)``."""
    from ..scale import ray_engine
    from ..scale.results import Results

    results = Results(out_dir, args.resume, args.overwrite)
    failed = ray_engine.run(job, files, results, cluster, args.overwrite, warn=_stderr)
    return results.current(files), failed


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def write_reports(out_dir: Path, rows: list[dict], fields: list[str]) -> None:
    """``report.json`` and ``report.csv`` (``fields`` per row), each written atomically."""
    write_atomic(out_dir / "report.json", json.dumps(rows, indent=1))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(out_dir / "report.csv", buf.getvalue())


def process_folder(
    files: list[Path],
    out_dir: Path,
    fields: list[str],
    outputs: Callable[[Path], list[Path]],
    work: Callable[[Path, bool], dict],
    show: Callable[[dict], str],
    args: argparse.Namespace,
) -> int:
    """Run ``work(path, replace)`` (which writes ``outputs(path)`` and returns the report row)
    over ``files``, saving the report after every image (``Journal``); returns the number of
    files that failed. ``--resume`` skips images finished before; ``replace`` is true with
    ``--overwrite`` or for an image whose earlier attempt was interrupted mid-write.
    Existing outputs are never replaced otherwise; a report from an earlier run is never
    replaced without ``--resume`` or ``--overwrite`` (raises ``FileExistsError``)."""
    resume = getattr(args, "resume", False)
    journal = Journal(out_dir, fields, resume, args.overwrite)
    failed = 0
    for k, path in enumerate(files, 1):
        tag = f"[{k}/{len(files)}] {path.name}"
        if resume and journal.finished(path, outputs(path)):
            print(f"{tag}: done before, skipped (--resume)")
            continue
        replace = args.overwrite or journal.interrupted(path)
        try:
            clash = [p for p in outputs(path) if p.exists()]
            if clash and not replace:
                raise FileExistsError(
                    f"{clash[0]} exists; pass --overwrite to replace it (or --resume to skip "
                    "images an earlier run finished)"
                )
            journal.start(path)
            row = journal.record(path, work(path, replace))
        except (ValueError, OSError) as exc:
            journal.forget(path)
            print(f"{tag}: FAILED {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"{tag}: {show(row)}", flush=True)
    journal.finish(files)
    return failed
