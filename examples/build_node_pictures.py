"""Pictures of the nodes' inputs and outputs for their help pages (``web/docs/images/<Node>.jpg``),
made by running each node in-process on the example image with the shipped model.

    python examples/build_node_pictures.py          # rewrite web/docs/images/*.jpg

Outside ComfyUI the nodes run with the library's fallbacks (CPU, the built-in inpainters).
Each picture is a row of labelled panels, ``WIDTH`` px wide and at most ``MAX_BYTES``; the
runs are seeded, so a rerun on one machine writes the same bytes (another machine's float
rounding may move a pixel, so the tests check the pictures exist, fit and are linked, not
their bytes). ``examples/build_node_docs.py`` links each page to its picture (``PICTURES``)
and says why a node has none (``NO_PICTURE``).
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_thumbnails import corner_label
from build_workflows import REPO, SHIPPED_MODEL, load_pack

from comfyui_pal.core.layout import bchw_to_image, image_to_bchw
from comfyui_pal.pipelines.fix import builtin_inpainter

IMAGES_DIR = REPO / "web" / "docs" / "images"
EXAMPLES = REPO / "examples" / "images"
WIDTH = 640  # picture width, px
MAX_BYTES = 60_000
GAP = 4  # px between panels
LABEL_H = 20  # px of the label strip above each panel
PHOTOS = ("astronaut.png", "rocket.png", "coffee.png", "chelsea.png")  # the batch, planted
BOX_COLOURS = ((255, 64, 64), (64, 200, 255), (255, 210, 0), (120, 255, 120))

Panel = tuple[str, Image.Image]  # label, picture


# --- tensors <-> pictures ---------------------------------------------------------------


def load_image(path: Path, size: tuple[int, int] | None = None) -> torch.Tensor:
    """IMAGE ``[1,H,W,3]`` float32 in 0..1 of the file at ``path``, resized and centre-cropped
    to ``size`` (w, h) when given (as ComfyUI's Batch Images makes a batch)."""
    im = Image.open(path).convert("RGB")
    if size is not None:
        scale = max(size[0] / im.width, size[1] / im.height)
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.LANCZOS)
        x0, y0 = (im.width - size[0]) // 2, (im.height - size[1]) // 2
        im = im.crop((x0, y0, x0 + size[0], y0 + size[1]))
    return torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0)[None]


def picture(image: torch.Tensor) -> Image.Image:
    """An IMAGE ``[H,W,3]`` or a MASK ``[H,W]`` (grey) in 0..1 as a PIL picture."""
    a = (image.detach().float().clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
    return Image.fromarray(a).convert("RGB")


def overlay(image: torch.Tensor, mask: torch.Tensor) -> Image.Image:
    """IMAGE ``[H,W,3]`` with MASK ``[H,W]`` > 0 tinted red."""
    m = (mask > 0).float()[..., None]
    red = torch.tensor([1.0, 0.1, 0.1])
    return picture(image * (1 - 0.5 * m) + red * 0.5 * m)


def boxes(image: torch.Tensor, found: list[tuple[int, int, int, int, str]]) -> Image.Image:
    """IMAGE ``[H,W,3]`` with boxes ``(x0, y0, x1, y1, label)`` (pixels) drawn on it."""
    im = picture(image)
    draw = ImageDraw.Draw(im)
    font = ImageFont.load_default(size=18)
    for k, (x0, y0, x1, y1, text) in enumerate(found):
        colour = BOX_COLOURS[k % len(BOX_COLOURS)]
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=colour, width=3)
        if text:
            draw.text((x0 + 4, y0 + 3), text, fill=colour, font=font)
    return im


def mosaic(images: list[Image.Image], columns: int) -> Image.Image:
    """Equal-size ``images`` in a grid of ``columns``, row by row, ``GAP`` apart."""
    w, h = images[0].size
    columns = min(columns, len(images))
    rows = -(-len(images) // columns)
    sheet = Image.new("RGB", (columns * w + (columns - 1) * GAP, rows * h + (rows - 1) * GAP))
    sheet.paste((255, 255, 255), (0, 0, *sheet.size))
    for k, im in enumerate(images):
        at = ((k % columns) * (w + GAP), (k // columns) * (h + GAP))
        sheet.paste(im.resize((w, h), Image.LANCZOS), at)
    return sheet


def sheet(panels: list[Panel]) -> Image.Image:
    """``panels`` side by side, ``WIDTH`` px wide in all, each under its label; arrows
    (``->``) in the labels read left to right."""
    h = 400  # common panel height before the final scale
    scaled = [im.resize((round(im.width * h / im.height), h), Image.LANCZOS) for _, im in panels]
    total = sum(im.width for im in scaled) + GAP * (len(scaled) - 1)
    factor = WIDTH / total
    out_h = round(h * factor)
    canvas = Image.new("RGB", (WIDTH, out_h + LABEL_H), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=13)
    x = 0.0
    for (label, _), im in zip(panels, scaled, strict=True):
        w = round(im.width * factor)
        canvas.paste(im.resize((w, out_h), Image.LANCZOS), (round(x), LABEL_H))
        draw.text((round(x) + 2, 3), label, fill=(20, 20, 20), font=font)
        x += im.width * factor + GAP * factor
    return canvas


def jpeg(image: Image.Image, max_bytes: int = MAX_BYTES) -> bytes:
    """``image`` as the best-quality JPEG of at most ``max_bytes`` (baseline, no EXIF)."""
    for quality in range(88, 30, -4):
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=quality, optimize=True)
        if buf.tell() <= max_bytes:
            return buf.getvalue()
    raise ValueError(f"no JPEG of {image.size} fits in {max_bytes} bytes; lower WIDTH")


# --- one run of the nodes ---------------------------------------------------------------


class Run:
    """The pack, the shipped model and the example image, with each node's result made once."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.pack = load_pack()
        self.nodes = self.pack.NODE_CLASS_MAPPINGS
        (self.model,) = self.nodes["PALModelLoader"]().load(SHIPPED_MODEL, "cpu", "auto")
        self.image = load_image(EXAMPLES / "astronaut.png")
        # the example the built-in fix repairs (astronaut's noise strip fails its 3x test)
        self.fix_image = load_image(EXAMPLES / "rocket.png")
        self._detected = None
        self._cropped = None

    @property
    def detected(self) -> tuple:
        if self._detected is None:
            self._detected = self.nodes["PALDetectArtifacts"]().detect(
                self.image, self.model, "resize", 0.5
            )
        return self._detected

    @property
    def cropped(self) -> tuple:
        """PAL Crop Regions over the detected mask, grown a little."""
        if self._cropped is None:
            (mask,) = self.nodes["PALMaskRefine"]().refine(self.refine_input, **REFINE)
            self._cropped = self.nodes["PALCropRegions"]().crop(
                self.image, mask, 1.5, 16, 256, 64, 4, False
            )
        return self._cropped

    @property
    def refine_input(self) -> torch.Tensor:
        return self.detected[0]

    def batch(self) -> tuple[torch.Tensor, list[str]]:
        """The planted example photos and their clean originals as one 384x256 batch."""
        images, names = [], []
        for name in PHOTOS:
            for sub, tag in (("", "planted"), ("clean", "clean")):
                path = EXAMPLES / sub / name
                if path.exists():
                    images.append(load_image(path, (384, 256)))
                    names.append(f"{Path(name).stem} {tag}")
        return torch.cat(images), names


REFINE = dict(threshold=0.5, grow=8, fill_holes=True, min_area=64.0, feather=0.0, invert=False)


def detect_artifacts(r: Run) -> list[Panel]:
    probs, _, preview, pars, _ = r.detected
    return [
        ("image", picture(r.image[0])),
        ("-> probability", picture(probs[0])),
        (f"-> preview (PAR {pars[0]:.3f})", picture(preview[0])),
    ]


def mask_refine(r: Run) -> list[Panel]:
    (out,) = r.nodes["PALMaskRefine"]().refine(r.refine_input, **REFINE)
    return [
        ("mask in (probability)", picture(r.refine_input[0])),
        ("-> threshold 0.5, grow 8, fill holes", picture(out[0])),
    ]


def crop_regions(r: Run) -> list[Panel]:
    (mask,) = r.nodes["PALMaskRefine"]().refine(r.refine_input, **REFINE)
    crops, crop_masks, _, _ = r.cropped
    tiles = [overlay(c, m) for c, m in zip(crops, crop_masks, strict=True)]
    return [
        ("image + mask", overlay(r.image[0], mask[0])),
        (f"-> {len(tiles)} crops + masks", mosaic(tiles, 2)),
    ]


def stitch_regions(r: Run) -> list[Panel]:
    crops, crop_masks, plan, _ = r.cropped
    fill = builtin_inpainter("patchmatch")
    inpainted = bchw_to_image(fill(image_to_bchw(crops), crop_masks, 0))
    (out,) = r.nodes["PALStitchRegions"]().stitch(r.image, plan, inpainted, 16, False)
    return [
        ("original", picture(r.image[0])),
        ("inpainted crops", mosaic([picture(c) for c in inpainted], 2)),
        ("-> stitched", picture(out[0])),
    ]


FIX = dict(
    inpainter="patchmatch",
    threshold=0.5,
    target_par=0.0,
    max_iterations=2,
    min_confidence=0.85,
    grow=6,
    blend_radius=8,
    seed=0,
)


def auto_fix(r: Run) -> list[Panel]:
    image = r.fix_image
    fixed, _, _ = r.nodes["PALAutoFix"]().fix(image, r.model, **FIX)
    detected = r.nodes["PALDetectArtifacts"]().detect(image, r.model, "resize", 0.5)
    before = detected[3][0]
    (after,) = r.nodes["PALDetectArtifacts"]().detect(fixed, r.model, "resize", 0.5)[3]
    return [
        (f"before, flagged red (PAR {before:.3f})", overlay(image[0], detected[1][0])),
        (f"-> after, patchmatch (PAR {after:.3f})", picture(fixed[0])),
    ]


def _pars_label(names: list[str], pars: list[float], index: list[int], k: int) -> str:
    return f"#{k + 1} {names[index[k]]}: {pars[k]:.3f}"


def _labelled(im: Image.Image, text: str) -> Image.Image:
    return corner_label(im.copy(), text, 22, (8, 6))


def rank_batch(r: Run) -> list[Panel]:
    images, names = r.batch()
    ranked, pars, index, _ = r.nodes["PALRankBatch"]().rank(images, pal_model=r.model)
    tiles = [
        _labelled(picture(im), _pars_label(names, pars, index, k)) for k, im in enumerate(ranked)
    ]
    return [
        ("batch", mosaic([picture(im) for im in images], 2)),
        ("-> ranked, lowest PAR first", mosaic(tiles, 2)),
    ]


def select_best(r: Run) -> list[Panel]:
    images, names = r.batch()
    best, pars, index, _ = r.nodes["PALSelectBest"]().select(
        images, 1, 1.0, "best_one", pal_model=r.model
    )
    return [
        (f"batch of {len(images)}", mosaic([picture(im) for im in images], 2)),
        (f"-> best: {names[index[0]]}, PAR {pars[0]:.3f}", picture(best[0])),
    ]


def artifacts_to_segs(r: Run) -> list[Panel]:
    (segs,) = r.nodes["PALArtifactsToSEGS"]().convert(
        r.image, r.detected[0], 0.5, 8, 3.0, 16, "artifact"
    )
    regions = [(*s.crop_region, "") for s in segs[1]]
    found = [(*s.bbox, f"{s.confidence:.2f}") for s in segs[1]]
    return [
        ("image + probability", overlay(r.image[0], r.detected[1][0])),
        (f"-> {len(found)} SEGS: bbox, confidence", boxes(r.image[0], found)),
        ("and their crop regions", boxes(r.image[0], regions)),
    ]


def artifact_boxes(r: Run) -> list[Panel]:
    (found,) = r.nodes["PALArtifactBoxes"]().boxes(r.detected[0], 0.5, 0, 16, "artifact")
    drawn = [
        (b["x"], b["y"], b["x"] + b["width"], b["y"] + b["height"], f"{b['score']:.2f}")
        for b in found[0]
    ]
    return [
        ("probability", picture(r.detected[0][0])),
        (f"-> {len(drawn)} boxes, score", boxes(r.image[0], drawn)),
    ]


PICTURES: dict[str, Callable[[Run], list[Panel]]] = {
    "PALDetectArtifacts": detect_artifacts,
    "PALMaskRefine": mask_refine,
    "PALCropRegions": crop_regions,
    "PALStitchRegions": stitch_regions,
    "PALAutoFix": auto_fix,
    "PALRankBatch": rank_batch,
    "PALSelectBest": select_best,
    "PALArtifactsToSEGS": artifacts_to_segs,
    "PALArtifactBoxes": artifact_boxes,
}
NO_PICTURE = {  # image nodes without a picture, and why
    "PALZoomInpaint": "it needs your diffusion model (no built-in inpainter)",
}


def picture_path(name: str) -> Path:
    return IMAGES_DIR / f"{name}.jpg"


def main() -> int:
    run = Run()
    IMAGES_DIR.mkdir(parents=True, exist_ok=True)
    for name, panels in PICTURES.items():
        data = jpeg(sheet(panels(run)))
        path = picture_path(name)
        if path.exists() and path.read_bytes() == data:
            continue
        path.write_bytes(data)
        print(f"wrote {path.relative_to(REPO)} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
