"""Detector benchmark (not a test): prints timings, ratios and memory measured in one run.

    python benchmarks/bench_detect.py [--repeats 3] [--skip-rss]

On the full-size PAL4VST architecture (Swin-B + UPerNet, random weights) at 512x512:
1. native module vs a ``torch.jit.trace`` of the same module, CPU fp32. Target: no slower.
2. peak resident memory of ``detect(..., mode="tiled")`` on one 2048x2048 image, measured in
   a fresh child process. Target: < 3 GB.
3. with a GPU: bf16 autocast vs fp32 on it.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

from comfyui_pal.models import SwinUperNet
from comfyui_pal.pipelines.detect import detect


def _time(fn, repeats: int) -> float:
    fn()
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def _interleaved(a, b, repeats: int) -> tuple[float, float, list[float]]:
    """Median times of ``a`` and ``b`` run alternately (so machine noise hits both alike), and
    the quartiles of the per-pair ratios a / b."""
    a(), b()
    ta, tb = [], []
    for _ in range(repeats):
        for fn, out in ((a, ta), (b, tb)):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    ratios = [x / y for x, y in zip(ta, tb, strict=True)]
    quartiles = statistics.quantiles(ratios, n=4) if repeats > 1 else ratios * 3
    return statistics.median(ta), statistics.median(tb), quartiles


def _child_tiled_rss(size: int) -> dict:
    torch.manual_seed(0)
    model = SwinUperNet().eval()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    image = torch.rand(1, 3, size, size)
    t0 = time.perf_counter()
    probs = detect(model, image, mode="tiled")
    secs = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "peak_rss_mb": peak / 1024,
        "after_model_mb": base / 1024,
        "seconds": secs,
        "shape": list(probs.shape),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--size", type=int, default=2048, help="image side for the tiled RSS run")
    ap.add_argument("--skip-rss", action="store_true")
    ap.add_argument("--child-rss", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_rss:
        print(json.dumps(_child_tiled_rss(args.child_rss)))
        return

    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    model = SwinUperNet().eval()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"full PAL4VST architecture: {n_params / 1e6:.1f} M parameters")
    x = torch.randn(1, 3, 512, 512)
    with torch.inference_mode():
        traced = torch.jit.trace(model, x, check_trace=False)
        t_native, t_traced, (q1, q2, q3) = _interleaved(
            lambda: model(x), lambda: traced(x), args.repeats
        )
    print(f"\n512x512 CPU fp32 forward (median of {args.repeats}, run alternately)")
    print(f"  native   {t_native * 1e3:8.0f} ms")
    print(f"  jit.trace{t_traced * 1e3:8.0f} ms")
    print(
        f"  native / traced per pair: median {q2:.3f}, quartiles {q1:.3f}..{q3:.3f} (target <= 1.0)"
    )

    if torch.cuda.is_available():
        gm, gx = model.cuda(), x.cuda()

        def run(dtype):
            with (
                torch.inference_mode(),
                torch.autocast("cuda", dtype=dtype, enabled=dtype is not None),
            ):
                gm(gx)
            torch.cuda.synchronize()

        t32 = _time(lambda: run(None), args.repeats * 3)
        tbf = _time(lambda: run(torch.bfloat16), args.repeats * 3)
        print(
            f"\nGPU {torch.cuda.get_device_name()}: fp32 {t32 * 1e3:.1f} ms, bf16 "
            f"{tbf * 1e3:.1f} ms, speed-up {t32 / tbf:.2f}x"
        )
    else:
        print("\nno GPU here: bf16-vs-fp32 GPU timing skipped")

    if not args.skip_rss:
        out = subprocess.run(
            [sys.executable, __file__, "--child-rss", str(args.size)],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"\ntiled detection of one {args.size}x{args.size} image (fresh process): "
            f"{r['seconds']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB (model loaded: "
            f"{r['after_model_mb']:.0f} MB; target < 3000 MB)"
        )


if __name__ == "__main__":
    main()
