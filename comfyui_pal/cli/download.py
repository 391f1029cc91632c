"""``comfyui-pal download``: fetch an official PAL4VST checkpoint (see ``io.download``)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..io.download import DRIVE, FORMATS, RELEASES
from .common import overwrite_parent


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "download",
        help="fetch an official PAL4VST checkpoint (unified, stylegan2, shadow)",
        parents=[overwrite_parent("a checkpoint already downloaded")],
        description="Releases: "
        + "; ".join(f"{r.name}: {r.title}" for r in RELEASES.values())
        + ". The authors' licence terms apply to these weights.",
    )
    p.add_argument("release", choices=list(RELEASES), help="which checkpoint")
    p.add_argument(
        "--to",
        default="models/pal",
        help="folder to put it in (default: models/pal; use ComfyUI's models/pal folder)",
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="pytorch",
        help="the mmseg .pth (default) or the TorchScript end2end.pt; both load the same",
    )
    p.add_argument("--safetensors", action="store_true", help="also convert it to fp16 safetensors")
    p.add_argument("--base-url", default=DRIVE, help="Drive download endpoint (or a mirror)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Download, check and place one release; a partial file resumes on the next run."""
    from ..io.download import DownloadError, download

    try:
        path = download(
            args.release,
            Path(args.to),
            args.format,
            base=args.base_url,
            safetensors=args.safetensors,
            overwrite=args.overwrite,
            progress=_bar(args.release),
        )
    except DownloadError as exc:
        print(f"\ndownload failed: {exc}", file=sys.stderr)
        return 1
    print(f"ready: {path} (load it with --model {path}, or pick it in PAL Model Loader)")
    return 0


def _bar(name: str):
    """A one-line progress bar on stderr, redrawn at most 4 times a second."""
    t0, last = time.monotonic(), [0.0]

    def show(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] < 0.25 and done != total:
            return
        last[0] = now
        rate = done / 2**20 / max(now - t0, 1e-3)
        of = f"/{total / 2**20:.0f} MiB {100 * done / total:3.0f}%" if total else " MiB"
        print(f"\r{name}: {done / 2**20:.0f}{of} {rate:.1f} MiB/s", end="", file=sys.stderr)
        if done == total:
            print(file=sys.stderr)

    return show
