"""The built-in fix (not a test): quality on the example images and time per image, one run.

    python benchmarks/bench_fix.py [--model M] [--safety-count 24] [--large] [--repeats 3]

Without and with ``protect`` (the acceptance test of ``pipelines/acceptance.py``) in one run:
the four examples, then held-out synthetic images with every family at 3 seeds (PSNR to the
clean view per image inside the corrupted area and over the whole image: the worst change,
the mean gain inside, images made worse by more than 0.3 dB) and clean views (share of
pixels changed).

For each planted example in ``examples/images`` it runs the default fix (shipped detector,
PatchMatch, native-scale regions) and reports PAR before / after, PSNR to the clean original
over the whole image and inside the planted mask, and the time. Then it fixes 1024x1024
images with 3 planted artifacts (a native-resolution held-out photo, when Debian's gnome-
backgrounds is installed, and the coffee photo upscaled), reporting PAR, planted pixels
repainted, pixels changed far from them, PSNR to the clean source, and the time against one
detection pass on the same image measured in the same run. Last, on held-out synthetic
images (planted masks known, no clean original needed) it reports the share of planted
pixels repainted and the pixels changed far from them, for ``min_confidence`` 0.85 (default)
and 0.9. Needs scikit-image for the held-out sources.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from comfyui_pal import load_model
from comfyui_pal.core import masks as M
from comfyui_pal.io.images import load_image, load_mask
from comfyui_pal.pipelines.detect import detect, par
from comfyui_pal.pipelines.fix import FixOptions, changed_mask, fix
from comfyui_pal.training.datasets import (
    benchmark_samples,
    find_sources,
    load_source,
    split_sources,
)
from comfyui_pal.training.synth import corrupt

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "images"


def psnr(a: torch.Tensor, b: torch.Tensor, where: torch.Tensor | None = None) -> float:
    d = (a - b) ** 2
    mse = d[0][:, where].mean() if where is not None else d.mean()
    return float(10 * torch.log10(1 / mse))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--count", type=int, default=40, help="held-out synthetic images")
    ap.add_argument("--model", help="detector (default: the shipped one)")
    ap.add_argument("--safety-count", type=int, default=24, help="held-out images x 3 seeds")
    ap.add_argument("--large", action="store_true", help="also the 1024 px timing cases")
    ap.add_argument(
        "--parts",
        default="examples,safety,tradeoff",
        help="comma-separated: examples, safety, tradeoff (and large with --large)",
    )
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    model = load_model(args.model, "cpu")
    if "examples" in parts:
        print("examples: the fix without protection (before) and with it (now), same run")
        for protect in (False, True):
            examples(model, FixOptions(protect=protect))
    if "safety" in parts:
        safety(model, args.safety_count)
    if args.large:
        for label, base in large_sources():
            for seed in (1, 2, 3):
                large_case(model, FixOptions(), label, base, seed, args.repeats)
    if "tradeoff" in parts:
        synthetic_tradeoff(model, args.count)


def examples(model, opts: FixOptions) -> None:
    """The four planted examples: PAR, PSNR to the clean original (all / planted), time."""
    print(
        f"protect={opts.protect}\n{'image':>10} {'PAR before':>10} {'after':>7} | PSNR all "
        f"{'':>9} | PSNR planted {'':>8} | time"
    )
    for path in sorted(EXAMPLES.glob("*.png")):
        image, clean = load_image(path), load_image(EXAMPLES / "clean" / path.name)
        planted = load_mask(EXAMPLES / "masks" / path.name)[0] > 0.5
        t0 = time.perf_counter()
        fixed, final, _ = fix(model, image, opts)
        secs = time.perf_counter() - t0
        probs = detect(model, image, mode=opts.mode, tta=opts.tta)
        before = float(par(probs, opts.threshold)[0])
        after = float(final.mean())
        print(
            f"{path.stem:>10} {before:10.4f} {after:7.4f} | {psnr(image, clean):6.2f} -> "
            f"{psnr(fixed, clean):6.2f} | {psnr(image, clean, planted):6.2f} -> "
            f"{psnr(fixed, clean, planted):6.2f} | {secs:.1f} s"
        )


def safety(model, count: int, size: int = 384) -> None:
    """Held-out synthetic images (every family, 3 seeds) and their clean views: per image PSNR
    to the clean view inside the corrupted area and over the whole image, without and with
    protection."""
    from comfyui_pal.training.datasets import load_source_u8, random_view
    from comfyui_pal.training.synth import FAMILIES

    _, held = split_sources(find_sources())
    held = spread(held, count)
    srcs = [load_source_u8(p).float() / 255 for p in held]
    g = torch.Generator().manual_seed(77)
    cases = []
    for k, src in enumerate(srcs):
        view = random_view(src, size, g)
        donor = random_view(srcs[(k + 1) % len(srcs)], size, g)
        for seed in (1, 2, 3):
            img, mask, _ = corrupt(view, 5000 + 10 * k + seed, families=FAMILIES, donor=donor)
            cases.append((f"{held[k].parent.name}/{held[k].stem}:{seed}", view, img, mask > 0.5))
    print(f"\nheld-out synthetic, {len(srcs)} images x 3 seeds at {size} px, every family:")
    for protect in (False, True):
        opts = FixOptions(protect=protect)
        worst, gains, repaired, clean_changed, t0 = [], [], [], [], time.perf_counter()
        harmed = []
        for name, view, img, planted in cases:
            if not planted.any():
                continue
            fixed, _, _ = fix(model, img[None], opts)
            # inside the corrupted area, and over the whole image (outside it the corrupted
            # image is almost exact, so a PSNR there only measures invisible blend changes)
            d_in = psnr(fixed, view[None], planted) - psnr(img[None], view[None], planted)
            d_all = psnr(fixed, view[None]) - psnr(img[None], view[None])
            worst.append(min(d_in, d_all))
            gains.append(d_in)
            if worst[-1] < -0.3:
                harmed.append(f"{name} {worst[-1]:+.1f}")
            changed = changed_mask(img[None], fixed)[0] > 0
            repaired.append(float((changed & planted).sum() / planted.sum().clamp_min(1)))
        for view in srcs[: len(srcs)]:
            v = random_view(view, size, g)[None]
            fixed, _, _ = fix(model, v, opts)
            clean_changed.append(float(changed_mask(v, fixed).mean()))
        drops = sum(1 for w in worst if w < -0.3)
        print(
            f"  protect={protect}: mean PSNR gain inside {statistics.mean(gains):+.2f} dB, "
            f"worst per-image change {min(worst):+.2f} dB, images worse by > 0.3 dB: {drops}/"
            f"{len(worst)}, planted pixels repainted {statistics.mean(repaired):.3f}, clean "
            f"images: {statistics.mean(clean_changed) * 100:.3f} % of pixels changed (max "
            f"{max(clean_changed) * 100:.3f} %), {time.perf_counter() - t0:.0f} s"
        )
        print(f"    worse by > 0.3 dB: {', '.join(harmed) or 'none'}")
        helped = sum(1 for x in gains if x > 0.3)
        print(f"    better by > 0.3 dB inside: {helped}/{len(gains)}")


def spread(paths: list[Path], count: int) -> list[Path]:
    """``count`` of ``paths`` taken in turn from each source folder (photographs, paintings,
    portraits, text, ...), so that no one source fills the sample."""
    groups: dict[str, list[Path]] = {}
    for p in paths:
        groups.setdefault(p.parent.name, []).append(p)
    out: list[Path] = []
    while len(out) < count and any(groups.values()):
        for g in groups.values():
            if g and len(out) < count:
                out.append(g.pop(0))
    return out


def large_sources() -> list[tuple[str, torch.Tensor]]:
    """1024x1024 clean sources: a native-resolution held-out photo (gnome's wood-l, when
    Debian's gnome-backgrounds is installed) and the coffee photo upscaled 1.7x (soft)."""
    out = []
    wood = [p for p in split_sources(find_sources())[1] if p.stem == "wood-l"]
    if wood:
        src = load_source(wood[0])
        if min(src.shape[1:]) >= 1024:
            out.append(("wood-l, native resolution", src[:, :1024, :1024]))
    coffee = load_image(EXAMPLES / "clean" / "coffee.png")
    up = F.interpolate(coffee, size=(1024, 1024), mode="bicubic", antialias=True)
    out.append(("coffee upscaled 1.7x", up.clamp(0, 1)[0]))
    return out


def large_case(
    model, opts: FixOptions, label: str, base: torch.Tensor, seed: int, repeats: int
) -> None:
    """Fix a 1024x1024 image with 3 planted artifacts: quality against the clean source, and
    time against one detection pass, in the same run."""
    image, mask, _ = corrupt(base, seed, count=(3, 3), area=(0.005, 0.02))
    image = image[None]
    planted = mask.reshape(image.shape[-2:]) > 0.5
    fixes, dets = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        detect(model, image)
        dets.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        fixed, final, history = fix(model, image, opts)
        fixes.append(time.perf_counter() - t0)
    rounds = [h for h in history if "iteration" in h]
    changed = changed_mask(image, fixed)[0] > 0
    far = ~(M.grow(planted[None].float(), 16)[0] > 0)
    fix_s, det_s = statistics.median(fixes), statistics.median(dets)
    share = float(planted.float().mean()) * 100
    repainted = float((changed & planted).sum() / planted.sum())
    collateral = float((changed & far).float().mean()) * 100
    print(
        f"\n1024x1024 {label}, seed {seed}, 3 planted artifacts ({share:.1f} % of the image): "
        f"PAR {rounds[0]['par'][0]:.4f} -> {float(final.mean()):.4f}; planted pixels repainted "
        f"{repainted:.2f}, changed farther than 16 px from them {collateral:.2f} %; PSNR to the "
        f"clean source {psnr(image, base[None]):.2f} -> {psnr(fixed, base[None]):.2f} dB; fix "
        f"{fix_s:.2f} s vs one detection {det_s:.2f} s ({fix_s / det_s:.1f}x), median of {repeats}"
    )


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
