"""Every API example runs through the real pack nodes in-process (ComfyUI's core nodes are the
stand-ins of comfy_stand_in): wiring, argument names and output slots are exercised for real.
"""

from __future__ import annotations

import json

import pytest
import torch
from comfy_stand_in import core_nodes, install
from conftest import REPO, load_pack_like_comfyui

from comfyui_pal.io.images import load_image

API = sorted((REPO / "examples" / "api").glob("*.json"))
IMAGES = REPO / "examples" / "images"


def run_api(workflow: dict, mappings: dict, core: dict) -> dict:
    """Execute an API-format workflow depth first; returns each node's outputs.

    Like ComfyUI's executor, everything runs under ``torch.inference_mode()``: tensors the
    nodes receive are inference tensors (no version counter, no autograd). A node fed a list
    output (``OUTPUT_IS_LIST``) runs once per item, as in ComfyUI; its result is the list of
    those runs (only output nodes may take one: nothing reads such a result here).
    """
    results: dict = {}
    fanned: set[str] = set()

    def run(nid: str):
        if nid in results:
            return results[nid]
        node = workflow[nid]
        kwargs, items = {}, {}
        for name, value in node["inputs"].items():
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                src_cls = mappings.get(workflow[value[0]]["class_type"])
                lists = getattr(src_cls, "OUTPUT_IS_LIST", ())
                out = run(value[0])
                assert value[0] not in fanned, "a node run once per item feeds another"
                if lists and lists[value[1]]:
                    items[name] = out[value[1]]
                else:
                    kwargs[name] = out[value[1]]
            else:
                kwargs[name] = value
        cls = mappings.get(node["class_type"])
        call = getattr(cls(), cls.FUNCTION) if cls is not None else core[node["class_type"]]
        if items:
            fanned.add(nid)
            n = max(len(v) for v in items.values())
            each = [{k: v[min(i, len(v) - 1)] for k, v in items.items()} for i in range(n)]
            results[nid] = [call(**kwargs, **one) for one in each]
        else:
            results[nid] = call(**kwargs)
        return results[nid]

    with torch.inference_mode():
        for nid in workflow:
            run(nid)
    return results


@pytest.fixture
def stand_in(monkeypatch):
    log = install(monkeypatch)
    pack = load_pack_like_comfyui()
    saved: list = []
    return pack, core_nodes(IMAGES, saved), saved, log


@pytest.mark.slow
@pytest.mark.parametrize("path", API, ids=lambda p: p.stem)
def test_every_api_example_runs_through_the_pack_nodes(path, stand_in):
    pack, core, saved, log = stand_in
    workflow = json.loads(path.read_text())
    results = run_api(workflow, pack.NODE_CLASS_MAPPINGS, core)
    for nid, node in workflow.items():
        if node["class_type"] == "PreviewAny":  # PAR, a summary or a history, shown
            runs = results[nid] if isinstance(results[nid], list) else [results[nid]]
            assert all(r["ui"]["text"][0] for r in runs), nid
    saves = [n for n in workflow.values() if n["class_type"] == "SaveImage"]
    assert len(saved) == len(saves) and all(img.dim() == 4 for _, img in saved)
    source = load_image(IMAGES / "rocket.png").permute(0, 2, 3, 1)
    for prefix, img in saved:
        if prefix == "pal_best":
            assert img.shape[0] == 1  # best of the 4 generated
        elif prefix == "pal_ranked":
            assert img.shape[0] == 4
        else:
            assert img.shape == source.shape, prefix
        # (Auto Fix with the stand-in sampler may rightly undo its noise fills: not checked)
        if prefix in ("pal_fixed", "pal_zoom_graph", "pal_zoom_inpaint"):
            assert not torch.equal(img, source), f"{prefix}: nothing was repainted"
    uses_sampler = any(n["class_type"] in ("KSampler", "PALZoomInpaint") for n in workflow.values())
    assert bool(log["sample"]) == uses_sampler
