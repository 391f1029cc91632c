"""The pack's subgraph blueprints, defined once in Python: writes ``subgraphs/*.json``, which
ComfyUI serves at ``/global_subgraphs`` and the frontend offers as nodes.

    python examples/build_subgraphs.py          # rewrite subgraphs/
    python examples/build_subgraphs.py --check  # exit 1 if a file is out of date

``PAL Zoom Fix`` is the composable zoom-in fix of ``04_pal_zoom_fix_composable`` as one node:
image, PAL model, diffusion model, VAE and conditionings in; the fixed image and the mask of
what was repainted out. Its inner widgets (threshold, grow, context, target size, seed,
steps, blend) are edited inside the subgraph.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from build_workflows import REPO, definitions, write_or_check  # this script's folder

from comfyui_pal.io.subgraphs import blueprint
from comfyui_pal.io.workflow_check import NodeDef
from comfyui_pal.io.workflows import Graph, dumps

OUT_DIR = REPO / "subgraphs"


def zoom_fix(defs: dict[str, NodeDef]) -> dict:
    """Detect -> refine -> crop with context -> inpaint (InpaintModelConditioning + KSampler)
    -> decode -> stitch, as one node."""
    g = Graph(defs)
    det = g.add("PALDetectArtifacts", (0, 0))
    refine = g.add("PALMaskRefine", (360, 0), {"grow": 8, "fill_holes": True}, mask=(det, 1))
    crop = g.add("PALCropRegions", (720, 0), {"target_size": 512}, mask=(refine, 0))
    cond = g.add("InpaintModelConditioning", (1080, 0), pixels=(crop, 0), mask=(crop, 1))
    ks = g.add(
        "KSampler",
        (1440, 0),
        {"seed": 1, "steps": 25},
        positive=(cond, 0),
        negative=(cond, 1),
        latent_image=(cond, 2),
    )
    dec = g.add("VAEDecode", (1800, 0), samples=(ks, 0))
    stitch = g.add("PALStitchRegions", (2160, 0), stitch=(crop, 2), inpainted=(dec, 0))
    return blueprint(
        g,
        "PAL Zoom Fix",
        inputs=[
            ("image", "IMAGE", [(det, "image"), (crop, "image"), (stitch, "original")]),
            ("pal_model", "PAL_MODEL", [(det, "pal_model")]),
            ("model", "MODEL", [(ks, "model")]),
            ("vae", "VAE", [(cond, "vae"), (dec, "vae")]),
            ("positive", "CONDITIONING", [(cond, "positive")]),
            ("negative", "CONDITIONING", [(cond, "negative")]),
        ],
        outputs=[("image", "IMAGE", (stitch, 0)), ("repainted", "MASK", (refine, 0))],
        description="PAL's zoom-in fix as one node: each artifact region is cropped with "
        "context, repainted at the model's size and stitched back; pixels away from the "
        "regions stay bit-exact.",
    )


BLUEPRINTS = {"pal_zoom_fix": zoom_fix}


def files(defs: dict[str, NodeDef] | None = None) -> dict[Path, str]:
    defs = defs or definitions()
    return {OUT_DIR / f"{name}.json": dumps(make(defs)) for name, make in BLUEPRINTS.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only check the files are current")
    return write_or_check(files(), ap.parse_args().check)


if __name__ == "__main__":
    sys.exit(main())
