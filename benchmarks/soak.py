"""Soak (not a test): 200 prompts' worth of node calls in one process, on varying sizes.

    python benchmarks/soak.py [--calls 200] [--warmup 20]

Loads the pack the way ComfyUI does and, per call, runs PAL Detect Artifacts, PAL Auto Fix
(built-in inpainter) and PAL Select Best on a batch of 1-3 of the example photographs
(planted and clean) resized to a size drawn from 256..1024 px per side, with the shipped
model through the shared cache. The first warm-up call is the largest case (3 x 1024 x 1024),
so allocator peaks are reached before measuring. Reports resident memory after warm-up and at
the end (target: grows < 5 %) and open file descriptors (target: no growth).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import importlib.util
import os
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from comfyui_pal.io.images import load_image

REPO = Path(__file__).resolve().parents[1]


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of process ``pid`` (this one by default), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def open_fds(pid: int | str = "self") -> int:
    """Open file descriptors of process ``pid`` (this one by default)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def live_tensors() -> int:
    with warnings.catch_warnings():  # isinstance on every object wakes lazy deprecated attrs
        warnings.simplefilter("ignore")
        return sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--no-fix", dest="fix", action="store_false", help="detect and select only")
    ap.add_argument(
        "--trim",
        action="store_true",
        help="call glibc malloc_trim(0) after each call: RSS then shows live memory, not the "
        "free memory the allocator keeps",
    )
    args = ap.parse_args()
    spec = importlib.util.spec_from_file_location("pal_pack", REPO / "__init__.py")
    pack = importlib.util.module_from_spec(spec)
    sys.modules["pal_pack"] = pack
    spec.loader.exec_module(pack)
    nodes = pack.NODE_CLASS_MAPPINGS
    (model,) = nodes["PALModelLoader"]().load("shipped/pal_lite.safetensors", "cpu", "auto")
    detect, fixer, select = (
        nodes["PALDetectArtifacts"](),
        nodes["PALAutoFix"](),
        nodes["PALSelectBest"](),
    )
    g = torch.Generator().manual_seed(0)
    photos = [load_image(p) for p in sorted((REPO / "examples" / "images").rglob("*.png"))]
    photos = [p for p in photos if p.shape[1] == 3]  # the example photos, corrupted and clean
    sizes = [256, 320, 384, 512, 640, 768, 1024]
    base_rss = base_fds = None
    t0 = time.perf_counter()
    for k in range(args.calls):
        h = sizes[int(torch.randint(len(sizes), (), generator=g))]
        w = sizes[int(torch.randint(len(sizes), (), generator=g))]
        b = int(torch.randint(1, 4, (), generator=g))
        if k == 0:  # warm-up starts with the largest case, so the allocator's peak is reached
            h = w = sizes[-1]
            b = 3
        picks = torch.randint(len(photos), (b,), generator=g).tolist()
        image = torch.cat([F.interpolate(photos[i], size=(h, w), mode="bilinear") for i in picks])
        image = image.permute(0, 2, 3, 1).contiguous()
        probs, _, _, _, _ = detect.detect(image, model, "resize", 0.5)
        if args.fix:
            fixer.fix(
                image=image,
                pal_model=model,
                inpainter="patchmatch",
                threshold=0.5,
                target_par=0.0005,
                max_iterations=1,
                min_confidence=0.85,
                grow=6,
                blend_radius=12,
                seed=k,
            )
        select.select(image, 1, 1.0, "best_one", probability=probs)
        if args.trim:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        if k + 1 == args.warmup:
            gc.collect()
            base_rss, base_fds, base_tensors = rss_mb(), open_fds(), live_tensors()
        if (k + 1) % 50 == 0:
            print(f"{k + 1} calls, RSS {rss_mb():.0f} MB, {open_fds()} fds", flush=True)
    gc.collect()
    end_rss, end_fds, end_tensors = rss_mb(), open_fds(), live_tensors()
    print(
        f"\n{args.calls} calls in {time.perf_counter() - t0:.0f} s: RSS {base_rss:.0f} MB after "
        f"{args.warmup} warm-up calls -> {end_rss:.0f} MB at the end "
        f"({(end_rss / base_rss - 1) * 100:+.1f} %, target < +5 %); open fds {base_fds} -> "
        f"{end_fds} (target: no growth); live tensors {base_tensors} -> {end_tensors}"
    )


if __name__ == "__main__":
    main()
