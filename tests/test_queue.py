"""The ``queue`` command against a stand-in ComfyUI server on 127.0.0.1 (stdlib http.server)."""

from __future__ import annotations

import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from comfyui_pal import cli

KNOWN = {"LoadImage", "KSampler", "SaveImage", "EmptyLatentImage"}
WORKFLOW = {
    "3": {"class_type": "KSampler", "inputs": {"seed": 0, "steps": 4}},
    "9": {"class_type": "SaveImage", "inputs": {"images": ["3", 0]}},
}


def _png(value: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (value % 256, 100, 50)).save(buf, "PNG")
    return buf.getvalue()


class FakeComfy:
    """Records uploads and prompts; fails the first history poll with a 500 when asked."""

    def __init__(self, flaky: bool = False) -> None:
        self.prompts, self.uploads, self.flaky = [], [], flaky
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code, body, ctype="application/json"):
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.path == "/upload/image":
                    name = body.split(b'filename="', 1)[1].split(b'"', 1)[0].decode()
                    owner.uploads.append(name)
                    return self._send(200, {"name": name, "subfolder": "", "type": "input"})
                prompt = json.loads(body)["prompt"]
                missing = [n["class_type"] for n in prompt.values() if n["class_type"] not in KNOWN]
                if missing:
                    err = {
                        "type": "invalid_prompt",
                        "message": f"Cannot execute because node {missing[0]} does not exist.",
                        "details": "",
                    }
                    return self._send(400, {"error": err, "node_errors": {}})
                owner.prompts.append(prompt)
                pid = f"p{len(owner.prompts)}"
                return self._send(200, {"prompt_id": pid, "number": 1, "node_errors": {}})

            def do_GET(self):
                if self.path.startswith("/history/"):
                    if owner.flaky:
                        owner.flaky = False
                        return self._send(500, b"busy", "text/plain")
                    pid = self.path.rsplit("/", 1)[1]
                    img = {"filename": f"ComfyUI_{pid}.png", "subfolder": "", "type": "output"}
                    entry = {
                        "outputs": {"9": {"images": [img]}},
                        "status": {"status_str": "success"},
                    }
                    return self._send(200, {pid: entry})
                if self.path.startswith("/view?"):
                    return self._send(200, _png(len(self.path)), "image/png")
                return self._send(404, {"error": "not found"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def comfy():
    server = FakeComfy()
    yield server
    server.close()


def _workflow(tmp_path, wf=WORKFLOW):
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(wf))
    return str(path)


def test_seed_jobs_run_collect_outputs_with_par_and_resume(tmp_path, comfy, capsys):
    out = tmp_path / "out"
    args = [
        "queue",
        _workflow(tmp_path),
        "--server",
        comfy.url,
        "--seeds",
        "5..7",
        "--out",
        str(out),
        "--cpu",
    ]
    assert cli.main(args) == 0
    assert sorted(p["3"]["inputs"]["seed"] for p in comfy.prompts) == [5, 6, 7]
    rows = (out / "report.csv").read_text().splitlines()
    assert rows[0] == "job,output,server,attempts,par" and len(rows) == 4
    assert all(r.split(",")[2:4] == [comfy.url, "1"] for r in rows[1:])
    assert all(float(r.rsplit(",", 1)[1]) >= 0 for r in rows[1:])
    assert len(list(out.glob("seed*_9_ComfyUI_p*.png"))) == 3
    assert cli.main([*args, "--resume"]) == 0
    assert len(comfy.prompts) == 3  # nothing submitted again
    assert "done before" in capsys.readouterr().out


def test_image_jobs_upload_and_fill_every_load_image_node(tmp_path, comfy):
    images = tmp_path / "imgs"
    images.mkdir()
    for name in ("a", "b"):
        Image.new("RGB", (32, 32)).save(images / f"{name}.png")
    wf = {"1": {"class_type": "LoadImage", "inputs": {"image": "x.png"}}, **WORKFLOW}
    args = [
        "queue",
        _workflow(tmp_path, wf),
        "--server",
        comfy.url,
        "--images",
        str(images),
        "--out",
        str(tmp_path / "out"),
        "--no-score",
        "--concurrency",
        "1",
    ]
    assert cli.main(args) == 0
    assert sorted(comfy.uploads) == ["a.png", "b.png"]
    assert sorted(p["1"]["inputs"]["image"] for p in comfy.prompts) == ["a.png", "b.png"]


@pytest.mark.slow
def test_a_transient_server_error_is_retried(tmp_path):
    server = FakeComfy(flaky=True)
    try:
        args = [
            "queue",
            _workflow(tmp_path),
            "--server",
            server.url,
            "--seeds",
            "1",
            "--out",
            str(tmp_path / "out"),
            "--no-score",
        ]
        assert cli.main(args) == 0
    finally:
        server.close()


def test_missing_nodes_ui_workflows_and_a_dead_server_are_named(tmp_path, comfy, capsys):
    wf = {"3": {"class_type": "NopeNode", "inputs": {"seed": 1}}}
    args = [
        "queue",
        _workflow(tmp_path, wf),
        "--server",
        comfy.url,
        "--seeds",
        "1",
        "--out",
        str(tmp_path / "o1"),
        "--no-score",
    ]
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert "NopeNode does not exist" in err and "installed" in err
    ui = {"nodes": [], "links": []}
    args = ["queue", _workflow(tmp_path, ui), "--seeds", "1", "--out", str(tmp_path / "o2")]
    assert cli.main(args) == 1 and "UI-format" in capsys.readouterr().err
    for bad in ("x..3", "5..1"):
        args = ["queue", _workflow(tmp_path), "--seeds", bad, "--out", str(tmp_path / "o4")]
        assert cli.main(args) == 1 and "--seeds" in capsys.readouterr().err
    dead = FakeComfy()
    dead.close()
    args = [
        "queue",
        _workflow(tmp_path),
        "--server",
        dead.url,
        "--seeds",
        "1",
        "--retries",
        "0",
        "--out",
        str(tmp_path / "o3"),
        "--no-score",
    ]
    assert cli.main(args) == 1 and "cannot reach ComfyUI" in capsys.readouterr().err
