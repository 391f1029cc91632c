"""Peak memory of ``comfyui-pal fix`` and ``detect`` on one large image (not a test).

    python benchmarks/bench_memory.py [--side 6000]

Each command runs in its own process on a generated ``side`` x ``side`` PNG (a procedural scene
with six planted magenta patches) with the shipped model; its peak resident memory comes
from the kernel (``getrusage`` of the finished child). The baseline, measured in the same
run, is a child that only imports the package, loads the model and reads the image: what any
command must hold. Target (issue 15): ``fix`` under 3 GB at 6000 x 6000 (it was 5.3 GB,
``detect`` 2.7 GB).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_FIX_GB = 3.0
BASELINE = (
    "import sys; from comfyui_pal.cache import load_model; from comfyui_pal.io.images import "
    "load_image; load_model('default', 'cpu'); load_image(sys.argv[1])"
)


def make_image(path: Path, side: int) -> None:
    import numpy as np
    import torch
    from PIL import Image

    from comfyui_pal.training.datasets import procedural_image

    img = torch.nn.functional.interpolate(
        procedural_image(0, 768, 768)[None], size=(side, side), mode="bilinear"
    )[0]
    for k in range(6):
        y, x = (k * 977) % (side - 300) + 50, (k * 1523) % (side - 300) + 50
        img[:, y : y + 120, x : x + 160] = torch.tensor([1.0, 0.0, 1.0])[:, None, None]
    arr = (img.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(arr).save(path)


def peak_of(argv: list[str]) -> tuple[float, float]:
    """(peak resident memory in GB, seconds) of a child process running ``argv``."""
    t0 = time.perf_counter()
    # a fresh interpreter per measurement: RUSAGE_CHILDREN keeps the largest child so far
    code = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
        "stdout=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{' '.join(argv)} failed:\n{out.stderr[-2000:]}")
    return int(out.stdout.split()[-1]) / 2**20, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=6000, help="image side in pixels")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "big.png"
        make_image(image, args.side)
        cli = [sys.executable, "-m", "comfyui_pal"]
        base, _ = peak_of([sys.executable, "-c", BASELINE, str(image)])
        rows = [("baseline (model + image loaded)", base, 0.0)]
        for cmd in ("detect", "fix"):
            gb, secs = peak_of([*cli, cmd, str(image), "--out", str(Path(tmp) / cmd)])
            rows.append((f"comfyui-pal {cmd}", gb, secs))
    print(f"{args.side} x {args.side} image, peak resident memory (this machine, CPU):")
    for name, gb, secs in rows:
        extra = f", {secs:.1f} s" if secs else ""
        print(f"  {name:34s} {gb:5.2f} GB  ({gb / base:.2f}x baseline{extra})")
    fix_gb = rows[-1][1]
    verdict = "PASS" if fix_gb < TARGET_FIX_GB else "MISS"
    print(f"target: fix < {TARGET_FIX_GB:.0f} GB at 6000 x 6000: {verdict} ({fix_gb:.2f} GB)")


if __name__ == "__main__":
    main()
