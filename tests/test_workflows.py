"""Example workflows: current and valid against the node definitions; the graph builder.

The examples (examples/build_workflows.py, loaded by path) run in process in
test_workflow_run.py and in a real ComfyUI in test_real_comfy.py.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import sys

import pytest
from conftest import REPO

from comfyui_pal.io.workflow_check import CORE_NODES, validate_api, validate_ui
from comfyui_pal.io.workflows import Graph

spec = importlib.util.spec_from_file_location(
    "build_workflows", REPO / "examples" / "build_workflows.py"
)
build_workflows = importlib.util.module_from_spec(spec)
sys.modules["build_workflows"] = build_workflows
spec.loader.exec_module(build_workflows)

UI = sorted((REPO / "example_workflows").glob("*.json"))
API = sorted((REPO / "examples" / "api").glob("*.json"))


@pytest.fixture(scope="module")
def defs():
    return build_workflows.definitions()


def test_the_committed_examples_are_what_the_builder_writes(defs):
    files = build_workflows.files(defs)
    assert sorted(files) == sorted(UI + API)
    for path, text in files.items():
        assert path.read_text() == text, f"{path} is stale: run python examples/build_workflows.py"


@pytest.mark.parametrize("path", UI, ids=lambda p: p.stem)
def test_every_ui_example_is_valid_and_explains_itself(path, defs):
    wf = json.loads(path.read_text())
    assert validate_ui(wf, defs) == []
    notes = [n for n in wf["nodes"] if n["type"] == "MarkdownNote"]
    assert notes and len(notes[0]["widgets_values"][0]) > 40
    assert wf["extra"]["info"]["name"] == path.stem  # the template browser's title


@pytest.mark.parametrize("path", UI, ids=lambda p: p.stem)
def test_every_ui_example_has_a_small_jpeg_thumbnail(path):
    """The template browser shows NAME.jpg beside NAME.json (examples/build_thumbnails.py)."""
    thumb = path.with_name(f"{path.stem}.jpg")
    assert thumb.exists(), f"no {thumb.name}: run python examples/build_thumbnails.py"
    assert thumb.read_bytes()[:3] == b"\xff\xd8\xff" and thumb.stat().st_size <= 60_000


@pytest.mark.parametrize("path", UI, ids=lambda p: p.stem)
def test_every_ui_example_reads_left_to_right_without_overlaps(path):
    wf = json.loads(path.read_text())
    nodes = {n["id"]: n for n in wf["nodes"]}
    for _, src, _, dst, _, _ in wf["links"]:
        assert nodes[src]["pos"][0] + nodes[src]["size"][0] < nodes[dst]["pos"][0]
    boxes = [(*n["pos"], *n["size"]) for n in wf["nodes"]]
    for i, (ax, ay, aw, ah) in enumerate(boxes):
        for bx, by, bw, bh in boxes[i + 1 :]:  # a title bar (30 px) sits above each pos
            assert not (ax < bx + bw and bx < ax + aw and ay - 30 < by + bh and by - 30 < ay + ah)
    assert wf["extra"]["ds"]["scale"] >= 1.0  # the view opens where text is readable


@pytest.mark.parametrize("path", UI, ids=lambda p: p.stem)
def test_every_text_output_a_ui_example_computes_is_shown(path, defs):
    """PAR, summaries, histories and reports go to a Preview as Text: the user sees why a
    fix was kept or undone."""
    wf = json.loads(path.read_text())
    nodes = {n["id"]: n for n in wf["nodes"]}
    shown = {
        (src, slot) for _, src, slot, dst, _, _ in wf["links"] if nodes[dst]["type"] == "PreviewAny"
    }
    for node in wf["nodes"]:
        if node["type"] in build_workflows.load_pack().NODE_CLASS_MAPPINGS:
            for slot, out in enumerate(node["outputs"]):
                if out["type"] == "STRING":
                    assert (node["id"], slot) in shown, (node["type"], out["name"])


@pytest.mark.parametrize("path", API, ids=lambda p: p.stem)
def test_every_api_twin_is_valid(path, defs):
    assert validate_api(json.loads(path.read_text()), defs) == []


@pytest.mark.parametrize("name", list(build_workflows.WORKFLOWS))
def test_the_tiny_model_variants_for_the_harness_are_valid(name, defs):
    g = build_workflows.build(name, models="tiny", defs=defs)
    assert validate_api(g.api(), defs) == []
    assert validate_ui(g.ui(name), defs) == []


def test_the_checks_catch_broken_workflows(defs):
    wf = json.loads(build_workflows.ui_path("04_pal_zoom_fix_composable").read_text())
    bad = copy.deepcopy(wf)
    bad["links"][0][5] = "LATENT"  # a link whose type matches neither end
    assert any("is not LATENT" in p for p in validate_ui(bad, defs))
    bad = copy.deepcopy(wf)
    crop = next(n for n in bad["nodes"] if n["type"] == "PALCropRegions")
    crop["widgets_values"][0] = 99.0  # context_factor above its max
    assert any("outside" in p for p in validate_ui(bad, defs))
    bad = copy.deepcopy(wf)
    next(n for n in bad["nodes"] if n["type"] == "KSampler")["widgets_values"][4] = (
        "nope"  # sampler_name (seed, control, steps, cfg, ...)
    )
    assert any("not one of" in p for p in validate_ui(bad, defs))
    api = json.loads((REPO / "examples" / "api" / "04_pal_zoom_fix_composable.json").read_text())
    bad = copy.deepcopy(api)
    stitch = next(n for n in bad.values() if n["class_type"] == "PALStitchRegions")
    del stitch["inputs"]["stitch"]
    assert any("required input stitch missing" in p for p in validate_api(bad, defs))
    bad = copy.deepcopy(api)
    bad["99"] = {"class_type": "NoSuchNode", "inputs": {}}
    assert any("unknown type NoSuchNode" in p for p in validate_api(bad, defs))


def test_left_out_widgets_get_their_defaults_and_the_frontends_extra_values():
    g = Graph(CORE_NODES)
    g.add("LoadImage", (0, 0), {"image": "a.png"})
    g.add("KSampler", (0, 0), {"seed": 5})
    load, ks = g.ui("t")["nodes"]
    assert load["widgets_values"] == ["a.png", "image"]  # the upload button's value
    assert ks["widgets_values"] == [5, "fixed", 20, 8.0, "euler", "normal", 1.0]
    assert g.api()["2"]["inputs"] == {
        "seed": 5,
        "steps": 20,
        "cfg": 8.0,
        "sampler_name": "euler",
        "scheduler": "normal",
        "denoise": 1.0,
    }


def test_a_link_is_an_id_pair_in_the_api_format_and_a_typed_link_in_the_ui_format():
    g = Graph(CORE_NODES)
    load = g.add("LoadImage", (0, 0), {"image": "a.png"})
    g.add("SaveImage", (400, 0), images=(load, 0))
    ui = g.ui("t")
    assert ui["links"] == [[1, 1, 0, 2, 0, "IMAGE"]]
    assert ui["nodes"][0]["outputs"][0]["links"] == [1]
    assert g.api()["2"]["inputs"]["images"] == ["1", 0]


def test_notes_are_in_the_ui_format_only():
    g = Graph(CORE_NODES)
    g.note((0, 0), "read me")
    g.add("EmptyLatentImage", (0, 300))
    assert [n["type"] for n in g.ui("t")["nodes"]] == ["Note", "EmptyLatentImage"]
    assert [n["class_type"] for n in g.api().values()] == ["EmptyLatentImage"]


def test_unknown_node_types_and_input_names_are_refused():
    g = Graph(CORE_NODES)
    with pytest.raises(ValueError, match="unknown node type"):
        g.add("NoSuchNode", (0, 0))
    with pytest.raises(ValueError, match=r"no inputs named \['stpes'\]"):
        g.add("KSampler", (0, 0), {"stpes": 3})


def test_best_of_n_detects_the_batch_once_for_both_curate_nodes():
    api = json.loads((REPO / "examples" / "api" / "02_pal_best_of_n.json").read_text())
    detects = [k for k, n in api.items() if n["class_type"] == "PALDetectArtifacts"]
    curate = [n for n in api.values() if n["class_type"] in ("PALSelectBest", "PALRankBatch")]
    assert len(detects) == 1 and len(curate) == 2
    for node in curate:  # the shared probability, and no model to detect again with
        assert node["inputs"]["probability"] == [detects[0], 0]
        assert "pal_model" not in node["inputs"]
