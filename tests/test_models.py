"""Native PAL4VST architecture against mmsegmentation's own outputs, and checkpoint loading."""

from __future__ import annotations

import json
import os
import pickle
import shutil

import numpy as np
import pytest
import torch
from conftest import FIXTURES, requires_fixtures
from PIL import Image

from comfyui_pal import cli
from comfyui_pal.models import SwinUperNet, SwinUperNetConfig, convert, load_model_file
from comfyui_pal.models.loading import read_checkpoint
from comfyui_pal.models.swin import relative_position_index
from comfyui_pal.models.swin_upernet import checkpoint_filter_fn
from comfyui_pal.pipelines.detect import normalize

IMAGES = [("", "input.png"), ("_wide", "input_wide.png"), ("_odd", "input_odd.png")]


def _input(name: str) -> torch.Tensor:
    rgb = np.array(Image.open(FIXTURES / name).convert("RGB"), dtype=np.float32)
    return normalize(torch.from_numpy(rgb).permute(2, 0, 1)[None] / 255.0)


def _check_against_mmseg(model: torch.nn.Module) -> None:
    for suffix, name in IMAGES:
        with torch.no_grad():
            logits = model(_input(name))
        expected = torch.from_numpy(np.load(FIXTURES / f"expected_logits{suffix}.npy"))
        prob1 = torch.from_numpy(np.load(FIXTURES / f"expected_prob1{suffix}.npy"))
        assert logits.shape == expected.shape, name
        assert (logits - expected).abs().max() < 1e-4, name
        assert (logits.softmax(1)[0, 1] - prob1).abs().max() < 5e-5, name


@requires_fixtures()
def test_reduced_model_from_mmseg_pth_matches_mmsegmentation():
    _check_against_mmseg(load_model_file(FIXTURES / "reduced.pth"))


@requires_fixtures()
def test_reduced_model_from_torchscript_end2end_matches_mmsegmentation():
    _check_against_mmseg(load_model_file(FIXTURES / "end2end_reduced.pt"))


@requires_fixtures()
def test_labels_match_except_at_near_ties():
    model = load_model_file(FIXTURES / "reduced.pth")
    for suffix, name in IMAGES:
        with torch.no_grad():
            labels = model(_input(name)).argmax(1)[0].numpy()
        expected = np.load(FIXTURES / f"expected_labels{suffix}.npy")
        margin = np.abs(np.diff(np.load(FIXTURES / f"expected_logits{suffix}.npy")[0], axis=0))[0]
        assert np.all((labels == expected) | (margin < 1e-3)), name


@requires_fixtures()
def test_auxiliary_head_matches_when_kept_for_training():
    ckpt = read_checkpoint(FIXTURES / "reduced.pth", keep_aux=True)
    from comfyui_pal.models import build_model

    model = build_model(ckpt)
    with torch.no_grad():
        _, aux = model.forward_train(_input("input.png"))
    expected = torch.from_numpy(np.load(FIXTURES / "expected_aux_logits.npy"))
    assert (aux - expected).abs().max() < 1e-4


INDEX = "relative_position_index"


def _full_model(**kw) -> SwinUperNet:
    with torch.device("meta"):  # keys and shapes only
        return SwinUperNet(SwinUperNetConfig(**kw))


@requires_fixtures()
def test_full_architecture_state_dict_equals_the_official_manifest_less_derived_buffers():
    manifest = json.loads((FIXTURES / "full_manifest.json").read_text())
    model = _full_model(aux_channels=256)
    ours = [
        (k, list(v.shape), str(v.dtype).removeprefix("torch."))
        for k, v in model.state_dict().items()
    ]
    theirs = [(e["key"], e["shape"], e["dtype"]) for e in manifest["keys"]]
    assert ours == [t for t in theirs if not t[0].endswith(INDEX)]
    built = [(f"{n}.{INDEX}", list(b.shape), "int64") for n, b in _index_buffers(model)]
    assert built == [t for t in theirs if t[0].endswith(INDEX)]  # same buffers, not saved
    assert list(_full_model().state_dict()) == [
        k for k, _, _ in theirs if not k.startswith("auxiliary_head.") and not k.endswith(INDEX)
    ]


def _index_buffers(model: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    return [
        (name, m.relative_position_index)
        for name, m in model.named_modules()
        if hasattr(m, "relative_position_bias_table")
    ]


@requires_fixtures()
@pytest.mark.parametrize("keep_aux", [False, True])
def test_the_filter_maps_the_official_and_torchscript_keys_to_exactly_ours(keep_aux):
    manifest = json.loads((FIXTURES / "full_manifest.json").read_text())
    official = {e["key"]: torch.empty(0) for e in manifest["keys"]}
    ts_keys = [e["key"] for e in json.loads((FIXTURES / "torchscript_keys.json").read_text())]
    assert any(k.startswith("data_preprocessor.") for k in ts_keys)
    exported = dict.fromkeys(ts_keys, torch.empty(0))
    ours = list(_full_model(aux_channels=256 if keep_aux else None).state_dict())
    assert list(checkpoint_filter_fn(official, keep_aux=keep_aux)) == ours
    reduced = SwinUperNetConfig(
        embed_dim=24, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8), channels=64
    )
    reduced_ours = list(
        _full_model(**{**reduced.to_dict(), "aux_channels": 32 if keep_aux else None}).state_dict()
    )
    assert list(checkpoint_filter_fn(exported, keep_aux=keep_aux)) == reduced_ours


def test_the_filter_drops_only_foreign_and_derived_keys_and_copies_nothing():
    model = SwinUperNet(
        SwinUperNetConfig(
            embed_dim=8, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1), channels=8, aux_channels=4
        )
    )
    ours = model.state_dict()
    mmseg = {"data_preprocessor.mean": torch.zeros(3, 1, 1), **ours}
    mmseg |= {f"{n}.{INDEX}": b for n, b in _index_buffers(model)}
    size = len(mmseg)
    out = checkpoint_filter_fn(mmseg, keep_aux=True)
    assert list(out) == list(ours) and all(out[k] is ours[k] for k in ours)
    inference = checkpoint_filter_fn(mmseg)
    assert list(inference) == [k for k in ours if not k.startswith("auxiliary_head.")]
    assert len(mmseg) == size == len(ours) + 1 + 4  # the input is left alone


def _edited_index_state_dict() -> dict[str, torch.Tensor]:
    """``reduced.pth`` with every stored relative_position_index transposed (1.35 off if used)."""
    sd = torch.load(FIXTURES / "reduced.pth", weights_only=True)["state_dict"]
    edited = {k: v.t().contiguous() if k.endswith(INDEX) else v for k, v in sd.items()}
    assert sum(not torch.equal(edited[k], sd[k]) for k in sd if k.endswith(INDEX)) == 8
    return edited


@requires_fixtures()
def test_an_edited_relative_position_index_in_a_checkpoint_is_ignored(tmp_path):
    path = tmp_path / "edited.pth"
    torch.save({"state_dict": _edited_index_state_dict()}, path)
    model = load_model_file(path)
    for _, index in _index_buffers(model):
        assert torch.equal(index, relative_position_index(12))
    _check_against_mmseg(model)


@requires_fixtures()
def test_converted_files_hold_no_derived_buffers_and_older_ones_that_do_still_load(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    new = convert(FIXTURES / "reduced.pth", tmp_path / "new.safetensors")
    with safe_open(str(new), framework="pt") as f:
        assert not any(k.endswith(INDEX) for k in f.keys())
        meta, sd = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    indices = {k: v for k, v in _edited_index_state_dict().items() if k.endswith(INDEX)}
    old = tmp_path / "old.safetensors"  # as conversions wrote them before, index edited
    save_file({**sd, **indices}, str(old), metadata=meta)
    _check_against_mmseg(load_model_file(old))


@requires_fixtures()
def test_hyper_parameters_are_inferred_from_the_weights():
    cfg = read_checkpoint(FIXTURES / "reduced.pth").config
    assert cfg["embed_dim"] == 24 and list(cfg["depths"]) == [2, 2, 2, 2]
    assert list(cfg["num_heads"]) == [1, 2, 4, 8] and cfg["window"] == 12
    assert cfg["channels"] == 64 and cfg["num_classes"] == 2 and cfg["aux_channels"] is None


def test_any_input_size_works_including_tiny_and_odd():
    model = SwinUperNet(
        SwinUperNetConfig(embed_dim=8, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1), channels=8)
    ).eval()
    for h, w in [(1, 1), (7, 5), (33, 97), (64, 64)]:
        with torch.no_grad():
            assert model(torch.randn(2, 3, h, w)).shape == (2, 2, h, w)


def test_inference_caches_follow_weight_changes_and_match_training_mode():
    torch.manual_seed(0)
    cfg = SwinUperNetConfig(embed_dim=8, depths=(2, 2, 2, 2), num_heads=(1, 1, 1, 1), channels=8)
    model = SwinUperNet(cfg).eval()
    x = torch.randn(1, 3, 96, 80)
    with torch.inference_mode():
        first = model(x)
        assert torch.equal(model(x), first)  # cached bias and shift masks: same result
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "relative_position_bias_table" in name:
                    p.add_(torch.randn_like(p) * 3)
        changed = model(x)
    fresh = SwinUperNet(cfg).eval()
    fresh.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert not torch.allclose(changed, first)
        assert torch.allclose(changed, fresh(x), atol=1e-6)
    with torch.enable_grad():  # autograd path: no cached tensors, gradients reach the tables
        model(x).sum().backward()
    tables = [p for n, p in model.named_parameters() if "relative_position_bias_table" in n]
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in tables)


def test_a_model_built_and_run_under_inference_mode_works_like_in_comfyui():
    # ComfyUI runs every node (so the loader too) under torch.inference_mode: the weights are
    # then inference tensors, which have no version counter
    cfg = SwinUperNetConfig(embed_dim=8, depths=(2, 2, 2, 2), num_heads=(1, 1, 1, 1), channels=8)
    torch.manual_seed(0)
    reference = SwinUperNet(cfg).eval()
    x = torch.randn(1, 3, 96, 80)
    with torch.inference_mode():
        model = SwinUperNet(cfg).eval()
        model.load_state_dict(reference.state_dict())
        assert next(model.parameters()).is_inference()
        out = model(x)
        assert torch.equal(model(x), out)
    with torch.no_grad():
        assert torch.allclose(out, reference(x), atol=1e-6)


@requires_fixtures()
def test_convert_writes_safetensors_that_load_to_the_same_model(tmp_path):
    out = tmp_path / "reduced.safetensors"
    assert cli.main(["convert", str(FIXTURES / "reduced.pth"), str(out)]) == 0
    ckpt = read_checkpoint(out)
    assert ckpt.source_format == "safetensors" and ckpt.arch == "swin_upernet"
    assert (
        ckpt.metadata["source_file"] == "reduced.pth" and len(ckpt.metadata["source_sha256"]) == 64
    )
    _check_against_mmseg(load_model_file(out))


@requires_fixtures()
def test_half_precision_conversion_halves_the_file_and_stays_close(tmp_path):
    full, half = tmp_path / "f.safetensors", tmp_path / "h.safetensors"
    convert(FIXTURES / "reduced.pth", full)
    convert(FIXTURES / "reduced.pth", half, half=True)
    assert os.path.getsize(half) < 0.65 * os.path.getsize(full)
    a, b = load_model_file(full), load_model_file(half)
    x = _input("input_odd.png")
    with torch.no_grad():
        assert (a(x).softmax(1) - b(x).softmax(1)).abs().max() < 0.02


@requires_fixtures()
def test_convert_never_overwrites_without_being_asked(tmp_path):
    out = tmp_path / "o.safetensors"
    out.write_bytes(b"keep me")
    assert cli.main(["convert", str(FIXTURES / "reduced.pth"), str(out)]) == 2
    assert out.read_bytes() == b"keep me"


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": _Evil()}, path)
    with pytest.raises(ValueError, match="refused to load"):
        read_checkpoint(path)
    legacy = tmp_path / "evil_legacy.pth"
    legacy.write_bytes(pickle.dumps(_Evil(), protocol=2))
    with pytest.raises(ValueError, match=r"refused to load|truncated or corrupt"):
        read_checkpoint(legacy)


def test_unknown_layouts_are_named(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match=r"unknown checkpoint layout.*encoder\.weight"):
        read_checkpoint(path)


def test_files_that_are_not_checkpoints_are_named(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("hello, I am text")
    with pytest.raises(ValueError, match="not a checkpoint this pack reads"):
        read_checkpoint(path)
    with pytest.raises(FileNotFoundError):
        read_checkpoint(tmp_path / "missing.pth")


@requires_fixtures()
@pytest.mark.parametrize("name", ["reduced.pth", "end2end_reduced.pt"])
def test_truncated_checkpoints_raise_a_clear_error(tmp_path, name):
    data = (FIXTURES / name).read_bytes()
    path = tmp_path / name
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"truncated or corrupt|cannot read"):
        load_model_file(path)


@requires_fixtures()
def test_truncated_safetensors_raise_a_clear_error(tmp_path):
    good = tmp_path / "g.safetensors"
    convert(FIXTURES / "reduced.pth", good)
    bad = tmp_path / "b.safetensors"
    bad.write_bytes(good.read_bytes()[:-1000])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_model_file(bad)


@requires_fixtures()
def test_weights_missing_from_a_checkpoint_are_listed(tmp_path):
    sd = torch.load(FIXTURES / "reduced.pth", weights_only=True)["state_dict"]
    del sd["decode_head.fpn_bottleneck.conv.weight"]
    sd["backbone.norm3.weight"] = torch.zeros(5)
    path = tmp_path / "broken.pth"
    torch.save(sd, path)
    with pytest.raises(ValueError, match=r"1 missing .*fpn_bottleneck.*other shapes.*norm3"):
        load_model_file(path)


@requires_fixtures()
def test_ddp_prefixed_and_bare_state_dicts_load(tmp_path):
    sd = torch.load(FIXTURES / "reduced.pth", weights_only=True)["state_dict"]
    path = tmp_path / "ddp.pth"
    torch.save({f"module.{k}": v for k, v in sd.items()}, path)
    _check_against_mmseg(load_model_file(path))


def test_inputs_are_never_modified(tmp_path):
    # the loader only reads: a copy of the file is byte-identical afterwards
    if not FIXTURES.exists():
        pytest.skip("fixtures absent")
    src = tmp_path / "r.pth"
    shutil.copy(FIXTURES / "reduced.pth", src)
    before = src.read_bytes()
    load_model_file(src)
    assert src.read_bytes() == before


def test_the_head_convolves_a_channel_concatenation_without_building_it():
    from comfyui_pal.models.uper_head import ConvModule

    torch.manual_seed(0)
    conv = ConvModule(12, 5, 3).eval()
    parts = [torch.randn(2, c, 9, 7) for c in (4, 3, 5)]
    with torch.no_grad():
        assert torch.allclose(conv.forward_concat(parts), conv(torch.cat(parts, dim=1)), atol=1e-5)
    with pytest.raises(ValueError, match="input channels"):
        conv.forward_concat(parts[:2])
