"""Many tiny images (not a test): the fix per file, small images enlarged to 512 (before) vs
seen at their own size (now), in one run.

    python benchmarks/bench_tiny.py [--count 200] [--side 16]

Writes ``--count`` random ``--side`` px PNGs into a temporary folder and runs the CLI's per-file
fix (``cli.fix.fix_file``: load, detect, fix, write three PNGs) over them with the shipped
detector, once as PAL-Lite detected before (``upsamples_input`` True: a 512x512 pass per
detection) and once as now (a pass at the image's own size, rounded up to 32 px). Prints
images per second and the ratio. The issue's figure: 1,000 16x16 files, 530 done in 900 s.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from comfyui_pal.cache import load_model
from comfyui_pal.cli.fix import fix_file
from comfyui_pal.io.images import save_image
from comfyui_pal.pipelines.fix import FixOptions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--side", type=int, default=16)
    args = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    model = load_model("default", "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in"
        src.mkdir()
        for i in range(args.count):
            img = torch.rand(3, args.side, args.side, generator=g)
            save_image(img, src / f"t{i:05d}.png", False)
        files = sorted(src.glob("*.png"))
        rates = {}
        for label, upsample in (("before (enlarged to 512)", True), ("now (own size)", False)):
            model.upsamples_input = upsample
            out = Path(tmp) / f"out_{upsample}"
            out.mkdir()
            t0 = time.perf_counter()
            for p in files:
                fix_file(p, out, model, FixOptions(), False)
            secs = time.perf_counter() - t0
            rates[label] = args.count / secs
            print(
                f"{label}: {args.count} files of {args.side}x{args.side} in {secs:.1f} s, "
                f"{rates[label]:.1f} images/s"
            )
        before, now = rates.values()
        print(f"ratio now / before: {now / before:.1f}x (1,000 files: {1000 / now:.0f} s)")


if __name__ == "__main__":
    main()
