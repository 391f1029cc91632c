"""The queue client against hostile and broken stand-in servers on 127.0.0.1.

Each server answers from a script: hostile output names, a ``POST /prompt`` that times out
after queueing (or drops the connection before), garbage JSON, endless 500s, a huge body, a
server that never answers. Every case ends bounded, with outputs only inside the output
folder, each prompt queued exactly once, and a message that names the problem.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from comfyui_pal.io import comfy_client as cc
from comfyui_pal.io.comfy_client import Client, Job, QueueError, parse_seeds, safe_name
from comfyui_pal.io.dispatch import run_queue

WORKFLOW = {"3": {"class_type": "KSampler", "inputs": {"seed": 0}}}


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (9, 9, 9)).save(buf, "PNG")
    return buf.getvalue()


class Scripted:
    """A ComfyUI stand-in: ``prompts`` holds every prompt it queued (by its id); ``script``
    maps "METHOD /path-prefix" to a function of (server, body, nth call) returning
    ``(code, body)``, ``"drop"`` (close the connection without an answer) or ``"drip"`` (a
    byte at a time, never finishing)."""

    def __init__(self, **script) -> None:
        self.prompts: dict[str, dict] = {}
        self.calls: dict[str, int] = {}
        self.stopped = False
        self.script = {k.replace("_", " /", 1).replace("_", "/"): v for k, v in script.items()}
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, method):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                route = next(
                    (k for k in owner.script if f"{method} {self.path}".startswith(k)), None
                )
                key = route or f"{method} {self.path.split('?')[0]}"
                owner.calls[key] = owner.calls.get(key, 0) + 1
                fn = owner.script.get(route) if route else owner.default
                out = fn(owner, body, owner.calls[key]) if route else fn(method, self.path, body)
                if out == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if out == "drip":  # a byte every 0.2 s of a long answer, for ever
                    self.send_response(200)
                    self.send_header("Content-Length", "100000")
                    self.end_headers()
                    try:
                        while not owner.stopped:
                            self.wfile.write(b" ")
                            self.wfile.flush()
                            time.sleep(0.2)
                    except OSError:
                        pass
                    return
                code, data = out
                data = data if isinstance(data, bytes) else json.dumps(data).encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._answer("GET")

            def do_POST(self):
                self._answer("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def queue_prompt(self, body: bytes) -> str:
        data = json.loads(body)
        pid = data.get("prompt_id") or f"p{len(self.prompts)}"
        self.prompts[pid] = data["prompt"]
        return pid

    def default(self, method: str, path: str, body: bytes):
        if method == "POST" and path == "/prompt":
            return 200, {"prompt_id": self.queue_prompt(body), "number": 1, "node_errors": {}}
        if method == "POST" and path == "/upload/image":
            return 200, {"name": "in.png", "subfolder": "", "type": "input"}
        if path.startswith("/history/"):
            pid = path.rsplit("/", 1)[1]
            if pid not in self.prompts:
                return 200, {}
            img = {"filename": "ComfyUI_00001_.png", "subfolder": "", "type": "output"}
            return 200, {pid: {"outputs": {"9": {"images": [img]}}, "status": {}}}
        if path == "/queue":
            return 200, {"queue_running": [], "queue_pending": []}
        if path.startswith("/view?"):
            return 200, _png()
        return 404, {"error": "not found"}

    def close(self) -> None:
        self.stopped = True
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def serve():
    servers = []

    def make(**script):
        servers.append(Scripted(**script))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def _client(server, **kw) -> Client:
    return Client(server.url, **{"retries": 2, "backoff": 0.01, "timeout": 2, **kw})


def _run(server, out: Path, client: Client | None = None) -> list[Job]:
    return run_queue(
        WORKFLOW, [Job("seed1", seed=1)], out, client or _client(server), 1, log=lambda _: None
    )


@pytest.mark.parametrize(
    "name",
    [
        "../../../evil.png",
        "/etc/evil.png",
        "..\\..\\evil.png",
        "sub/../../evil.png",
        "",
        "CON.png",
        "a\x00b\nc.png",
        "." * 5,
    ],
)
def test_hostile_output_names_stay_inside_the_output_folder(serve, tmp_path, name):
    def history(server, body, n):
        pid = next(iter(server.prompts))
        img = {"filename": name, "subfolder": "../..", "type": "output"}
        return 200, {pid: {"outputs": {"../9": {"images": [img]}}, "status": {}}}

    server = serve(GET_history=history)
    out = tmp_path / "a" / "b" / "out"
    (job,) = _run(server, out)
    (saved,) = job.outputs
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert sorted(p.name for p in files) == sorted([saved, "queue_state.json"])
    assert all(p.parent == out for p in files)
    assert "/" not in saved and "\\" not in saved and ".." not in saved
    assert saved.split(".")[0].upper() not in {"CON", "NUL"} and saved.isprintable()


def test_subfolders_are_kept_inside_the_output_folder(serve, tmp_path):
    def history(server, body, n):
        pid = next(iter(server.prompts))
        img = {"filename": "x.png", "subfolder": "batch/../run 1//./", "type": "output"}
        return 200, {pid: {"outputs": {"9": {"images": [img]}}, "status": {}}}

    (job,) = _run(serve(GET_history=history), tmp_path / "out")
    assert job.outputs == ["batch/run 1/seed1_9_x.png"]
    assert (tmp_path / "out" / "batch" / "run 1" / "seed1_9_x.png").is_file()


def test_safe_name_keeps_ordinary_names():
    assert safe_name("ComfyUI_00001_.png") == "ComfyUI_00001_.png"
    assert safe_name("nul.txt") == "_nul.txt" and safe_name("..") == "output"


def test_a_prompt_queued_before_its_answer_timed_out_is_not_queued_twice(serve, tmp_path):
    def slow_prompt(server, body, n):
        pid = server.queue_prompt(body)  # queued at once, answered too late
        if n == 1:
            time.sleep(1.5)
        return 200, {"prompt_id": pid, "number": 1, "node_errors": {}}

    server = serve(POST_prompt=slow_prompt)
    (job,) = _run(server, tmp_path / "out", _client(server, timeout=0.5))
    assert len(server.prompts) == 1 and server.calls["POST /prompt"] == 1 and job.outputs


def test_a_prompt_lost_before_the_server_took_it_is_sent_again_once(serve, tmp_path):
    def dropping(server, body, n):
        if n == 1:
            return "drop"  # never queued
        return 200, {"prompt_id": server.queue_prompt(body), "number": 1, "node_errors": {}}

    server = serve(POST_prompt=dropping)
    (job,) = _run(server, tmp_path / "out")
    assert len(server.prompts) == 1 and server.calls["POST /prompt"] == 2 and job.outputs


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ({"GET_history": lambda s, b, n: (200, b"<html>proxy</html>")}, "not JSON"),
        ({"GET_history": lambda s, b, n: (200, [1, 2])}, "answered /history"),
        ({"GET_history": lambda s, b, n: (500, b"boom")}, "HTTP 500"),
        ({"POST_prompt": lambda s, b, n: (200, {"number": 1})}, "no prompt_id"),
        ({"GET_history": lambda s, b, n: (200, b"x" * 5000)}, "more than"),
        ({"POST_upload": lambda s, b, n: (200, {"nope": 1})}, "has no name"),
    ],
)
def test_broken_answers_are_named_and_end(serve, tmp_path, monkeypatch, script, message):
    monkeypatch.setattr(cc, "MAX_JSON_BYTES", 4096)
    server = serve(**script)
    image = tmp_path / "in.png"
    image.write_bytes(_png())
    wf = {**WORKFLOW, "1": {"class_type": "LoadImage", "inputs": {"image": "x"}}}
    t0 = time.monotonic()
    with pytest.raises(QueueError, match=message):
        run_queue(
            wf, [Job("in", image=image)], tmp_path / "out", _client(server), 1, log=lambda _: None
        )
    assert time.monotonic() - t0 < 10


def test_a_server_that_never_answers_fails_within_the_timeouts(serve, tmp_path):
    server = serve(POST_prompt=lambda s, b, n: time.sleep(3) or (200, {}))
    client = _client(server, timeout=0.3, retries=1)
    t0 = time.monotonic()
    with pytest.raises(QueueError, match="cannot reach ComfyUI"):
        _run(server, tmp_path / "out", client)
    assert time.monotonic() - t0 < 3


def test_a_server_that_drips_its_answer_ends_at_the_request_deadline(serve, tmp_path):
    server = serve(GET_history=lambda s, b, n: "drip")
    client = _client(server, timeout=1, deadline=0.8, retries=1)
    t0 = time.monotonic()
    with pytest.raises(QueueError, match=r"within 0\.8 s"):
        _run(server, tmp_path / "out", client)
    assert time.monotonic() - t0 < 4  # two tries of 0.8 s, although every read was quick


def test_outputs_get_normal_permissions_and_are_never_replaced(serve, tmp_path):
    server = serve()
    out = tmp_path / "out"
    (job,) = _run(server, out)
    umask = os.umask(0)
    os.umask(umask)
    for name in [*job.outputs, "queue_state.json"]:
        assert (out / name).stat().st_mode & 0o777 == 0o666 & ~umask
    state = (out / "queue_state.json").read_bytes()
    before = (out / job.outputs[0]).read_bytes()
    with pytest.raises(QueueError, match="earlier queue run"):  # the same folder again
        _run(server, out)
    (out / "queue_state.json").unlink()  # a second run that would write the same name
    with pytest.raises(QueueError, match="exists"):
        _run(server, out)
    assert (out / job.outputs[0]).read_bytes() == before
    (out / "queue_state.json").write_bytes(state)
    (out / job.outputs[0]).write_bytes(b"old")
    run_queue(
        WORKFLOW,
        [Job("seed1", seed=1)],
        out,
        _client(server),
        1,
        log=lambda _: None,
        overwrite=True,
    )
    assert (out / job.outputs[0]).read_bytes() == before


def test_a_billion_seeds_are_read_as_they_are_needed(serve, tmp_path):
    seeds = parse_seeds("0..1000000000")
    assert len(seeds) == 1_000_000_001 and isinstance(seeds, range)  # nothing built up front
    with pytest.raises(QueueError, match="0 to"):
        parse_seeds("-1..3")
    server, pulled, ahead = serve(), [0], []

    def jobs():
        for s in seeds:
            pulled[0] += 1
            yield Job(f"seed{s}", seed=s)
            if s == 11:
                return

    def log(line):
        ahead.append(pulled[0] - sum(1 for _ in (tmp_path / "out").glob("seed*")))

    done = run_queue(WORKFLOW, jobs(), tmp_path / "out", _client(server), 2, log=log)
    assert [j.seed for j in done] == list(range(12))  # in job order
    assert max(ahead) <= 2 * 2 + 1  # never more than the window ahead of what finished


def test_workflow_nodes_without_inputs_load_and_bad_inputs_are_named(tmp_path):
    path = tmp_path / "wf.json"
    path.write_text(json.dumps({"1": {"class_type": "LoadImage"}, **WORKFLOW}))
    wf = cc.load_workflow(path)
    filled = cc.fill(wf, Job("a", image=path, seed=3), "up.png")
    assert filled["1"]["inputs"] == {"image": "up.png"} and filled["3"]["inputs"]["seed"] == 3
    path.write_text(json.dumps({"1": {"class_type": "LoadImage", "inputs": [1]}}))
    with pytest.raises(QueueError, match="node 1 has inputs"):
        cc.load_workflow(path)
