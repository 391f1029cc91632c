"""The built-in fix (not a test): quality on the example images and time per image, one run.

    python benchmarks/bench_fix.py [--repeats 3]

For each planted example in ``examples/images`` it runs the default fix (shipped detector,
PatchMatch, native-scale regions) and reports PAR before / after, PSNR to the clean original
over the whole image and inside the planted mask, and the time. Then it times the fix of a
1024x1024 image with 3 planted artifacts (the clean coffee photo upscaled, corrupted by the
synthetic generator), against the detection pass alone on the same image measured in the same run.
Last, on held-out synthetic images (planted masks known, no clean original needed) it
reports the share of planted pixels repainted and the pixels changed far from them, for
``min_confidence`` 0.85 (default) and 0.9. Needs scikit-image for the held-out sources.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from comfyui_pal import load_model
from comfyui_pal import masks as M
from comfyui_pal.datasets import benchmark_samples, find_sources, split_sources
from comfyui_pal.detection import detect, par
from comfyui_pal.fix import FixOptions, changed_mask, fix
from comfyui_pal.imageio import load_image, load_mask
from comfyui_pal.synth import corrupt

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "images"


def psnr(a: torch.Tensor, b: torch.Tensor, where: torch.Tensor | None = None) -> float:
    d = (a - b) ** 2
    mse = d[0][:, where].mean() if where is not None else d.mean()
    return float(10 * torch.log10(1 / mse))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--count", type=int, default=40, help="held-out synthetic images")
    args = ap.parse_args()
    model = load_model(None, "cpu")
    opts = FixOptions()
    print(
        f"{'image':>10} {'PAR before':>10} {'after':>7} | PSNR all {'':>9} | PSNR planted"
        f" {'':>8} | time"
    )
    for path in sorted(EXAMPLES.glob("*.png")):
        image, clean = load_image(path), load_image(EXAMPLES / "clean" / path.name)
        planted = load_mask(EXAMPLES / "masks" / path.name)[0] > 0.5
        t0 = time.perf_counter()
        fixed, final, _ = fix(model, image, opts)
        secs = time.perf_counter() - t0
        probs = detect(model, image.permute(0, 2, 3, 1), opts.mode, opts.tta)
        before = float(par(probs, opts.threshold)[0])
        after = float(final.mean())
        print(
            f"{path.stem:>10} {before:10.4f} {after:7.4f} | {psnr(image, clean):6.2f} -> "
            f"{psnr(fixed, clean):6.2f} | {psnr(image, clean, planted):6.2f} -> "
            f"{psnr(fixed, clean, planted):6.2f} | {secs:.1f} s"
        )

    base = F.interpolate(
        load_image(EXAMPLES / "clean" / "coffee.png"),
        size=(1024, 1024),
        mode="bicubic",
        antialias=True,
    ).clamp(0, 1)[0]
    image, mask, _ = corrupt(base, 3, count=(3, 3), area=(0.005, 0.02))
    image = image[None]
    fixes, dets = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        detect(model, image.permute(0, 2, 3, 1))
        dets.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        _, final, history = fix(model, image, opts)
        fixes.append(time.perf_counter() - t0)
    rounds = [h for h in history if "iteration" in h]
    fix_s, det_s = statistics.median(fixes), statistics.median(dets)
    print(
        f"\n1024x1024 with 3 planted artifacts ({float(mask.mean()) * 100:.1f} % of the image): "
        f"PAR {rounds[0]['par'][0]:.4f} -> {float(final.mean()):.4f}, "
        f"{len(rounds) - 1} round(s); fix {fix_s:.2f} s vs one detection {det_s:.2f} s "
        f"(ratio {fix_s / det_s:.1f}x), median of {args.repeats}"
    )
    synthetic_tradeoff(model, args.count)


def synthetic_tradeoff(model, count: int) -> None:
    """Held-out synthetic images: share of planted pixels repainted vs collateral changes."""
    _, held = split_sources(find_sources())
    samples = list(benchmark_samples(held, count))
    print(f"\nheld-out synthetic benchmark, {count} images at 384 px (planted masks known):")
    for conf in (0.85, 0.9):
        hits, collateral, before, after = [], [], [], []
        for _, img, mask in samples:
            fixed, final, history = fix(model, img[None], FixOptions(min_confidence=conf))
            changed = changed_mask(img[None], fixed)[0] > 0
            planted = mask.reshape(changed.shape) > 0.5
            near = M.grow(planted[None].float(), 16)[0] > 0
            if planted.any():
                hits.append(float((changed & planted).sum() / planted.sum()))
            collateral.append(float((changed & ~near).float().mean()))
            before.append(history[0]["par"][0])
            after.append(float(final.mean()))
        print(
            f"  min_confidence {conf}: planted pixels repainted {statistics.mean(hits):.3f}, "
            f"changed farther than 16 px from them {statistics.mean(collateral) * 100:.2f} % "
            f"of the image, PAR {statistics.mean(before):.4f} -> {statistics.mean(after):.4f}"
        )


if __name__ == "__main__":
    main()
