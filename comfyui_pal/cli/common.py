"""What every command shares: parent parsers for the common options, input listing, reports."""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path
from typing import Any

from ..io.images import list_images, write_atomic
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


def inputs(args: argparse.Namespace, out_dir: Path) -> list[Path]:
    """Image files named on the command line, never any inside the output folder."""
    return [p for p in list_images(args.inputs) if out_dir.resolve() not in p.resolve().parents]


def prepare(args: argparse.Namespace, options: type) -> tuple[Path, list[Path], Any, Any]:
    """What an image-folder command starts with: ``(out_dir, input files, options object of
    class options from the flags, the --model detector on the --cpu / best device)``."""
    from ..cache import load_model

    out_dir = Path(args.out)
    return out_dir, inputs(args, out_dir), pick(options, args), load_model(args.model, device(args))


def write_reports(out_dir: Path, rows: list[dict], fields: list[str]) -> None:
    """``report.json`` and ``report.csv`` (``fields`` per row), each written atomically."""
    write_atomic(out_dir / "report.json", json.dumps(rows, indent=1))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(out_dir / "report.csv", buf.getvalue())
