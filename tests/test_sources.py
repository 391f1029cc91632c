"""The training base set: built from installed packages' files, split, deduplicated, recorded."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from comfyui_pal.cli import main
from comfyui_pal.training import sources as S
from comfyui_pal.training.datasets import (
    SyntheticArtifacts,
    find_sources,
    is_held_out,
    source_weights,
    split_sources,
)


def _photo(seed: int, size=(400, 340), mode="RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 255, (size[1] // 10, size[0] // 10, len(mode)), dtype=np.uint8)
    return Image.fromarray(arr, mode).resize(size, Image.BICUBIC)


@pytest.fixture()
def fake_package(tmp_path, monkeypatch):
    """A Python package 'palfake' whose data/ folder holds photos, a duplicate, an icon and
    RGBA portrait cut-outs, importable for the duration of a test."""
    root = tmp_path / "site" / "palfake"
    (root / "data").mkdir(parents=True)
    (root / "__init__.py").write_text("__version__ = '1.2'\n")
    for k in range(14):
        _photo(k).save(root / "data" / f"photo{k:02d}.png")
    (root / "data" / "astronaut.png").write_bytes((root / "data" / "photo00.png").read_bytes())
    _photo(90, (64, 64)).save(root / "data" / "icon.png")
    cut = root / "data" / "cut"
    cut.mkdir()
    for k in range(3):
        img = _photo(50 + k, (240, 240), "RGBA")
        a = np.zeros((240, 240), np.uint8)
        a[40:200, 60:180] = 255
        img.putalpha(Image.fromarray(a))
        img.save(cut / f"face{k}.png")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "palfake", raising=False)
    return (
        S.Source("fake", "python:palfake", "CC0", "photos", r"/data/photo|/data/astro|/data/icon"),
        S.Source("faces", "python:palfake", "CC0", "cut-outs", r"/data/cut/", 200, cutout=True),
        S.Source("absent", "no-such-debian-package-pal", "none", "nothing"),
    )


def test_build_writes_splits_manifest_and_skips_what_it_must(tmp_path, fake_package):
    out = tmp_path / "bases"
    log = []
    m = S.build_bases(
        out,
        sources=fake_package,
        text_scenes=6,
        composites_per_portrait=2,
        max_side=200,
        log=log.append,
    )
    by_source = S.summarize(m)
    fake = by_source["fake"]
    # 14 photos + 'astronaut' (a byte-identical copy of photo00: deduplicated), no icon
    assert fake["train"] + fake["heldout"] == 14
    assert "no-such-debian-package-pal" in m["missing_packages"]
    assert any("apt-get install" in line for line in log)
    for e in m["images"]:
        if e["file"] is None:
            continue
        f = out / e["file"]
        assert f.is_file() and f.parts[len(out.parts)] == e["split"]
        assert max(Image.open(f).size) <= 200
        if e["source"] == "fake":
            assert e["licence"] == "CC0" and e["version"] == "1.2" and len(e["sha256"]) == 64
    # cut-outs are never stored as such, only composited over bases of their own split
    assert by_source["portraits"]["train"] + by_source["portraits"]["heldout"] == 6
    cut_split = {e["original"]: e["split"] for e in m["images"] if e["source"] == "faces"}
    for e in m["images"]:
        if e["source"] == "portraits":
            assert e["split"] == cut_split[e["original"]]
    if S.fonts():
        assert by_source["text"]["train"] + by_source["text"]["heldout"] >= 5
    assert json.loads((out / "manifest.json").read_text()) == m


def test_same_recipe_same_set(tmp_path, fake_package):
    a = S.build_bases(tmp_path / "a", sources=fake_package, text_scenes=2, log=lambda _: None)
    b = S.build_bases(tmp_path / "b", sources=fake_package, text_scenes=2, log=lambda _: None)
    assert [e["file"] for e in a["images"]] == [e["file"] for e in b["images"]]
    for e in a["images"]:
        if e["file"]:
            pa = np.asarray(Image.open(tmp_path / "a" / e["file"]))
            assert np.array_equal(pa, np.asarray(Image.open(tmp_path / "b" / e["file"])))


def test_split_is_stable_and_keeps_the_historic_held_out_names():
    assert S.split_of("skimage", "astronaut") == "heldout"
    names = [f"img{k}" for k in range(2000)]
    held = [n for n in names if S.split_of("src", n) == "heldout"]
    assert held == [n for n in names if S.split_of("src", n) == "heldout"]
    assert 0.08 < len(held) / len(names) < 0.16


def test_held_out_folders_and_sources_never_reach_training(tmp_path, monkeypatch):
    for split in ("train", "heldout"):
        d = tmp_path / split / "x"
        d.mkdir(parents=True)
        _photo(1).save(d / "a.png")
    (tmp_path / "manifest.json").write_text("{}")
    monkeypatch.setenv("PAL_DATA", str(tmp_path))
    found = find_sources()
    train, held = split_sources(found)
    assert [p.parent.parent.name for p in train] == ["train"]
    assert [p.parent.parent.name for p in held] == ["heldout"] and is_held_out(held[0])


def test_composites_get_their_share_of_draws(tmp_path):
    paths = [tmp_path / "train" / "mate" / f"{k}.png" for k in range(10)]
    paths += [tmp_path / "train" / "portraits" / f"{k}.png" for k in range(100)]
    paths += [tmp_path / "train" / "text" / f"{k}.png" for k in range(50)]
    w = source_weights(paths)
    assert abs(float(w.sum()) - 1) < 1e-5
    assert abs(float(w[:10].sum()) - 0.65) < 1e-5  # ten photographs outweigh 150 composites
    assert abs(float(w[10:110].sum()) - 0.2) < 1e-5


def test_clean_samples_have_empty_masks_even_with_hard_structures(tmp_path):
    d = tmp_path / "train" / "x"
    d.mkdir(parents=True)
    _photo(3, (320, 320)).save(d / "a.png")
    ds = SyntheticArtifacts([d / "a.png"], size=96, clean=1.0, hard=1.0, procedural=0.0)
    it = iter(ds)
    for _ in range(4):
        img, mask = next(it)
        assert img.shape == (3, 96, 96) and not mask.any()
    ds = SyntheticArtifacts([d / "a.png"], size=96, clean=0.0, hard=0.0, procedural=0.0)
    assert any(next(iter(ds))[1].any() for _ in range(3))


def test_data_command_refuses_to_rebuild_over_a_set(tmp_path, capsys):
    (tmp_path / "manifest.json").write_text("{}")
    assert main(["data", "--out", str(tmp_path)]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_webp_shrinks_the_training_split_and_leaves_held_out_lossless(tmp_path, fake_package):
    common = dict(sources=fake_package, text_scenes=2, max_side=200, log=lambda _: None)
    png = S.build_bases(tmp_path / "png", **common)
    small = S.build_bases(tmp_path / "webp", webp=70, **common)
    assert small["webp"] == 70 and png["webp"] is None
    pairs = [(a, b) for a, b in zip(png["images"], small["images"], strict=True) if a["file"]]
    assert {Path(b["file"]).suffix for a, b in pairs if a["split"] == "train"} == {".webp"}
    for a, b in pairs:
        pa = np.asarray(Image.open(tmp_path / "png" / a["file"]).convert("RGB"))
        pb = np.asarray(Image.open(tmp_path / "webp" / b["file"]).convert("RGB"))
        assert pa.shape == pb.shape
        if a["split"] == "heldout" and a["source"] == "fake":  # stored as read: bit for bit
            assert b["file"] == a["file"] and np.array_equal(pa, pb)
    with pytest.raises(ValueError, match=r"not in 1\.\.100"):
        S.build_bases(tmp_path / "bad", webp=0, **common)
