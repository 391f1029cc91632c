"""Static checks of ComfyUI workflows (UI and API format) against node definitions.

Definitions are ``INPUT_TYPES()``-shaped dicts (``{"required": {...}, "optional": {...}}``)
plus the output types. ``CORE_NODES`` describes the ComfyUI core nodes our examples use (only
what the checks need; tests/test_real_comfy.py compares it with a real ComfyUI's nodes); the
pack's own nodes come from their classes. No ComfyUI import: this runs in CI and before
``queue`` submits anything.
"""

from __future__ import annotations

from dataclasses import dataclass

WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN")
FILE_LIST = "FILE_LIST"  # a combo filled from the user's folders: any non-empty name
UI_ONLY = ("Note", "MarkdownNote")
SEEDS = ("seed", "noise_seed")  # the frontend adds a control widget after these
U64 = 0xFFFFFFFFFFFFFFFF
SAMPLERS = ["euler", "euler_ancestral", "heun", "dpm_2", "dpmpp_2m", "dpmpp_sde", "ddim", "uni_pc"]
SCHEDULERS = ["normal", "karras", "exponential", "sgm_uniform", "simple", "ddim_uniform", "beta"]


@dataclass
class NodeDef:
    inputs: dict  # {"required": {name: (type, opts)}, "optional": {...}}
    outputs: tuple[str, ...]

    def spec(self, name: str) -> tuple | None:
        for part in ("required", "optional"):
            if name in self.inputs.get(part, {}):
                return self.inputs[part][name]
        return None

    def widgets(self) -> list[str]:
        """Widget input names in the order the frontend stores ``widgets_values``."""
        return [
            name
            for part in ("required", "optional")
            for name, spec in self.inputs.get(part, {}).items()
            if is_widget(spec)
        ]


def is_widget(spec: tuple) -> bool:
    """Whether an input is a widget (a value in the node) rather than a connection."""
    kind = spec[0]
    return isinstance(kind, list) or kind in WIDGET_TYPES or kind == FILE_LIST


def _int(default: int, lo: int, hi: int, **extra) -> tuple:
    return ("INT", {"default": default, "min": lo, "max": hi, **extra})


def _float(default: float, lo: float, hi: float) -> tuple:
    return ("FLOAT", {"default": default, "min": lo, "max": hi})


CORE_NODES = {
    "LoadImage": NodeDef(
        {"required": {"image": (FILE_LIST, {"image_upload": True})}}, ("IMAGE", "MASK")
    ),
    "SaveImage": NodeDef(
        {"required": {"images": ("IMAGE",), "filename_prefix": ("STRING", {"default": "ComfyUI"})}},
        (),
    ),
    "PreviewImage": NodeDef({"required": {"images": ("IMAGE",)}}, ()),
    "CheckpointLoaderSimple": NodeDef(
        {"required": {"ckpt_name": (FILE_LIST, {})}}, ("MODEL", "CLIP", "VAE")
    ),
    "CLIPTextEncode": NodeDef(
        {"required": {"text": ("STRING", {"multiline": True}), "clip": ("CLIP",)}},
        ("CONDITIONING",),
    ),
    "EmptyLatentImage": NodeDef(
        {
            "required": {
                "width": _int(512, 16, 16384),
                "height": _int(512, 16, 16384),
                "batch_size": _int(1, 1, 4096),
            }
        },
        ("LATENT",),
    ),
    "KSampler": NodeDef(
        {
            "required": {
                "model": ("MODEL",),
                "seed": _int(0, 0, U64, control_after_generate=True),
                "steps": _int(20, 1, 10000),
                "cfg": _float(8.0, 0.0, 100.0),
                "sampler_name": (SAMPLERS,),
                "scheduler": (SCHEDULERS,),
                "positive": ("CONDITIONING",),
                "negative": ("CONDITIONING",),
                "latent_image": ("LATENT",),
                "denoise": _float(1.0, 0.0, 1.0),
            }
        },
        ("LATENT",),
    ),
    "VAEDecode": NodeDef({"required": {"samples": ("LATENT",), "vae": ("VAE",)}}, ("IMAGE",)),
    "InpaintModelConditioning": NodeDef(
        {
            "required": {
                "positive": ("CONDITIONING",),
                "negative": ("CONDITIONING",),
                "vae": ("VAE",),
                "pixels": ("IMAGE",),
                "mask": ("MASK",),
                "noise_mask": ("BOOLEAN", {"default": True}),
            }
        },
        ("CONDITIONING", "CONDITIONING", "LATENT"),
    ),
    # the harness's helper pack (../shared/comfy/tiny_models_pack): tiny random SD1.x parts
    "DemoTinyModels": NodeDef(
        {"required": {"inpaint": ("BOOLEAN", {"default": True})}},
        ("MODEL", "VAE", "CONDITIONING", "CONDITIONING"),
    ),
}


def node_defs(pack_mappings: dict) -> dict[str, NodeDef]:
    """The core definitions plus every node class of a pack's ``NODE_CLASS_MAPPINGS``."""
    defs = dict(CORE_NODES)
    for name, cls in pack_mappings.items():
        defs[name] = NodeDef(cls.INPUT_TYPES(), tuple(cls.RETURN_TYPES))
    return defs


def check_value(name: str, spec: tuple, value: object) -> str | None:
    """Why ``value`` is not valid for the widget ``spec`` (None when it is)."""
    kind, opts = spec[0], (spec[1] if len(spec) > 1 else {})
    if isinstance(kind, list):
        return None if value in kind else f"{name}={value!r} is not one of {kind}"
    if kind == FILE_LIST:
        return None if isinstance(value, str) and value else f"{name} needs a file name"
    if kind == "BOOLEAN":
        return None if isinstance(value, bool) else f"{name}={value!r} is not a boolean"
    if kind == "STRING":
        return None if isinstance(value, str) else f"{name}={value!r} is not a string"
    ok_type = isinstance(value, int) if kind == "INT" else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type:
        return f"{name}={value!r} is not {kind}"
    if value < opts.get("min", value) or value > opts.get("max", value):
        return f"{name}={value} is outside {opts.get('min')}..{opts.get('max')}"
    return None


def has_control(name: str, spec: tuple) -> bool:
    """Whether the frontend stores a control value ("fixed", ...) after this widget's value."""
    opts = spec[1] if len(spec) > 1 else {}
    return spec[0] == "INT" and (name in SEEDS or opts.get("control_after_generate", False))


def has_upload(spec: tuple) -> bool:
    """Whether the frontend stores an upload button's value after this widget's value."""
    return len(spec) > 1 and bool(spec[1].get("image_upload"))


def widget_default(spec: tuple) -> object:
    """A widget's default: its ``default`` option, else a combo's first choice."""
    opts = spec[1] if len(spec) > 1 else {}
    return opts.get("default", spec[0][0] if isinstance(spec[0], list) else None)


def validate_ui(wf: dict, defs: dict[str, NodeDef]) -> list[str]:
    """Problems of a UI-format workflow (empty when it is valid)."""
    problems = []
    nodes = {n["id"]: n for n in wf.get("nodes", [])}
    for link in wf.get("links", []):
        lid, src, sslot, dst, dslot, ltype = link
        if src not in nodes or dst not in nodes:
            problems.append(f"link {lid} joins a missing node")
            continue
        s, d = nodes[src], nodes[dst]
        out_types = defs[s["type"]].outputs if s["type"] in defs else ()
        if sslot >= len(out_types) or out_types[sslot] != ltype:
            problems.append(f"link {lid}: {s['type']} output {sslot} is not {ltype}")
        inp = d.get("inputs", [])[dslot] if dslot < len(d.get("inputs", [])) else None
        spec = defs[d["type"]].spec(inp["name"]) if inp and d["type"] in defs else None
        if spec is None or spec[0] != ltype or inp.get("link") != lid:
            problems.append(f"link {lid}: {d['type']} input {dslot} does not take {ltype}")
    for node in nodes.values():
        kind = node["type"]
        if kind in UI_ONLY:
            continue
        if kind not in defs:
            problems.append(f"node {node['id']}: unknown type {kind}")
            continue
        nd = defs[kind]
        linked = {i["name"] for i in node.get("inputs", []) if i.get("link") is not None}
        for name, spec in nd.inputs.get("required", {}).items():
            if not is_widget(spec) and name not in linked:
                problems.append(f"node {node['id']} ({kind}): required input {name} unconnected")
        values = list(node.get("widgets_values", []))
        for name in nd.widgets():
            spec = nd.spec(name)
            if not values:
                problems.append(f"node {node['id']} ({kind}): no value for widget {name}")
                break
            value = values.pop(0)
            if name not in linked and (why := check_value(name, spec, value)):
                problems.append(f"node {node['id']} ({kind}): {why}")
            if has_control(name, spec):
                control = values.pop(0) if values else None
                if control not in ("fixed", "increment", "decrement", "randomize"):
                    problems.append(f"node {node['id']} ({kind}): bad control {control!r}")
            if has_upload(spec) and values:
                values.pop(0)  # the upload button's value
        if values:
            problems.append(f"node {node['id']} ({kind}): {len(values)} extra widget values")
    return problems


def validate_api(wf: dict, defs: dict[str, NodeDef]) -> list[str]:
    """Problems of an API-format workflow (empty when it is valid)."""
    problems = []
    for nid, node in wf.items():
        kind = node.get("class_type")
        if kind not in defs:
            problems.append(f"node {nid}: unknown type {kind}")
            continue
        nd = defs[kind]
        inputs = node.get("inputs", {})
        for name, value in inputs.items():
            spec = nd.spec(name)
            if spec is None:
                problems.append(f"node {nid} ({kind}): unknown input {name}")
            elif isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                src = wf.get(value[0])
                outs = defs[src["class_type"]].outputs if src and src["class_type"] in defs else ()
                if value[1] >= len(outs) or outs[value[1]] != spec[0]:
                    problems.append(f"node {nid} ({kind}): input {name} is not fed a {spec[0]}")
            elif not is_widget(spec):
                problems.append(f"node {nid} ({kind}): input {name} needs a link")
            elif why := check_value(name, spec, value):
                problems.append(f"node {nid} ({kind}): {why}")
        for name in nd.inputs.get("required", {}):
            if name not in inputs:
                problems.append(f"node {nid} ({kind}): required input {name} missing")
    return problems
