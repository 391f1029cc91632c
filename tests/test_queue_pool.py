"""The queue over several ComfyUI servers on 127.0.0.1, with a fault schedule.

Stand-in render servers (``comfy_farm``) execute one prompt at a time; one dies mid-run, one
is slow, one answers every prompt with HTTP 500; a run killed with SIGKILL is resumed. Every
case must end with every job done exactly once (one report row, an output holding that job's
seed) and no prompt queued twice for one attempt.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from comfy_farm import FarmServer
from PIL import Image

from comfyui_pal import cli
from comfyui_pal.io.comfy_client import Client, Job, QueueError
from comfyui_pal.io.dispatch import Server, parse_servers, run_queue

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = {
    "3": {"class_type": "KSampler", "inputs": {"seed": 0, "steps": 4}},
    "9": {"class_type": "SaveImage", "inputs": {"images": ["3", 0]}},
}


@pytest.fixture
def farm():
    made: list[FarmServer] = []

    def make(**kw) -> FarmServer:
        made.append(FarmServer(**kw))
        return made[-1]

    yield make
    for server in made:
        if server.alive:
            server.kill()


def _pool(*servers: FarmServer, slots: int = 2) -> list[Server]:
    return [Server(Client(s.url, retries=1, backoff=0.01, timeout=2), slots) for s in servers]


def _seed_in(path: Path) -> int:
    r, g, _ = Image.open(path).getpixel((0, 0))
    return r + 256 * g


def _check_each_job_once(done: list[Job], out: Path, seeds: range) -> None:
    assert [j.seed for j in done] == list(seeds)  # all of them, in job order
    for job in done:
        (output,) = job.outputs
        assert _seed_in(out / output) == job.seed  # the output is this job's own render
    state = json.loads((out / "queue_state.json").read_text())
    assert sorted(state) == sorted(j.name for j in done)
    assert all("outputs" in entry for entry in state.values())


def test_a_slow_a_dying_and_a_failing_server_lose_and_repeat_nothing(farm, tmp_path):
    good, dying, failing = farm(seconds=0.12), farm(seconds=0.03), farm(fail_prompts=True)
    lines: list[str] = []

    def log(line: str) -> None:
        lines.append(line)
        if sum("output(s) from" in x for x in lines) == 6 and dying.alive:
            dying.kill()  # mid-run, with prompts queued and running on it

    out = tmp_path / "out"
    seeds = range(1, 31)
    jobs = (Job(f"seed{s}", seed=s) for s in seeds)
    done = run_queue(WORKFLOW, jobs, out, _pool(good, dying, failing), log=log, probe=0.2)
    _check_each_job_once(done, out, seeds)
    assert set(dying.ran) | set(good.ran) >= set(seeds)
    assert failing.ran == [] and all(j.server != failing.url for j in done)
    assert any(j.server == dying.url for j in done) and any(j.server == good.url for j in done)
    assert any(j.attempts > 1 for j in done)  # jobs of the dead and the failing server moved
    for server in (good, dying):  # one prompt per attempt: at most once per server and seed
        assert max(server.accepted.values()) == 1
    assert any("marked down" in x and dying.url in x for x in lines)


def test_a_slow_server_gets_fewer_jobs_and_a_revived_one_rejoins(farm, tmp_path):
    fast, slow = farm(seconds=0.02), farm(seconds=0.4)
    lines: list[str] = []

    def revive_later() -> None:
        time.sleep(0.6)
        slow.revive()

    def log(line: str) -> None:
        lines.append(line)
        if sum("output(s) from" in x for x in lines) == 3 and slow.alive:
            slow.kill()
            threading.Thread(target=revive_later, daemon=True).start()

    out = tmp_path / "out"
    seeds = range(40)
    jobs = (Job(f"seed{s}", seed=s) for s in seeds)
    done = run_queue(WORKFLOW, jobs, out, _pool(fast, slow), log=log, probe=0.1)
    _check_each_job_once(done, out, seeds)
    per = {url: sum(j.server == url for j in done) for url in (fast.url, slow.url)}
    assert per[fast.url] > 3 * per[slow.url]
    assert any("answers again" in x for x in lines)
    down_at = next(i for i, x in enumerate(lines) if "marked down" in x)
    back_at = next(i for i, x in enumerate(lines) if "answers again" in x)
    assert down_at < back_at


def test_a_job_failed_by_every_server_is_reported_and_the_rest_finish(farm, tmp_path):
    failing = farm(fail_prompts=True)
    with pytest.raises(QueueError, match="HTTP 500"):
        run_queue(WORKFLOW, [Job("seed1", seed=1)], tmp_path / "o1", _pool(failing), log=print)
    good = farm(seconds=0.01)
    jobs = [Job(f"seed{s}", seed=s) for s in range(5)]
    done = run_queue(WORKFLOW, jobs, tmp_path / "o2", _pool(failing, good), log=print)
    assert [j.seed for j in done] == list(range(5)) and {j.server for j in done} == {good.url}


def test_a_pool_that_stays_down_gives_up_after_its_patience(farm, tmp_path):
    server = farm(seconds=0.01)
    url = server.url
    server.kill()
    t0 = time.monotonic()
    jobs = (Job(f"seed{s}", seed=s) for s in range(10**9))  # never read to the end
    with pytest.raises(QueueError, match=r"cannot reach ComfyUI|could take a job"):
        run_queue(WORKFLOW, jobs, tmp_path / "o", _pool(server), log=print, patience=1, probe=0.1)
    assert time.monotonic() - t0 < 10 and url


@pytest.mark.slow
def test_a_run_killed_mid_way_resumes_without_queueing_a_prompt_twice(farm, tmp_path):
    a, b = farm(seconds=0.25), farm(seconds=0.25)
    wf = tmp_path / "wf.json"
    wf.write_text(json.dumps(WORKFLOW))
    out = tmp_path / "out"
    args = ["queue", str(wf), "--server", a.url, "--server", b.url, "--seeds", "1..12"]
    args += ["--out", str(out), "--no-score", "--concurrency", "2"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "comfyui_pal", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while len(a.ran) + len(b.ran) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # mid-run: prompts queued, running and finished
    proc.wait()
    state = json.loads((out / "queue_state.json").read_text())
    pending = [k for k, v in state.items() if "pending" in v]
    assert pending, state  # the kill left submitted prompts behind
    assert cli.main([*args, "--resume"]) == 0
    for seed in range(1, 13):  # queued once in all, whether collected or run after the kill
        assert a.accepted[seed] + b.accepted[seed] == 1, seed
    rows = list(csv.DictReader((out / "report.csv").open()))
    assert sorted(int(r["job"][4:]) for r in rows) == list(range(1, 13))
    assert {r["server"] for r in rows} == {a.url, b.url}
    assert all(_seed_in(out / r["output"]) == int(r["job"][4:]) for r in rows)


def test_servers_from_flags_and_a_file(tmp_path, farm, capsys):
    pool = parse_servers(
        ["http://h1:8188", "http://h1:8188/"], ["# farm", "http://h2:8188 4", "", "http://h3:1"]
    )
    assert [(s.url, s.slots) for s in pool] == [
        ("http://h1:8188", 2),
        ("http://h2:8188", 4),
        ("http://h3:1", 2),
    ]
    for bad, message in ((["http://h 1 2"], "line 1"), (["http://h x"], "URL SLOTS")):
        with pytest.raises(QueueError, match=message):
            parse_servers([], bad)
    with pytest.raises(QueueError, match="http"):
        parse_servers([], ["ftp://h2"])
    a, b = farm(seconds=0.01), farm(seconds=0.01)
    listing = tmp_path / "servers.txt"
    listing.write_text(f"{a.url} 1\n{b.url}  # second box\n")
    wf = tmp_path / "wf.json"
    wf.write_text(json.dumps(WORKFLOW))
    out = tmp_path / "out"
    args = ["queue", str(wf), "--servers", str(listing), "--seeds", "1..8", "--out", str(out)]
    assert cli.main([*args, "--no-score"]) == 0
    printed = capsys.readouterr().out
    assert f"{a.url}: " in printed and f"{b.url}: " in printed
    rows = list(csv.DictReader((out / "report.csv").open()))
    assert len(rows) == 8 and {r["server"] for r in rows} == {a.url, b.url}
    assert cli.main(["queue", str(wf), "--servers", str(tmp_path / "nope"), "--seeds", "1"]) == 1
    assert "cannot read --servers" in capsys.readouterr().err
