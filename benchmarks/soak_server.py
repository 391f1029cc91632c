"""Soak (not a test): 200 prompts through one real ComfyUI server process, on varying sizes.

    python benchmarks/soak_server.py --comfy-dir /tmp/comfyui --python /tmp/comfy-venv/bin/python
        [--prompts 200] [--warmup 20] [--no-fix]

Starts ComfyUI (``--cpu``, loopback, a fresh ``--base-directory`` with only this pack) with the
ComfyUI tree and venv that ``../shared/comfy/comfy_harness.sh`` prepares, then queues prompts
one after the other: LoadImage (an example photo) -> ImageScale to a size drawn from
256..1024 px per side -> RepeatImageBatch 1-3 -> PAL Detect Artifacts, PAL Auto Fix (built-in
inpainter) and PAL Select Best with the shipped model -> PreviewImage. The first warm-up
prompt is the largest case (3 x 1024 x 1024). Reports the server's resident memory after
warm-up and at the end (target: grows < 5 %) and its open file descriptors (target: no growth).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "benchmarks")]

from real_comfy_server import comfyui_server  # noqa: E402
from soak import open_fds, rss_mb  # noqa: E402

from comfyui_pal.io.comfy_client import Client  # noqa: E402

SIZES = [256, 320, 384, 512, 640, 768, 1024]
PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.png"]


def prompt(photo: str, w: int, h: int, batch: int, seed: int, fix: bool) -> dict:
    """API-format graph of one soak prompt."""
    wf = {
        "1": {"class_type": "LoadImage", "inputs": {"image": photo}},
        "2": {
            "class_type": "ImageScale",
            "inputs": {
                "image": ["1", 0],
                "upscale_method": "bilinear",
                "width": w,
                "height": h,
                "crop": "disabled",
            },
        },
        "3": {"class_type": "RepeatImageBatch", "inputs": {"image": ["2", 0], "amount": batch}},
        "4": {
            "class_type": "PALModelLoader",
            "inputs": {
                "model_name": "shipped/pal_lite.safetensors",
                "device": "auto",
                "precision": "auto",
            },
        },
        "5": {
            "class_type": "PALDetectArtifacts",
            "inputs": {
                "image": ["3", 0],
                "pal_model": ["4", 0],
                "mode": "resize",
                "threshold": 0.5,
            },
        },
        "6": {
            "class_type": "PALSelectBest",
            "inputs": {
                "image": ["3", 0],
                "pal_model": ["4", 0],
                "probability": ["5", 0],
                "top_k": 1,
                "max_par": 1.0,
                "when_none": "best_one",
                "threshold": 0.5,
                "mode": "resize",
            },
        },
        "7": {"class_type": "PreviewImage", "inputs": {"images": ["6", 0]}},
        "8": {"class_type": "PreviewImage", "inputs": {"images": ["5", 2]}},
    }
    if fix:
        wf["9"] = {
            "class_type": "PALAutoFix",
            "inputs": {
                "image": ["3", 0],
                "pal_model": ["4", 0],
                "inpainter": "patchmatch",
                "threshold": 0.5,
                "target_par": 0.0005,
                "max_iterations": 1,
                "min_confidence": 0.85,
                "grow": 6,
                "blend_radius": 12,
                "seed": seed,
            },
        }
        wf["10"] = {"class_type": "PreviewImage", "inputs": {"images": ["9", 0]}}
    return wf


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--comfy-dir", type=Path, default=Path("/tmp/comfyui"))
    ap.add_argument("--python", type=Path, default=Path("/tmp/comfy-venv/bin/python"))
    ap.add_argument("--prompts", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--no-fix", dest="fix", action="store_false", help="detect and select only")
    args = ap.parse_args()
    run = Path(tempfile.mkdtemp(prefix="pal_soak_"))
    photos = tuple(REPO / "examples" / "images" / p for p in PHOTOS)
    rng = random.Random(0)
    base = None
    t0 = time.perf_counter()
    with comfyui_server(args.comfy_dir, args.python, run, inputs=photos) as server:
        client = Client(server.url)
        for k in range(args.prompts):
            w, h, b = rng.choice(SIZES), rng.choice(SIZES), rng.randint(1, 3)
            if k == 0:  # warm-up starts with the largest case: the allocator's peak is reached
                w = h = SIZES[-1]
                b = 3
            client.wait(client.submit(prompt(rng.choice(PHOTOS), w, h, b, k, args.fix)))
            if k + 1 == args.warmup:
                base = rss_mb(server.pid), open_fds(server.pid)
            if (k + 1) % 50 == 0:
                print(f"{k + 1} prompts, server RSS {rss_mb(server.pid):.0f} MB", flush=True)
        end = rss_mb(server.pid), open_fds(server.pid)
    print(
        f"\n{args.prompts} prompts in {time.perf_counter() - t0:.0f} s: server RSS {base[0]:.0f} "
        f"MB after {args.warmup} warm-up prompts -> {end[0]:.0f} MB at the end "
        f"({(end[0] / base[0] - 1) * 100:+.1f} %, target < +5 %); open fds {base[1]} -> "
        f"{end[1]} (target: no growth). Server log: {run / 'server.log'}"
    )


if __name__ == "__main__":
    main()
