"""Drive a ComfyUI server over a folder of images or a range of seeds (the ``queue`` command).

Standard-library HTTP only: ``POST /upload/image`` (multipart), ``POST /prompt``,
``GET /history/{id}``, ``GET /view``. Each job is a copy of an API-format workflow with its
image or seed filled in; jobs run with bounded concurrency, transient failures (connection
errors, HTTP 5xx) are retried with exponential backoff, outputs land in the output folder,
and ``queue_state.json`` records finished jobs so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import copy
import json
import mimetypes
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .images import write_atomic

SEED_INPUTS = ("seed", "noise_seed")


class QueueError(RuntimeError):
    """A problem the user must fix (server down, invalid workflow, missing node)."""


@dataclass
class Job:
    """One prompt: its name (used for output files) and what to fill in."""

    name: str
    image: Path | None = None
    seed: int | None = None
    outputs: list[str] = field(default_factory=list)


def load_workflow(path: Path) -> dict:
    """An API-format workflow (``{node_id: {"class_type", "inputs"}}``), checked."""
    try:
        wf = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise QueueError(f"cannot read workflow {path}: {exc}") from exc
    if isinstance(wf, dict) and "nodes" in wf and "links" in wf:
        raise QueueError(
            f"{path} is a UI-format workflow; export it with 'Export (API)' in ComfyUI "
            "(or use the twin in examples/api/)"
        )
    if not isinstance(wf, dict) or not all(
        isinstance(v, dict) and "class_type" in v for v in wf.values()
    ):
        raise QueueError(f"{path} is not an API-format workflow (node id -> class_type, inputs)")
    return wf


def parse_seeds(text: str) -> list[int]:
    """``"a..b"`` (inclusive) or ``"a,b,c"`` -> seeds."""
    try:
        if ".." in text:
            lo, hi = (int(x) for x in text.split("..", 1))
            seeds = list(range(lo, hi + 1))
        else:
            seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise QueueError(f"--seeds takes low..high or a,b,c (integers), got {text!r}") from None
    if not seeds:
        raise QueueError(f"--seeds {text!r} gives no seed (write low..high with low <= high)")
    return seeds


def fill(workflow: dict, job: Job, uploaded: str | None) -> dict:
    """A copy of ``workflow`` with the job's image name and / or seed filled in."""
    wf = copy.deepcopy(workflow)
    loaders = [n for n in wf.values() if n["class_type"] == "LoadImage"]
    if job.image is not None:
        if not loaders:
            raise QueueError("--images needs a LoadImage node in the workflow; it has none")
        for node in loaders:
            node["inputs"]["image"] = uploaded
    if job.seed is not None:
        seeded = [
            n
            for n in wf.values()
            for k in SEED_INPUTS
            if isinstance(n.get("inputs", {}).get(k), int)
        ]
        if not seeded:
            raise QueueError(
                "--seeds needs a node with a 'seed' or 'noise_seed' widget; none found"
            )
        for node in seeded:
            for k in SEED_INPUTS:
                if isinstance(node["inputs"].get(k), int):
                    node["inputs"][k] = job.seed
    return wf


class Client:
    """Minimal ComfyUI HTTP client with retries."""

    def __init__(self, server: str, retries: int = 3, backoff: float = 0.5, timeout: float = 30):
        self.server = server.rstrip("/")
        self.retries, self.backoff, self.timeout = retries, backoff, timeout
        self.client_id = uuid.uuid4().hex

    def _request(self, path: str, data: bytes | None = None, headers: dict | None = None) -> bytes:
        url = self.server + path
        for attempt in range(self.retries + 1):
            req = urllib.request.Request(url, data=data, headers=headers or {})
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return resp.read()
            except urllib.error.HTTPError as exc:
                body = exc.read()
                if exc.code < 500 or attempt == self.retries:
                    raise _http_error(exc.code, body, path) from exc
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                if attempt == self.retries:
                    raise QueueError(
                        f"cannot reach ComfyUI at {self.server} ({exc}); start the server or "
                        "pass --server URL"
                    ) from exc
            time.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")

    def upload(self, path: Path) -> str:
        boundary = uuid.uuid4().hex
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
            f'filename="{path.name}"\r\nContent-Type: {ctype}\r\n\r\n'
        ).encode() + path.read_bytes()
        body += (
            f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="overwrite"\r\n\r\n'
            f"true\r\n--{boundary}--\r\n"
        ).encode()
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        info = json.loads(self._request("/upload/image", body, headers))
        sub = info.get("subfolder") or ""
        return f"{sub}/{info['name']}" if sub else info["name"]

    def submit(self, workflow: dict) -> str:
        data = json.dumps({"prompt": workflow, "client_id": self.client_id}).encode()
        reply = json.loads(self._request("/prompt", data, {"Content-Type": "application/json"}))
        if reply.get("node_errors"):
            raise QueueError(f"ComfyUI rejected the workflow: {_describe(reply)}")
        return reply["prompt_id"]

    def wait(self, prompt_id: str, poll: float = 0.5, timeout: float = 3600) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hist = json.loads(self._request(f"/history/{prompt_id}"))
            if prompt_id in hist:
                entry = hist[prompt_id]
                status = entry.get("status", {})
                if status.get("status_str") == "error":
                    raise QueueError(f"prompt {prompt_id} failed: {_messages(status)}")
                return entry
            time.sleep(poll)
        raise QueueError(f"prompt {prompt_id} did not finish within {timeout:.0f} s")

    def view(self, image: dict) -> bytes:
        query = urllib.parse.urlencode(
            {k: image.get(k, "") for k in ("filename", "subfolder", "type")}
        )
        return self._request(f"/view?{query}")


def _describe(reply: dict) -> str:
    err = reply.get("error")
    parts = [err.get("message", str(err)) if isinstance(err, dict) else str(err)] if err else []
    for node_id, info in (reply.get("node_errors") or {}).items():
        msgs = "; ".join(
            e.get("message", "") + " " + e.get("details", "") for e in info.get("errors", [])
        )
        parts.append(f"node {node_id} ({info.get('class_type', '?')}): {msgs.strip()}")
    return " | ".join(parts) or json.dumps(reply)[:300]


def _http_error(code: int, body: bytes, path: str) -> QueueError:
    try:
        reply = json.loads(body)
    except json.JSONDecodeError:
        return QueueError(f"ComfyUI answered HTTP {code} to {path}: {body[:200]!r}")
    text = _describe(reply) if isinstance(reply, dict) else str(reply)
    if "does not exist" in text:
        text += " (is the custom-node pack that provides it installed?)"
    return QueueError(f"ComfyUI answered HTTP {code} to {path}: {text}")


def _messages(status: dict) -> str:
    out = []
    for kind, data in status.get("messages", []):
        if kind == "execution_error":
            out.append(
                f"node {data.get('node_id')} ({data.get('node_type')}): "
                f"{data.get('exception_message', '').strip()}"
            )
    return "; ".join(out) or "execution error"


def run_queue(
    workflow: dict,
    jobs: list[Job],
    out_dir: Path,
    client: Client,
    concurrency: int = 2,
    resume: bool = False,
    log: Callable[[str], None] = print,
) -> list[Job]:
    """Run ``jobs``; returns the finished ones (with their saved outputs), in job order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    state_path = out_dir / "queue_state.json"
    state = json.loads(state_path.read_text()) if resume and state_path.exists() else {}
    lock = threading.Lock()
    todo = [j for j in jobs if j.name not in state]
    for j in jobs:
        if j.name in state:
            j.outputs = state[j.name]
            log(f"{j.name}: done before, skipped (--resume)")

    def one(job: Job) -> Job:
        uploaded = client.upload(job.image) if job.image is not None else None
        prompt_id = client.submit(fill(workflow, job, uploaded))
        entry = client.wait(prompt_id)
        for node_id, out in entry.get("outputs", {}).items():
            for image in out.get("images", []):
                dst = out_dir / f"{job.name}_{node_id}_{image['filename']}"
                if dst.exists():
                    raise QueueError(f"{dst} exists; use another --out folder")
                write_atomic(dst, client.view(image))
                job.outputs.append(dst.name)
        with lock:
            state[job.name] = job.outputs
            write_atomic(state_path, json.dumps(state, indent=1))
        log(f"{job.name}: {len(job.outputs)} output(s)")
        return job

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        futures = [pool.submit(one, j) for j in todo]
        errors = []
        for fut in futures:
            try:
                fut.result()
            except QueueError as exc:
                errors.append(exc)
                log(f"FAILED: {exc}")
    if errors and len(errors) == len(todo):
        raise errors[0]
    return [j for j in jobs if j.name in state]
