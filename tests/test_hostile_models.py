"""Hostile and broken model files: nothing in them runs, every one gets an error that names it.

Issue 15 sections 1 and 3 (model files). Each case asserts the clear error (or the documented
pass-through) and that the file itself was not changed.
"""

from __future__ import annotations

import io
import json
import pickle
import subprocess
import sys
import textwrap
import time
import zipfile
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from comfyui_pal.models import archive
from comfyui_pal.models.loading import load_model_file, read_checkpoint, save_checkpoint
from comfyui_pal.models.pal_lite import PalLite, PalLiteConfig

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "pal_mmseg"
needs_fixtures = pytest.mark.skipif(not FIXTURES.is_dir(), reason="../shared/fixtures absent")


def _tiny(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(
        PalLite(PalLiteConfig(decoder_channels=8)).eval(), tmp_path / "m.safetensors"
    )


class _Storage:
    """Stands for a storage record when hand-writing a torch archive's data.pkl."""

    def __init__(self, key: str, numel: int) -> None:
        self.key, self.numel = key, numel


class _Tensor:
    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple) -> None:
        self.args = (storage, offset, size, stride, False, OrderedDict())

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, self.args)


def _archive(path: Path, obj: object, records: dict[str, bytes], compress: bool = False) -> Path:
    """A torch.save-style zip: ``obj`` pickled with ``_Storage`` as persistent ids."""

    class P(pickle.Pickler):
        def persistent_id(self, o):
            if isinstance(o, _Storage):
                return ("storage", torch.FloatStorage, o.key, "cpu", o.numel)
            return None

    buf = io.BytesIO()
    P(buf, protocol=2).dump(obj)
    mode = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", mode) as z:
        z.writestr("a/data.pkl", buf.getvalue())
        z.writestr("a/byteorder", "little")
        for name, data in records.items():
            z.writestr(f"a/{name}", data)
    return path


# --- TorchScript is read as data -------------------------------------------------------------


SCRIPTED = """
import sys, torch
class M(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(2))
    def forward(self, x):
        return x * self.w
    @torch.jit.export
    def __getstate__(self):
        return (self.w, self.training)
    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, bool]):
        {body}
        self.w = state[0]
        self.training = state[1]
torch.jit.save(torch.jit.script(M()), sys.argv[1])
"""


def _scripted(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "end2end.pt"
    script = tmp_path / "make.py"  # torch.jit.script reads the source from a file
    script.write_text(textwrap.dedent(SCRIPTED).replace("{body}", body))
    subprocess.run([sys.executable, str(script), str(path)], check=True, timeout=120)
    return path


def _load_in_child(path: Path, how: str, timeout: float = 60) -> subprocess.CompletedProcess:
    code = {
        "ours": "from comfyui_pal.models.loading import read_checkpoint\n"
        "try:\n    read_checkpoint(sys.argv[1])\nexcept ValueError as e:\n    print('ERR', e)",
        "jit": "import torch; torch.jit.load(sys.argv[1])",
    }[how]
    return subprocess.run(
        [sys.executable, "-c", f"import sys\n{code}", str(path)],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def test_a_torchscript_setstate_with_a_side_effect_is_never_run(tmp_path):
    path = _scripted(tmp_path, 'print("SETSTATE RAN")')
    assert "SETSTATE RAN" in _load_in_child(path, "jit").stdout  # what torch.jit.load does
    ours = _load_in_child(path, "ours")
    assert "SETSTATE RAN" not in ours.stdout + ours.stderr
    assert "ERR" in ours.stdout and "unknown checkpoint layout" in ours.stdout


def test_a_torchscript_setstate_that_never_returns_does_not_hang_the_loader(tmp_path):
    path = _scripted(tmp_path, "while True:\n            pass")
    t0 = time.monotonic()
    ours = _load_in_child(path, "ours", timeout=60)  # a hang fails here by TimeoutExpired
    assert "ERR" in ours.stdout and time.monotonic() - t0 < 60


@needs_fixtures
def test_the_torchscript_fixture_reads_to_exactly_its_state_dict_keys():
    sd = archive.read_torchscript_weights(FIXTURES / "end2end_reduced.pt")
    keys = json.loads((FIXTURES / "torchscript_keys.json").read_text())
    assert list(sd) == [e["key"] for e in keys]
    assert [list(v.shape) for v in sd.values()] == [e["shape"] for e in keys]


@needs_fixtures
def test_the_pth_fixture_reads_like_torch_load():
    ours = archive.read_pickle_archive(FIXTURES / "reduced.pth")
    ref = torch.load(FIXTURES / "reduced.pth", weights_only=True)
    assert ours["meta"] == ref["meta"] and list(ours["state_dict"]) == list(ref["state_dict"])
    assert all(torch.equal(ours["state_dict"][k], v) for k, v in ref["state_dict"].items())


def test_torch_save_files_of_any_layout_read_like_torch_load(tmp_path):
    t = torch.arange(12.0).view(3, 4)
    obj = {"t": t.t(), "p": torch.nn.Parameter(torch.ones(2)), "h": torch.ones(3).half(),
           "b": torch.ones(2, dtype=torch.bfloat16), "i": torch.arange(3), "e": torch.empty(0),
           "v": t[1:, 2:], "meta": {"a": [1, 2.5, "x", None, True], "b": (1, 2)}}  # fmt: skip
    torch.save(obj, tmp_path / "x.pth")
    ours = archive.read_pickle_archive(tmp_path / "x.pth")
    for k, v in obj.items():
        if isinstance(v, torch.Tensor):
            assert torch.equal(ours[k], v) and ours[k].dtype == v.dtype, k
    assert ours["meta"] == obj["meta"]


# --- pickles beyond tensors, bombs and lies --------------------------------------------------


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


def test_a_pickle_naming_any_other_global_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.ones(1)}, "x": _Evil()}, path)
    with pytest.raises(ValueError, match=r"refused to load .*posix\.system|refused.*os\.system"):
        read_checkpoint(path)


def test_a_zip_bomb_is_refused_before_it_is_inflated(tmp_path):
    path = _archive(tmp_path / "bomb.pth", {"w": 1}, {"data/0": b"\0" * (200 * 2**20)}, True)
    assert path.stat().st_size < 2**20
    with pytest.raises(ValueError, match="zip bomb"):
        read_checkpoint(path)


@pytest.mark.parametrize(
    ("tensor", "record", "message"),
    [
        ((0, (100,), (1,)), 40, "reaches past its storage"),  # a view beyond its storage
        ((8, (3,), (1,)), 40, "reaches past its storage"),
        ((0, (2, 2), (1,)), 40, "differ in length"),
        ((-1, (2,), (1,)), 40, "does not point"),
        ((0, (2,), (1,)), 12, "should hold 40 bytes"),  # a truncated storage record
    ],
)
def test_tensors_that_lie_about_their_storage_are_named(tmp_path, tensor, record, message):
    offset, size, stride = tensor
    storage = _Storage("0", 10)
    path = _archive(tmp_path / "lie.pth", {"w": _Tensor(storage, offset, size, stride)},
                    {"data/0": b"\0" * record})  # fmt: skip
    with pytest.raises(ValueError, match=message):
        read_checkpoint(path)


def test_a_corrupt_data_pkl_is_named(tmp_path):
    with zipfile.ZipFile(tmp_path / "c.pth", "w") as z:
        z.writestr("a/data.pkl", b"\x80\x02}q\x00(X")
    with pytest.raises(ValueError, match=r"data\.pkl is corrupt"):
        read_checkpoint(tmp_path / "c.pth")


def test_legacy_pickles_read_as_data_like_torch_load_and_bad_ones_are_named(tmp_path):
    obj = {"state_dict": {"w": torch.arange(12.0).view(3, 4).t(), "h": torch.ones(2).half()}}
    path = tmp_path / "legacy.pth"
    torch.save(obj, path, _use_new_zipfile_serialization=False)
    sd = archive.read_torch_save(path)["state_dict"]
    assert all(
        torch.equal(sd[k], v) and sd[k].dtype == v.dtype for k, v in obj["state_dict"].items()
    )
    data = path.read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[:-8])  # the last storage's bytes cut short
    with pytest.raises(ValueError, match="truncated"):
        read_checkpoint(tmp_path / "cut.pth")
    torch.save({"x": _Evil()}, tmp_path / "evil.pth", _use_new_zipfile_serialization=False)
    with pytest.raises(ValueError, match="refused to load"):
        read_checkpoint(tmp_path / "evil.pth")


# --- safetensors -----------------------------------------------------------------------------


def _raw_safetensors(path: Path, header: dict, data: bytes) -> Path:
    h = json.dumps(header).encode()
    path.write_bytes(len(h).to_bytes(8, "little") + h + data)
    return path


@pytest.mark.parametrize(
    ("header", "data", "message"),
    [
        ({"w": {"dtype": "F32", "shape": [2**40], "data_offsets": [0, 2**42]}}, 16, "truncated"),
        ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
          "v": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}, 24, "overlaps"),
        ({"w": {"dtype": "Q4", "shape": [4], "data_offsets": [0, 16]}}, 16, "dtype 'Q4'"),
        ({"w": {"dtype": "F32", "shape": [4, -1], "data_offsets": [0, 16]}}, 16, "shape"),
        ({"w": {"dtype": "F32", "shape": [5], "data_offsets": [0, 16]}}, 16, "needs 20 bytes"),
        ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, 8, "truncated"),
        ({"w": {"dtype": "F32", "shape": [4], "data_offsets": "0-16"}}, 16, "begin, end"),
    ],
)  # fmt: skip
def test_safetensors_headers_that_lie_are_named_before_reading(tmp_path, header, data, message):
    path = _raw_safetensors(tmp_path / "x.safetensors", header, b"\0" * data)
    with pytest.raises(ValueError, match=message):
        read_checkpoint(path)


def test_a_safetensors_header_length_beyond_the_file_is_named(tmp_path):
    path = tmp_path / "x.safetensors"
    path.write_bytes((2**20).to_bytes(8, "little") + b'{"w": 1}')
    with pytest.raises(ValueError, match="claims 1048576 bytes"):
        read_checkpoint(path)


def test_a_safetensors_file_whose_first_byte_is_0x80_is_not_taken_for_a_pickle(tmp_path):
    torch.manual_seed(0)
    model = PalLite(PalLiteConfig(decoder_channels=8)).eval()
    for pad in range(256):  # metadata padding until the header length ends in byte 0x80
        path = save_checkpoint(model, tmp_path / "m.safetensors", extra={"pad": "x" * pad})
        if path.read_bytes()[0] == 0x80:
            break
    assert path.read_bytes()[0] == 0x80
    assert read_checkpoint(path).source_format == "safetensors"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("{not json", "'config' is not JSON"),
        ('"a string"', "not an object"),
        ('{"decoder_channels": "wide"}', "'decoder_channels' is 'wide'"),
        ('{"decoder_channels": -8}', "integer >= 0"),
    ],
)
def test_bad_config_metadata_names_the_file_and_the_field(tmp_path, config, message):
    src = read_checkpoint(_tiny(tmp_path))
    path = tmp_path / "bad.safetensors"
    meta = {**src.metadata, "config": config}
    save_file({k: v.contiguous() for k, v in src.state_dict.items()}, str(path), metadata=meta)
    with pytest.raises(ValueError, match=message) as err:
        read_checkpoint(path)
    assert "bad.safetensors" in str(err.value)


def test_a_checkpoint_with_nan_weights_is_an_error_not_a_clean_report(tmp_path):
    src = read_checkpoint(_tiny(tmp_path))
    sd = {k: v.contiguous() for k, v in src.state_dict.items()}
    key = next(k for k, v in sd.items() if v.is_floating_point())
    sd[key] = sd[key].clone().fill_(float("nan"))
    path = tmp_path / "nan.safetensors"
    save_file(sd, str(path), metadata=src.metadata)
    with pytest.raises(ValueError, match="NaN or infinity") as err:
        load_model_file(path)
    assert key in str(err.value)


def test_hostile_files_are_never_changed(tmp_path):
    paths = [
        _archive(tmp_path / "lie.pth", {"w": _Tensor(_Storage("0", 10), 0, (99,), (1,))},
                 {"data/0": b"\0" * 40}),
        _raw_safetensors(tmp_path / "x.safetensors",
                         {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0"),
    ]  # fmt: skip
    before = [p.read_bytes() for p in paths]
    for p in paths:
        with pytest.raises(ValueError):
            read_checkpoint(p)
    assert [p.read_bytes() for p in paths] == before
