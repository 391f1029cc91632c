"""Hostile and clumsy inputs to the commands, the image readers and the node boundary.

Issue 15 section 3 (model files: ``test_hostile_models.py``; queue servers:
``test_queue_hostile.py``). Each case asserts the clear error, or the documented pass-through,
and that nothing the user had was changed.
"""

from __future__ import annotations

import errno
import inspect
import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import load_pack_like_comfyui
from PIL import Image

from comfyui_pal import cli
from comfyui_pal.cache import budget_from_env
from comfyui_pal.core import regions
from comfyui_pal.core.layout import image_to_bchw
from comfyui_pal.io.images import load_image, load_mask


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    from comfyui_pal.models.loading import save_checkpoint
    from comfyui_pal.models.pal_lite import PalLite, PalLiteConfig

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("m") / "m.safetensors"
    return str(save_checkpoint(PalLite(PalLiteConfig(decoder_channels=8)).eval(), path))


def _png(path: Path, seed: int = 0, size: int = 48) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)
    return path


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _detect(model: str, *args: str) -> int:
    return cli.main(["detect", *args, "--model", model])


# --- data loss -------------------------------------------------------------------------------


def test_a_second_run_into_the_same_out_keeps_the_first_report(tmp_path, model, capsys):
    _png(tmp_path / "in" / "a.png")
    out = str(tmp_path / "out")
    assert _detect(model, str(tmp_path / "in"), "--out", out) == 0
    report = (tmp_path / "out" / "report.json").read_bytes()
    assert _detect(model, str(tmp_path / "in"), "--out", out) == 1
    assert "earlier run" in capsys.readouterr().err
    assert (tmp_path / "out" / "report.json").read_bytes() == report


@pytest.mark.parametrize("command", ["detect", "fix", "rank", "demo"])
def test_an_input_folder_that_is_the_output_folder_is_refused(tmp_path, model, capsys, command):
    _png(tmp_path / "d" / "a.png")
    (tmp_path / "d" / "report.json").write_text('[{"mine": 1}]')
    before = _snapshot(tmp_path)
    d = str(tmp_path / "d")
    args = [command, d, "--out", d] + (["--model", model] if command != "demo" else [])
    assert cli.main(args) == 1
    assert "is the output folder" in capsys.readouterr().err
    assert _snapshot(tmp_path) == before


def test_an_input_inside_the_output_folder_is_refused_even_with_overwrite(tmp_path, capsys):
    src = _png(tmp_path / "out" / "x.png")
    Image.fromarray(np.zeros((48, 48), np.uint8)).save(tmp_path / "out" / "x_mask.png")
    before = _snapshot(tmp_path)
    assert cli.main(["demo", str(src), "--out", str(tmp_path / "out"), "--overwrite"]) == 1
    assert "inside it" in capsys.readouterr().err and _snapshot(tmp_path) == before


def test_demo_never_replaces_a_report_it_did_not_write(tmp_path, capsys):
    _png(tmp_path / "in" / "x.png")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "report.json").write_text("keep")
    assert cli.main(["demo", str(tmp_path / "in"), "--out", str(tmp_path / "out")]) == 1
    assert (tmp_path / "out" / "report.json").read_text() == "keep"


def test_eval_never_replaces_a_json_file_without_overwrite(tmp_path, model, capsys):
    target = tmp_path / "e.json"
    target.write_text("keep")
    assert cli.main(["eval", model, "--synthetic", "1", "--json", str(target)]) == 1
    assert "exists" in capsys.readouterr().err and target.read_text() == "keep"


def test_two_inputs_that_would_write_the_same_outputs_are_refused(tmp_path, model, capsys):
    _png(tmp_path / "a" / "x.png")
    _png(tmp_path / "b" / "x.jpg", seed=1)
    out = tmp_path / "out"
    assert _detect(model, str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)) == 1
    assert "would write the same outputs" in capsys.readouterr().err and not out.exists()


def test_rank_removes_only_its_own_stale_copies(tmp_path, model, capsys):
    _png(tmp_path / "in" / "a.png")
    b = _png(tmp_path / "in" / "b.png", seed=1)
    out = tmp_path / "out"
    rank = ["rank", str(tmp_path / "in"), "--out", str(out), "--model", model]
    assert cli.main(rank) == 0
    first = sorted(p.name for p in out.glob("0*"))
    assert len(first) == 2
    b.unlink()  # b's copy would be left as 002_..._b.png although b is no longer ranked
    _png(tmp_path / "in" / "0.png", seed=2)  # ties go by input order: a moves to rank 2
    assert cli.main([*rank, "--resume"]) == 0
    names = sorted(p.name for p in out.glob("0*"))
    assert len([n for n in names if n.endswith("_a.png")]) == 1  # no stale copy of a
    assert any(n.endswith("_b.png") for n in names)  # kept: its source is gone
    assert "removed" in capsys.readouterr().out


# --- hangs -----------------------------------------------------------------------------------


def test_a_fifo_in_an_input_folder_is_skipped_and_a_named_one_is_an_error(tmp_path, model, capsys):
    _png(tmp_path / "in" / "a.png")
    os.mkfifo(tmp_path / "in" / "x.png")  # reading it would block for ever
    assert _detect(model, str(tmp_path / "in"), "--out", str(tmp_path / "o")) == 0
    rows = json.loads((tmp_path / "o" / "report.json").read_text())
    assert [Path(r["image"]).name for r in rows] == ["a.png"]
    assert _detect(model, str(tmp_path / "in" / "x.png"), "--out", str(tmp_path / "o2")) == 1
    assert "not a regular file" in capsys.readouterr().err


# --- crashes and unhelpful errors: one clear line ----------------------------------------------


def _huge_png(path: Path, side: int = 20000) -> Path:
    """A tiny file whose header claims ``side`` x ``side`` pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    return path  # fmt: skip


def test_a_decompression_bomb_is_reported_and_the_batch_goes_on(tmp_path, model, capsys):
    _png(tmp_path / "in" / "a.png")
    _huge_png(tmp_path / "in" / "b.png")
    assert _detect(model, str(tmp_path / "in"), "--out", str(tmp_path / "o")) == 1
    assert "too large to read safely" in capsys.readouterr().err
    rows = json.loads((tmp_path / "o" / "report.json").read_text())
    assert [Path(r["image"]).name for r in rows] == ["a.png"]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("model", "model file nope.safetensors does not exist"),
        ("input", "MISSING.png does not exist"),
        ("out-file", "is a file, not a folder"),
        ("out-readonly", "permission denied"),
    ],
)
def test_user_mistakes_are_one_line_not_a_traceback(tmp_path, model, capsys, case, message):
    src, out, ro = _png(tmp_path / "in" / "a.png"), tmp_path / "o", tmp_path / "RO" / "sub"
    (tmp_path / "FILE").write_text("mine")
    (tmp_path / "RO").mkdir(mode=0o500)
    if case == "out-readonly" and os.access(tmp_path / "RO", os.W_OK):
        pytest.skip("this user can write into a read-only folder (root)")
    argv = {
        "model": ["detect", str(src), "--out", str(out), "--model", "nope.safetensors"],
        "input": ["detect", str(tmp_path / "MISSING.png"), "--out", str(out), "--model", model],
        "out-file": ["detect", str(src), "--out", str(tmp_path / "FILE"), "--model", model],
        "out-readonly": ["detect", str(src), "--out", str(ro), "--model", model],
    }[case]  # fmt: skip
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert (tmp_path / "FILE").read_text() == "mine"


def test_permission_errors_are_described_with_what_to_do(monkeypatch, tmp_path, model, capsys):
    def denied(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "o"))

    src = _png(tmp_path / "in" / "a.png")
    monkeypatch.setattr(Path, "mkdir", denied)  # as a read-only folder does (even for root)
    assert _detect(model, str(src), "--out", str(tmp_path / "o")) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "permission denied" in err[0] and "--out" in err[0]


def test_a_full_disk_is_one_line(tmp_path, model, capsys, monkeypatch):
    import tempfile

    _png(tmp_path / "in" / "a.png")

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", k.get("dir"))

    monkeypatch.setattr(tempfile, "mkstemp", full)
    assert _detect(model, str(tmp_path / "in"), "--out", str(tmp_path / "o")) == 1
    err = capsys.readouterr().err
    assert "the disk is full" in err and "Traceback" not in err


def test_a_bad_pal_cache_mb_names_the_variable(monkeypatch):
    monkeypatch.setenv("PAL_CACHE_MB", "lots")
    with pytest.raises(ValueError, match="PAL_CACHE_MB='lots'"):
        budget_from_env()
    monkeypatch.setenv("PAL_CACHE_MB", "512")
    assert budget_from_env() == 512 * 2**20
    import comfyui_pal.cache  # importing with a bad value must not fail

    assert comfyui_pal.cache.CACHE is not None


def test_a_5d_image_is_named():
    with pytest.raises(ValueError, match="5-D tensor"):
        image_to_bchw(torch.rand(2, 1, 16, 16, 3))


def test_stitch_without_a_plan_is_named():
    image = torch.rand(1, 3, 32, 32)
    with pytest.raises(TypeError, match="StitchPlan"):
        regions.stitch(image, image, None)


@pytest.mark.parametrize("value", ["-1", "2", "nan", "x"])
@pytest.mark.parametrize("command", ["detect", "rank"])
def test_out_of_range_thresholds_are_refused(tmp_path, capsys, command, value):
    with pytest.raises(SystemExit) as exit_:
        cli.main([command, str(tmp_path), "--threshold", value])
    assert exit_.value.code == 2 and "--threshold" in capsys.readouterr().err


# --- silently wrong --------------------------------------------------------------------------


def test_16_bit_grey_pngs_are_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    img = load_image(tmp_path / "g16.png")
    assert img.shape == (1, 3, 64, 64)
    assert abs(float(img.mean()) - 0.5) < 0.01 and float(img.max()) == pytest.approx(1.0)
    assert abs(float(load_mask(tmp_path / "g16.png").mean()) - 0.5) < 0.01


def test_animated_images_are_a_clear_error_and_still_gifs_are_read(tmp_path, model, capsys):
    frames = [Image.new("RGB", (32, 32), (i * 60, 0, 0)) for i in range(3)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    frames[0].save(tmp_path / "anim.webp", save_all=True, append_images=frames[1:])
    for name in ("anim.gif", "anim.webp"):
        with pytest.raises(ValueError, match="animated \\(3 frames\\)"):
            load_image(tmp_path / name)
    (tmp_path / "in").mkdir()
    frames[1].save(tmp_path / "in" / "still.gif")
    assert _detect(model, str(tmp_path / "in"), "--out", str(tmp_path / "o")) == 0
    assert (tmp_path / "o" / "still_mask.png").exists()


def test_exif_orientation_is_applied(tmp_path):
    rgb = np.zeros((20, 40, 3), np.uint8)
    rgb[:, :10] = 255  # a white band on the left of the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(rgb).save(tmp_path / "r.jpg", exif=exif, quality=95)
    img = load_image(tmp_path / "r.jpg")
    assert img.shape == (1, 3, 40, 20)  # as displayed: portrait
    assert float(img[0, :, :10].mean()) > 0.9 > 0.1 > float(img[0, :, 30:].mean())


def test_an_alpha_only_mask_is_read_from_its_alpha(tmp_path):
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[4:8, 4:8, 3] = 255  # black everywhere, the mask lives in alpha
    Image.fromarray(rgba, "RGBA").save(tmp_path / "m.png")
    mask = load_mask(tmp_path / "m.png")
    assert float(mask.sum()) == 16 and float(mask[0, 5, 5]) == 1.0
    rgba[..., :3], rgba[..., 3] = 0, 128
    rgba[10:12, 10:14, :3] = 255  # a mask drawn in colour keeps its luminance, whatever alpha
    Image.fromarray(rgba, "RGBA").save(tmp_path / "w.png")
    assert float(load_mask(tmp_path / "w.png").sum()) == 8


def test_image_values_outside_0_1_and_ambiguous_layouts_warn():
    with pytest.warns(UserWarning, match="outside 0..1"):
        image_to_bchw(torch.rand(1, 16, 16, 3) * 1.5)
    with pytest.warns(UserWarning, match="permute it"):
        image_to_bchw(torch.rand(1, 3, 64, 4))  # a [B,C,H,W] given as IMAGE
    from comfyui_pal.core.checks import check_image

    with pytest.warns(UserWarning, match="image_to_bchw"):
        check_image(torch.rand(1, 4, 64, 3))  # a [B,H,W,C] given to the library


def _pack_module():
    pack = load_pack_like_comfyui("custom_nodes.comfyui-pal-hostile")
    return inspect.getmodule(pack.NODE_CLASS_MAPPINGS["PALModelLoader"])


@pytest.mark.parametrize("name", ["/etc/passwd", "../../secret.safetensors", "a/../../b.pth", ""])
def test_the_loader_node_reads_only_inside_its_model_folders(name):
    with pytest.raises(ValueError, match="not a file name inside models/pal"):
        _pack_module().resolve_model(name)
