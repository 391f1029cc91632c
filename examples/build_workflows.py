"""The example workflows, defined once in Python: writes the UI-format files ComfyUI's
template browser serves (``example_workflows/``) and their API-format twins
(``examples/api/``, for ``comfyui-pal queue`` and the end-to-end harness).

    python examples/build_workflows.py          # rewrite both folders
    python examples/build_workflows.py --check  # exit 1 if a file is out of date

``build(name, models="tiny")`` gives the diffusion examples wired to the harness's tiny random
models instead of a checkpoint, at a small size, so they run on a CPU.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from comfyui_pal.io.workflow_check import NodeDef, node_defs
from comfyui_pal.io.workflows import Graph, Output, dumps

REPO = Path(__file__).resolve().parents[1]
UI_DIR = REPO / "example_workflows"
API_DIR = REPO / "examples" / "api"
SHIPPED_MODEL = "shipped/pal_lite.safetensors"


def load_pack() -> object:
    """The pack as ComfyUI loads it (by path), for its node definitions."""
    name = "comfyui_pal_pack_for_workflows"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "__init__.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def definitions() -> dict[str, NodeDef]:
    """ComfyUI's core nodes the examples use plus every node of this pack."""
    return node_defs(load_pack().NODE_CLASS_MAPPINGS)


INPAINT_CKPT = "512-inpainting-ema.safetensors"  # SD 2 inpainting: repaints regions
TXT2IMG_CKPT = "v1-5-pruned-emaonly-fp16.safetensors"  # ComfyUI's default: generates
EXAMPLE_IMAGE = "astronaut.png"  # LoadImage file; the tests serve it from examples/images


def _diffusion(
    g: Graph, models: str, x: int = 0, y: int = 300, inpaint: bool = True
) -> tuple[Output, Output, Output, Output]:
    """(model, vae, positive, negative) outputs from a checkpoint or the tiny test models."""
    if models == "tiny":
        tiny = g.add("DemoTinyModels", (x, y), {"inpaint": inpaint})
        return (tiny, 0), (tiny, 1), (tiny, 2), (tiny, 3)
    ckpt_name = INPAINT_CKPT if inpaint else TXT2IMG_CKPT
    ckpt = g.add("CheckpointLoaderSimple", (x, y), {"ckpt_name": ckpt_name})
    pos = g.add(
        "CLIPTextEncode",
        (x + 340, y),
        {"text": "a clean, natural, detailed photograph"},
        clip=(ckpt, 1),
    )
    neg = g.add(
        "CLIPTextEncode",
        (x + 340, y + 280),
        {"text": "artifacts, distorted, blurry, smeared, deformed"},
        clip=(ckpt, 1),
    )
    return (ckpt, 0), (ckpt, 2), (pos, 0), (neg, 0)


def _note(g: Graph, text: str) -> None:
    """The workflow's explanation, above its first column."""
    g.note((0, -220), text)


def _loader(g: Graph, pos: tuple[int, int]) -> Output:
    return g.add("PALModelLoader", pos, {"model_name": SHIPPED_MODEL}), 0


def _image_and_model(g: Graph, note: str) -> tuple[Output, Output]:
    """The usual first column: a note, the example image and the shipped PAL model."""
    _note(g, note)
    image = g.add("LoadImage", (0, 0), {"image": EXAMPLE_IMAGE})
    return (image, 0), _loader(g, (0, 360))


def detect_and_preview(g: Graph, models: str) -> None:
    image, pal = _image_and_model(
        g,
        "Detect perceptual artifacts with the shipped PAL model: the preview "
        "tints flagged pixels red, and PAR (artifact area ratio, lower is better) is in the "
        "summary. Swap the model for an official PAL4VST checkpoint in models/pal.",
    )
    det = g.add("PALDetectArtifacts", (360, 0), image=image, pal_model=pal)
    g.add("SaveImage", (720, 0), {"filename_prefix": "pal_detect"}, images=(det, 2))


def best_of_n(g: Graph, models: str) -> None:
    _note(
        g,
        "Best of N: generate a batch, score every image with PAL and keep the "
        "one with the fewest artifacts (PAL Select Best). PAL Rank Batch shows them all, "
        "best first.",
    )
    model, vae, pos, neg = _diffusion(g, models, inpaint=False)
    small = models == "tiny"
    latent = g.add(
        "EmptyLatentImage",
        (340, 0),
        {"width": 64 if small else 512, "height": 64 if small else 512, "batch_size": 4},
    )
    ks = g.add(
        "KSampler",
        (700, 0),
        {"seed": 7, "steps": 2 if small else 25},
        model=model,
        positive=pos,
        negative=neg,
        latent_image=(latent, 0),
    )
    dec = g.add("VAEDecode", (1060, 0), samples=(ks, 0), vae=vae)
    pal = _loader(g, (1060, 300))
    best = g.add("PALSelectBest", (1420, 0), {"top_k": 1}, image=(dec, 0), pal_model=pal)
    ranked = g.add("PALRankBatch", (1420, 360), image=(dec, 0), pal_model=pal)
    g.add("SaveImage", (1780, 0), {"filename_prefix": "pal_best"}, images=(best, 0))
    g.add("SaveImage", (1780, 360), {"filename_prefix": "pal_ranked"}, images=(ranked, 0))


def auto_fix_builtin(g: Graph, models: str) -> None:
    image, pal = _image_and_model(
        g,
        "One-node fix, no diffusion model needed: PAL Auto Fix detects "
        "artifacts, repaints confident regions with the built-in PatchMatch inpainter, "
        "re-detects and repeats; a change the detector does not like better is undone.",
    )
    fix = g.add("PALAutoFix", (360, 0), image=image, pal_model=pal)
    g.add("SaveImage", (720, 0), {"filename_prefix": "pal_fixed"}, images=(fix, 0))


def zoom_fix_composable(g: Graph, models: str) -> None:
    image, pal = _image_and_model(
        g,
        "The zoom-in fix as a graph: detect, refine the mask, crop each region "
        "with context at the model's size, inpaint with InpaintModelConditioning + KSampler, "
        "decode and stitch back (pixels away from the regions stay bit-exact).",
    )
    model, vae, pos, neg = _diffusion(g, models, 0, 560)
    small = models == "tiny"
    det = g.add("PALDetectArtifacts", (360, 0), image=image, pal_model=pal)
    refine = g.add("PALMaskRefine", (720, 0), {"grow": 8, "fill_holes": True}, mask=(det, 1))
    crop = g.add(
        "PALCropRegions",
        (1080, 0),
        {"target_size": 128 if small else 512},
        image=image,
        mask=(refine, 0),
    )
    cond = g.add(
        "InpaintModelConditioning",
        (1440, 0),
        positive=pos,
        negative=neg,
        vae=vae,
        pixels=(crop, 0),
        mask=(crop, 1),
    )
    ks = g.add(
        "KSampler",
        (1800, 0),
        {"seed": 1, "steps": 2 if small else 25},
        model=model,
        positive=(cond, 0),
        negative=(cond, 1),
        latent_image=(cond, 2),
    )
    dec = g.add("VAEDecode", (2160, 0), samples=(ks, 0), vae=vae)
    stitch = g.add(
        "PALStitchRegions", (2520, 0), original=image, stitch=(crop, 2), inpainted=(dec, 0)
    )
    g.add("SaveImage", (2880, 0), {"filename_prefix": "pal_zoom_graph"}, images=(stitch, 0))


def zoom_inpaint_diffusion(g: Graph, models: str) -> None:
    image, pal = _image_and_model(
        g,
        "Your inpainting checkpoint, zoomed in: PAL Zoom-In Inpaint repaints "
        "the detected regions in one node; PAL Auto Fix with the model connected loops "
        "detect -> inpaint -> re-detect until the image is clean.",
    )
    model, vae, pos, neg = _diffusion(g, models, 0, 560)
    small = models == "tiny"
    det = g.add("PALDetectArtifacts", (360, 0), image=image, pal_model=pal)
    steps, size = (2, 128) if small else (25, 512)
    zoom = g.add(
        "PALZoomInpaint",
        (720, 0),
        {"steps": steps, "target_size": size},
        image=image,
        model=model,
        vae=vae,
        positive=pos,
        negative=neg,
        mask=(det, 1),
    )
    fix = g.add(
        "PALAutoFix",
        (720, 600),
        {"max_iterations": 1, "steps": steps, "target_size": size},
        image=image,
        pal_model=pal,
        model=model,
        vae=vae,
        positive=pos,
        negative=neg,
    )
    g.add("SaveImage", (1080, 0), {"filename_prefix": "pal_zoom_inpaint"}, images=(zoom, 0))
    g.add("SaveImage", (1080, 600), {"filename_prefix": "pal_auto_fix_model"}, images=(fix, 0))


WORKFLOWS = {
    "01_pal_detect_preview": ("PAL: detect and preview artifacts", detect_and_preview),
    "02_pal_best_of_n": ("PAL: best-of-N curation", best_of_n),
    "03_pal_auto_fix_builtin": ("PAL: one-node auto fix (built-in inpainter)", auto_fix_builtin),
    "04_pal_zoom_fix_composable": ("PAL: composable zoom-in fix", zoom_fix_composable),
    "05_pal_zoom_inpaint_diffusion": (
        "PAL: zoom-in inpaint with your model",
        zoom_inpaint_diffusion,
    ),
}


def build(name: str, models: str = "checkpoint", defs: dict[str, NodeDef] | None = None) -> Graph:
    """The workflow ``name`` of ``WORKFLOWS``; ``models="tiny"`` wires the harness's models."""
    g = Graph(defs or definitions())
    WORKFLOWS[name][1](g, models)
    return g


def files(defs: dict[str, NodeDef] | None = None) -> dict[Path, str]:
    """Every example file and its content."""
    defs = defs or definitions()
    out = {}
    for name, (title, _) in WORKFLOWS.items():
        g = build(name, defs=defs)
        out[UI_DIR / f"{name}.json"] = dumps(g.ui(title))
        out[API_DIR / f"{name}.json"] = dumps(g.api())
    return out


def write_or_check(files: dict[Path, str], check: bool) -> int:
    """Write the files that differ (or with ``check`` only list them); 1 if ``check`` found
    one out of date."""
    stale = []
    for path, text in files.items():
        if path.exists() and path.read_text() == text:
            continue
        stale.append(path)
        if not check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    for path in stale:
        print(("out of date: " if check else "wrote ") + str(path.relative_to(REPO)))
    return 1 if stale and check else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only check the files are current")
    return write_or_check(files(), ap.parse_args().check)


if __name__ == "__main__":
    sys.exit(main())
