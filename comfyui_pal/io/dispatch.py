"""Run queue jobs over one or more ComfyUI servers, resumably (the ``queue`` command's engine).

Rendering stays ComfyUI's own: every server keeps its HTTP queue, and this module only keeps
``slots`` prompts in flight on each. A job goes to the up server with the most free slots
that it has not failed on; an attempt that gets no usable answer (connection refused,
timeouts, HTTP 5xx after the client's retries) marks its server down and puts the job back
for another server; a down server is probed on ``GET /system_stats`` every ``probe`` seconds
(doubling to at most a minute while it stays silent) and takes jobs again once it answers.
A job is tried on each server at most once; one whose servers all failed it, or that waited
``patience`` seconds with no server answering, is reported failed and left for ``--resume``.

``queue_state.json`` in the output folder is the run's record, rewritten atomically after
every change: per job either ``{"outputs", "server", "attempts"}`` (finished) or
``{"pending": {"server", "prompt_id"}}`` (submitted). A resumed run skips finished jobs and,
for a pending one, asks its server whether that prompt ran (``/history``, ``/queue``) and
collects it instead of queueing it again, so a prompt is queued once per attempt and a job is
counted once however the run was cut.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from .comfy_client import Client, Job, QueueError, Unanswered, fill, safe_name, safe_parts
from .images import write_atomic

STATE = "queue_state.json"
MAX_PROBE_INTERVAL = 60.0  # seconds between probes of a server that stays down


@dataclass
class Server:
    """One ComfyUI server of the pool and what the dispatcher knows of it."""

    client: Client
    slots: int = 2  # prompts in flight at once
    busy: int = 0
    up: bool = True
    probing: bool = False
    next_probe: float = 0.0
    silent: int = 0  # failed probes in a row
    ran: int = 0  # jobs finished here

    @property
    def url(self) -> str:
        return self.client.server


@dataclass
class Task:
    """A job on its way: its place in the input, the servers that failed it, the last error."""

    index: int
    job: Job
    tried: list[str] = field(default_factory=list)
    error: QueueError | None = None
    pending: dict | None = None  # {"server", "prompt_id"} of an earlier run's attempt


def parse_servers(
    urls: Sequence[str], lines: Iterable[str] = (), slots: int = 2, **client: float
) -> list[Server]:
    """Servers from ``--server URL`` values and ``--servers FILE`` lines (``URL [slots]``;
    blank lines and ``#`` comments skipped), each once, ``slots`` prompts in flight unless its
    line says otherwise; ``client`` are ``Client`` settings (``retries``, ``timeout``, ...).
    Raises ``QueueError`` naming a bad line."""
    found: dict[str, Server] = {}
    entries = [(u, None, f"--server {u!r}") for u in urls]
    for n, line in enumerate(lines, 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) > 2 or (len(words) == 2 and not words[1].isdigit()):
            raise QueueError(f"--servers line {n} {line.strip()!r}: write 'URL' or 'URL SLOTS'")
        entries.append((words[0], int(words[1]) if len(words) == 2 else None, f"line {n}"))
    for url, own, where in entries:
        if own is not None and own < 1:
            raise QueueError(f"--servers {where}: slots must be at least 1")
        made = Client(url, **client)
        found.setdefault(made.server, Server(made, own or slots))
    if not found:
        raise QueueError("no server: pass --server URL (repeatable) or --servers FILE")
    return list(found.values())


def _load_state(path: Path, resume: bool, overwrite: bool) -> dict:
    if path.exists() and not (resume or overwrite):
        raise QueueError(
            f"{path.parent} holds an earlier queue run; pass --resume to go on with it, "
            "--overwrite to replace it, or another --out folder"
        )
    if not (resume and path.exists()):
        return {}
    try:
        state = json.loads(path.read_text())
        if not isinstance(state, dict):
            raise ValueError("not an object")
    except ValueError as exc:
        raise QueueError(
            f"{path} is not a queue record ({exc}): move it away, or pass --overwrite"
        ) from None
    # runs before the multi-server queue stored a finished job as its list of outputs
    return {k: {"outputs": v} if isinstance(v, list) else v for k, v in state.items()}


def run_queue(
    workflow: dict,
    jobs: Iterable[Job],
    out_dir: Path,
    servers: Client | Sequence[Client | Server],
    concurrency: int = 2,
    resume: bool = False,
    log: Callable[[str], None] = print,
    overwrite: bool = False,
    probe: float = 2.0,
    patience: float = 300.0,
) -> list[Job]:
    """Run ``jobs`` on ``servers`` and return the finished ones (with their saved outputs and
    ``server`` / ``attempts`` filled in), in job order.

    ``jobs`` are read lazily: at most twice the pool's slots are in flight or waiting.
    ``concurrency`` is the slots of each server given as a plain ``Client``. A folder holding
    an earlier run is refused unless ``resume`` (go on with it) or ``overwrite`` (replace its
    files of the same names); an existing output file is never replaced otherwise. Raises
    the first error when every job tried failed.
    """
    given = [servers] if isinstance(servers, Client) else list(servers)
    pool = [s if isinstance(s, Server) else Server(s, max(1, concurrency)) for s in given]
    if not pool:
        raise QueueError("no server to run the queue on")
    out_dir.mkdir(parents=True, exist_ok=True)
    state_path = out_dir / STATE
    state = _load_state(state_path, resume, overwrite)
    lock = threading.Lock()

    def save(name: str, entry: dict) -> None:
        with lock:
            state[name] = entry
            write_atomic(state_path, json.dumps(state, indent=1))

    def attempt(task: Task, server: Server) -> Job:
        job, client = task.job, server.client
        job.outputs, written = [], []
        try:
            old = task.pending if task.pending and task.pending["server"] == server.url else None
            task.pending = None
            if old is not None and client.accepted(old["prompt_id"]):
                prompt_id = old["prompt_id"]  # an earlier run queued it here: collect it
                log(f"{job.name}: collecting prompt {prompt_id} queued by an earlier run")
            else:
                uploaded = client.upload(job.image) if job.image is not None else None
                ours = uuid.uuid4().hex
                save(job.name, {"pending": {"server": server.url, "prompt_id": ours}})
                prompt_id = client.submit(fill(workflow, job, uploaded), ours)
                if prompt_id != ours:  # a server that names prompts itself
                    save(job.name, {"pending": {"server": server.url, "prompt_id": prompt_id}})
            entry = client.wait(prompt_id)
            _download(client, entry, job, out_dir, overwrite, written)
        except BaseException:
            for path in written:  # this attempt's partial outputs; another one redoes them
                path.unlink(missing_ok=True)
            job.outputs = []
            raise
        job.server, job.attempts = server.url, len(task.tried) + 1
        save(job.name, {"outputs": job.outputs, "server": job.server, "attempts": job.attempts})
        return job

    source: Iterator[Job] = iter(jobs)
    exhausted = False
    waiting: deque[Task] = deque()
    running: dict[Future, tuple[Task, Server]] = {}
    probes: dict[Future, Server] = {}
    finished: dict[int, Job] = {}
    errors: list[QueueError] = []
    tried = pulled = 0
    window = 2 * sum(s.slots for s in pool)
    last_progress = time.monotonic()

    def fail(task: Task, exc: QueueError) -> None:
        errors.append(exc)
        log(f"FAILED: {task.job.name}: {exc}")

    with ThreadPoolExecutor(max_workers=window // 2 + len(pool)) as executor:
        while True:
            now = time.monotonic()
            for s in pool:  # probe the servers that are down and due
                if not s.up and not s.probing and now >= s.next_probe:
                    s.probing = True
                    probes[executor.submit(s.client.alive)] = s
            while not exhausted and len(waiting) + len(running) < window:
                job = next(source, None)
                if job is None:
                    exhausted = True
                    break
                done = state.get(job.name, {})
                if "outputs" in done:
                    job.outputs = list(done["outputs"])
                    job.server, job.attempts = done.get("server"), done.get("attempts", 1)
                    finished[pulled] = job
                    log(f"{job.name}: done before, skipped (--resume)")
                else:
                    tried += 1
                    waiting.append(Task(pulled, job, pending=done.get("pending")))
                pulled += 1
            for task in list(waiting):
                untried = [s for s in pool if s.url not in task.tried]
                if not untried:
                    waiting.remove(task)
                    fail(task, task.error or QueueError("no server could run it"))
                    continue
                own = [s for s in untried if task.pending and s.url == task.pending["server"]]
                if own and own[0].up:  # an earlier run queued it there: collect it there
                    untried = own
                free = [s for s in untried if s.up and s.busy < s.slots]
                if free:
                    server = max(free, key=lambda s: (s.slots - s.busy) / s.slots)
                    waiting.remove(task)
                    server.busy += 1
                    last_progress = now
                    running[executor.submit(attempt, task, server)] = (task, server)
            if exhausted and not waiting and not running:
                break
            if not running and now - last_progress > patience:
                silent = QueueError(
                    f"no ComfyUI server could take a job for {patience:.0f} s "
                    f"({', '.join(s.url for s in pool)}); start them and pass --resume"
                )
                for task in waiting:
                    fail(task, task.error or silent)
                if not exhausted:
                    log("the jobs not yet read are left for --resume")
                break
            if running or probes:
                due = [s.next_probe for s in pool if not s.up and not s.probing]
                timeout = max(0.01, min(due) - now) if due else None
                done_now, _ = wait([*running, *probes], timeout, return_when=FIRST_COMPLETED)
            else:  # nothing in flight: sleep until the next probe is due
                due = [s.next_probe for s in pool if not s.up]
                time.sleep(max(0.01, min(due, default=now + probe) - now))
                done_now = set()
            for fut in done_now:
                if fut in probes:
                    s = probes.pop(fut)
                    s.probing = False
                    if fut.result():
                        s.up, s.silent, last_progress = True, 0, time.monotonic()
                        log(f"{s.url}: answers again, back in the pool")
                    else:
                        s.silent += 1
                        wait_s = min(MAX_PROBE_INTERVAL, probe * 2 ** min(s.silent, 10))
                        s.next_probe = time.monotonic() + wait_s
                    continue
                task, server = running.pop(fut)
                server.busy -= 1
                exc = fut.exception()
                if exc is None:
                    server.ran += 1
                    last_progress = time.monotonic()
                    finished[task.index] = task.job
                    log(f"{task.job.name}: {len(task.job.outputs)} output(s) from {server.url}")
                elif isinstance(exc, Unanswered):
                    task.tried.append(server.url)
                    task.error = exc
                    if server.up:
                        server.up, server.silent = False, 0
                        server.next_probe = time.monotonic() + probe
                        log(f"{server.url}: marked down ({exc}); its jobs go to the others")
                    waiting.appendleft(task)
                elif isinstance(exc, QueueError):
                    last_progress = time.monotonic()
                    fail(task, exc)
                else:
                    raise exc
    if errors and len(errors) == tried:
        raise errors[0]
    return [finished[i] for i in sorted(finished)]


def _download(
    client: Client, entry: dict, job: Job, out_dir: Path, overwrite: bool, written: list[Path]
) -> None:
    """Save the images of a finished prompt's history ``entry`` into ``out_dir`` as
    ``<job>_<node>_<file>`` (in the server's subfolder, made safe), listing them in
    ``job.outputs`` (relative paths) and ``written``."""
    for node_id, out in (entry.get("outputs") or {}).items():
        images = out.get("images", []) if isinstance(out, dict) else []
        for image in [i for i in images if isinstance(i, dict) and "filename" in i]:
            name = safe_name(f"{job.name}_{safe_name(node_id)}_{safe_name(image['filename'])}")
            folder = out_dir.joinpath(*safe_parts(image.get("subfolder", "")))
            folder.mkdir(parents=True, exist_ok=True)
            dst = folder / name
            if dst.exists() and not overwrite:
                raise QueueError(f"{dst} exists; pass --overwrite or another --out folder")
            data = client.view(image)
            write_atomic(dst, data)
            written.append(dst)
            job.outputs.append(dst.relative_to(out_dir).as_posix())
