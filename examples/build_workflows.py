"""The example workflows, defined once in Python: writes the UI-format files ComfyUI's
template browser serves (``example_workflows/``) and their API-format twins
(``examples/api/``, for ``comfyui-pal queue`` and the end-to-end harness).

    python examples/build_workflows.py          # rewrite both folders
    python examples/build_workflows.py --check  # exit 1 if a file is out of date

The template browser shows a UI file's name as its title, so those files are named by their
titles; the API twins keep short names. Each UI file is laid out for reading
(``workflow_layout.py``), explains itself in a note and shows PAR, summaries and histories in
Preview as Text nodes. Thumbnails (``example_workflows/NAME.jpg``) come from a real run:
``python examples/build_thumbnails.py``.

``build(name, models="tiny")`` gives the diffusion examples wired to the harness's tiny random
models instead of a checkpoint, at a small size, so they run on a CPU.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workflow_layout import lay_out

from comfyui_pal.io.workflow_check import NodeDef, node_defs
from comfyui_pal.io.workflows import Graph, Output, dumps

REPO = Path(__file__).resolve().parents[1]
UI_DIR = REPO / "example_workflows"
API_DIR = REPO / "examples" / "api"
SHIPPED_MODEL = "shipped/pal_lite.safetensors"
AUTO = (0, 0)  # a node's position: workflow_layout places every node


class AnyType(str):
    """ComfyUI's wildcard input type ``*``: equal to every type. Stands in for a wildcard
    in ``workflow_check`` so its link checks accept what PreviewAny takes."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str)

    def __ne__(self, other: object) -> bool:
        return not isinstance(other, str)

    __hash__ = str.__hash__


ANY = AnyType("*")
TEXT_LINE_H, TEXT_BOX_PAD = 12, 40  # a Preview as Text line (10 px text), its box's inset
# core nodes the examples use besides workflow_check's (comfy_extras: both ComfyUI 0.3.75 and
# 0.8.0 have them, with these inputs)
MASK_OPERATIONS = ["multiply", "add", "subtract", "and", "or", "xor"]
EXTRA_CORE_NODES = {
    "PreviewAny": NodeDef({"required": {"source": (ANY, {})}}, ()),
    "MaskComposite": NodeDef(
        {
            "required": {
                "destination": ("MASK",),
                "source": ("MASK",),
                "x": ("INT", {"default": 0, "min": 0, "max": 16384, "step": 1}),
                "y": ("INT", {"default": 0, "min": 0, "max": 16384, "step": 1}),
                "operation": (MASK_OPERATIONS,),
            }
        },
        ("MASK",),
    ),
    "DifferentialDiffusion": NodeDef(
        {
            "required": {"model": ("MODEL",)},
            "optional": {
                "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01})
            },
        },
        ("MODEL",),
    ),
}
CORE_TITLES = {  # what the frontend names ComfyUI's core nodes (for the layout's widths)
    "LoadImage": "Load Image",
    "SaveImage": "Save Image",
    "CheckpointLoaderSimple": "Load Checkpoint",
    "CLIPTextEncode": "CLIP Text Encode (Prompt)",
    "EmptyLatentImage": "Empty Latent Image",
    "VAEDecode": "VAE Decode",
    "PreviewAny": "Preview as Text",
    "DifferentialDiffusion": "Differential Diffusion",
}


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
    return {**node_defs(load_pack().NODE_CLASS_MAPPINGS), **EXTRA_CORE_NODES}


class Template(Graph):
    """A ``Graph`` whose UI format is the template users open: nodes laid out and sized
    (``workflow_layout``), notes rendered as markdown, outputs named as the node names them
    and links typed by what they carry (as the frontend saves them)."""

    def __init__(self, defs: dict[str, NodeDef]) -> None:
        super().__init__(defs)
        self.titles: dict[int, str] = {}
        self.extra: dict[int, int] = {}  # node id -> px its text box takes

    def titled(self, node: dict, title: str) -> dict:
        """Give ``node`` the title the frontend shows instead of its type's name."""
        self.titles[node["id"]] = title
        return node

    def show(self, output: Output, title: str, lines: int = 18) -> dict:
        """A Preview as Text node titled ``title`` that shows ``output`` (PAR, a summary, a
        history) once the workflow ran, in a box ``lines`` lines high."""
        node = self.titled(self.add("PreviewAny", AUTO, source=output), title)
        self.extra[node["id"]] = TEXT_BOX_PAD + lines * TEXT_LINE_H
        return node

    def ui(self, title: str) -> dict:
        wf = super().ui(title)
        pack = load_pack()
        by_id = {n["id"]: n for n in wf["nodes"]}
        for node in wf["nodes"]:
            if node["type"] == "Note":
                node.update(type="MarkdownNote", title="Read me", properties={})
            cls = pack.NODE_CLASS_MAPPINGS.get(node["type"])
            for out, name in zip(node["outputs"], getattr(cls, "RETURN_NAMES", ()), strict=False):
                out["name"] = name
            if node["id"] in self.titles:
                node["title"] = self.titles[node["id"]]
        for link in wf["links"]:  # a link carries its source's type (into ``*`` inputs too)
            link[5] = self.defs[by_id[link[1]]["type"]].outputs[link[2]]
        titles = {**CORE_TITLES, **pack.NODE_DISPLAY_NAME_MAPPINGS}
        return lay_out(wf, self.defs, titles, self.extra)


INPAINT_CKPT = "512-inpainting-ema.safetensors"  # SD 2 inpainting: repaints regions
TXT2IMG_CKPT = "v1-5-pruned-emaonly-fp16.safetensors"  # ComfyUI's default: generates
EXAMPLE_IMAGE = "rocket.png"  # LoadImage file; the tests serve it from examples/images

YOUR_IMAGE = (
    "**Your image:** `rocket.png` is a sample that ships with the pack, in "
    "`custom_nodes/comfyui-pal/examples/images/` (copy it into `ComfyUI/input/` to run this "
    "as it is). For your own, click *choose file to upload* in **Load Image**, drop an image "
    "on it, or pick one already in `ComfyUI/input/`."
)
INPAINT_CHECKPOINT = (
    "**Your checkpoint:** an inpainting model in `ComfyUI/models/checkpoints`, picked in "
    "**Load Checkpoint**: any SD 1.5 or SDXL inpainting checkpoint (an ordinary one works "
    "too, less well), or SD 2's `512-inpainting-ema.safetensors` that this names "
    "(Hugging Face, stabilityai/stable-diffusion-2-inpainting). People get them from "
    "Hugging Face or Civitai. Set `target_size` to the model's size: 512 for SD 1.5 / 2, "
    "1024 for SDXL."
)
PROMPTS = (
    "**Prompts:** the positive prompt says what the repaint should look like, the negative "
    "what to avoid; leave them general."
)


def _diffusion(
    g: Template, models: str, inpaint: bool = True
) -> tuple[Output, Output, Output, Output]:
    """(model, vae, positive, negative) outputs from a checkpoint or the tiny test models."""
    if models == "tiny":
        tiny = g.add("DemoTinyModels", AUTO, {"inpaint": inpaint})
        return (tiny, 0), (tiny, 1), (tiny, 2), (tiny, 3)
    ckpt_name = INPAINT_CKPT if inpaint else TXT2IMG_CKPT
    ckpt = g.add("CheckpointLoaderSimple", AUTO, {"ckpt_name": ckpt_name})
    positive = "a clean, natural, detailed photograph"
    pos = g.add("CLIPTextEncode", AUTO, {"text": positive}, clip=(ckpt, 1))
    negative = "artifacts, distorted, blurry, smeared, deformed"
    neg = g.add("CLIPTextEncode", AUTO, {"text": negative}, clip=(ckpt, 1))
    g.titled(pos, "Positive prompt")
    g.titled(neg, "Negative prompt")
    return (ckpt, 0), (ckpt, 2), (pos, 0), (neg, 0)


def _note(g: Template, *paragraphs: str) -> None:
    """The workflow's explanation (markdown), shown above the graph."""
    g.note(AUTO, "\n\n".join(paragraphs))


def _loader(g: Template) -> Output:
    return g.add("PALModelLoader", AUTO, {"model_name": SHIPPED_MODEL}), 0


def _image_and_model(g: Template) -> tuple[Output, Output]:
    """The example image and the shipped PAL model."""
    image = g.add("LoadImage", AUTO, {"image": EXAMPLE_IMAGE})
    return (image, 0), _loader(g)


def detect_and_preview(g: Template, models: str) -> None:
    _note(
        g,
        "## Detect and preview artifacts",
        "PAL marks the pixels of an image that look wrong. **Load Image** -> **PAL Detect "
        "Artifacts** -> the preview tints flagged pixels red; **PAR** (artifact area ratio: "
        "the flagged fraction, lower is better) and the summary show on the right.",
        YOUR_IMAGE,
        "**Model:** nothing to download, the shipped PAL-Lite is in the pack. For real "
        "generator artifacts (hands, broken objects) put the official PAL4VST checkpoint in "
        "`ComfyUI/models/pal` and pick it in **PAL Model Loader**.",
    )
    image, pal = _image_and_model(g)
    det = g.add("PALDetectArtifacts", AUTO, image=image, pal_model=pal)
    g.add("SaveImage", AUTO, {"filename_prefix": "pal_detect"}, images=(det, 2))
    g.show((det, 3), "PAR (lower is better)", lines=2)
    g.show((det, 4), "Detection summary", lines=4)


def best_of_n(g: Template, models: str) -> None:
    _note(
        g,
        "## Best of N: keep the cleanest image",
        "Generate four images, detect artifacts once (**PAL Detect Artifacts**) and keep the "
        "one with the fewest (**PAL Select Best**); **PAL Rank Batch** saves all four, best "
        "first, from the same detection, and the boxes on the right show their PAR (lower is "
        "better).",
        "**Your checkpoint:** any SD 1.5 or SDXL text-to-image checkpoint in "
        "`ComfyUI/models/checkpoints`, picked in **Load Checkpoint**. This names ComfyUI's "
        "default, `v1-5-pruned-emaonly-fp16.safetensors` (Hugging Face, "
        "Comfy-Org/stable-diffusion-v1-5-archive); Civitai has many more. For SDXL set "
        "**Empty Latent Image** to 1024 x 1024.",
        "**Prompts:** write what you want in **Positive prompt**.",
    )
    model, vae, pos, neg = _diffusion(g, models, inpaint=False)
    small = models == "tiny"
    latent = g.add(
        "EmptyLatentImage",
        AUTO,
        {"width": 64 if small else 512, "height": 64 if small else 512, "batch_size": 4},
    )
    ks = g.add(
        "KSampler",
        AUTO,
        {"seed": 7, "steps": 2 if small else 25},
        model=model,
        positive=pos,
        negative=neg,
        latent_image=(latent, 0),
    )
    dec = g.add("VAEDecode", AUTO, samples=(ks, 0), vae=vae)
    pal = _loader(g)
    det = g.add("PALDetectArtifacts", AUTO, image=(dec, 0), pal_model=pal)  # one detection,
    probs = (det, 0)  # shared by both curate nodes (neither detects the batch again)
    g.show((det, 4), "PAR of each image (summary)", lines=4)
    best = g.add("PALSelectBest", AUTO, {"top_k": 1}, image=(dec, 0), probability=probs)
    ranked = g.add("PALRankBatch", AUTO, image=(dec, 0), probability=probs)
    g.add("SaveImage", AUTO, {"filename_prefix": "pal_best"}, images=(best, 0))
    g.show((best, 3), "Why this one (summary)", lines=4)
    g.add("SaveImage", AUTO, {"filename_prefix": "pal_ranked"}, images=(ranked, 0))
    g.show((ranked, 3), "All four, best first (summary)", lines=4)


def auto_fix_builtin(g: Template, models: str) -> None:
    _note(
        g,
        "## Auto fix, no diffusion model",
        "**PAL Auto Fix** detects artifacts, repaints the confident ones with the built-in "
        "PatchMatch inpainter, detects again and repeats; a repaint the detector does not "
        "like better is undone.",
        YOUR_IMAGE,
        "**Why a fix was kept or undone:** the history on the right, per round: PAR, then "
        "each region's `outcome` (repainted, undone, reverted or skipped) and `reason`. "
        "Regions across objects are skipped as *needs a diffusion model*: template 5 "
        "repaints those with your checkpoint.",
    )
    image, pal = _image_and_model(g)
    fix = g.add("PALAutoFix", AUTO, image=image, pal_model=pal)
    g.add("SaveImage", AUTO, {"filename_prefix": "pal_fixed"}, images=(fix, 0))
    g.show((fix, 2), "History: why each fix was kept or undone")


def _crop_repaint_stitch(
    g: Template,
    image: Output,
    mask: Output,
    sampling: tuple[Output, Output, Output, Output],
    small: bool,
    prefix: str,
) -> None:
    """The zoom-in repaint chain: crop ``mask``'s regions of ``image`` with context, inpaint
    the crops (InpaintModelConditioning + KSampler on ``sampling`` = model, vae, positive,
    negative), decode, stitch back and save as ``prefix``; the crop report is shown."""
    model, vae, pos, neg = sampling
    crop = g.add(
        "PALCropRegions", AUTO, {"target_size": 128 if small else 512}, image=image, mask=mask
    )
    cond = g.add(
        "InpaintModelConditioning",
        AUTO,
        positive=pos,
        negative=neg,
        vae=vae,
        pixels=(crop, 0),
        mask=(crop, 1),
    )
    ks = g.add(
        "KSampler",
        AUTO,
        {"seed": 1, "steps": 2 if small else 25},
        model=model,
        positive=(cond, 0),
        negative=(cond, 1),
        latent_image=(cond, 2),
    )
    dec = g.add("VAEDecode", AUTO, samples=(ks, 0), vae=vae)
    stitch = g.add("PALStitchRegions", AUTO, original=image, stitch=(crop, 2), inpainted=(dec, 0))
    g.add("SaveImage", AUTO, {"filename_prefix": prefix}, images=(stitch, 0))
    g.show((crop, 3), "Regions cropped, merged or skipped")


def zoom_fix_composable(g: Template, models: str) -> None:
    _note(
        g,
        "## Zoom-in fix as a graph",
        "Detect, refine the mask, crop each region with context at the model's size, "
        "inpaint the crops (**InpaintModelConditioning** + **KSampler**), decode and stitch "
        "them back; pixels away from the regions stay bit-exact. The boxes show PAR and "
        "which regions were cropped, merged or skipped.",
        YOUR_IMAGE,
        INPAINT_CHECKPOINT,
        PROMPTS,
    )
    image, pal = _image_and_model(g)
    model, vae, pos, neg = _diffusion(g, models)
    small = models == "tiny"
    det = g.add("PALDetectArtifacts", AUTO, image=image, pal_model=pal)
    refine = g.add("PALMaskRefine", AUTO, {"grow": 8, "fill_holes": True}, mask=(det, 1))
    _crop_repaint_stitch(g, image, (refine, 0), (model, vae, pos, neg), small, "pal_zoom_graph")
    g.show((det, 4), "Detection summary (PAR)", lines=4)


def zoom_inpaint_diffusion(g: Template, models: str) -> None:
    _note(
        g,
        "## Zoom-in inpaint and auto fix with your checkpoint",
        "**PAL Zoom-In Inpaint** repaints every detected region once, zoomed in. **PAL Auto "
        "Fix** with the model connected loops detect -> inpaint -> detect until PAR reaches "
        "`target_par`, undoing repaints that do not help; its history says why.",
        YOUR_IMAGE,
        INPAINT_CHECKPOINT,
        PROMPTS,
    )
    image, pal = _image_and_model(g)
    model, vae, pos, neg = _diffusion(g, models)
    small = models == "tiny"
    det = g.add("PALDetectArtifacts", AUTO, image=image, pal_model=pal)
    steps, size = (2, 128) if small else (25, 512)
    zoom = g.add(
        "PALZoomInpaint",
        AUTO,
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
        AUTO,
        {"max_iterations": 1, "steps": steps, "target_size": size},
        image=image,
        pal_model=pal,
        model=model,
        vae=vae,
        positive=pos,
        negative=neg,
    )
    g.show((det, 4), "Detection summary (PAR)", lines=4)
    g.add("SaveImage", AUTO, {"filename_prefix": "pal_zoom_inpaint"}, images=(zoom, 0))
    g.add("SaveImage", AUTO, {"filename_prefix": "pal_auto_fix_model"}, images=(fix, 0))
    g.show((fix, 2), "History: why each fix was kept or undone")


# API name -> (title: the UI file's name, the template browser's title; builder)
def soft_repaint_differential(g: Template, models: str) -> None:
    _note(
        g,
        "## Soft repaint with Differential Diffusion",
        "PAL's probability is a per-pixel strength: inside each (grown) artifact region it is "
        "kept as it is (**MaskComposite** multiply), so **Differential Diffusion** repaints "
        "pixels the detector is sure of fully and the doubtful ones only a little. Each region "
        "is cropped with context, repainted at the model's size and stitched back; pixels away "
        "from the regions stay bit-exact.",
        YOUR_IMAGE,
        INPAINT_CHECKPOINT,
        PROMPTS,
    )
    image, pal = _image_and_model(g)
    model, vae, pos, neg = _diffusion(g, models)
    small = models == "tiny"
    det = g.add("PALDetectArtifacts", AUTO, image=image, pal_model=pal)
    refine = g.add("PALMaskRefine", AUTO, {"grow": 16, "fill_holes": True}, mask=(det, 1))
    soft = g.add(
        "MaskComposite",
        AUTO,
        {"operation": "multiply"},
        destination=(det, 0),
        source=(refine, 0),
    )
    diff = g.add("DifferentialDiffusion", AUTO, model=model)
    sampling = ((diff, 0), vae, pos, neg)
    _crop_repaint_stitch(g, image, (soft, 0), sampling, small, "pal_soft_repaint")
    g.show((det, 4), "Detection summary (PAR)", lines=4)


WORKFLOWS = {
    "01_pal_detect_preview": ("PAL 1 - Detect and preview artifacts", detect_and_preview),
    "02_pal_best_of_n": ("PAL 2 - Best of N, keep the cleanest image", best_of_n),
    "03_pal_auto_fix_builtin": ("PAL 3 - Auto fix, no diffusion model", auto_fix_builtin),
    "04_pal_zoom_fix_composable": (
        "PAL 4 - Zoom-in fix as a graph (your checkpoint)",
        zoom_fix_composable,
    ),
    "05_pal_zoom_inpaint_diffusion": (
        "PAL 5 - Zoom-in inpaint and auto fix (your checkpoint)",
        zoom_inpaint_diffusion,
    ),
    "06_pal_soft_repaint_differential": (
        "PAL 6 - Soft repaint with Differential Diffusion (your checkpoint)",
        soft_repaint_differential,
    ),
}


def build(
    name: str, models: str = "checkpoint", defs: dict[str, NodeDef] | None = None
) -> Template:
    """The workflow ``name`` of ``WORKFLOWS``; ``models="tiny"`` wires the harness's models."""
    g = Template(defs or definitions())
    WORKFLOWS[name][1](g, models)
    return g


def ui_path(name: str) -> Path:
    """The template file of the workflow ``name`` (named by its title)."""
    return UI_DIR / f"{WORKFLOWS[name][0]}.json"


def files(defs: dict[str, NodeDef] | None = None) -> dict[Path, str]:
    """Every example file and its content."""
    defs = defs or definitions()
    out = {}
    for name, (title, _) in WORKFLOWS.items():
        g = build(name, defs=defs)
        out[ui_path(name)] = dumps(g.ui(title))
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


def stale_files(current: dict[Path, str]) -> list[Path]:
    """Workflow files in the example folders that the builder no longer writes."""
    found = [*UI_DIR.glob("*.json"), *API_DIR.glob("*.json")]
    return sorted(p for p in found if p not in current)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only check the files are current")
    check = ap.parse_args().check
    current = files()
    for path in stale_files(current):
        print(("left over: " if check else "removed ") + str(path.relative_to(REPO)))
        if not check:
            path.unlink()
    return write_or_check(current, check) or int(check and bool(stale_files(current)))


if __name__ == "__main__":
    sys.exit(main())
