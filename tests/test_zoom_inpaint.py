"""Zoom-in inpainting with a diffusion model: the node wiring, against stand-in ComfyUI parts.

ComfyUI is not importable here, so tiny stand-ins play its ``nodes`` module (the
InpaintModelConditioning node and ``common_ksampler``), ``comfy.model_management`` and
``comfy.utils``; they record what the pack hands them and sample deterministically from the
seed, the way ComfyUI draws one noise tensor for a whole batch.
"""

from __future__ import annotations

import itertools
import json
import sys

import pytest
import torch
from comfy_stand_in import FakeVAE, Interrupted, install
from conftest import blob_mask
from test_fix import MagentaDetector


@pytest.fixture
def comfy(monkeypatch):
    return install(monkeypatch)


def _scene():
    image = torch.rand(1, 96, 224, 3)
    mask = blob_mask(96, 224, [(40, 40, 7), (180, 60, 7)])
    return image, mask


def _zoom(pack, image, mask=None, stitch=None, **kw):
    args = dict(
        model="MODEL",
        vae=FakeVAE(),
        positive=["pos"],
        negative=["neg"],
        seed=5,
        steps=4,
        cfg=7.0,
        sampler_name="euler",
        scheduler="normal",
        denoise=1.0,
        target_size=128,
        context_factor=2.0,
        grow=0,
        feather=8,
    )
    args.update(kw)
    return pack.NODE_CLASS_MAPPINGS["PALZoomInpaint"]().inpaint(
        image, mask=mask, stitch=stitch, **args
    )


def _one_bar(comfy, expect=None):
    """The node showed one bar with one total from its start (0) to its end (full): what
    reached ComfyUI's hook, the sampler's per-step bars folded in."""
    steps = comfy["progress"]
    assert {t for _, t in steps} == {1000}
    assert steps[0][0] == 0 and steps[-1][0] == 1000
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(steps)), steps
    if expect is not None:
        assert steps == expect


def test_each_region_is_sampled_alone_with_its_own_seed_at_the_target_size(pack, comfy):
    image, mask = _scene()
    fixed, crops, _ = _zoom(pack, image, mask)
    assert [s[0] for s in comfy["sample"]] == [5, 6]
    assert all(shape[0] == 1 and max(shape[1:3]) == 128 for shape, _, _ in comfy["encode"])
    assert crops.shape[0] == 2
    # 4 sampler steps per crop move the bar inside each crop's half; each crop's end; the end
    per_crop = [(125, 1000), (250, 1000), (375, 1000), (500, 1000), (500, 1000)]
    second = [(d + 500, t) for d, t in per_crop]
    _one_bar(comfy, [(0, 1000), *per_crop, *second, (1000, 1000)])
    # the sampler's previews still reach the UI, on the node's bar
    assert [d for d, _ in comfy["previews"]] == [125, 250, 375, 500, 625, 750, 875, 1000]
    reach = 4 + 6  # ceil(8/2) + ceil(3*8/4): the blend mask's reach
    near = blob_mask(96, 224, [(40, 40, 7 + reach), (180, 60, 7 + reach)])[0] > 0
    assert torch.equal(fixed[0][~near], image[0][~near])
    assert not torch.equal(fixed[0][mask[0] > 0], image[0][mask[0] > 0])


def test_region_seeds_wrap_at_64_bits(pack, comfy):
    image, mask = _scene()
    _zoom(pack, image, mask, seed=2**64 - 1)
    assert [s[0] for s in comfy["sample"]] == [2**64 - 1, 0]


def test_the_node_equals_the_graph_crop_conditioning_ksampler_decode_stitch(pack, comfy):
    image, mask = _scene()
    crop = pack.NODE_CLASS_MAPPINGS["PALCropRegions"]()
    crops, crop_masks, plan, _ = crop.crop(image, mask, 2.0, 32, 128, 64, 0, True)
    nodes = sys.modules["nodes"]
    vae = FakeVAE()
    pos, neg, latent = nodes.InpaintModelConditioning().encode(
        ["pos"], ["neg"], crops, vae, crop_masks
    )
    (samples,) = nodes.common_ksampler("MODEL", 5, 4, 7.0, "euler", "normal", pos, neg, latent)
    decoded = vae.decode(samples["samples"])
    stitch = pack.NODE_CLASS_MAPPINGS["PALStitchRegions"]()
    (graph,) = stitch.stitch(image, plan, decoded, 8, False)
    node, _, _ = _zoom(pack, image, mask, seed_mode="batch")
    assert torch.equal(node, graph)
    from_plan, _, _ = _zoom(pack, image, stitch=plan, seed_mode="batch")
    assert torch.equal(from_plan, graph)


def test_an_interrupt_stops_between_regions(pack, comfy):
    image, mask = _scene()
    comfy["interrupt_after"] = 1
    with pytest.raises(Interrupted):
        _zoom(pack, image, mask)
    assert len(comfy["sample"]) == 1


def test_nothing_to_fix_returns_the_image_without_sampling(pack, comfy):
    image = torch.rand(2, 64, 64, 3)
    fixed, _, _ = _zoom(pack, image, torch.zeros(2, 64, 64))
    assert torch.equal(fixed, image) and comfy["sample"] == []


def _magenta_scene():
    image = torch.rand(1, 96, 224, 3, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.25
    spots = blob_mask(96, 224, [(40, 40, 7), (180, 60, 7)])[0] > 0
    image[0][spots] = torch.tensor([1.0, 0.0, 1.0])
    return image


def _auto_fix(pack, **kw):
    pal_model = sys.modules[f"{pack.__name__}.nodes.model_nodes"].PalModel(MagentaDetector(), "t")
    args = dict(
        image=_magenta_scene(),
        pal_model=pal_model,
        inpainter="patchmatch",
        threshold=0.5,
        target_par=0.0,
        max_iterations=1,
        min_confidence=0.5,
        grow=2,
        blend_radius=8,
        seed=3,
    )
    args.update(kw)
    return pack.NODE_CLASS_MAPPINGS["PALAutoFix"]().fix(**args)


def test_auto_fix_uses_the_diffusion_model_when_connected(pack, comfy):
    diffusion = dict(
        model="MODEL", vae=FakeVAE(), positive=["p"], negative=["n"], steps=3, target_size=128
    )
    *_, history = _auto_fix(pack, **diffusion)
    assert [s[0] for s in comfy["sample"]] == [3, 4]  # seed + region index
    assert all(max(shape[1:3]) == 128 for shape, _, _ in comfy["encode"])
    rounds = [h for h in json.loads(history) if "iteration" in h]
    assert rounds[-1]["par"][0] < rounds[0]["par"][0]
    _one_bar(comfy)  # the crops' progress moves the fix's one bar inside its round
    assert len({d for d, _ in comfy["progress"]}) >= 4


def test_auto_fix_names_a_half_connected_diffusion_path(pack, comfy):
    with pytest.raises(ValueError, match="connect all of model, vae, positive and negative"):
        _auto_fix(pack, model="MODEL")


def test_auto_fix_with_the_built_in_inpainter_stops_on_interrupt_between_regions(pack, comfy):
    comfy["interrupt_after"] = 1  # the first region starts, the second is refused
    with pytest.raises(Interrupted):
        _auto_fix(pack)
    comfy["interrupt_after"] = None
    comfy["progress"].clear()
    comfy["bars"] = 0
    _auto_fix(pack)  # and runs through otherwise, on one bar from empty to full
    _one_bar(comfy)
