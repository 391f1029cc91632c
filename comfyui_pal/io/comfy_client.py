"""A ComfyUI HTTP client and the jobs of the ``queue`` command (``dispatch`` runs them).

Standard-library HTTP only: ``POST /upload/image`` (multipart), ``POST /prompt``,
``GET /history/{id}``, ``GET /queue``, ``GET /view``, ``GET /system_stats`` (health probe).
Each job is a copy of an API-format workflow with its image or seed filled in; transient
failures (connection errors, timeouts, HTTP 5xx) of reads are retried with exponential
backoff.

The server is not trusted: a prompt is submitted with its own id and never resent before
``/history`` and ``/queue`` show it was not accepted (a timed-out ``POST /prompt`` may have
queued it); every answer is bounded in size and time, and one that is not what ComfyUI sends
is a ``QueueError`` naming it; output file names are reduced to a plain name inside the
output folder (no separators, ``..``, absolute paths, control characters or reserved names).
"""

from __future__ import annotations

import copy
import http.client
import json
import mimetypes
import socket
import threading
import time
import urllib.parse
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

SEED_INPUTS = ("seed", "noise_seed")
MAX_JSON_BYTES = 64 * 2**20  # a history or status answer larger than this is refused
MAX_FILE_BYTES = 2 * 2**30  # and an output file larger than this
WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10))} | {
    f"LPT{i}" for i in range(10)
}


class QueueError(RuntimeError):
    """A problem the user must fix (server down, invalid workflow, missing node)."""


class Unanswered(QueueError):
    """No usable answer came (connection error, timeout, HTTP 5xx): the request may or may
    not have taken effect on the server."""


@dataclass
class Job:
    """One prompt: its name (used for output files) and what to fill in; once run, its saved
    outputs (paths in the output folder), the server that ran it and the attempts it took."""

    name: str
    image: Path | None = None
    seed: int | None = None
    outputs: list[str] = field(default_factory=list)
    server: str | None = None
    attempts: int = 0


def safe_name(name: object, fallback: str = "output") -> str:
    """A file name that stays in its folder: the last path part of ``name`` with separators,
    control characters and leading dots dropped, at most 200 characters, never a reserved
    device name (``CON``, ``NUL``, ...) and never empty (``fallback``)."""
    text = str(name).replace("\\", "/").split("/")[-1]
    text = "".join(c for c in text if c.isprintable() and c not in '<>:"|?*').strip(" .")
    if text.split(".")[0].upper() in WINDOWS_RESERVED:
        text = f"_{text}"
    return text[:200] or fallback


def safe_parts(subfolder: object) -> list[str]:
    """The server's ``subfolder`` as plain folder names to keep inside the output folder:
    ``.``, ``..``, empty and absolute parts are dropped, each part made a ``safe_name``."""
    parts = str(subfolder or "").replace("\\", "/").split("/")
    return [safe_name(p) for p in parts if p.strip(" .") and safe_name(p, "") != ""][:8]


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
    for node_id, node in wf.items():
        if not isinstance(node.get("inputs", {}), dict):
            raise QueueError(f"{path}: node {node_id} has inputs that are not an object")
        node.setdefault("inputs", {})  # a node without inputs (ComfyUI allows it)
    return wf


SEED_MAX = 2**64 - 1  # ComfyUI's seed widgets


def parse_seeds(text: str) -> Sequence[int]:
    """``"a..b"`` (inclusive, a lazy range: a billion seeds cost nothing up front) or
    ``"a,b,c"`` -> seeds in 0..2**64-1."""
    try:
        if ".." in text:
            lo, hi = (int(x) for x in text.split("..", 1))
            seeds: Sequence[int] = range(lo, hi + 1)
        else:
            seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise QueueError(f"--seeds takes low..high or a,b,c (integers), got {text!r}") from None
    if not seeds:
        raise QueueError(f"--seeds {text!r} gives no seed (write low..high with low <= high)")
    lo, hi = (seeds[0], seeds[-1]) if isinstance(seeds, range) else (min(seeds), max(seeds))
    if lo < 0 or hi > SEED_MAX:
        raise QueueError(f"--seeds {text!r}: seeds are integers from 0 to {SEED_MAX}")
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
    """Minimal ComfyUI HTTP client with retries.

    ``timeout`` bounds each socket operation (seconds), ``deadline`` the whole of one request
    (connect, send, headers and body), so a server that drips a byte at a time ends too.
    """

    def __init__(
        self,
        server: str,
        retries: int = 3,
        backoff: float = 0.5,
        timeout: float = 30,
        deadline: float = 600,
    ):
        self.server = server.rstrip("/")
        parts = urllib.parse.urlsplit(self.server)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise QueueError(
                f"--server must be an http(s) URL like http://127.0.0.1:8188, got {server!r}"
            )
        self.retries, self.backoff, self.timeout = retries, backoff, timeout
        self.deadline = deadline
        self.client_id = uuid.uuid4().hex

    def _once(self, path: str, data: bytes | None, headers: dict, limit: int) -> tuple[int, bytes]:
        """One request: (HTTP status, body of at most ``limit`` + 1 bytes)."""
        parts = urllib.parse.urlsplit(self.server + path)
        https = parts.scheme == "https"
        conn = (http.client.HTTPSConnection if https else http.client.HTTPConnection)(
            parts.hostname, parts.port, timeout=self.timeout
        )
        conn.connect()  # bounded by ``timeout``; the deadline covers the rest
        sock, expired = conn.sock, threading.Event()

        def cut() -> None:  # unblocks a recv waiting on a dripping server
            expired.set()
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        watchdog = threading.Timer(self.deadline, cut)
        watchdog.daemon = True
        watchdog.start()
        try:
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            conn.request("GET" if data is None else "POST", target, body=data, headers=headers)
            resp = conn.getresponse()
            size = resp.getheader("Content-Length") or ""
            if resp.status < 400 and size.isdigit() and int(size) > limit:
                self._too_big(path, limit)  # refused unread
            body = resp.read(limit + 1)
        except (OSError, http.client.HTTPException):
            if expired.is_set():
                raise TimeoutError(f"no complete answer within {self.deadline:g} s") from None
            raise
        finally:
            watchdog.cancel()
            conn.close()
        if expired.is_set():  # cut short, possibly without an error from the socket
            raise TimeoutError(f"no complete answer within {self.deadline:g} s")
        if resp.status < 400 and len(body) > limit:
            self._too_big(path, limit)
        return resp.status, body

    def _too_big(self, path: str, limit: int) -> None:
        raise QueueError(
            f"ComfyUI at {self.server} sent more than {_size(limit)} for {path}; "
            "is --server a ComfyUI server?"
        )

    def _request(
        self,
        path: str,
        data: bytes | None = None,
        headers: dict | None = None,
        *,
        retries: int | None = None,
        limit: int | None = None,
    ) -> bytes:
        """The answer's body (at most ``limit`` bytes, default ``MAX_JSON_BYTES``) after up to
        ``retries`` retries of connection errors, timeouts and HTTP 5xx (default: the
        client's)."""
        limit = MAX_JSON_BYTES if limit is None else limit
        retries = self.retries if retries is None else retries
        for attempt in range(retries + 1):
            try:
                code, body = self._once(path, data, headers or {}, limit)
            except (OSError, http.client.HTTPException) as exc:  # refused, timeouts, resets
                if attempt == retries:
                    raise Unanswered(
                        f"cannot reach ComfyUI at {self.server} for {path} ({exc}); start the "
                        "server, pass --server URL, or check that it is not overloaded"
                    ) from exc
            else:
                if code < 400:
                    return body
                if code < 500:
                    raise _http_error(code, body[:65536], path)
                if attempt == retries:
                    raise Unanswered(str(_http_error(code, body[:65536], path)))
            time.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")

    def _json(self, path: str, data: bytes | None = None, headers: dict | None = None, **kw):
        """``_request`` decoded as a JSON object; anything else is a ``QueueError``."""
        body = self._request(path, data, headers, **kw)
        try:
            reply = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise QueueError(
                f"ComfyUI at {self.server} answered {path} with something that is not JSON "
                f"({body[:80]!r}); is --server a ComfyUI server?"
            ) from exc
        if not isinstance(reply, dict):
            raise QueueError(f"ComfyUI at {self.server} answered {path} with {reply!r:.80}")
        return reply

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
        info = self._json("/upload/image", body, headers)
        if not isinstance(info.get("name"), str):
            raise QueueError(f"ComfyUI's answer to the upload of {path.name} has no name: {info}")
        sub = info.get("subfolder") or ""
        return f"{sub}/{info['name']}" if sub else info["name"]

    def submit(self, workflow: dict, prompt_id: str | None = None) -> str:
        """Queue ``workflow`` once and return its prompt id (``prompt_id``, or a new one).

        The prompt carries its own id, so when the ``POST /prompt`` fails in a way that may
        have queued it (timeout, dropped connection, HTTP 5xx), ``/history`` and ``/queue``
        are asked first and it is resent only if the server does not have it.
        """
        pid = prompt_id or uuid.uuid4().hex
        data = json.dumps({"prompt": workflow, "client_id": self.client_id, "prompt_id": pid})
        for attempt in range(self.retries + 1):
            try:
                reply = self._json(
                    "/prompt", data.encode(), {"Content-Type": "application/json"}, retries=0
                )
                break
            except Unanswered:  # it may have been queued: ask before sending it again
                if attempt == self.retries:
                    raise
                time.sleep(self.backoff * 2**attempt)
                if self.accepted(pid):
                    return pid
        if reply.get("node_errors"):
            raise QueueError(f"ComfyUI rejected the workflow: {_describe(reply)}")
        if not isinstance(reply.get("prompt_id"), str):
            raise QueueError(f"ComfyUI's answer to the prompt has no prompt_id: {reply}")
        return reply["prompt_id"]

    def accepted(self, prompt_id: str) -> bool:
        """Whether the server holds ``prompt_id``: finished (``/history``), running or queued
        (``/queue``)."""
        if prompt_id in self._json(f"/history/{prompt_id}"):
            return True
        queue = self._json("/queue")
        items = [*queue.get("queue_running", []), *queue.get("queue_pending", [])]
        return any(isinstance(i, list) and len(i) > 1 and i[1] == prompt_id for i in items)

    def alive(self) -> bool:
        """Whether the server answers ComfyUI's ``GET /system_stats`` now (one try, no
        retries): the health probe of a server marked down."""
        try:
            return isinstance(self._json("/system_stats", retries=0).get("system"), dict)
        except QueueError:
            return False

    def wait(self, prompt_id: str, poll: float = 0.5, timeout: float = 3600) -> dict:
        """The history entry of ``prompt_id`` once it ran. ``/history`` is polled every 20 ms
        at first, the pause growing by half each time up to ``poll`` seconds, so a quick
        prompt is collected at once and a long one costs a request per ``poll``."""
        deadline = time.monotonic() + timeout
        pause = min(0.02, poll)
        while time.monotonic() < deadline:
            hist = self._json(f"/history/{prompt_id}")
            if prompt_id in hist:
                entry = hist[prompt_id]
                if not isinstance(entry, dict):
                    raise QueueError(f"ComfyUI's history of {prompt_id} is not an object")
                status = entry.get("status", {})
                if status.get("status_str") == "error":
                    raise QueueError(f"prompt {prompt_id} failed: {_messages(status)}")
                return entry
            time.sleep(pause)
            pause = min(poll, pause * 1.5)
        raise QueueError(f"prompt {prompt_id} did not finish within {timeout:.0f} s")

    def view(self, image: dict) -> bytes:
        query = urllib.parse.urlencode(
            {k: image.get(k, "") for k in ("filename", "subfolder", "type")}
        )
        return self._request(f"/view?{query}", limit=MAX_FILE_BYTES)


def _size(n: int) -> str:
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n} bytes"


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
