"""The command line demo: crop -> smooth fill -> stitch on images with masks beside them."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import REPO
from PIL import Image

from comfyui_pal import cli


@pytest.fixture
def example_dir(tmp_path):
    src = REPO / "examples" / "images"
    (tmp_path / "in" / "masks").mkdir(parents=True)
    shutil.copy(src / "chelsea.png", tmp_path / "in" / "chelsea.png")
    shutil.copy(src / "masks" / "chelsea.png", tmp_path / "in" / "masks" / "chelsea.png")
    (tmp_path / "in" / "broken.png").write_bytes(b"not a png")
    Image.new("L", (10, 10)).save(tmp_path / "in" / "masks" / "broken.png")
    return tmp_path


def test_demo_fixes_masked_regions_and_keeps_other_pixels(example_dir):
    out = example_dir / "out"
    code = cli.main(["demo", str(example_dir / "in"), "--out", str(out)])
    assert code == 1  # the broken file is reported, the good one still done
    fixed = np.asarray(Image.open(out / "chelsea_fixed.png"))
    orig = np.asarray(Image.open(example_dir / "in" / "chelsea.png"))
    mask = np.asarray(Image.open(example_dir / "in" / "masks" / "chelsea.png")) > 0
    assert (fixed[mask] != orig[mask]).any()
    ys, xs = np.nonzero(mask)
    far = np.ones_like(mask)
    far[max(ys.min() - 40, 0) : ys.max() + 40, max(xs.min() - 40, 0) : xs.max() + 40] = False
    assert np.array_equal(fixed[far], orig[far])
    report = json.loads((out / "report.json").read_text())
    assert [r["image"].endswith("chelsea.png") for r in report] == [True]


def test_demo_never_overwrites_existing_outputs(example_dir):
    out = example_dir / "out"
    out.mkdir()
    (out / "chelsea_fixed.png").write_bytes(b"precious")
    assert cli.main(["demo", str(example_dir / "in" / "chelsea.png"), "--out", str(out)]) == 1
    assert (out / "chelsea_fixed.png").read_bytes() == b"precious"


def test_detect_writes_masks_overlays_and_a_par_report(tmp_path):
    import torch

    from comfyui_pal.models.loading import save_checkpoint
    from comfyui_pal.models.pal_lite import PalLite

    torch.manual_seed(0)
    model = save_checkpoint(PalLite(), tmp_path / "m.safetensors")
    src = tmp_path / "in"
    src.mkdir()
    Image.new("RGB", (48, 40), (200, 30, 30)).save(src / "a.png")
    (src / "bad.png").write_bytes(b"broken")
    out = tmp_path / "out"
    args = ["detect", str(src), "--out", str(out), "--model", str(model), "--cpu"]
    assert cli.main(args) == 1  # the broken file is reported
    assert (out / "a_mask.png").exists() and (out / "a_overlay.png").exists()
    report = json.loads((out / "report.json").read_text())
    assert [r["image"].endswith("a.png") for r in report] == [True]
    assert 0.0 <= report[0]["par"] <= 1.0
    assert "par" in (out / "report.csv").read_text().splitlines()[0]
    before = (out / "a_mask.png").read_bytes()
    assert cli.main(args) == 1
    assert (out / "a_mask.png").read_bytes() == before


def _stand_in_model(tmp_path):
    import torch

    from comfyui_pal.models.loading import save_checkpoint
    from comfyui_pal.models.pal_lite import PalLite

    torch.manual_seed(0)
    model = PalLite()
    with torch.no_grad():  # flag everything a little: a detector that always finds something
        model.decoder.classifier.bias.copy_(torch.tensor([0.0, 3.0]))
        model.decoder.classifier.weight.zero_()
    return save_checkpoint(model, tmp_path / "m.safetensors")


@pytest.mark.slow
def test_fix_finishes_good_files_reports_bad_ones_and_resumes(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    Image.new("RGB", (64, 48), (90, 140, 60)).save(src / "a.png")
    Image.new("RGB", (40, 40), (20, 20, 200)).save(src / "b.png")
    (src / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "out"
    model = str(_stand_in_model(tmp_path))
    args = [
        "fix",
        str(src),
        "--out",
        str(out),
        "--model",
        model,
        "--cpu",
        "--inpainter",
        "smooth",
        "--max-iterations",
        "1",
    ]
    assert cli.main(args) == 1  # broken.png reported; a and b done
    report = json.loads((out / "report.json").read_text())
    assert sorted(r["image"].rsplit("/", 1)[-1] for r in report) == ["a.png", "b.png"]
    for name in ("a", "b"):
        for kind in ("fixed", "mask", "compare"):
            assert (out / f"{name}_{kind}.png").exists()
    assert "par_before" in (out / "report.csv").read_text()
    stamp = (out / "a_fixed.png").stat().st_mtime_ns
    assert cli.main([*args, "--resume"]) == 1  # only the broken file fails again
    assert (out / "a_fixed.png").stat().st_mtime_ns == stamp
    assert len(json.loads((out / "report.json").read_text())) == 2
    assert cli.main(args) == 1  # without --resume / --overwrite nothing is replaced
    assert (out / "a_fixed.png").stat().st_mtime_ns == stamp
    assert (src / "a.png").exists() and len(list(src.iterdir())) == 3  # inputs untouched


def test_rank_copies_best_first_resumes_and_never_replaces_other_files(tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    examples = REPO / "examples" / "images"
    shutil.copy(examples / "chelsea.png", src / "cat_planted.png")
    shutil.copy(examples / "clean" / "chelsea.png", src / "cat_clean.png")
    (src / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "ranked"
    assert cli.main(["rank", str(src), "--out", str(out), "--cpu"]) == 1  # broken reported
    copies = sorted(p.name for p in out.glob("0*"))
    assert copies[0].startswith("001_par0.000_cat_clean") and "cat_planted" in copies[1]
    rows = (out / "ranking.csv").read_text().splitlines()
    assert rows[0] == "rank,par,image,copy" and len(rows) == 3
    assert (out / copies[0]).read_bytes() == (src / "cat_clean.png").read_bytes()
    capsys.readouterr()
    assert cli.main(["rank", str(src), "--out", str(out), "--cpu", "--resume"]) == 1
    assert capsys.readouterr().out.count("scored before") == 2
    (out / copies[1]).write_bytes(b"someone else's file")
    assert cli.main(["rank", str(src), "--out", str(out), "--cpu", "--resume"]) == 1
    assert (out / copies[1]).read_bytes() == b"someone else's file"
    assert len(list(src.iterdir())) == 3
