"""What every command shares: parent parsers for the common options, input listing, reports."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..io.images import INPUT_SUFFIXES, list_images, write_atomic
from ..io.journal import Journal
from ..options import pick


def model_parent(what: str = "detector") -> argparse.ArgumentParser:
    """``--model`` and ``--cpu``."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--model", default="default", help=f"{what} checkpoint (default: shipped model)")
    p.add_argument("--cpu", action="store_true", help="run on the CPU even with a GPU")
    return p


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
