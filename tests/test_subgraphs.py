"""The subgraph blueprints in ``subgraphs/``: current, internally consistent, and the same
graph as the template they wrap (``04_pal_zoom_fix_composable``)."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest
from conftest import REPO
from test_workflows import build_workflows

from comfyui_pal.io.subgraphs import INPUT_NODE, OUTPUT_NODE, flatten

spec = importlib.util.spec_from_file_location(
    "build_subgraphs", REPO / "examples" / "build_subgraphs.py"
)
build_subgraphs = importlib.util.module_from_spec(spec)
sys.modules["build_subgraphs"] = build_subgraphs
spec.loader.exec_module(build_subgraphs)

FILE = REPO / "subgraphs" / "pal_zoom_fix.json"


@pytest.fixture(scope="module")
def defs():
    return build_workflows.definitions()


def test_the_committed_blueprints_are_what_the_builder_writes(defs):
    files = build_subgraphs.files(defs)
    assert sorted(files) == sorted((REPO / "subgraphs").glob("*.json"))
    for path, text in files.items():
        assert path.read_text() == text, f"{path} is stale: run python examples/build_subgraphs.py"


def test_every_link_of_the_blueprint_is_where_both_its_ends_say():
    workflow = json.loads(FILE.read_text())
    (host,) = workflow["nodes"]
    (d,) = workflow["definitions"]["subgraphs"]
    assert host["type"] == d["id"] and workflow["version"] == 0.4
    links = {link["id"]: link for link in d["links"]}
    assert len(links) == len(d["links"]) == d["state"]["lastLinkId"]
    nodes = {n["id"]: n for n in d["nodes"]}
    seen = set()
    for node in d["nodes"]:
        for slot, entry in enumerate(node["inputs"]):
            if entry["link"] is None:
                continue
            link = links[entry["link"]]
            assert (link["target_id"], link["target_slot"]) == (node["id"], slot)
            assert link["type"] == entry["type"]
            seen.add(link["id"])
        for slot, out in enumerate(node["outputs"]):
            for lid in out["links"]:
                assert (links[lid]["origin_id"], links[lid]["origin_slot"]) == (node["id"], slot)
    for side, ports, boundary in (
        ("in", d["inputs"], INPUT_NODE),
        ("out", d["outputs"], OUTPUT_NODE),
    ):
        for k, port in enumerate(ports):
            for lid in port["linkIds"]:
                link = links[lid]
                end = (link["origin_id"], link["origin_slot"]) if side == "in" else (
                    link["target_id"], link["target_slot"])  # fmt: skip
                assert end == (boundary, k) and link["type"] == port["type"]
                if side == "out":
                    assert lid in nodes[link["origin_id"]]["outputs"][link["origin_slot"]]["links"]
    assert seen | {lid for p in d["outputs"] for lid in p["linkIds"]} == set(links)
    assert [p["name"] for p in host["inputs"]] == [p["name"] for p in d["inputs"]]
    assert [p["name"] for p in host["outputs"]] == ["image", "repainted"]
    unlinked = [
        (n["type"], e["name"]) for n in d["nodes"] for e in n["inputs"] if e["link"] is None
    ]
    assert unlinked == []  # every input the nodes need is inside or on the boundary


def test_the_blueprint_is_the_composable_template_as_one_node(defs):
    """Its nodes, widget values and wiring are those of 04, with the template's image,
    loaders and conditionings replaced by the boundary."""
    template = build_workflows.build("04_pal_zoom_fix_composable", defs=defs)
    ui = template.ui("04")
    api = template.api()
    workflow = json.loads(FILE.read_text())
    (d,) = workflow["definitions"]["subgraphs"]
    inner = flatten(workflow)
    outputs = inner.pop("__outputs__")
    by_class = {n["type"]: n for n in ui["nodes"]}
    boundary = {  # the template's sources of what the blueprint takes as inputs
        ("LoadImage", 0): "image",
        ("PALModelLoader", 0): "pal_model",
        ("CheckpointLoaderSimple", 0): "model",
        ("CheckpointLoaderSimple", 2): "vae",
    }
    ports = [p["name"] for p in d["inputs"]]
    classes = {k: v["class_type"] for k, v in api.items()}
    for node in d["nodes"]:
        assert node["widgets_values"] == by_class[node["type"]]["widgets_values"], node["type"]
        (tid,) = [k for k, c in classes.items() if c == node["type"]]
        theirs = {}
        for name, value in api[tid]["inputs"].items():
            if not isinstance(value, list):
                continue
            src, slot = classes[value[0]], value[1]
            if src == "CLIPTextEncode":
                src_name = "positive" if name == "positive" else "negative"
                theirs[name] = ("input", src_name)
            elif (src, slot) in boundary:
                theirs[name] = ("input", boundary[(src, slot)])
            else:
                theirs[name] = (src, slot)
        ours = {}
        for name, (src, slot) in inner[str(node["id"])]["links"].items():
            ours[name] = ("input", ports[slot]) if src == "input" else (
                inner[src]["class_type"], slot)  # fmt: skip
        assert ours == theirs, node["type"]
    assert [inner[n]["class_type"] for n, _ in outputs] == ["PALStitchRegions", "PALMaskRefine"]
