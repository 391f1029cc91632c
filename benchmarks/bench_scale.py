"""Dataset-scale scoring (not a test): ``rank``'s engines side by side, measured in one run.

    python benchmarks/bench_scale.py [--count 200] [--actors 1 2] [--keep DIR]

``--count`` generated images (48..96 px, every third with a magenta square) ranked through the
real command line: ``--engine local`` (the baseline: this process, torch's default threads),
then ``--engine ray`` on a fresh local cluster per pool size, with ``--actors`` CPU actors (one
CPU each) and one CPU more for the decoding tasks (on a machine with fewer cores they share
them). Per run: the cluster's start (``ray.init``), the time to the first scored image
(actors starting, model loading; for local, the model load), steady throughput (images/s
after the first scored block), the whole run (with the ranking's copies), the ratios of
throughput and wall time against local, and the memory of each scoring actor and decoding
worker (``/proc``, read at every row; Linux only). Run it on an
otherwise idle machine: torch's threads slow down badly when other processes take cores.
Needs the ``scale`` extra.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from comfyui_pal import cli

ROW = re.compile(r"^\[(\d+)/(\d+)\] ")


def make_images(folder: Path, count: int, seed: int = 0) -> None:
    """``count`` PNGs of 48..96 px, every third with a magenta square."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        h, w = rng.integers(48, 97, 2)
        img = rng.integers(80, 150, (h, w, 3), dtype=np.uint8)
        if i % 3 == 0:
            s = int(rng.integers(8, 24))
            y, x = rng.integers(0, h - s), rng.integers(0, w - s)
            img[y : y + s, x : x + s] = (255, 0, 255)
        Image.fromarray(img).save(folder / f"im{i:04d}.png")


def memory_mib(pid: int | str = "self") -> tuple[float, float]:
    """``(peak resident, private resident now)`` of process ``pid`` in MiB: ``VmHWM`` and
    ``RssAnon``. The peak also counts the pages of Ray's shared object store a worker has
    read (the prepared images), the private part only the worker's own (torch, model)."""
    status = Path(f"/proc/{pid}/status").read_text()
    kb = [re.search(rf"{key}:\s+(\d+) kB", status) for key in ("VmHWM", "RssAnon")]
    return int(kb[0][1]) / 1024, int(kb[1][1]) / 1024


def ray_workers(title: str) -> list[int]:
    """Pids of the processes whose command line holds ``title`` (Ray names its workers
    ``ray::<what they run now>``)."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if title in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                pids.append(int(pid))
        except OSError:  # gone meanwhile
            continue
    return pids


class Stamps(io.TextIOBase):
    """A stdout that notes when each ``[k/N]`` row line arrives, and the memory of each Ray
    scoring actor and decoding worker seen (found by name, then followed by pid while idle;
    the largest of the readings at every row)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.memory: dict[str, dict[int, tuple[float, float]]] = {"actor": {}, "decoder": {}}

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if ROW.match(line):
                self.times.append(time.perf_counter())
                self._sample()
        return len(text)

    def _sample(self) -> None:
        for kind, title in (("actor", "(_Scorer)"), ("decoder", "(_decode)")):
            seen = self.memory[kind]
            for pid in {*ray_workers(title), *seen}:
                try:
                    now = memory_mib(pid)
                except (OSError, TypeError):  # gone, or a kernel thread
                    continue
                old = seen.get(pid, (0.0, 0.0))
                seen[pid] = (max(old[0], now[0]), max(old[1], now[1]))


def steady_rate(times: list[float]) -> float:
    """Images/s after the first result: the rows that came later (Ray delivers a block of
    rows at once) over the time from the first to the last."""
    later = sum(t > times[0] for t in times)
    return later / (times[-1] - times[0]) if later else float("nan")


def rank(src: Path, out: Path, *extra: str) -> tuple[float, Stamps]:
    """``comfyui-pal rank src --out out *extra``: (seconds from its start, its row stamps)."""
    stamps = Stamps()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(stamps), contextlib.redirect_stderr(io.StringIO()):
        code = cli.main(["rank", str(src), "--out", str(out), *extra])
    if code != 0:
        raise SystemExit(f"rank {' '.join(extra)} failed with status {code}")
    stamps.times = [t - t0 for t in stamps.times]
    return time.perf_counter() - t0, stamps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=200, help="images to rank (default: 200)")
    ap.add_argument("--actors", type=int, nargs="+", default=[1, 2], help="Ray pool sizes")
    ap.add_argument("--keep", help="work in this folder and keep it (default: a temp folder)")
    args = ap.parse_args()
    import ray
    import torch

    work = Path(args.keep or tempfile.mkdtemp(prefix="bench_scale_"))
    src = work / "in"
    make_images(src, args.count)
    cores = os.cpu_count()
    print(f"{args.count} images of 48..96 px on {cores} CPU cores, torch {torch.__version__}")
    print(f"ray {ray.__version__}, the shipped model on the CPU\n")

    runs = []  # (name, cluster start s, stamps, wall s)
    wall, stamps = rank(src, work / "local")
    stamps.memory["actor"] = {os.getpid(): memory_mib()}  # local's one worker: this process
    runs.append((f"local ({torch.get_num_threads()} threads)", 0.0, stamps, wall))
    for n in args.actors:
        t0 = time.perf_counter()
        ray.init(
            num_cpus=n + 1, include_dashboard=False, log_to_driver=False, logging_level="ERROR"
        )
        start = time.perf_counter() - t0
        try:
            wall, stamps = rank(src, work / f"ray{n}", "--engine", "ray", "--actors", str(n))
        finally:
            ray.shutdown()
        runs.append((f"ray, {n} CPU actor(s)", start, stamps, wall + start))

    base = runs[0]
    steady0 = steady_rate(base[2].times)
    print(
        "| engine | cluster start s | first image s | steady img/s | vs local | total s "
        "| speed-up | actor MiB: peak RSS / private | decoder MiB: peak RSS / private |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, start, st, total in runs:
        steady = steady_rate(st.times)
        actor, decoder = list(st.memory["actor"].values()), list(st.memory["decoder"].values())

        def mib(values: list[tuple[float, float]]) -> str:
            if not values:
                return "-"
            peak, private = (statistics.mean(v) for v in zip(*values, strict=True))
            return f"{peak:.0f} / {private:.0f} (x{len(values)})"

        print(
            f"| {name} | {start:.1f} | {st.times[0]:.1f} | {steady:.2f} | x{steady / steady0:.2f} "
            f"| {total:.1f} | x{base[3] / total:.2f} | {mib(actor)} | {mib(decoder)} |"
        )
    print(
        "\nfirst image: from the command's start (after the cluster's); steady: images/s "
        "after the first scored block (the rows that came later over the time from the first "
        "to the last); total: cluster start + the whole command; "
        "speed-up: local's total / this total; memory: means over the processes (x how many), "
        "peak RSS with the shared object-store pages a worker read, private without; local's "
        "is this process's"
    )
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    sys.exit(main())
