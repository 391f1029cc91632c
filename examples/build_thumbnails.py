"""Thumbnails of the templates (``example_workflows/NAME.jpg``, shown by ComfyUI's template
browser) made from each workflow's real output in a real ComfyUI.

    python examples/build_thumbnails.py                 # starts ComfyUI (COMFY_DIR, COMFY_VENV)
    python examples/build_thumbnails.py --server URL    # or uses a running one

A started server is the one tests/real_comfy_server.py starts, with this pack, the shared tiny
random diffusion models (``../shared/comfy/tiny_models_pack``) and the example image; a
running one needs both packs. The images are uploaded. Each thumbnail is a square JPEG of at
most ``MAX_BYTES``: the input and the output side by side over a zoom on where they differ
most. The diffusion templates run on the tiny models (``build(name, models="tiny")``), so
their repaints are the tiny models' flat grey: where the graph repaints, not what a checkpoint
paints. Template 2's tiny models generate four flat grey images, so its thumbnail shows its
PAL half instead: PAL Rank Batch over four example photos (two with planted artifacts, their
clean originals), best first, with the PAR the node gives each.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from build_workflows import EXAMPLE_IMAGE, REPO, SHIPPED_MODEL, UI_DIR, WORKFLOWS, build
from PIL import Image, ImageDraw, ImageFont

from comfyui_pal.io.comfy_client import Client

SIDE = 384  # thumbnail width and height, px
MAX_BYTES = 60_000
IMAGES = REPO / "examples" / "images"
TINY_PACK = REPO.parent / "shared" / "comfy" / "tiny_models_pack"


def run(client: Client, api: dict) -> dict:
    """The history entry of ``api`` run on ``client``'s server (raises if it failed)."""
    entry = client.wait(client.submit(api), timeout=900)
    status = entry.get("status", {})
    if status.get("status_str") != "success":
        raise RuntimeError(f"the workflow did not run: {status.get('messages', '')}"[:2000])
    return entry


def saved_images(client: Client, api: dict, entry: dict) -> dict[str, list[Image.Image]]:
    """The images each SaveImage of ``api`` saved in the run ``entry``, by filename prefix."""
    out: dict[str, list[Image.Image]] = {}
    for nid, node in api.items():
        if node["class_type"] == "SaveImage":
            images = entry.get("outputs", {}).get(nid, {}).get("images", [])
            out[node["inputs"]["filename_prefix"]] = [
                Image.open(io.BytesIO(client.view(i))).convert("RGB") for i in images
            ]
    return out


def upload(client: Client, path: Path, name: str) -> str:
    """Upload ``path`` to the server's input folder as ``name``; the name it got."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / name
        shutil.copyfile(path, copy)
        return client.upload(copy)


def ranking_api(images: list[str]) -> dict:
    """Template 2's PAL half over ``images`` (input-folder names): one batch (ComfyUI's
    Batch Images: each resized and centre-cropped to the first's size), PAL Rank Batch, its
    summary shown, the ranked batch saved."""
    api = {
        f"load{i}": {"class_type": "LoadImage", "inputs": {"image": n}}
        for i, n in enumerate(images)
    }
    batch = ["load0", 0]
    for i in range(1, len(images)):
        api[f"batch{i}"] = {
            "class_type": "ImageBatch",
            "inputs": {"image1": batch, "image2": [f"load{i}", 0]},
        }
        batch = [f"batch{i}", 0]
    model = {"model_name": SHIPPED_MODEL, "device": "auto", "precision": "auto"}
    api["pal"] = {"class_type": "PALModelLoader", "inputs": model}
    rank = {"image": batch, "pal_model": ["pal", 0], "threshold": 0.5, "mode": "resize"}
    api["rank"] = {"class_type": "PALRankBatch", "inputs": rank}
    api["summary"] = {"class_type": "PreviewAny", "inputs": {"source": ["rank", 3]}}
    save = {"images": ["rank", 0], "filename_prefix": "pal_ranked"}
    api["save"] = {"class_type": "SaveImage", "inputs": save}
    return api


def ranking_sheet(client: Client) -> Image.Image:
    """Template 2's thumbnail: four example photos ranked by PAL, best first, with PARs."""
    photos = [
        ("astronaut.png", ""),
        ("astronaut.png", "clean"),
        ("rocket.png", ""),
        ("rocket.png", "clean"),
    ]
    names = [
        upload(client, IMAGES / sub / f, f"pal_thumbnail_{sub or 'planted'}_{f}")
        for f, sub in photos
    ]
    api = ranking_api(names)
    entry = run(client, api)
    ranked = saved_images(client, api, entry)["pal_ranked"]
    summary = json.loads(entry["outputs"]["summary"]["text"][0])
    labels = [
        f"{'best' if k == 0 else f'#{k + 1}'}: PAR {r['par']:.4f}" for k, r in enumerate(summary)
    ]
    return grid([_tile(im, label) for im, label in zip(ranked, labels, strict=True)])


def corner_label(
    tile: Image.Image, text: str, size: int = 14, inset: tuple[int, int] = (6, 4)
) -> Image.Image:
    """``tile`` (drawn on) with ``text`` in a ``size`` px font on a dark strip in its top-left
    corner, ``inset`` px (x, y) from its edges."""
    draw = ImageDraw.Draw(tile)
    font = ImageFont.load_default(size=size)
    dx, dy = inset
    _, _, x1, y1 = draw.textbbox((dx, dy), text, font=font)
    draw.rectangle((0, 0, x1 + dx, y1 + dy), fill=(20, 20, 20))
    draw.text((dx, dy), text, fill=(240, 240, 240), font=font)
    return tile


def _tile(
    image: Image.Image, text: str, box: tuple[int, int, int, int] | None = None
) -> Image.Image:
    half = SIDE // 2
    part = image.crop(box) if box else image
    return corner_label(part.resize((half, half), Image.LANCZOS), text)


def changed_box(before: Image.Image, after: Image.Image, fraction: float = 0.4) -> tuple:
    """The square ``(x0, y0, x1, y1)``, ``fraction`` of the shorter side, where ``after``
    differs from ``before`` (resized to its size) in the most pixels."""
    a = np.asarray(before, dtype=np.int16)
    b = np.asarray(after.resize(before.size), dtype=np.int16)
    changed = (np.abs(a - b).sum(-1) > 24).astype(np.int64)
    h, w = changed.shape
    side = int(min(h, w) * fraction)
    sums = np.pad(changed.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    counts = sums[side:, side:] - sums[:-side, side:] - sums[side:, :-side] + sums[:-side, :-side]
    y0, x0 = np.unravel_index(np.argmax(counts), counts.shape)
    return int(x0), int(y0), int(x0) + side, int(y0) + side


def before_after(before: Image.Image, after: Image.Image) -> Image.Image:
    """Input and output on top, a zoom on where they differ below."""
    box = changed_box(before, after)
    after = after.resize(before.size)
    tiles = [
        _tile(before, "input"),
        _tile(after, "output"),
        _tile(before, "zoom: input", box),
        _tile(after, "zoom: output", box),
    ]
    return grid(tiles)


def grid(tiles: list[Image.Image]) -> Image.Image:
    """Up to four half-side tiles in a 2x2 square, row by row."""
    sheet = Image.new("RGB", (SIDE, SIDE), (24, 24, 24))
    half = SIDE // 2
    for k, tile in enumerate(tiles[:4]):
        sheet.paste(tile, ((k % 2) * half, (k // 2) * half))
    return sheet


def thumbnail(client: Client, name: str) -> Image.Image:
    """The thumbnail of workflow ``name``, from a run on ``client``'s server."""
    if name == "02_pal_best_of_n":
        return ranking_sheet(client)
    api = build(name, models="tiny").api()
    image = upload(client, IMAGES / EXAMPLE_IMAGE, f"pal_thumbnail_{EXAMPLE_IMAGE}")
    for node in api.values():
        if node["class_type"] == "LoadImage":
            node["inputs"]["image"] = image
    outputs = saved_images(client, api, run(client, api))
    source = Image.open(IMAGES / EXAMPLE_IMAGE).convert("RGB")
    return before_after(source, next(iter(outputs.values()))[0])


def jpeg(image: Image.Image, max_bytes: int = MAX_BYTES) -> bytes:
    """``image`` as the best-quality JPEG of at most ``max_bytes``."""
    for quality in range(90, 30, -5):
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=quality, optimize=True, progressive=True)
        if buf.tell() <= max_bytes:
            return buf.getvalue()
    raise ValueError(f"no JPEG of {image.size} fits in {max_bytes} bytes; lower SIDE")


@contextmanager
def started_server(work: Path) -> Iterator[str]:
    """A ComfyUI server (COMFY_DIR, COMFY_VENV) with this pack, the tiny models and the
    example image, as tests/real_comfy_server.py starts it; its URL."""
    sys.path.insert(0, str(REPO / "tests"))
    from real_comfy_server import comfyui_server

    comfy_dir = Path(os.environ.get("COMFY_DIR", "/tmp/comfyui"))
    python = Path(os.environ.get("COMFY_VENV", "/tmp/comfy-venv")) / "bin" / "python"
    if not (comfy_dir / "main.py").exists() or not python.exists():
        raise SystemExit(
            f"no ComfyUI at {comfy_dir} or no python {python}: set COMFY_DIR and COMFY_VENV "
            "(../shared/comfy/comfy_harness.sh makes both), or pass --server"
        )
    with comfyui_server(comfy_dir, python, work, (TINY_PACK,), (IMAGES / EXAMPLE_IMAGE,)) as s:
        yield s.url


def write_thumbnails(server: str) -> None:
    client = Client(server, deadline=900)
    for name, (title, _) in WORKFLOWS.items():
        data = jpeg(thumbnail(client, name))
        path = UI_DIR / f"{title}.jpg"
        path.write_bytes(data)
        print(f"wrote {path.relative_to(REPO)} ({len(data) // 1000} KB)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", help="a running ComfyUI (default: start one)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/pal_thumbnails"), help="its folder")
    args = ap.parse_args()
    if args.server:
        write_thumbnails(args.server)
        return 0
    if args.work.exists() and any(args.work.iterdir()):
        raise SystemExit(f"{args.work} is not empty: pass another --work")
    with started_server(args.work) as url:
        write_thumbnails(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
