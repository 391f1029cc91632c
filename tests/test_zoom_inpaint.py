"""Zoom-in inpainting with a diffusion model: the node wiring, against stand-in ComfyUI parts.

ComfyUI is not importable here, so tiny stand-ins play its ``nodes`` module (the
InpaintModelConditioning node and ``common_ksampler``), ``comfy.model_management`` and
``comfy.utils``; they record what the pack hands them and sample deterministically from the
seed, the way ComfyUI draws one noise tensor for a whole batch.
"""

from __future__ import annotations

import json
import sys
import types

import pytest
import torch
import torch.nn.functional as F
from conftest import blob_mask
from test_fix import MagentaDetector
from test_nodes import _load_pack_like_comfyui


class Interrupted(Exception):
    pass


class FakeVAE:
    """8x down / up sampling 'VAE' on ComfyUI layouts."""

    def encode(self, pixels):  # [B,H,W,C] -> [B,4,H/8,W/8]
        x = F.avg_pool2d(pixels.permute(0, 3, 1, 2), 8)
        return torch.cat([x, x.mean(1, keepdim=True)], 1)

    def decode(self, latent):  # [B,4,h,w] -> [B,8h,8w,3]
        return F.interpolate(latent[:, :3], scale_factor=8, mode="nearest").permute(0, 2, 3, 1)


@pytest.fixture
def comfy(monkeypatch):
    log = {"encode": [], "sample": [], "progress": [], "interrupt_after": None, "checks": 0}

    class InpaintModelConditioning:
        def encode(self, positive, negative, pixels, vae, mask, noise_mask=True):
            log["encode"].append((tuple(pixels.shape), tuple(mask.shape), noise_mask))
            latent = {
                "samples": vae.encode(pixels),
                "noise_mask": mask.reshape(-1, 1, *mask.shape[-2:]),
            }
            return positive, negative, latent

    def common_ksampler(
        model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent, denoise=1.0
    ):
        log["sample"].append((seed, latent["samples"].shape[0], steps, sampler_name))
        x = latent["samples"]
        noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(seed))
        m = F.interpolate(latent["noise_mask"], size=x.shape[-2:], mode="bilinear") > 0
        return ({"samples": torch.where(m, noise, x)},)

    def check():
        log["checks"] += 1
        if log["interrupt_after"] is not None and log["checks"] > log["interrupt_after"]:
            raise Interrupted

    class ProgressBar:
        def __init__(self, total):
            self.total = total

        def update_absolute(self, done, total=None):
            log["progress"].append((done, total))

    nodes = types.ModuleType("nodes")
    nodes.InpaintModelConditioning = InpaintModelConditioning
    nodes.common_ksampler = common_ksampler
    mm = types.ModuleType("comfy.model_management")
    mm.throw_exception_if_processing_interrupted = check
    utils = types.ModuleType("comfy.utils")
    utils.ProgressBar = ProgressBar
    samplers = types.ModuleType("comfy.samplers")
    samplers.KSampler = types.SimpleNamespace(SAMPLERS=["euler", "dpmpp_2m"], SCHEDULERS=["normal"])
    pkg = types.ModuleType("comfy")
    pkg.model_management, pkg.utils, pkg.samplers = mm, utils, samplers
    for name, mod in {
        "nodes": nodes,
        "comfy": pkg,
        "comfy.model_management": mm,
        "comfy.utils": utils,
        "comfy.samplers": samplers,
    }.items():
        monkeypatch.setitem(sys.modules, name, mod)
    return log


@pytest.fixture(scope="module")
def pack():
    return _load_pack_like_comfyui()


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


def test_each_region_is_sampled_alone_with_its_own_seed_at_the_target_size(pack, comfy):
    image, mask = _scene()
    fixed, crops, _ = _zoom(pack, image, mask)
    assert [s[0] for s in comfy["sample"]] == [5, 6]
    assert all(shape[0] == 1 and max(shape[1:3]) == 128 for shape, _, _ in comfy["encode"])
    assert crops.shape[0] == 2 and comfy["progress"][-1] == (2, 2)
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
    image = torch.rand(1, 96, 224, 3) * 0.5 + 0.25
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


def test_auto_fix_names_a_half_connected_diffusion_path(pack, comfy):
    with pytest.raises(ValueError, match="connect all of model, vae, positive and negative"):
        _auto_fix(pack, model="MODEL")
