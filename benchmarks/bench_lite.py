"""Default model benchmark (not a test): detectors side by side, measured in one run.

    python benchmarks/bench_lite.py [MODEL ...] [--count 200] [--media DIR] [--large N]

For each model (e.g. the previous shipped file and the new one): speed (512x512 CPU forward
against Swin-B + UPerNet with random weights; targets <= 150 ms, >= 15x); the held-out
synthetic benchmark (``--count`` images from the held-out split of ``comfyui-pal data``,
every training family; targets F1 >= 0.85, IoU >= 0.72, PAR r >= 0.9); false alarms as
median / 95th-percentile PAR on clean held-out views, ``examples/images/clean`` and ComfyUI's
template media (``--media`` folder or the installed ``comfyui-workflow-templates-media-image``
package: generated images, for measuring only; goal median <= 0.002, p95 <= 0.01); the
highest mean probability of a flagged region on the clean rocket (goal <= 0.85); IoU with the
examples' planted masks. ``--large`` adds resize vs tiled mode at 1024 px. Prints a markdown
table, one column per model.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from comfyui_pal.cache import load_model
from comfyui_pal.core import masks as M
from comfyui_pal.io.images import load_image, load_mask
from comfyui_pal.models import SwinUperNet
from comfyui_pal.pipelines.detect import detect, par
from comfyui_pal.training.datasets import benchmark_samples, find_sources, split_sources
from comfyui_pal.training.evaluate import evaluate

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "images"


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


def _pct(values: list[float], q: float) -> float:
    return float(torch.quantile(torch.tensor(values), q)) if values else float("nan")


def media_images(folder: str | None) -> list[Path]:
    """ComfyUI's template media (generated images, for false alarms only): ``folder``, else
    the installed ``comfyui_workflow_templates_media_image`` package, else none."""
    if folder is None:
        try:
            import comfyui_workflow_templates_media_image as pkg
        except ImportError:
            return []
        folder = str(Path(pkg.__file__).parent)
    return sorted(
        p for p in Path(folder).rglob("*") if p.suffix.lower() in (".webp", ".png", ".jpg")
    )


def false_alarms(model, media: list[Path], size: int = 384) -> dict[str, list[float]]:
    """PAR per clean image, by source: held-out views, the clean examples, template media."""
    from comfyui_pal.training.datasets import load_source_u8, random_view

    _, held = split_sources(find_sources())
    g = torch.Generator().manual_seed(31)
    out: dict[str, list[float]] = {
        "held-out clean views": [],
        "examples/clean": [],
        "template media": [],
    }
    for p in held:
        view = random_view(load_source_u8(p).float() / 255, size, g)
        out["held-out clean views"].append(float(par(detect(model, view[None]))[0]))
    for p in sorted((EXAMPLES / "clean").glob("*.png")):
        out["examples/clean"].append(float(par(detect(model, load_image(p)))[0]))
    for p in media:
        try:
            img = load_image(p)
        except (OSError, ValueError):
            continue
        out["template media"].append(float(par(detect(model, img))[0]))
    return out


def rocket_regions(model) -> float:
    """Highest mean probability of any flagged region on the clean rocket (real content)."""
    img = load_image(EXAMPLES / "clean" / "rocket.png")
    probs = detect(model, img)
    regions = M.find_regions((probs > 0.5).float(), probs)
    return max((r.mean_prob for r in regions), default=0.0)


def planted_iou(model) -> dict[str, float]:
    """IoU of the detected mask with each example's planted mask."""
    out = {}
    for p in sorted(EXAMPLES.glob("*.png")):
        pred = detect(model, load_image(p))[0] > 0.5
        truth = load_mask(EXAMPLES / "masks" / p.name)[0] > 0.5
        out[p.stem] = float((pred & truth).sum() / (pred | truth).sum().clamp_min(1))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "models",
        nargs="*",
        default=["default"],
        help="detectors, side by side; MODEL+upsample sees thumbnails (<= 128 px) enlarged to "
        "512 (how PAL-Lite detected before it saw them at their own size)",
    )
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--media", help="folder of ComfyUI template media (false alarms only)")
    ap.add_argument(
        "--large", type=int, default=0, help="held-out images at 1024 px for resize vs tiled"
    )
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    x = torch.randn(1, 3, 512, 512)
    swin = SwinUperNet().eval()
    with torch.inference_mode():
        t_swin = _median_ms(lambda: swin(x), max(2, args.repeats // 2))
    media = media_images(args.media)
    rows: dict[str, dict[str, str]] = {}
    for name in args.models:
        path, _, how = name.partition("+")
        if how not in ("", "upsample"):
            raise SystemExit(f"{name}: the only suffix is +upsample")
        lite = load_model(path, "cpu")  # shared by every name of the same file: set each time
        # +upsample: as before own-size detection of thumbnails (enlarged to 512)
        lite.upsamples_input = how == "upsample" or type(lite).upsamples_input
        row = rows.setdefault(name, {})
        with torch.inference_mode():
            t_lite = _median_ms(lambda m=lite: m(x), args.repeats)
        row["512² CPU ms"] = f"{t_lite:.0f}"
        row["speed-up vs Swin-B"] = f"{t_swin / t_lite:.1f}x"
        if not args.skip_quality:
            t0 = time.perf_counter()
            s = evaluate(lite, synthetic=args.count)["synthetic"]
            print(f"{name}: synthetic {json.dumps(s)} ({time.perf_counter() - t0:.0f} s)")
            row |= {
                "F1": f"{s['f1']:.3f}",
                "IoU": f"{s['iou']:.3f}",
                "PAR r": f"{s['par_pearson']:.3f}",
            }
        for source, pars in false_alarms(lite, media).items():
            row[f"{source} PAR median / p95 (n={len(pars)})"] = (
                f"{_pct(pars, 0.5):.4f} / {_pct(pars, 0.95):.4f}"
            )
        row["rocket: max region mean p"] = f"{rocket_regions(lite):.2f}"
        for k, v in planted_iou(lite).items():
            row[f"IoU planted {k}"] = f"{v:.3f}"
        if args.large:
            large_images(lite, args.large)
    print(f"\nSwin-B + UPerNet 512² CPU fp32: {t_swin:.0f} ms")
    keys = list(next(iter(rows.values())))
    print("\n| | " + " | ".join(rows) + " |\n|---|" + "---|" * len(rows))
    for k in keys:
        print(f"| {k} | " + " | ".join(rows[m].get(k, "") for m in rows) + " |")


if __name__ == "__main__":
    main()
