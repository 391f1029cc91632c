"""``--engine ray``: a folder run (``rank``, ``detect``) on a Ray cluster, with Ray Data.

The files to do become a dataset; CPU tasks decode and prepare each image (``Job.load``); a
pool of actors, each holding one loaded model (on its own GPU when the cluster has GPUs),
scores them and writes their outputs (``Job.apply``); the driver streams the rows back into
Parquet parts (``results.Results``). A file that fails (unreadable, not an image) comes back
as a row with its error: it never stops the run.

Ray restarts an actor that dies (``max_restarts=-1``) and reruns its task (a block of about
``SCORE_BATCH`` images) on the new one, as it reruns a CPU task whose worker dies, at most
``RETRIES`` times each; a rerun's rows stand in for the lost ones, which never reached the
driver, so nothing is lost or scored twice. A block that kills its worker every time ends the
run after that (Ray Data's own default reruns it forever); the parts written so far stay, and
``--resume`` continues.

On a multi-node cluster the inputs, the model file and ``--out`` must be on storage that every
node reads (and, for ``--out``, writes) under the same paths.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import ray
import ray.data
import torch

from ..constants import INPUT_SIZE
from ..io.journal import identity
from ..pipelines.score import Prepared
from .job import Job
from .results import SCHEMA, Results

RETRIES = 3  # reruns of a batch whose worker died (a lost node, out of memory, a crash)
DECODE_CPUS = 1  # per decoding task
ACTOR_CPUS = 1  # per scoring actor: its torch threads on a CPU actor
DECODE_BATCH = 16  # images per decoding call
SCORE_BATCH = 8  # images per actor call
BLOCK_BYTES = SCORE_BATCH * 3 * INPUT_SIZE**2 * 4  # prepared blocks: about SCORE_BATCH images,
# the unit that streams back and that Ray reruns when an actor dies
MAX_BLOCKS = 1000  # blocks the file list is cut into (the decoding tasks' parallelism)
PART_ROWS = 1000  # a results part is written every PART_ROWS rows ...
PART_SECONDS = 60.0  # ... or every PART_SECONDS seconds, whichever comes first
EMPTY = np.zeros((3, 0, 0), np.float32)  # the tensors of a file that failed to decode

Log = Callable[[str], None]


@dataclass(frozen=True)
class Cluster:
    """Where and how wide to run.

    ``address``: a running cluster (``auto``, ``HEAD:6379``); None starts a local one on
    this machine. ``actors``: the scoring pool's size (None: one per GPU, else
    one per CPU but one, which decodes). ``num_gpus``: GPUs per actor (None: 1 when the
    cluster has GPUs and ``cpu`` is off, else 0; a fraction shares a GPU).
    """

    address: str | None = None
    actors: int | None = None
    num_gpus: float | None = None
    cpu: bool = False


def run(
    job: Job,
    files: list[Path],
    results: Results,
    cluster: Cluster,
    overwrite: bool = False,
    log: Log = print,
    warn: Log = print,
) -> list[dict]:
    """Score every file of ``files`` that ``results`` does not hold already (scored, same
    identity, outputs there), saving the rows in ``results``; returns the failures of this run
    (``{"image", "error"}``), each also reported through ``warn``.

    ``overwrite`` lets ``job`` replace existing outputs; without it only the outputs an
    interrupted earlier run claimed are replaced, and a file whose outputs exist otherwise
    fails (as in the local engine).
    """
    todo, failed = [], []
    for path in files:
        key, ident = str(path), identity(path)
        outputs = job.outputs(path)
        if results.scored(key, ident) and all(p.exists() for p in outputs):
            continue
        redo = overwrite or key in results.claimed
        clash = [p for p in outputs if p.exists()]
        if clash and not redo:
            error = (
                f"{clash[0]} exists; pass --overwrite to replace it (or --resume to skip "
                "images an earlier run finished)"
            )
            failed.append({"image": key, "error": error})
            warn(f"FAILED {key}: {error}")
            continue
        item = {"image": key, "file": str(path.resolve()), "replace": redo}
        todo.append(item | {"bytes": ident[0], "mtime_ns": ident[1]})
    skipped = len(files) - len(todo) - len(failed)
    if skipped:
        log(f"{skipped} of {len(files)} scored before, skipped (--resume)")
    if not todo:
        return failed
    if job.out_dir is not None:
        job = replace(job, out_dir=job.out_dir.resolve())  # the actors' working folder differs
        results.claim([t["image"] for t in todo])
    for row in _stream(job, todo, results, cluster, log):
        if row["error"] is not None:
            failed.append({"image": row["image"], "error": row["error"]})
            warn(f"FAILED {row['image']}: {row['error']}")
    results.release()
    return failed


def _stream(
    job: Job, todo: list[dict], results: Results, cluster: Cluster, log: Log
) -> Iterator[dict]:
    """Run ``todo`` on the cluster; yields each row as it is saved in a part."""
    started = _connect(cluster.address)
    try:
        actors, num_gpus = _pool(cluster)
        log(
            f"scoring {len(todo)} images on Ray: {actors} actor(s), "
            + (f"{num_gpus:g} GPU each" if num_gpus else "CPU")
        )
        yield from _save(_pipeline(job, todo, actors, num_gpus), results, len(todo), log)
    except ray.exceptions.RayError as exc:
        lines = [line for line in str(exc).splitlines() if line.strip()]
        raise ValueError(
            f"the Ray run failed ({type(exc).__name__}: {lines[-1] if lines else exc}); the "
            f"results so far are in {results.folder}: pass --resume to continue"
        ) from exc
    finally:
        if started:
            ray.shutdown()


def _pipeline(job: Job, todo: list[dict], actors: int, num_gpus: float) -> ray.data.Dataset:
    """The dataset of ``todo``'s result rows: decoding tasks, then the pool of scoring actors."""
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # our lines say how it goes
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.target_max_block_size = BLOCK_BYTES
    blocks = min(MAX_BLOCKS, -(-len(todo) // DECODE_BATCH))
    with warnings.catch_warnings():
        # Ray 2.60 deprecates the retry keywords below (as **ray_remote_args) but has no
        # named ones for them yet; they still apply. Ray Data's defaults rerun forever.
        warnings.filterwarnings("ignore", "`ray_remote_args` is deprecated")
        decoded = ray.data.from_items(todo, override_num_blocks=blocks).map_batches(
            _decode,
            fn_kwargs={"job": job},
            batch_size=DECODE_BATCH,
            num_cpus=DECODE_CPUS,
            max_retries=RETRIES,
        )
        return decoded.map_batches(
            _Scorer,
            fn_constructor_kwargs={"job": job, "device": "cuda" if num_gpus else "cpu"},
            compute=ray.data.ActorPoolStrategy(size=actors),
            batch_size=SCORE_BATCH,
            num_cpus=ACTOR_CPUS,
            num_gpus=num_gpus,
            max_restarts=-1,
            max_task_retries=RETRIES,
        )


def _save(scored: ray.data.Dataset, results: Results, total: int, log: Log) -> Iterator[dict]:
    """Stream ``scored``'s rows into parts of ``results`` (the rows held so far are saved
    also when the stream fails); yields each row once its part is written."""
    buffer: list[dict] = []
    last, done = time.monotonic(), 0
    try:
        for table in scored.iter_batches(batch_size=None, batch_format="pyarrow"):
            for row in table.to_pylist():
                done += 1
                if row["error"] is None:
                    name, regions = Path(row["image"]).name, row["regions"]
                    log(f"[{done}/{total}] {name}: PAR {row['par']:.4f}, {regions} region(s)")
                buffer.append(row)
            if len(buffer) >= PART_ROWS or time.monotonic() - last >= PART_SECONDS:
                results.write(buffer)
                yield from buffer
                buffer, last = [], time.monotonic()
    finally:
        if buffer:
            results.write(buffer)
    yield from buffer


def _connect(address: str | None) -> bool:
    """Connect to the cluster at ``address``, or start a local one (no dashboard, quiet) when
    None; nothing when this process is connected already. Returns whether it connected."""
    if ray.is_initialized():
        return False
    quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
    if address is not None:
        ray.init(address=address, **quiet)
    else:
        ray.init(num_cpus=max(2, os.cpu_count() or 1), include_dashboard=False, **quiet)
    return True


def _pool(cluster: Cluster) -> tuple[int, float]:
    """``(actors, GPUs per actor)`` for ``cluster`` on the connected Ray cluster's resources;
    a ``ValueError`` for a pool that cannot be placed (it would wait forever)."""
    have = ray.cluster_resources()
    cpus, gpus = have.get("CPU", 0.0), have.get("GPU", 0.0)
    num_gpus = cluster.num_gpus
    if num_gpus is None:
        num_gpus = 1.0 if gpus and not cluster.cpu else 0.0
    if num_gpus and not gpus:
        raise ValueError(
            f"--num-gpus {num_gpus:g} but the Ray cluster has no GPU; pass --num-gpus 0 to "
            "score on CPU actors"
        )
    fit = int(gpus // num_gpus) if num_gpus else int(cpus) - DECODE_CPUS
    actors = cluster.actors or max(1, fit)
    if num_gpus and actors * num_gpus > gpus:
        raise ValueError(
            f"{actors} actor(s) with {num_gpus:g} GPU each need {actors * num_gpus:g} GPUs but "
            f"the Ray cluster has {gpus:g}; pass --actors {fit} or fewer, or a smaller --num-gpus"
        )
    if actors * ACTOR_CPUS + DECODE_CPUS > cpus:
        raise ValueError(
            f"{actors} actor(s) need {actors * ACTOR_CPUS} CPU(s) plus {DECODE_CPUS} for "
            f"decoding but the Ray cluster has {cpus:g}; pass fewer --actors or add CPUs"
        )
    return actors, num_gpus


def _objects(arrays: list[np.ndarray]) -> np.ndarray:
    """A column of arrays (one per row, shapes may differ) for Ray Data."""
    out = np.empty(len(arrays), dtype=object)
    for k, a in enumerate(arrays):
        out[k] = a
    return out


def _decode(batch: dict[str, np.ndarray], job: Job) -> dict[str, np.ndarray]:
    """CPU task: decode and prepare each file of ``batch``. Adds ``resized`` ``[3,512,512]``,
    ``full`` ``[3,H,W]`` (when the job keeps it), ``height`` / ``width``, ``seconds`` and
    ``error`` (``""`` for none: a string column whatever the batch holds): a file that
    fails carries its error (and empty tensors) on to the actors."""
    resized, full, height, width, seconds, errors = [], [], [], [], [], []
    for file in batch["file"]:
        t0 = time.perf_counter()
        try:
            prepared, error = job.load(Path(file)), ""
        except (ValueError, OSError) as exc:
            prepared, error = None, str(exc) or type(exc).__name__
        ok = prepared is not None
        resized.append(prepared.resized[0].numpy() if ok else EMPTY)
        full.append(prepared.full[0].numpy() if ok and prepared.full is not None else EMPTY)
        height.append(prepared.size[0] if ok else 0)
        width.append(prepared.size[1] if ok else 0)
        seconds.append(time.perf_counter() - t0)
        errors.append(error)
    return batch | {
        "resized": _objects(resized),
        "full": _objects(full),
        "height": np.array(height),
        "width": np.array(width),
        "seconds": np.array(seconds),
        "error": np.array(errors, dtype=object),
    }


class _Scorer:
    """Ray actor holding one loaded model: scores each prepared image of a batch and writes
    its outputs (``Job.apply``); rows that failed to decode pass through with their error.
    Returns ``results.SCHEMA`` rows."""

    def __init__(self, job: Job, device: str) -> None:
        from ..cache import load_model

        self.job, self.model = job, load_model(job.model, device)

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        rows = []
        for k in range(len(batch["image"])):
            row = {name: batch[name][k] for name in ("image", "bytes", "mtime_ns", "seconds")}
            row["error"] = batch["error"][k] or None
            if row["error"] is None:
                t0 = time.perf_counter()
                row |= self._score(batch, k)
                row["seconds"] += time.perf_counter() - t0
            rows.append(row)
        return pa.Table.from_pylist([_plain(r) for r in rows], schema=SCHEMA)

    def _score(self, batch: dict[str, np.ndarray], k: int) -> dict:
        """Row ``k``'s score and outputs, or its error."""
        full = batch["full"][k]
        prepared = Prepared(
            torch.from_numpy(batch["resized"][k].copy())[None],
            (int(batch["height"][k]), int(batch["width"][k])),
            torch.from_numpy(full.copy())[None] if full.size else None,
        )
        try:
            return self.job.apply(self.model, Path(batch["file"][k]), prepared, batch["replace"][k])
        except (ValueError, OSError) as exc:
            return {"error": str(exc)}


def _plain(row: dict) -> dict:
    """``row`` with numpy scalars as Python ones (what Arrow's ``from_pylist`` takes)."""
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in row.items()}
