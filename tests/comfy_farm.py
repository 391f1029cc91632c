"""A stand-in ComfyUI render server on 127.0.0.1 for multi-server queue tests and benchmarks.

Like ComfyUI it has one executor: prompts run one after the other, each taking ``seconds``;
``/history/{id}`` shows a prompt once it ran, ``/queue`` the running and pending ones,
``/system_stats`` answers while the server is up. Its output image is a 16x16 PNG whose colour
is the prompt's first seed, so a test can tell which job an output came from. Faults:
``kill()`` drops the listening socket and forgets the queue (a crash: connections are refused),
``revive()`` starts it again on the same port, ``fail_prompts`` answers every ``POST /prompt``
with HTTP 500 (the rest of the API keeps working). ``accepted`` counts the prompts it queued
per seed, ``ran`` lists the seeds it executed.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections import Counter, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image


def seed_of(prompt: dict) -> int:
    """The first ``seed`` / ``noise_seed`` input of an API-format prompt (-1 when none)."""
    for node in prompt.values():
        for key in ("seed", "noise_seed"):
            value = node.get("inputs", {}).get(key)
            if isinstance(value, int):
                return value
    return -1


def png_of(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (seed % 256, seed // 256 % 256, 7)).save(buf, "PNG")
    return buf.getvalue()


class FarmServer:
    """One stand-in render server; see the module docstring."""

    def __init__(self, seconds: float = 0.05, fail_prompts: bool = False) -> None:
        self.seconds, self.fail_prompts = seconds, fail_prompts
        self.accepted: Counter = Counter()
        self.ran: list[int] = []
        self.port = 0
        self._lock = threading.Condition()
        self._start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _start(self) -> None:
        self.pending: deque = deque()  # (prompt_id, seed)
        self.running: str | None = None
        self.history: dict[str, dict] = {}
        self.alive = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_port
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        threading.Thread(target=self._execute, args=(self._server,), daemon=True).start()

    def kill(self) -> None:
        """Crash: stop answering (connections refused) and lose the queue."""
        with self._lock:
            self.alive = False
            self._lock.notify_all()
        self._server.shutdown()
        self._server.server_close()

    def revive(self) -> None:
        """Start again on the same port with an empty queue and history."""
        self._start()

    close = kill

    def _execute(self, server: ThreadingHTTPServer) -> None:
        while True:
            with self._lock:
                while self.alive and not self.pending:
                    self._lock.wait(0.5)
                if not self.alive or self._server is not server:
                    return
                pid, seed = self.pending.popleft()
                self.running = pid
            time.sleep(self.seconds)
            with self._lock:
                if not self.alive or self._server is not server:
                    return
                self.running = None
                self.ran.append(seed)
                image = {
                    "filename": f"ComfyUI_{len(self.ran):05d}_.png",
                    "subfolder": "",
                    "type": "output",
                }
                self.history[pid] = {
                    "outputs": {"9": {"images": [{**image, "seed": seed}]}},
                    "status": {"status_str": "success", "completed": True},
                }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        farm = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code: int, body: object, ctype: str = "application/json") -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path == "/upload/image":
                    name = body.split(b'filename="', 1)[1].split(b'"', 1)[0].decode()
                    return self._send(200, {"name": name, "subfolder": "", "type": "input"})
                if self.path != "/prompt":
                    return self._send(404, {"error": "not found"})
                if farm.fail_prompts:
                    return self._send(500, b"Internal Server Error", "text/plain")
                data = json.loads(body)
                pid, seed = (
                    data.get("prompt_id") or f"f{time.monotonic_ns()}",
                    seed_of(data["prompt"]),
                )
                with farm._lock:
                    farm.pending.append((pid, seed))
                    farm.accepted[seed] += 1
                    farm._lock.notify_all()
                return self._send(200, {"prompt_id": pid, "number": 1, "node_errors": {}})

            def do_GET(self):
                path = self.path
                with farm._lock:
                    if path == "/system_stats":
                        return self._send(200, {"system": {"os": "standin"}, "devices": []})
                    if path.startswith("/history/"):
                        pid = path.rsplit("/", 1)[1]
                        found = {pid: farm.history[pid]} if pid in farm.history else {}
                        return self._send(200, found)
                    if path == "/queue":
                        running = [[0, farm.running]] if farm.running else []
                        pending = [[i + 1, p] for i, (p, _) in enumerate(farm.pending)]
                        return self._send(200, {"queue_running": running, "queue_pending": pending})
                if path.startswith("/view?"):
                    seed = next(
                        (
                            i["seed"]
                            for e in list(farm.history.values())
                            for i in e["outputs"]["9"]["images"]
                            if f"filename={i['filename']}" in path
                        ),
                        -1,
                    )
                    return self._send(200, png_of(seed), "image/png")
                return self._send(404, {"error": "not found"})

        return Handler
