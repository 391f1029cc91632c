"""Queue throughput over 1, 2 and 3 ComfyUI servers (not a test).

    python benchmarks/bench_queue.py [--prompts 60] [--seconds 0.2] [--concurrency 2]

Each server is a stand-in render server (``tests/comfy_farm.py``) that, like ComfyUI, runs
one prompt at a time and takes a fixed ``--seconds`` per prompt, so one server's ceiling is
``1 / seconds`` prompts/s and k servers' is k times that. ``run_queue`` drives ``--prompts``
seed jobs over the pool (download of every output included); the table gives prompts/s, the
ratio to one server measured in the same run, and the scaling efficiency (ratio / k; target
>= 0.9, issue 17).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from comfy_farm import FarmServer  # noqa: E402

from comfyui_pal.io.comfy_client import Client, Job  # noqa: E402
from comfyui_pal.io.dispatch import Server, run_queue  # noqa: E402

WORKFLOW = {"3": {"class_type": "KSampler", "inputs": {"seed": 0}}}


def throughput(servers: int, prompts: int, seconds: float, slots: int) -> float:
    """Prompts per second of one queue run over ``servers`` stand-ins."""
    farm = [FarmServer(seconds=seconds) for _ in range(servers)]
    try:
        pool = [Server(Client(f.url), slots) for f in farm]
        jobs = [Job(f"seed{s}", seed=s) for s in range(prompts)]
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            done = run_queue(WORKFLOW, jobs, Path(out), pool, log=lambda _: None)
            took = time.perf_counter() - t0
        assert len(done) == prompts
        assert sorted(s for f in farm for s in f.ran) == list(range(prompts))
        return prompts / took
    finally:
        for f in farm:
            f.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=60)
    ap.add_argument("--seconds", type=float, default=0.2, help="render time per prompt")
    ap.add_argument("--concurrency", type=int, default=2, help="prompts in flight per server")
    args = ap.parse_args()
    ceiling = 1 / args.seconds
    print(f"{args.prompts} prompts, {args.seconds:g} s each, {args.concurrency} in flight/server")
    print(
        f"{'servers':>7} {'prompts/s':>10} {'x 1 server':>11} {'efficiency':>11} {'of ceiling':>11}"
    )
    base = None
    for k in (1, 2, 3):
        rate = throughput(k, args.prompts, args.seconds, args.concurrency)
        base = base or rate
        ratio = rate / base
        print(
            f"{k:>7} {rate:>10.2f} {ratio:>10.2f}x {ratio / k:>11.2f} {rate / (k * ceiling):>11.2f}"
        )


if __name__ == "__main__":
    main()
