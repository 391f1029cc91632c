"""Hard-negative mining and the weighted mix of synthetic and folder data."""

from __future__ import annotations

import json

import numpy as np
from conftest import PixelDetector
from PIL import Image

from comfyui_pal.io.images import load_mask
from comfyui_pal.training.datasets import pal_folder
from comfyui_pal.training.mine import mine_false_alarms
from comfyui_pal.training.train import TrainConfig, make_data


class BrightDetector(PixelDetector):
    """Flags bright pixels: its 'false alarms' are the bright views."""

    def score(self, v):
        return 40 * (v.mean(1) - 0.7)


def _bases(root, n=6):
    d = root / "train" / "x"
    d.mkdir(parents=True)
    for k in range(n):
        level = 40 * k + 20
        arr = np.full((200, 240, 3), level, np.uint8)
        arr[::7] = 255 - level
        Image.fromarray(arr).save(d / f"b{k}.png")
    (root / "manifest.json").write_text("{}")


def test_mining_keeps_the_most_flagged_clean_views(tmp_path, monkeypatch):
    _bases(tmp_path / "data")
    monkeypatch.setenv("PAL_DATA", str(tmp_path / "data"))
    out = tmp_path / "mined"
    records = mine_false_alarms(BrightDetector(), out, count=12, keep=4, size=64, hard=0.0)
    pars = [r["par"] for r in records]
    assert len(records) == 4 and pars == sorted(pars, reverse=True) and pars[0] > 0
    assert json.loads((out / "mined.json").read_text()) == records
    pairs = pal_folder(out)
    assert len(pairs) == 4
    for _, m in pairs:  # clean views: nothing to find there
        assert not (load_mask(m) > 0.5).any()
    # the brightest bases are the ones kept (b0 darkest .. b5 brightest)
    kept = [int(r["source"][-5]) for r in records]
    assert sum(kept) / len(kept) > 3, kept


def test_folder_data_gets_its_share_of_the_mix(tmp_path, monkeypatch):
    _bases(tmp_path / "data")
    monkeypatch.setenv("PAL_DATA", str(tmp_path / "data"))
    mine_false_alarms(BrightDetector(), tmp_path / "mined", count=6, keep=3, size=64)
    cfg = TrainConfig(
        out=tmp_path / "o.safetensors",
        workdir=tmp_path / "w",
        size=64,
        data=[tmp_path / "mined"],
        data_share=0.25,
        clean=0.0,
    )
    it = iter(make_data(cfg))
    # the mined views have empty masks; synthetic samples (clean=0) almost always carry one
    empty = sum(1 for _ in range(80) if not next(it)[1].any())
    assert 8 <= empty <= 36, empty
