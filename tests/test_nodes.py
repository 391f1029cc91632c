"""The ComfyUI node pack: loads like ComfyUI loads it, and each node's contract holds."""

from __future__ import annotations

import dataclasses
import inspect
import json
import subprocess
import sys

import pytest
import torch
from conftest import REPO, blob_mask

COMFY_TYPES = {"IMAGE", "MASK", "FLOAT", "INT", "BOOLEAN", "STRING", "PAL_STITCH", "PAL_MODEL"}
COMFY_TYPES |= {"SEGS", "BBOX_DETECTOR", "SEGM_DETECTOR"}  # Impact Pack's types
COMFY_TYPES |= {"BOUNDING_BOX"}  # core ComfyUI (comfy_api io.BoundingBox) in newer releases


def test_pack_exports_node_mappings(pack):
    names = set(pack.NODE_CLASS_MAPPINGS)
    assert {
        "PALMaskRefine",
        "PALCropRegions",
        "PALStitchRegions",
        "PALModelLoader",
        "PALDetectArtifacts",
    } <= names
    assert set(pack.NODE_DISPLAY_NAME_MAPPINGS) == names
    assert pack.NODE_DISPLAY_NAME_MAPPINGS["PALCropRegions"] == "PAL Crop Regions"


def test_every_node_declares_a_consistent_classic_interface(pack):
    for name, cls in pack.NODE_CLASS_MAPPINGS.items():
        spec = cls.INPUT_TYPES()
        assert set(spec) <= {"required", "optional", "hidden"}, name
        assert cls.CATEGORY in {"PAL/detect", "PAL/fix", "PAL/regions", "PAL/curate"}, name
        assert cls.DESCRIPTION, name
        assert len(cls.OUTPUT_TOOLTIPS) == len(cls.RETURN_TYPES), name
        assert all(isinstance(t, str) and len(t) > 10 for t in cls.OUTPUT_TOOLTIPS), name
        assert cls.SEARCH_ALIASES and all(isinstance(a, str) for a in cls.SEARCH_ALIASES), name
        assert len(cls.RETURN_TYPES) == len(cls.RETURN_NAMES), name
        assert set(cls.RETURN_TYPES) <= COMFY_TYPES, name
        if hasattr(cls, "OUTPUT_IS_LIST"):
            assert len(cls.OUTPUT_IS_LIST) == len(cls.RETURN_TYPES), name
        method = getattr(cls(), cls.FUNCTION)
        params = inspect.signature(method).parameters
        required = spec.get("required", {})
        optional = spec.get("optional", {})
        named = {k for k, p in params.items() if p.kind is not inspect.Parameter.VAR_KEYWORD}
        inputs = set(required) | set(optional)
        if len(named) == len(params):
            assert named == inputs, name
        else:  # the other widgets arrive as **options: each must be a field the node picks
            fields = {f.name for opt in cls.OPTIONS for f in dataclasses.fields(opt)}
            assert named <= inputs and inputs - named <= fields, (name, inputs - named - fields)
        for arg in set(required) & named:
            assert params[arg].default is inspect.Parameter.empty, (name, arg)
        for arg in set(optional) & named:
            assert params[arg].default is not inspect.Parameter.empty, (name, arg)
        for arg, (kind, *opts) in {**required, **optional}.items():
            assert isinstance(kind, (str, list)), (name, arg)
            options = opts[0] if opts else {}
            assert options.get("tooltip"), f"{name}.{arg} has no tooltip"
            if isinstance(kind, list):
                assert options.get("default", kind[0]) in kind
            elif "default" in options and "min" in options:
                assert options["min"] <= options["default"] <= options["max"], (name, arg)


@pytest.mark.slow
def test_library_imports_without_comfyui_present():
    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in ('comfy', 'folder_paths', 'server', 'nodes'):\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import comfyui_pal, comfyui_pal.cli, comfyui_pal.regions, comfyui_pal.masks\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def _defaults(cls) -> dict:
    spec = cls.INPUT_TYPES()
    return {
        k: v[1]["default"]
        for part in ("required", "optional")
        for k, v in spec.get(part, {}).items()
        if len(v) > 1 and "default" in v[1]
    }


def test_crop_then_stitch_nodes_round_trip_comfy_layouts(pack):
    crop_cls = pack.NODE_CLASS_MAPPINGS["PALCropRegions"]
    stitch_cls = pack.NODE_CLASS_MAPPINGS["PALStitchRegions"]
    image = torch.rand(2, 96, 128, 3)  # ComfyUI IMAGE [B,H,W,C]
    mask = blob_mask(96, 128, [(40, 50, 6)])[0]  # a bare [H,W] MASK broadcasts
    crops, crop_masks, plan, report = crop_cls().crop(image, mask, **_defaults(crop_cls))
    assert crops.shape[-1] == 3 and crops.shape[0] == 2 and crop_masks.shape == crops.shape[:3]
    info = json.loads(report)
    assert [r["status"] for r in info["regions"]] == ["kept", "kept"]
    (out,) = stitch_cls().stitch(image, plan, crops, 16, False)
    assert out.shape == image.shape
    assert (out - image).abs().max() <= 1 / 255


def test_empty_mask_flows_through_crop_and_stitch_nodes_unchanged(pack):
    crop_cls = pack.NODE_CLASS_MAPPINGS["PALCropRegions"]
    stitch_cls = pack.NODE_CLASS_MAPPINGS["PALStitchRegions"]
    image = torch.rand(1, 64, 64, 3)
    crops, _, plan, report = crop_cls().crop(image, torch.zeros(1, 64, 64), **_defaults(crop_cls))
    assert crops.shape[0] == 1 and json.loads(report)["crops"][0]["used"] is False
    (out,) = stitch_cls().stitch(image, plan, torch.rand_like(crops), 16, True)
    assert torch.equal(out, image)


def test_mask_refine_node_accepts_a_bare_hw_mask(pack):
    cls = pack.NODE_CLASS_MAPPINGS["PALMaskRefine"]
    mask = blob_mask(40, 40, [(20, 20, 5)])[0] * 0.9
    (out,) = cls().refine(mask, 0.5, 3, True, 0.0, 0.0, False)
    assert out.shape == (1, 40, 40) and int(out.sum()) == int(
        blob_mask(40, 40, [(20, 20, 8)]).sum()
    )


def test_a_mask_where_an_image_is_expected_is_named(pack):
    crop_cls = pack.NODE_CLASS_MAPPINGS["PALCropRegions"]
    with pytest.raises(ValueError, match="looks like a MASK"):
        crop_cls().crop(torch.rand(1, 64, 64), torch.zeros(1, 64, 64), **_defaults(crop_cls))


@pytest.mark.slow
def test_detect_and_auto_fix_nodes_run_on_comfy_layouts(pack, tmp_path, monkeypatch):
    from comfyui_pal.models.loading import save_checkpoint
    from comfyui_pal.models.pal_lite import PalLite

    torch.manual_seed(0)
    path = save_checkpoint(PalLite(), tmp_path / "lite.safetensors")
    monkeypatch.setenv("PAL_MODELS_DIR", str(tmp_path))
    loader = pack.NODE_CLASS_MAPPINGS["PALModelLoader"]
    assert "lite.safetensors" in loader.INPUT_TYPES()["required"]["model_name"][0]
    (model,) = loader().load("lite.safetensors", "cpu", "auto")
    image = torch.rand(2, 48, 64, 3)
    det = pack.NODE_CLASS_MAPPINGS["PALDetectArtifacts"]()
    probs, binary, preview, pars, summary = det.detect(image, model, "resize", 0.5)
    assert probs.shape == binary.shape == (2, 48, 64) and preview.shape == image.shape
    assert len(pars) == 2 and json.loads(summary)["par"] == [round(p, 5) for p in pars]
    fixer = pack.NODE_CLASS_MAPPINGS["PALAutoFix"]()
    fixed, mask, history = fixer.fix(
        image=image,
        pal_model=model,
        inpainter="smooth",
        threshold=0.5,
        target_par=0.0,
        max_iterations=1,
        min_confidence=0.85,
        grow=2,
        blend_radius=8,
        seed=0,
    )
    assert fixed.shape == image.shape and mask.shape == (2, 48, 64)
    assert json.loads(history)[0]["iteration"] == 0
    assert path.exists()


def test_auto_fix_says_which_widgets_need_a_diffusion_model(pack):
    optional = pack.NODE_CLASS_MAPPINGS["PALAutoFix"].INPUT_TYPES()["optional"]
    widgets = ["steps", "cfg", "sampler_name", "scheduler", "denoise", "target_size"]
    assert all("only with MODEL" in optional[k][1]["tooltip"] for k in widgets)
    assert not any("only with MODEL" in optional[k][1]["tooltip"] for k in ("mode", "tta"))
    assert len(optional["mode"][1]["tooltip"]) > 40  # says what resize and tiled do
    assert optional["scheduler"][1].get("default", "normal") == "normal"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_device_the_machine_lacks_is_a_clear_error(pack, tmp_path):
    loader = pack.NODE_CLASS_MAPPINGS["PALModelLoader"]
    with pytest.raises(RuntimeError, match="no CUDA device; choose auto"):
        loader().load("shipped/pal_lite.safetensors", "cuda", "auto")


def test_seed_widgets_share_comfyuis_64_bit_range_and_the_top_seed_runs(pack):
    from comfyui_pal.pipelines.fix import FixOptions, fix

    fix_seed = pack.NODE_CLASS_MAPPINGS["PALAutoFix"].INPUT_TYPES()["required"]["seed"][1]
    zoom_seed = pack.NODE_CLASS_MAPPINGS["PALZoomInpaint"].INPUT_TYPES()["required"]["seed"][1]
    assert fix_seed["max"] == zoom_seed["max"] == 2**64 - 1 and fix_seed["min"] == 0

    class Flags(torch.nn.Module):  # flags the magenta square
        def forward(self, x):
            magenta = (x[:, 0] > 1) & (x[:, 1] < 0)
            return torch.stack([~magenta, magenta], 1).float() * 8

    image = torch.rand(1, 3, 64, 64)
    image[:, :, 20:30, 20:30] = torch.tensor([1.0, 0.0, 1.0])[:, None, None]
    opts = FixOptions(seed=2**64 - 1, max_iterations=2, min_confidence=0.0, protect=False)
    fixed, _, _ = fix(Flags(), image, opts)  # seed + 1000 r + k wraps instead of overflowing
    assert fixed.shape == image.shape


def test_a_checkpoint_replaced_under_the_same_name_reloads(pack, tmp_path, monkeypatch):
    import os

    from comfyui_pal.models.loading import save_checkpoint
    from comfyui_pal.models.pal_lite import PalLite, PalLiteConfig

    monkeypatch.setenv("PAL_MODELS_DIR", str(tmp_path))
    loader = pack.NODE_CLASS_MAPPINGS["PALModelLoader"]
    torch.manual_seed(0)
    path = save_checkpoint(PalLite(PalLiteConfig(decoder_channels=8)), tmp_path / "m.safetensors")
    first = loader.IS_CHANGED("m.safetensors", "cpu", "auto")
    assert loader.IS_CHANGED("m.safetensors", "cpu", "auto") == first  # unchanged: cached
    (a,) = loader().load("m.safetensors", "cpu", "auto")
    torch.manual_seed(1)
    save_checkpoint(PalLite(PalLiteConfig(decoder_channels=16)), path)  # replaced in place
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert loader.IS_CHANGED("m.safetensors", "cpu", "auto") != first
    (b,) = loader().load("m.safetensors", "cpu", "auto")
    assert a.model.config.decoder_channels == 8 and b.model.config.decoder_channels == 16


def test_rank_and_select_nodes_sort_by_precomputed_probabilities(pack):
    image = torch.rand(4, 16, 16, 3)
    probability = torch.zeros(4, 16, 16)
    for i, n in enumerate([30, 0, 100, 5]):  # flagged pixels per image
        probability[i].view(-1)[:n] = 1.0
    ranked, pars, index, summary = pack.NODE_CLASS_MAPPINGS["PALRankBatch"]().rank(
        image, probability=probability
    )
    assert index == [1, 3, 0, 2] and torch.equal(ranked, image[[1, 3, 0, 2]])
    assert pars == sorted(pars) and json.loads(summary)[0] == {"index": 1, "par": 0.0}
    select = pack.NODE_CLASS_MAPPINGS["PALSelectBest"]()
    best, _, index, _ = select.select(image, 2, 1.0, "best_one", probability=probability)
    assert index == [1, 3] and best.shape[0] == 2
    pair = [0, 2]  # neither is artifact-free
    none, _, index, _ = select.select(image[pair], 0, 0.0, "empty", probability=probability[pair])
    assert none.shape[0] == 0 and index == []
    with pytest.raises(ValueError, match="detected from these same images"):
        select.select(image, 1, 1.0, "best_one", probability=probability[pair])
    with pytest.raises(ValueError, match="connect pal_model"):
        select.select(image, 1, 1.0, "best_one")
