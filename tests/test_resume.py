"""Folder runs killed mid-way resume to the report an uninterrupted run writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from comfyui_pal import cli
from comfyui_pal.io.journal import Journal

N_IMAGES = 10


@pytest.fixture
def folder(tmp_path):
    """Ten small images with a bright blob each, and a random detector checkpoint."""
    import torch

    from comfyui_pal.models.loading import save_checkpoint
    from comfyui_pal.models.pal_lite import PalLite

    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(N_IMAGES):
        img = rng.integers(60, 120, (72, 88, 3), dtype=np.uint8)
        img[20 + i : 34 + i, 30:44] = 250
        Image.fromarray(img).save(src / f"img{i:02d}.png")
    torch.manual_seed(0)
    model = PalLite()
    with torch.no_grad():  # flags a little everywhere: the fix has a region to judge
        model.decoder.classifier.bias.copy_(torch.tensor([0.0, -0.5]))
    return src, save_checkpoint(model, tmp_path / "m.safetensors")


def _command(kind: str, src: Path, out: Path, model: Path) -> list[str]:
    args = [kind, str(src), "--out", str(out), "--model", str(model), "--cpu"]
    if kind == "fix":
        args += ["--inpainter", "smooth", "--max-iterations", "1", "--threshold", "0.3"]
    return args


def _kill_mid_way(args: list[str], progress: Path, enough: int) -> int:
    """Run the CLI in a child, SIGKILL it once ``progress`` lists ``enough`` finished images;
    returns how many it had finished."""
    child = subprocess.Popen([sys.executable, "-m", "comfyui_pal", *args], env=os.environ.copy())
    done = 0
    try:
        deadline = time.monotonic() + 300
        while child.poll() is None and time.monotonic() < deadline:
            try:
                data = json.loads(progress.read_text())
            except (OSError, ValueError):
                data = []
            rows = data.values() if isinstance(data, dict) else data
            done = sum(
                1 for r in rows if not isinstance(r, dict) or r.get("status", "done") == "done"
            )
            if done >= enough:
                child.send_signal(signal.SIGKILL)
                break
            time.sleep(0.01)
    finally:
        child.kill()
        child.wait()
    return done


def _timeless(x):
    """``x`` without its ``seconds`` entries (timings differ from run to run)."""
    if isinstance(x, dict):
        return {k: _timeless(v) for k, v in x.items() if k != "seconds"}
    if isinstance(x, list):
        return [_timeless(v) for v in x]
    return x


def _report(out: Path) -> list[dict]:
    return _timeless(json.loads((out / "report.json").read_text()))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["detect", "fix"])
def test_killed_run_resumes_to_the_uninterrupted_report(folder, tmp_path, kind):
    src, model = folder
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert cli.main(_command(kind, src, whole, model)) == 0
    done = _kill_mid_way(_command(kind, src, cut, model), cut / "report.json", 3)
    assert 3 <= done < N_IMAGES, "the run was not cut mid-way"
    assert len(_report(cut)) < N_IMAGES + 1
    assert cli.main(_command(kind, src, cut, model)) == 1  # an earlier report: refused
    assert cli.main([*_command(kind, src, cut, model), "--resume"]) == 0
    assert _report(cut) == _report(whole)
    assert (cut / "report.csv").read_text().count("\n") == N_IMAGES + 1
    for p in sorted(whole.glob("*.png")):
        assert np.array_equal(np.asarray(Image.open(p)), np.asarray(Image.open(cut / p.name)))


@pytest.mark.slow
def test_killed_rank_resumes_to_the_uninterrupted_ranking(folder, tmp_path):
    src, model = folder
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert cli.main(_command("rank", src, whole, model)) == 0
    done = _kill_mid_way(_command("rank", src, cut, model), cut / "scores.json", 3)
    assert 3 <= done < N_IMAGES, "the run was not cut mid-way"
    assert cli.main([*_command("rank", src, cut, model), "--resume"]) == 0
    assert (cut / "ranking.csv").read_text() == (whole / "ranking.csv").read_text()
    assert sorted(p.name for p in cut.glob("0*")) == sorted(p.name for p in whole.glob("0*"))


def test_journal_redoes_changed_inputs_and_interrupted_images(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(b"one")
    b.write_bytes(b"two")
    out = tmp_path / "out"
    journal = Journal(out, ["image", "par"], resume=False, overwrite=False)
    journal.record(a, {"par": 0.1})
    journal.start(b)  # killed while writing b's outputs
    again = Journal(out, ["image", "par"], resume=True, overwrite=False)
    assert again.finished(a, []) is not None and again.interrupted(b)
    assert again.finished(a, [out / "missing.png"]) is None  # an output was deleted
    a.write_bytes(b"changed")
    assert again.finished(a, []) is None  # the input changed: do it again
    with pytest.raises(FileExistsError, match="--resume"):
        Journal(out, ["image", "par"], resume=False, overwrite=False)
    (out / "report.json").write_text("{garbage")
    with pytest.raises(ValueError, match="--overwrite"):
        Journal(out, ["image", "par"], resume=True, overwrite=False)
