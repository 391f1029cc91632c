"""Default model benchmark (not a test): quality on the held-out synthetic benchmark and speed
against the full PAL4VST architecture, measured in one run.

    python benchmarks/bench_lite.py [MODEL] [--count 200] [--repeats 5]

Quality: F1 and artifact IoU over ``--count`` held-out synthetic images (fixed seed, held-out
source photographs; needs ``pip install -e .[train]`` and Debian's mate-backgrounds /
gnome-backgrounds for the same sources as the model card). Targets: F1 >= 0.75, IoU >= 0.6.
Speed: 512x512 CPU forward of PAL-Lite vs Swin-B + UPerNet (random weights). Targets:
<= 150 ms and >= 20x faster. Large images: ``--large`` held-out images at 1024 px, the
paper's resize pass vs tiled mode (native windows fused with it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from comfyui_pal.cache import load_model
from comfyui_pal.models import SwinUperNet
from comfyui_pal.pipelines.detect import detect
from comfyui_pal.training.datasets import benchmark_samples, find_sources, split_sources
from comfyui_pal.training.evaluate import evaluate


def _median_ms(fn, repeats: int) -> float:
    fn()
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs) * 1e3


def large_images(model, count: int, size: int = 1024) -> None:
    """Held-out synthetic images at ``size`` px: the paper's resize pass vs tiled mode."""
    _, held = split_sources(find_sources())
    counts = {"resize": [0, 0, 0], "tiled": [0, 0, 0]}
    t0 = time.perf_counter()
    for _, img, mask in benchmark_samples(held, count, size=size):
        truth = mask.reshape(img.shape[-2:]) > 0.5
        for mode, c in counts.items():
            pred = detect(model, img[None], mode=mode)[0] > 0.5
            c[0] += int((pred & truth).sum())
            c[1] += int((pred & ~truth).sum())
            c[2] += int((~pred & truth).sum())
    print(f"\nheld-out synthetic at {size} px, {count} images ({time.perf_counter() - t0:.0f} s):")
    for mode, (tp, fp, fn) in counts.items():
        p, r = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
        print(
            f"  {mode:6s} precision {p:.3f} recall {r:.3f} F1 {2 * p * r / max(p + r, 1e-9):.3f} "
            f"IoU {tp / max(tp + fp + fn, 1):.3f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default="default")
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument(
        "--large", type=int, default=32, help="held-out images at 1024 px for resize vs tiled"
    )
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    lite = load_model(args.model, "cpu")

    x = torch.randn(1, 3, 512, 512)
    swin = SwinUperNet().eval()
    with torch.inference_mode():
        t_lite = _median_ms(lambda: lite(x), args.repeats)
        t_swin = _median_ms(lambda: swin(x), max(2, args.repeats // 2))
    print(
        f"\n512x512 CPU fp32 forward: PAL-Lite {t_lite:.0f} ms (target <= 150), "
        f"Swin-B+UPerNet {t_swin:.0f} ms, speed-up {t_swin / t_lite:.1f}x (target >= 20x)"
    )

    if not args.skip_quality:
        t0 = time.perf_counter()
        report = evaluate(lite, synthetic=args.count)
        s = report["synthetic"]
        print(
            f"\nheld-out synthetic benchmark: {s['images']} images at {s['size']} px, seed "
            f"{s['seed']} ({time.perf_counter() - t0:.0f} s)"
        )
        print(
            f"  precision {s['precision']:.3f} recall {s['recall']:.3f} F1 {s['f1']:.3f} "
            f"(target >= 0.75) IoU {s['iou']:.3f} (target >= 0.6) mIoU {s['miou']:.3f} "
            f"PAR r {s['par_pearson']:.3f}"
        )
        print(json.dumps(s))

    if args.large:
        large_images(lite, args.large)


if __name__ == "__main__":
    main()
