"""The pack inside a real ComfyUI process: run by ComfyUI's own Python, not collected by pytest.

    python real_comfy_checks.py COMFY_DIR PACK_DIR WORK_DIR [TINY_MODELS_PACK_DIR]

Loads the pack the way ComfyUI does (``nodes.load_custom_node``) with ``--cpu`` and
``--base-directory WORK_DIR``, then checks, with ComfyUI's real ``folder_paths``,
``model_management``, ``ModelPatcher`` and ``ProgressBar``, what stand-ins cannot prove:
models/pal is registered and listed, the model cache hands ComfyUI a patcher it loads, unloads
and reloads, progress reaches ComfyUI's hook, an interrupt stops detection and the fix, and a
model dropped from our cache while a node output still holds it is neither reported as a leak
nor kept alive after the last reference goes. Prints one line per check; a failed check raises.
Everything runs under ``torch.inference_mode()``, as ComfyUI's executor does.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import itertools
import logging
import os
import shutil
import sys
import weakref
from pathlib import Path

comfy_dir, pack_dir, work, *extra_packs = (Path(a).resolve() for a in sys.argv[1:])
sys.path.insert(0, str(comfy_dir))
os.chdir(comfy_dir)

from comfy.cli_args import args  # noqa: E402

args.cpu = True
args.base_directory = str(work)

import comfy.model_management as mm  # noqa: E402
import comfy.utils  # noqa: E402
import folder_paths  # noqa: E402
import torch  # noqa: E402

# imported before ComfyUI's nodes, which puts comfy/ first on sys.path (shadowing utils/)
from app.custom_node_manager import CustomNodeManager  # noqa: E402

import nodes  # noqa: E402


def check(name: str, ok: bool, detail: object = "") -> None:
    if not ok:
        raise AssertionError(f"{name}: {detail}")
    print(f"ok  {name}")


class Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def loaded(model: torch.nn.Module) -> bool:
    """Whether ComfyUI's model manager currently holds ``model``'s patcher."""
    from comfyui_pal.cache import PATCHER_ATTR  # importable once the pack is loaded

    patcher = getattr(model, PATCHER_ATTR, None)
    return any(m.model is patcher for m in mm.current_loaded_models)


def interrupted(run, *args, **kwargs) -> bool:
    """Whether ``run(*args, **kwargs)`` stopped with ComfyUI's interrupt exception."""
    try:
        run(*args, **kwargs)
    except mm.InterruptProcessingException:
        return True
    finally:
        mm.interrupt_current_processing(False)
    return False


async def templates(pack_name: str) -> tuple[dict, dict]:
    """ComfyUI's template-browser routes as the server mounts them: the listing and every
    listed file of ``pack_name`` (name -> parsed JSON)."""
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    app, routes = web.Application(), web.RouteTableDef()
    CustomNodeManager().add_routes(routes, app, nodes.LOADED_MODULE_DIRS.items())
    app.add_routes(routes)
    async with TestClient(TestServer(app)) as client:
        listing = await (await client.get("/workflow_templates")).json()
        files = {}
        for name in listing.get(pack_name, []):
            reply = await client.get(f"/api/workflow_templates/{pack_name}/{name}.json")
            files[name] = await reply.json() if reply.status == 200 else reply.status
    return listing, files


def core_node_mismatches() -> list[str]:
    """Where workflow_check's table of ComfyUI core nodes disagrees with this ComfyUI."""
    from comfyui_pal.io.workflow_check import CORE_NODES, FILE_LIST, UI_ONLY

    problems = []
    for name, ours in CORE_NODES.items():
        if name in UI_ONLY:
            continue
        if name not in nodes.NODE_CLASS_MAPPINGS:
            problems.append(f"{name} does not exist here")
            continue
        cls = nodes.NODE_CLASS_MAPPINGS[name]
        real = cls.INPUT_TYPES()
        outputs = tuple(cls.RETURN_TYPES)
        if outputs != tuple(ours.outputs):
            problems.append(f"{name} outputs {outputs} != {ours.outputs}")
        if set(real.get("required", {})) != set(ours.inputs.get("required", {})):
            problems.append(f"{name} required {sorted(real['required'])}")
        for part, specs in ours.inputs.items():
            for key, spec in specs.items():
                got = real.get(part, {}).get(key)
                if got is None:
                    problems.append(f"{name}.{key} not a {part} input")
                    continue
                kind, opts = spec[0], (spec[1] if len(spec) > 1 else {})
                real_opts = got[1] if len(got) > 1 else {}
                if kind == FILE_LIST or isinstance(kind, list):
                    real_list = got[0] if isinstance(got[0], list) else real_opts.get("options")
                    if not isinstance(real_list, list) or (
                        isinstance(kind, list) and not set(kind) <= set(real_list)
                    ):
                        problems.append(f"{name}.{key} choices {got[0]!r}")
                elif kind != got[0]:
                    problems.append(f"{name}.{key} type {got[0]} != {kind}")
                for bound in ("min", "max"):
                    if bound in opts and opts[bound] != real_opts.get(bound):
                        problems.append(f"{name}.{key} {bound} {real_opts.get(bound)}")
    return problems


def main() -> None:
    logging.getLogger().setLevel(logging.INFO)
    warned = Warnings()
    logging.getLogger().addHandler(warned)

    (work / "custom_nodes").mkdir(parents=True, exist_ok=True)
    link = work / "custom_nodes" / "comfyui-pal"
    if not link.exists():
        link.symlink_to(pack_dir, target_is_directory=True)
    user_models = work / "models" / "pal" / "sub"
    user_models.mkdir(parents=True, exist_ok=True)
    shipped = pack_dir / "weights" / "pal_lite.safetensors"
    shutil.copy(shipped, user_models / "mine.safetensors")
    (user_models / "readme.txt").write_text("not a model")

    check("pack imports", asyncio.run(nodes.load_custom_node(str(link))))
    for extra in extra_packs:  # the shared tiny-model pack: its node is in the examples too
        check(f"{extra.name} imports", asyncio.run(nodes.load_custom_node(str(extra))))
    ours = {k: v for k, v in nodes.NODE_CLASS_MAPPINGS.items() if k.startswith("PAL")}
    check("twelve PAL nodes registered", len(ours) == 12, sorted(ours))
    Loader, Detect = ours["PALModelLoader"], ours["PALDetectArtifacts"]
    AutoFix = ours["PALAutoFix"]

    listing, served = asyncio.run(templates(link.name))
    ours_files = sorted(p.stem for p in (pack_dir / "example_workflows").glob("*.json"))
    check(
        "the template browser lists exactly our UI workflows",
        sorted(listing.get(link.name, [])) == ours_files,
        listing,
    )
    check(
        "and serves each as a UI-format graph",
        all(isinstance(g, dict) and "nodes" in g and "links" in g for g in served.values()),
        {k: type(v) for k, v in served.items()},
    )

    web = nodes.EXTENSION_WEB_DIRS.get(link.name)
    check(
        "the help pages are served from the pack's web directory",
        web is not None and (Path(web) / "docs" / "PALAutoFix.md").is_file(),
        web,
    )
    node_defs = CustomNodeManager().build_translations().get("en", {}).get("nodeDefs", {})
    check(
        "the English locale names every node",
        set(ours) <= set(node_defs) and node_defs["PALAutoFix"]["display_name"] == "PAL Auto Fix",
        sorted(node_defs)[:12],
    )

    mismatches = core_node_mismatches()
    check("workflow_check knows this ComfyUI's core nodes", not mismatches, mismatches)

    choices = Loader.INPUT_TYPES()["required"]["model_name"][0]
    check(
        "models/pal under --base-directory listed with the shipped model",
        choices[0] == "shipped/pal_lite.safetensors" and "sub/mine.safetensors" in choices,
        choices,
    )
    check("non-model files not offered", not any(c.endswith(".txt") for c in choices), choices)
    check(
        "the official releases are offered for download",
        "PAL4VST unified (download)" in choices and "PAL4VST shadow (download)" in choices,
        choices,
    )
    listed = folder_paths.get_filename_list("pal")
    check("ComfyUI's own listing of 'pal' agrees", "sub/mine.safetensors" in listed, listed)

    from comfyui_pal import cache
    from comfyui_pal.io.images import load_image

    rocket = load_image(pack_dir / "examples" / "images" / "rocket.png").permute(0, 2, 3, 1)
    image = torch.cat([rocket, rocket.flip(2)])
    fix_args = dict(
        inpainter="patchmatch",
        threshold=0.5,
        target_par=0.0,
        max_iterations=2,
        min_confidence=0.0,
        grow=6,
        blend_radius=12,
        seed=7,
    )
    with torch.inference_mode():
        (pal,) = Loader().load("shipped/pal_lite.safetensors", "auto", "auto")
        (again,) = Loader().load("shipped/pal_lite.safetensors", "auto", "auto")
        check("one copy shared by every loader", pal.model is again.model)
        device = next(pal.model.parameters()).device
        check("device is ComfyUI's", device == torch.device(mm.get_torch_device()), device)
        check("model carries its ModelPatcher", hasattr(pal.model, cache.PATCHER_ATTR))

        from comfyui_pal.models.memory import cache_bytes, model_bytes

        patcher = getattr(pal.model, cache.PATCHER_ATTR)
        size = model_bytes(pal.model) + cache_bytes(pal.model)
        check("ComfyUI sizes the model with its caches", patcher.model_size() == size, size)
        asked: list[dict] = []
        real_load = mm.load_models_gpu

        @functools.wraps(real_load)  # keeps the signature our call inspects
        def recording(*a, **kw):
            asked.append(kw)
            return real_load(*a, **kw)

        mm.load_models_gpu = recording
        try:
            probs = Detect().detect(image, pal, "resize", 0.5)[0]
        finally:
            mm.load_models_gpu = real_load
        check(
            "detection asks load_models_gpu for a full load and its activation memory",
            asked
            and asked[-1].get("force_full_load") is True
            and asked[-1].get("memory_required", 0) > 10 * 2**20,
            asked,
        )
        check("detection loads the model through load_models_gpu", loaded(pal.model))
        mm.unload_all_models()
        check("ComfyUI can unload it", not loaded(pal.model))
        check(
            "after unloading, detection reloads it with the same result",
            torch.equal(Detect().detect(image, pal, "resize", 0.5)[0], probs) and loaded(pal.model),
        )

        events: list[tuple[int, int]] = []
        comfy.utils.set_progress_bar_global_hook(
            lambda value, total, preview, node_id=None: events.append((value, total))
        )
        big = torch.rand(1, 1024, 1024, 3, generator=torch.Generator().manual_seed(1))
        Detect().detect(big, pal, "tiled", 0.5)
        check(
            "tiled detection reports progress to ComfyUI's bar",
            len(events) > 2 and events[-1][0] == events[-1][1],
            events,
        )
        events.clear()
        fixed = AutoFix().fix(image[:1], pal, **fix_args)[0]
        check("auto fix repaints", not torch.equal(fixed, image[:1]))
        check(
            "auto fix shows one bar, one total, from empty at once to full at the end",
            len(events) >= 3
            and len({t for _, t in events}) == 1
            and events[0][0] == 0
            and events[-1][0] == events[-1][1]
            and all(a[0] <= b[0] for a, b in itertools.pairwise(events)),
            events,
        )

        tiny = nodes.NODE_CLASS_MAPPINGS.get("DemoTinyModels")
        if tiny is not None:  # ComfyUI's real KSampler, with its own per-step bar
            model, vae, positive, negative = tiny.execute(inpaint=True).args
            events.clear()
            AutoFix().fix(
                image[:1],
                pal,
                model=model,
                vae=vae,
                positive=positive,
                negative=negative,
                steps=3,
                cfg=1.0,
                sampler_name="euler",
                scheduler="normal",
                denoise=1.0,
                target_size=64,
                **fix_args,
            )
            check(
                "auto fix with a diffusion model folds the sampler's steps into its one bar",
                len({t for _, t in events}) == 1
                and events[0][0] == 0
                and events[-1][0] == events[-1][1]
                and all(a[0] <= b[0] for a, b in itertools.pairwise(events))
                and len(events) > 3 * 2,  # 3 steps per crop, on top of the spans
                events,
            )

        mm.interrupt_current_processing(True)
        check("an interrupt stops detection", interrupted(Detect().detect, big, pal, "tiled", 0.5))
        mm.interrupt_current_processing(True)
        check("an interrupt stops auto fix", interrupted(AutoFix().fix, image[:1], pal, **fix_args))

        budget = cache.CACHE.budget_bytes
        cache.CACHE.budget_bytes = 1  # every new load evicts the others
        (other,) = Loader().load("sub/mine.safetensors", "auto", "auto")
        Detect().detect(image, other, "resize", 0.5)
        check("the other model evicted the first from our cache", len(cache.CACHE) == 1)
        warned.messages.clear()
        Detect().detect(image, pal, "resize", 0.5)  # still held, as by a cached node output
        Detect().detect(image, other, "resize", 0.5)  # load_models_gpu runs its leak check
        leaks = [m for m in warned.messages if "leak" in m.lower()]
        check("an evicted model still in use is not reported as a leak", not leaks, leaks)
        gone = weakref.ref(pal.model)
        del pal, again, probs, patcher
        gc.collect()
        mm.cleanup_models()
        check("the last reference gone, the evicted model is freed", gone() is None)
        cache.CACHE.budget_bytes = budget
    print("all checks passed")


if __name__ == "__main__":
    main()
