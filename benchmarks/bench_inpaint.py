"""Built-in inpainters (not a test): quality inside punched holes and time, in one run.

    python benchmarks/bench_inpaint.py [--holes 3] [--repeats 3]

Clean held-out photographs (``examples/images/clean``), procedural scenes and periodic
textures (bricks, checks, weave) are resized to 512x512; random blobs covering about 15 %
are punched out and filled by the smooth fill and by PatchMatch. Reports PSNR and SSIM
inside the hole and the mean gradient-domain error (|grad filled - grad original|) and the
detail error (|1 - mean |grad filled| / mean |grad original|| in the hole: 1 for a blur, 0
for a fill as detailed as the original; pixel-aligned scores favour blur wherever a
plausible texture is not the exact one that was removed), overall and on textured content
(the periodic textures and the photo holes with more than the median detail), plus the
median time per 512x512 crop. Targets: PatchMatch < 1 s per crop; PatchMatch beats the
smooth fill on textured content.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from kornia.metrics import ssim

from comfyui_pal.io.images import load_image
from comfyui_pal.pipelines.inpaint import patchmatch_fill, smooth_fill
from comfyui_pal.training.datasets import procedural_image
from comfyui_pal.training.synth import _shape

CLEAN = Path(__file__).resolve().parents[1] / "examples" / "images" / "clean"


def _grad(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def scores(out: torch.Tensor, ref: torch.Tensor, hole: torch.Tensor) -> dict:
    mse = ((out - ref) ** 2)[0][:, hole].mean()
    s = ssim(out, ref, 11)[0].mean(0)[hole].mean()
    gx, gy = _grad(out)
    rx, ry = _grad(ref)
    ge = ((gx - rx).abs()[0][:, hole[:, 1:]].mean() + (gy - ry).abs()[0][:, hole[1:, :]].mean()) / 2
    # detail kept: mean gradient magnitude inside the hole relative to the original's there
    # (a blur scores ~1, a fill as detailed as the original 0, whatever the exact alignment)
    energy = (gx.abs()[0][:, hole[:, 1:]].mean() + gy.abs()[0][:, hole[1:, :]].mean()) / (
        rx.abs()[0][:, hole[:, 1:]].mean() + ry.abs()[0][:, hole[1:, :]].mean()
    )
    return {
        "psnr": float(10 * torch.log10(1 / mse)),
        "ssim": float(s),
        "grad": float(ge),
        "detail": float((1 - energy).abs()),
    }


def regular_texture(kind: str, size: int = 512, seed: int = 0) -> torch.Tensor:
    """``[1,3,size,size]`` periodic texture with grain: bricks, checks or weave."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    if kind == "bricks":
        row = yy // 24
        shift = (row % 2) * 24
        mortar = ((yy % 24) < 3) | (((xx + shift) % 48) < 3)
        base = torch.where(mortar, 0.85, 0.45 + 0.1 * ((xx + shift) // 48 % 3)).float()
        img = torch.stack([base, base * 0.6, base * 0.45])
    elif kind == "checks":
        cell = ((yy // 20) + (xx // 20)) % 2
        img = torch.stack([cell * 0.7 + 0.1, cell * 0.3 + 0.3, 0.6 - cell * 0.4]).float()
    else:  # weave
        a = torch.sin(xx / 3.0) * torch.sin(yy / 5.0)
        img = torch.stack([0.5 + 0.3 * a, 0.4 + 0.2 * a, 0.3 - 0.1 * a]).float()
    grain = 0.04 * torch.randn(1, size, size, generator=g)
    return (img + grain).clamp(0, 1)[None]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--holes", type=int, default=3, help="holes per image")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    images = [(p.stem, load_image(p)) for p in sorted(CLEAN.glob("*.png"))]
    images += [(f"procedural{i}", procedural_image(90 + i, 512, 512)[None]) for i in range(3)]
    regular = ("bricks", "checks", "weave")
    images += [(k, regular_texture(k, seed=i)) for i, k in enumerate(regular)]
    results = {"smooth": [], "patchmatch": []}
    times = {"smooth": [], "patchmatch": []}
    textured = []
    for name, img in images:
        img = F.interpolate(img, size=(512, 512), mode="bilinear", antialias=True)
        for k in range(args.holes):
            g = torch.Generator().manual_seed(1000 + k)
            hole = _shape(g, ("blob", "polygon")[k % 2], 512, 512, 0.15 * 512 * 512)
            mask = hole[None].float()
            gx, gy = _grad(img)
            energy = float(gx.abs()[0][:, hole[:, 1:]].mean() + gy.abs()[0][:, hole[1:, :]].mean())
            textured.append((name in regular, energy))
            for method, fn in (
                ("smooth", smooth_fill),
                ("patchmatch", lambda a, b, k=k: patchmatch_fill(a, b, seed=k)),
            ):
                runs = []
                for _ in range(args.repeats if k == 0 else 1):
                    t0 = time.perf_counter()
                    out = fn(img, mask)
                    runs.append(time.perf_counter() - t0)
                times[method].append(statistics.median(runs))
                results[method].append(scores(out, img, hole))
        print(f"{name}: done", flush=True)

    # textured: the periodic textures and the photo holes with above-median detail
    median_energy = statistics.median(e for _, e in textured)
    textured = [periodic or e > median_energy for periodic, e in textured]

    def mean(rows, key, sel=None):
        vals = [r[key] for i, r in enumerate(rows) if sel is None or sel[i]]
        return sum(vals) / len(vals) if vals else float("nan")

    print(f"\n{len(textured)} holes of ~15 % in 512x512 crops ({sum(textured)} textured)")
    print(
        f"{'method':>11} {'PSNR':>7} {'SSIM':>6} {'grad err':>9} {'detail':>7} | textured: "
        f"{'PSNR':>7} {'SSIM':>6} {'grad err':>9} {'detail':>7} | median time"
    )
    for m in results:
        r = results[m]
        print(
            f"{m:>11} {mean(r, 'psnr'):7.2f} {mean(r, 'ssim'):6.3f} {mean(r, 'grad'):9.4f} "
            f"{mean(r, 'detail'):7.3f} |           {mean(r, 'psnr', textured):7.2f} "
            f"{mean(r, 'ssim', textured):6.3f} {mean(r, 'grad', textured):9.4f} "
            f"{mean(r, 'detail', textured):7.3f} | {statistics.median(times[m]) * 1e3:.0f} ms"
        )


if __name__ == "__main__":
    main()
