"""The Segmentor interface both architectures share: encoder, classifier, freezing, buffers."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from comfyui_pal.models import PalLite, Segmentor, SwinUperNet, SwinUperNetConfig
from comfyui_pal.models.loading import save_checkpoint
from comfyui_pal.models.swin import relative_position_index
from comfyui_pal.training.calibrate import shift_decision
from comfyui_pal.training.train import TrainConfig, make_model

NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)
SMALL_SWIN = SwinUperNetConfig(
    embed_dim=8, depths=(2, 2, 2, 2), num_heads=(1, 1, 1, 1), channels=8, aux_channels=4
)


def _swin() -> SwinUperNet:
    torch.manual_seed(0)
    return SwinUperNet(SMALL_SWIN)


def _lite() -> PalLite:
    torch.manual_seed(0)
    return PalLite()


BUILDERS = {"swin_upernet": _swin, "pal_lite": _lite}
ARCHS = pytest.mark.parametrize("arch", sorted(BUILDERS))


def _batch() -> torch.Tensor:
    return torch.randn(2, 3, 40, 56, generator=torch.Generator().manual_seed(1))


@ARCHS
def test_both_architectures_are_segmentors_named_by_their_arch(arch):
    model = BUILDERS[arch]()
    assert isinstance(model, Segmentor) and model.arch == arch


def test_swin_names_its_mmseg_modules_encoder_and_classifier_without_new_keys():
    model = _swin()
    assert model.encoder is model.backbone
    assert model.classifier is model.decode_head.conv_seg
    assert not any(k.startswith(("encoder.", "classifier.")) for k in model.state_dict())


def test_pal_lite_names_its_decoder_classifier_without_new_keys():
    model = _lite()
    assert model.classifier is model.decoder.classifier
    assert not any(k.startswith("classifier.") for k in model.state_dict())


@ARCHS
def test_the_classifier_is_the_final_1x1_conv_giving_the_logits(arch):
    model = BUILDERS[arch]().eval()
    conv = model.classifier
    assert conv.kernel_size == (1, 1) and conv.out_channels == 2
    x = _batch()
    with torch.no_grad():
        before = model(x)
        conv.bias[1] += 3.0  # the resize after it is linear with weights summing to 1
        after = model(x)
    assert torch.allclose(after[:, 0], before[:, 0], atol=1e-5)
    assert torch.allclose(after[:, 1], before[:, 1] + 3.0, atol=1e-4)


@ARCHS
def test_forward_gives_logits_at_the_input_size_and_forward_train_the_same(arch):
    model = BUILDERS[arch]().eval()
    x = _batch()
    with torch.no_grad():
        logits = model(x)
        train_logits, aux = model.forward_train(x)
    assert logits.shape == (2, 2, 40, 56)
    assert torch.equal(train_logits, logits)
    assert (aux is not None) == (arch == "swin_upernet")  # only Swin has an auxiliary head


@ARCHS
def test_a_frozen_encoder_keeps_its_norm_layers_in_eval_through_train(arch):
    model = BUILDERS[arch]()
    model.freeze_encoder()
    model.train()
    model.eval().train()
    norms = [m for m in model.encoder.modules() if isinstance(m, NORMS)]
    assert norms and not any(m.training for m in norms)
    encoder = {id(m) for m in model.encoder.modules()}
    assert all(m.training for m in model.modules() if id(m) not in encoder)


@ARCHS
def test_a_frozen_encoder_gets_no_gradients_and_keeps_its_statistics(arch):
    model = BUILDERS[arch]()
    model.freeze_encoder()
    model.train()
    stats = {k: v.clone() for k, v in model.encoder.state_dict().items() if "running" in k}
    logits, aux = model.forward_train(_batch())
    (logits.sum() + (aux.sum() if aux is not None else 0)).backward()
    assert all(p.grad is None and not p.requires_grad for p in model.encoder.parameters())
    encoder = {id(p) for p in model.encoder.parameters()}
    others = [p for p in model.parameters() if id(p) not in encoder]
    assert others and all(p.grad is not None for p in others)
    after = model.encoder.state_dict()
    assert all(torch.equal(after[k], v) for k, v in stats.items())


def test_unfrozen_models_train_their_encoder_too():
    model = _lite().train()
    assert all(m.training for m in model.encoder.modules())


@pytest.mark.parametrize("init", ["pal_lite", "swin_upernet"])
def test_decoder_only_training_freezes_the_encoder_of_any_checkpoint(tmp_path, init):
    path = save_checkpoint(BUILDERS[init]().eval(), tmp_path / f"{init}.safetensors")
    cfg = TrainConfig(out=tmp_path / "o.safetensors", workdir=tmp_path, init=path)
    frozen = make_model(replace(cfg, decoder_only=True)).train()
    assert not any(p.requires_grad for p in frozen.encoder.parameters())
    assert not any(m.training for m in frozen.encoder.modules())
    full = make_model(cfg).train()
    assert all(p.requires_grad for p in full.parameters())


def test_dropping_the_auxiliary_head_removes_its_weights_and_config():
    model = _swin()
    assert any(k.startswith("auxiliary_head.") for k in model.state_dict())
    model.drop_auxiliary_head()
    assert model.config.aux_channels is None and model.auxiliary_head is None
    assert not any(k.startswith("auxiliary_head.") for k in model.state_dict())
    lite = _lite()
    keys = list(lite.state_dict())
    lite.drop_auxiliary_head()  # nothing to drop
    assert list(lite.state_dict()) == keys


def test_derived_buffers_are_not_saved_and_are_rebuilt_after_a_meta_build():
    reference = _swin().eval()
    sd = reference.state_dict()
    assert not any("relative_position_index" in k for k in sd)
    with torch.device("meta"):
        model = SwinUperNet(SMALL_SWIN)
    model.load_state_dict(sd, strict=True, assign=True)
    model.init_non_persistent_buffers()
    index = model.backbone.stages[0].blocks[0].attn.w_msa.relative_position_index
    assert index.device.type == "cpu" and torch.equal(index, relative_position_index(12))
    x = _batch()
    with torch.no_grad():
        assert torch.equal(model.eval()(x), reference(x))


def test_a_stored_relative_position_index_is_ignored_by_load_state_dict():
    reference = _swin().eval()
    sd = dict(reference.state_dict())
    key = "backbone.stages.0.blocks.1.attn.w_msa.relative_position_index"
    sd[key] = torch.zeros(144, 144, dtype=torch.long)  # an older, edited file
    model = SwinUperNet(SMALL_SWIN).eval()
    model.load_state_dict(sd, strict=True)
    assert torch.equal(model.get_buffer(key), relative_position_index(12))
    assert key in sd  # the caller's dict is left alone
    x = _batch()
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))


@ARCHS
def test_shifting_the_decision_moves_the_half_point_to_the_threshold(arch):
    model = BUILDERS[arch]().eval()
    x = _batch()
    with torch.no_grad():
        p = model(x).softmax(1)[:, 1]
        shift_decision(model, 0.3)
        q = model(x).softmax(1)[:, 1]
    near = (p - 0.3).abs() < 1e-4
    assert torch.equal((q > 0.5)[~near], (p > 0.3)[~near])
    with pytest.raises(ValueError, match="not a probability"):
        shift_decision(model, 1.0)
