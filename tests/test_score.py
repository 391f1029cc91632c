"""Scoring in two steps (prepare on the CPU, score with the model) is detection, split."""

from __future__ import annotations

import pytest
import torch

from comfyui_pal.cache import load_model
from comfyui_pal.core.masks import label
from comfyui_pal.pipelines.detect import (
    DetectOptions,
    detect,
    detect_resized,
    input_resample,
    par,
    upsamples_input,
    work_size,
)
from comfyui_pal.pipelines.score import prepare, score


@pytest.fixture(scope="module")
def model():
    return load_model("default", "cpu")


def _blobby(h: int, w: int, seed: int) -> torch.Tensor:
    """A flat grey image with two magenta squares: something for the detector to flag."""
    torch.manual_seed(seed)
    img = 0.45 + 0.1 * torch.rand(1, 3, h, w)
    img[0, :, 5:21, 4:20] = torch.tensor([1.0, 0.0, 1.0])[:, None, None]
    img[0, :, h - 20 : h - 4, w - 22 : w - 6] = torch.tensor([1.0, 0.0, 1.0])[:, None, None]
    return img


@pytest.mark.parametrize("mode", ["resize", "tiled"])
@pytest.mark.parametrize("size", [(48, 96), (81, 57)])
def test_score_of_the_prepared_image_is_the_par_of_detect(model, mode, size):
    image = _blobby(*size, seed=size[0])
    opts = DetectOptions(mode=mode, tile=48)
    prepared = prepare(
        image, input_resample(model), keep_full=mode == "tiled", upsample=upsamples_input(model)
    )
    result = score(model, prepared, opts, threshold=0.3)
    probs = detect(model, image, opts)
    assert torch.equal(result.probs, probs)
    assert result.par == float(par(probs, 0.3)[0])


def test_regions_are_the_connected_areas_above_the_threshold(model):
    image = _blobby(128, 160, seed=1)
    prepared = prepare(image, input_resample(model), upsample=upsamples_input(model))
    result = score(model, prepared, threshold=0.3)
    assert result.regions > 0 and result.regions == label(result.probs > 0.3)[1][0]


def test_prepare_keeps_the_full_image_only_when_asked(model):
    image = torch.rand(1, 4, 40, 50)  # RGBA: converted like detect converts it
    lean, kept = prepare(image, "bilinear"), prepare(image, "bilinear", keep_full=True)
    assert lean.full is None and lean.size == (40, 50) and lean.resized.shape == (1, 3, 512, 512)
    assert kept.full.shape == (1, 3, 40, 50) and torch.equal(kept.resized, lean.resized)


def test_prepare_takes_one_image_naming_the_shape():
    with pytest.raises(ValueError, match=r"\[1,C,H,W\], got \(2, 3, 8, 8\)"):
        prepare(torch.rand(2, 3, 8, 8), "bilinear")


def test_the_tiled_mode_without_the_full_image_is_refused_naming_it(model):
    lean = prepare(torch.rand(1, 3, 40, 50), input_resample(model), upsample=False)
    with pytest.raises(ValueError, match="tiled mode needs the full images"):
        score(model, lean, DetectOptions(mode="tiled"))


def test_a_resized_batch_of_the_wrong_size_is_refused(model):
    with pytest.raises(ValueError, match=r"\[B,3,512,512\].*\(1, 3, 256, 256\)"):
        detect_resized(model, torch.rand(1, 3, 256, 256), (600, 700))
    with pytest.raises(ValueError, match=r"\[B,3,64,64\].*\(1, 3, 512, 512\)"):
        detect_resized(model, torch.rand(1, 3, 512, 512), (40, 50))  # PAL-Lite: its own size


def test_small_images_are_seen_at_their_own_size_unless_the_model_upsamples():
    assert work_size(16, 16, upsample=False) == 32  # a thumbnail costs a 32x32 pass
    assert work_size(100, 70, upsample=False) == 128  # rounded up to 32 px
    assert work_size(129, 60, upsample=False) == 512  # larger images: the paper's 512
    assert work_size(300, 451, upsample=False) == 512
    assert [work_size(h, w) for h, w in ((16, 16), (100, 70), (300, 451))] == [512] * 3


def test_detection_of_a_thumbnail_runs_the_model_on_a_small_input(model):
    seen = []
    hook = model.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape)))
    try:
        probs = detect(model, torch.rand(1, 3, 16, 16), tta=False)
    finally:
        hook.remove()
    assert probs.shape == (1, 16, 16) and seen == [(1, 3, 32, 32)]
