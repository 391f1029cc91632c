"""``--engine ray`` scores like ``--engine local``: the same PAR and ranking, through an actor
killed mid-run, a resumed run and bad files, on a local Ray cluster of 2 CPUs.

The local reference runs torch on one thread, as the actors do (Ray gives each one CPU):
torch's CPU kernels round differently with other thread counts (about 1e-7 in probability,
enough to move a pixel across the threshold now and then).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from comfyui_pal import cli
from comfyui_pal.cache import load_model, resolve_model_path
from comfyui_pal.pipelines.detect import DetectOptions
from comfyui_pal.scale.job import Job

N_IMAGES = 200
BAD = ("broken.png", "text.jpg", "truncated.png")


@contextlib.contextmanager
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _make_images(folder: Path, count: int, seed: int = 0) -> None:
    """``count`` images of 48..96 px, every third with a magenta square, and the ``BAD`` files
    (not an image, text named .jpg, a PNG cut in half)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        h, w = rng.integers(48, 97, 2)
        img = rng.integers(80, 150, (h, w, 3), dtype=np.uint8)
        if i % 3 == 0:
            s = int(rng.integers(8, 24))
            y, x = rng.integers(0, h - s), rng.integers(0, w - s)
            img[y : y + s, x : x + s] = (255, 0, 255)
        Image.fromarray(img).save(folder / f"im{i:03d}.png")
    whole = (folder / "im000.png").read_bytes()
    (folder / BAD[0]).write_bytes(b"not an image")
    (folder / BAD[1]).write_text("a text file with an image's name")
    (folder / BAD[2]).write_bytes(whole[: len(whole) // 2])


def _rows(parts: list[Path]) -> list[dict]:
    """Every row of the Parquet ``parts``."""
    import pyarrow.parquet as pq

    return [r for p in parts for r in pq.read_table(p).to_pylist()]


def _parts(out: Path) -> list[dict]:
    """Every row of the results parts in ``out``."""
    return _rows(sorted((out / "results").glob("part-*.parquet")))


def _rank(folder: Path, out: Path, *extra: str) -> tuple[int, str]:
    """``rank`` of ``folder`` into ``out``: (exit status, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli.main(["rank", str(folder), "--out", str(out), *extra])
    return code, err.getvalue()


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("data") / "in"
    _make_images(src, N_IMAGES)
    return src


@dataclass
class Runs:
    """``rank`` of the same folder by both engines."""

    local: Path  # --out of --engine local
    scores: dict[str, float]  # its scores.json, by path
    ray: Path  # --out of --engine ray
    code: int  # the Ray run's exit status
    err: str  # and its stderr


@pytest.fixture(scope="module")
def runs(ray_cluster, folder, tmp_path_factory) -> Runs:
    """Both engines side by side: the local one in a child process with one torch thread
    (``OMP_NUM_THREADS=1``, what Ray sets in each actor), the Ray one here, writing parts of
    about 50 rows."""
    from comfyui_pal.scale import ray_engine

    local, out = (tmp_path_factory.mktemp(name) / "out" for name in ("local", "ray"))
    child = subprocess.Popen(
        [sys.executable, "-m", "comfyui_pal", "rank", str(folder), "--out", str(local)],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ray_engine, "PART_ROWS", 50)
        code, err = _rank(folder, out, "--engine", "ray")
    assert child.wait() == 1  # the bad files
    scores = json.loads((local / "scores.json").read_text())
    return Runs(local, {k: v["par"] for k, v in scores.items()}, out, code, err)


@pytest.mark.slow
def test_ray_gives_the_local_engines_scores_and_ranking(runs):
    rows = {r["image"]: r for r in _parts(runs.ray)}
    assert {k: rows[k]["par"] for k in runs.scores} == runs.scores
    assert (runs.ray / "ranking.csv").read_text() == (runs.local / "ranking.csv").read_text()
    copies = [sorted(p.name for p in out.glob("*_par*_im*")) for out in (runs.ray, runs.local)]
    assert copies[0] == copies[1] and len(copies[0]) == N_IMAGES
    assert len(set(runs.scores.values())) > 10, "the images should not all score alike"


@pytest.mark.slow
def test_bad_files_are_reported_with_their_error_and_the_rest_is_scored(folder, runs):
    assert runs.code == 1
    rows = {r["image"]: r for r in _parts(runs.ray)}
    for name in BAD:
        key = str(folder / name)
        assert f"FAILED {key}: " in runs.err and rows[key]["error"] and rows[key]["par"] is None
    good = [r for r in rows.values() if r["error"] is None]
    assert len(good) == N_IMAGES and all(r["width"] >= 48 and r["height"] >= 48 for r in good)


@pytest.mark.slow
def test_regions_and_sizes_are_those_of_the_local_scoring_function(folder, runs):
    rows = {r["image"]: r for r in _parts(runs.ray)}
    model = load_model("default", "cpu")
    job = Job.of(model, resolve_model_path("default"), DetectOptions(), 0.5)
    with _one_thread():
        for path in sorted(folder.glob("im*.png"))[:12]:
            want = job.apply(model, path, job.load(path), replace=False)
            got = rows[str(path)]
            assert {k: got[k] for k in want} == want


@dataclass(frozen=True)
class _DyingJob(Job):
    """A job whose actor kills its own process at ``victim``, once (``flag`` remembers)."""

    victim: str = ""
    flag: str = ""

    def apply(self, model, path, prepared, replace):
        if path.name == self.victim and not os.path.exists(self.flag):
            Path(self.flag).touch()
            os._exit(1)
        return super().apply(model, path, prepared, replace)


@pytest.mark.slow
def test_an_actor_killed_mid_run_is_replaced_and_nothing_is_lost_or_scored_twice(
    ray_cluster, folder, runs, tmp_path
):
    from comfyui_pal.scale import ray_engine
    from comfyui_pal.scale.results import Results

    ray_cluster.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # _DyingJob
    files = sorted(folder.glob("im*.png"))[:24]
    model = load_model("default", "cpu")
    base = Job.of(model, resolve_model_path("default"), DetectOptions(), 0.5)
    flag = tmp_path / "died"
    job = _DyingJob(**vars(base), victim=files[13].name, flag=str(flag))
    out = tmp_path / "out"
    failed = ray_engine.run(job, files, Results(out, False, False), ray_engine.Cluster())
    assert flag.exists(), "the actor did not die"
    rows = _parts(out)
    assert not failed and sorted(r["image"] for r in rows) == sorted(map(str, files))
    assert {r["image"]: r["par"] for r in rows} == {str(p): runs.scores[str(p)] for p in files}


@pytest.mark.slow
def test_resume_scores_only_the_files_missing_from_the_written_parts(folder, runs, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(runs.ray, out)
    parts = sorted((out / "results").glob("part-*.parquet"))
    assert len(parts) >= 3, "the run should have written several parts"
    lost = {r["image"] for r in _rows(parts[-1:])}
    parts[-1].unlink()  # as if the driver had been killed before writing it
    code, err = _rank(folder, out, "--engine", "ray")
    assert code == 1 and "--resume" in err  # an earlier run's results: refused
    code, _ = _rank(folder, out, "--engine", "ray", "--resume")
    new = _rows(sorted(set((out / "results").glob("part-*.parquet")) - set(parts[:-1])))
    bad = {str(folder / name) for name in BAD}  # failures are tried again
    assert code == 1 and sorted(r["image"] for r in new) == sorted(lost | bad)
    assert (out / "ranking.csv").read_text() == (runs.local / "ranking.csv").read_text()


@pytest.mark.slow
def test_detect_on_ray_writes_the_masks_overlays_and_report_local_detect_writes(
    ray_cluster, tmp_path
):
    src = tmp_path / "in"
    _make_images(src, 10, seed=1)
    with _one_thread():
        assert cli.main(["detect", str(src), "--out", str(tmp_path / "local")]) == 1
    assert cli.main(["detect", str(src), "--out", str(tmp_path / "ray"), "--engine", "ray"]) == 1
    pngs = sorted(p.name for p in (tmp_path / "local").glob("*.png"))
    assert len(pngs) == 20
    for name in pngs:
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()

    def report(out: str) -> list[dict]:
        text = (tmp_path / out / "report.csv").read_text()
        return [
            {k: v for k, v in r.items() if k != "seconds"}
            for r in csv.DictReader(io.StringIO(text))
        ]

    assert report("ray") == report("local") and len(report("ray")) == 10


def test_ray_settings_without_engine_ray_are_refused_naming_the_flag(tmp_path, capsys):
    assert cli.main(["rank", str(tmp_path), "--actors", "2"]) == 1
    assert "--actors is a Ray setting; add --engine ray" in capsys.readouterr().err


def test_engine_ray_without_ray_installed_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    monkeypatch.setitem(sys.modules, "ray.data", None)
    assert cli.main(["detect", str(tmp_path), "--engine", "ray"]) == 1
    assert 'pip install "comfyui-pal[scale]"' in capsys.readouterr().err


def _row(image: str, par: float | None = 0.1, error: str | None = None) -> dict:
    """A results row of a 48x40 image whose identity is ``[10, 20]``."""
    row = dict(image=image, bytes=10, mtime_ns=20, width=48, height=40, par=par, regions=1)
    return row | {"seconds": 0.5, "error": error}


def test_a_later_part_supersedes_earlier_rows_and_only_unchanged_scored_files_count(tmp_path):
    pytest.importorskip("pyarrow")
    from comfyui_pal.scale.results import Results

    results = Results(tmp_path, resume=False, overwrite=False)
    results.write([_row("a.png", 0.1), _row("b.png", 0.2)])
    results.write([_row("a.png", 0.3), _row("c.png", None, "cannot read image c.png")])
    again = Results(tmp_path, resume=True, overwrite=False)
    assert again.scored("a.png", [10, 20])["par"] == 0.3
    assert again.scored("a.png", [11, 20]) is None  # the file changed since
    assert again.scored("c.png", [10, 20]) is None  # it failed: try again
    assert again.next == 2


def test_earlier_results_are_refused_without_resume_and_dropped_with_overwrite(tmp_path):
    pytest.importorskip("pyarrow")
    from comfyui_pal.scale.results import Results

    Results(tmp_path, resume=False, overwrite=False).write([_row("a.png")])
    with pytest.raises(FileExistsError, match="--resume to continue it, --overwrite"):
        Results(tmp_path, resume=False, overwrite=False)
    fresh = Results(tmp_path, resume=False, overwrite=True)
    assert fresh.rows == {} and not list((tmp_path / "results").glob("part-*"))


def test_a_damaged_part_is_refused_naming_it(tmp_path):
    pytest.importorskip("pyarrow")
    from comfyui_pal.scale.results import Results

    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "part-00000.parquet").write_bytes(b"not parquet")
    with pytest.raises(ValueError, match=r"part-00000\.parquet is not a results part"):
        Results(tmp_path, resume=True, overwrite=False)


def test_claimed_outputs_are_remembered_until_the_run_finishes(tmp_path):
    pytest.importorskip("pyarrow")
    from comfyui_pal.scale.results import Results

    Results(tmp_path, resume=False, overwrite=False).claim(["a.png"])  # then killed
    resumed = Results(tmp_path, resume=True, overwrite=False)
    assert resumed.claimed == {"a.png"}
    resumed.release()
    assert Results(tmp_path, resume=True, overwrite=False).claimed == set()
