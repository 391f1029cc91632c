"""Command line: ``python -m comfyui_pal <command>`` (also installed as ``comfyui-pal``).

Commands (one module each, on shared parent parsers in ``common``):
  fix        the main job: detect artifacts and inpaint them away, iterating until clean
  detect     find artifacts with the default (or any) model: masks, overlays, PAR report
  rank       copy images best first as NNN_parX.XXX_<name> with ranking.csv (resumable)
  queue      run an API-format workflow per image or seed on ComfyUI servers; PAR report
  demo       zoom-in crop -> built-in smooth fill -> stitch, on images with masks beside them
  convert    any supported detector checkpoint -> our safetensors (architecture in metadata)
  download   fetch an official PAL4VST checkpoint (unified, stylegan2, shadow), checked
  data       build the training base images from installed packages' files
  train      train the default model, or fine-tune any checkpoint, on synthetic / folder data
  calibrate  bake the F1-best validation threshold into a checkpoint
  eval       precision / recall / F1 / IoU / mIoU / PAR correlation of a model on data

Options that belong to the library (``FixOptions``, ``DetectOptions``) are derived from their
one definition, with the same defaults, ranges and choices as the ComfyUI nodes.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys

from . import convert, data, demo, detect, download, evaluate, fix, queue, rank, train

COMMANDS = (fix, detect, rank, queue, demo, convert, download, data, train, evaluate)


def build_parser() -> argparse.ArgumentParser:
    """The ``comfyui-pal`` parser with every command's subparser."""
    ap = argparse.ArgumentParser(prog="comfyui-pal", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    A problem the user can fix (a missing file, a bad model, an unwritable or full disk, a
    bad value) is one line on stderr and exit status 1; ``PAL_TRACEBACK=1`` shows the trace.
    """
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (OSError, ValueError) as exc:
        if os.environ.get("PAL_TRACEBACK"):
            raise
        print(f"comfyui-pal {args.command}: error: {describe(exc)}", file=sys.stderr)
        return 1


def describe(exc: BaseException) -> str:
    """One line for the user: what failed, on which file, and what to do."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        where = f" writing {exc.filename}" if exc.filename else ""
        return f"the disk is full{where}; free some space or pass another --out"
    if isinstance(exc, PermissionError):
        return f"permission denied: {exc.filename or exc}; pass an --out folder you can write to"
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        return f"{exc.strerror}: {exc.filename}"
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":
    raise SystemExit(main())
