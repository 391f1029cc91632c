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
import json
import sys
from pathlib import Path

from comfyui_pal.io.workflow_check import (
    has_control,
    has_upload,
    is_widget,
    node_defs,
    widget_default,
)

REPO = Path(__file__).resolve().parents[1]
UI_DIR = REPO / "example_workflows"
API_DIR = REPO / "examples" / "api"
SHIPPED_MODEL = "shipped/pal_lite.safetensors"


def load_pack():
    """The pack as ComfyUI loads it (by path), for its node definitions."""
    name = "comfyui_pal_pack_for_workflows"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "__init__.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def definitions() -> dict:
    return node_defs(load_pack().NODE_CLASS_MAPPINGS)


class Graph:
    """A workflow under construction: nodes with widget values and links."""

    def __init__(self, defs: dict) -> None:
        self.defs, self.nodes, self.links = defs, [], []

    def add(self, kind: str, pos: tuple[int, int], widgets: dict | None = None, **inputs):
        """Add a node; ``inputs`` are ``(node, output slot)`` pairs. Returns the node."""
        node = {
            "id": len(self.nodes) + 1,
            "type": kind,
            "pos": list(pos),
            "widgets": widgets or {},
            "inputs": inputs,
        }
        self.nodes.append(node)
        return node

    def note(self, pos: tuple[int, int], text: str) -> None:
        self.nodes.append(
            {
                "id": len(self.nodes) + 1,
                "type": "Note",
                "pos": list(pos),
                "widgets": {"text": text},
                "inputs": {},
            }
        )

    def _widget_values(self, node: dict) -> list:
        if node["type"] == "Note":
            return [node["widgets"]["text"]]
        nd = self.defs[node["type"]]
        values = []
        for name in nd.widgets():
            spec = nd.spec(name)
            opts = spec[1] if len(spec) > 1 else {}
            default = opts.get("default", spec[0][0] if isinstance(spec[0], list) else None)
            values.append(node["widgets"].get(name, default))
            if spec[0] == "INT" and (
                name in ("seed", "noise_seed") or opts.get("control_after_generate")
            ):
                values.append("fixed")
            if opts.get("image_upload"):
                values.append("image")
        return values

    def ui(self, title: str) -> dict:
        """UI format (what the frontend saves and the template browser serves)."""
        links, out_links = [], {}
        nodes = []
        for order, node in enumerate(self.nodes):
            inputs = []
            if node["type"] != "Note":
                nd = self.defs[node["type"]]
                for part in ("required", "optional"):
                    for name, spec in nd.inputs.get(part, {}).items():
                        if name in node["inputs"]:
                            src, slot = node["inputs"][name]
                            lid = len(links) + 1
                            links.append([lid, src["id"], slot, node["id"], len(inputs), spec[0]])
                            out_links.setdefault((src["id"], slot), []).append(lid)
                            inputs.append({"name": name, "type": spec[0], "link": lid})
                        elif part == "required" and not is_widget(spec):
                            inputs.append({"name": name, "type": spec[0], "link": None})
            nodes.append(
                {
                    "id": node["id"],
                    "type": node["type"],
                    "pos": node["pos"],
                    "size": [320, 260 if node["type"] != "Note" else 180],
                    "flags": {},
                    "order": order,
                    "mode": 0,
                    "inputs": inputs,
                    "properties": {"Node name for S&R": node["type"]},
                    "widgets_values": self._widget_values(node),
                }
            )
        for n in nodes:
            if n["type"] == "Note":
                n["outputs"] = []
                continue
            nd = self.defs[n["type"]]
            n["outputs"] = [
                {"name": t, "type": t, "links": out_links.get((n["id"], i), []), "slot_index": i}
                for i, t in enumerate(nd.outputs)
            ]
        return {
            "last_node_id": len(nodes),
            "last_link_id": len(links),
            "nodes": nodes,
            "links": links,
            "groups": [],
            "config": {},
            "extra": {"info": {"name": title}},
            "version": 0.4,
        }

    def api(self) -> dict:
        """API format (``Export (API)``): node id -> class_type and inputs."""
        out = {}
        for node in self.nodes:
            if node["type"] == "Note":
                continue
            nd = self.defs[node["type"]]
            inputs = {}
            for name in nd.widgets():
                inputs[name] = node["widgets"].get(name, widget_default(nd.spec(name)))
            for name, (src, slot) in node["inputs"].items():
                inputs[name] = [str(src["id"]), slot]
            out[str(node["id"])] = {
                "class_type": node["type"],
                "inputs": inputs,
                "_meta": {"title": node["type"]},
            }
        return out


INPAINT_CKPT = "512-inpainting-ema.safetensors"  # SD 2 inpainting: repaints regions
TXT2IMG_CKPT = "v1-5-pruned-emaonly-fp16.safetensors"  # ComfyUI's default: generates


def _diffusion(g: Graph, models: str, x: int = 0, y: int = 300, inpaint: bool = True):
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


def _loader(g: Graph, pos=(0, 0)):
    return g.add("PALModelLoader", pos, {"model_name": SHIPPED_MODEL})


def detect_and_preview(g: Graph, models: str) -> None:
    g.note(
        (0, -220),
        "Detect perceptual artifacts with the shipped PAL model: the preview "
        "tints flagged pixels red, and PAR (artifact area ratio, lower is better) is in the "
        "summary. Swap the model for an official PAL4VST checkpoint in models/pal.",
    )
    image = g.add("LoadImage", (0, 0), {"image": "astronaut.png"})
    pal = _loader(g, (0, 360))
    det = g.add("PALDetectArtifacts", (360, 0), image=(image, 0), pal_model=(pal, 0))
    g.add("SaveImage", (720, 0), {"filename_prefix": "pal_detect"}, images=(det, 2))


def best_of_n(g: Graph, models: str) -> None:
    g.note(
        (0, -220),
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
    best = g.add("PALSelectBest", (1420, 0), {"top_k": 1}, image=(dec, 0), pal_model=(pal, 0))
    ranked = g.add("PALRankBatch", (1420, 360), image=(dec, 0), pal_model=(pal, 0))
    g.add("SaveImage", (1780, 0), {"filename_prefix": "pal_best"}, images=(best, 0))
    g.add("SaveImage", (1780, 360), {"filename_prefix": "pal_ranked"}, images=(ranked, 0))


def auto_fix_builtin(g: Graph, models: str) -> None:
    g.note(
        (0, -220),
        "One-node fix, no diffusion model needed: PAL Auto Fix detects "
        "artifacts, repaints confident regions with the built-in PatchMatch inpainter, "
        "re-detects and repeats; a change the detector does not like better is undone.",
    )
    image = g.add("LoadImage", (0, 0), {"image": "astronaut.png"})
    pal = _loader(g, (0, 360))
    fix = g.add("PALAutoFix", (360, 0), image=(image, 0), pal_model=(pal, 0))
    g.add("SaveImage", (720, 0), {"filename_prefix": "pal_fixed"}, images=(fix, 0))


def zoom_fix_composable(g: Graph, models: str) -> None:
    g.note(
        (0, -220),
        "The zoom-in fix as a graph: detect, refine the mask, crop each region "
        "with context at the model's size, inpaint with InpaintModelConditioning + KSampler, "
        "decode and stitch back (pixels away from the regions stay bit-exact).",
    )
    image = g.add("LoadImage", (0, 0), {"image": "astronaut.png"})
    pal = _loader(g, (0, 360))
    model, vae, pos, neg = _diffusion(g, models, 0, 560)
    small = models == "tiny"
    det = g.add("PALDetectArtifacts", (360, 0), image=(image, 0), pal_model=(pal, 0))
    refine = g.add("PALMaskRefine", (720, 0), {"grow": 8, "fill_holes": True}, mask=(det, 1))
    crop = g.add(
        "PALCropRegions",
        (1080, 0),
        {"target_size": 128 if small else 512},
        image=(image, 0),
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
        "PALStitchRegions", (2520, 0), original=(image, 0), stitch=(crop, 2), inpainted=(dec, 0)
    )
    g.add("SaveImage", (2880, 0), {"filename_prefix": "pal_zoom_graph"}, images=(stitch, 0))


def zoom_inpaint_diffusion(g: Graph, models: str) -> None:
    g.note(
        (0, -220),
        "Your inpainting checkpoint, zoomed in: PAL Zoom-In Inpaint repaints "
        "the detected regions in one node; PAL Auto Fix with the model connected loops "
        "detect -> inpaint -> re-detect until the image is clean.",
    )
    image = g.add("LoadImage", (0, 0), {"image": "astronaut.png"})
    pal = _loader(g, (0, 360))
    model, vae, pos, neg = _diffusion(g, models, 0, 560)
    small = models == "tiny"
    det = g.add("PALDetectArtifacts", (360, 0), image=(image, 0), pal_model=(pal, 0))
    steps, size = (2, 128) if small else (25, 512)
    zoom = g.add(
        "PALZoomInpaint",
        (720, 0),
        {"steps": steps, "target_size": size},
        image=(image, 0),
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
        image=(image, 0),
        pal_model=(pal, 0),
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


def build(name: str, models: str = "checkpoint", defs: dict | None = None) -> Graph:
    g = Graph(defs or definitions())
    WORKFLOWS[name][1](g, models)
    return g


def files(defs: dict | None = None) -> dict[Path, str]:
    """Every example file and its content."""
    defs = defs or definitions()
    out = {}
    for name, (title, _) in WORKFLOWS.items():
        g = build(name, defs=defs)
        out[UI_DIR / f"{name}.json"] = json.dumps(g.ui(title), indent=1) + "\n"
        out[API_DIR / f"{name}.json"] = json.dumps(g.api(), indent=1) + "\n"
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only check the files are current")
    args = ap.parse_args()
    stale = []
    for path, text in files().items():
        if path.exists() and path.read_text() == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    for path in stale:
        print(("out of date: " if args.check else "wrote ") + str(path.relative_to(REPO)))
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
