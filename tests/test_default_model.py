"""The shipped default detector: loads through the loader and cache, and really detects."""

from __future__ import annotations

import pytest
import torch
from conftest import REPO

import comfyui_pal as pal
from comfyui_pal.io.images import load_image, load_mask
from comfyui_pal.models import read_checkpoint

EXAMPLES = REPO / "examples" / "images"
pytestmark = pytest.mark.skipif(
    not pal.DEFAULT_WEIGHTS.exists(), reason=f"{pal.DEFAULT_WEIGHTS} not built yet"
)


def _detect(name: str, folder=EXAMPLES) -> torch.Tensor:
    image = load_image(folder / f"{name}.png")
    return pal.detect(pal.load_model(), image)[0]


def test_default_weights_are_small_fp16_pal_lite_with_metadata():
    assert pal.DEFAULT_WEIGHTS.stat().st_size < 15 * 2**20
    ckpt = read_checkpoint(pal.DEFAULT_WEIGHTS)
    assert ckpt.arch == "pal_lite" and ckpt.metadata["dtype"] == "float16"


def test_default_and_none_share_one_cached_copy():
    assert pal.load_model("default", "cpu") is pal.load_model(None, "cpu")


def test_a_planted_artifact_is_found_and_the_clean_original_scores_near_zero():
    probs = _detect("chelsea")
    truth = load_mask(EXAMPLES / "masks" / "chelsea.png")[0] > 0.5
    pred = probs > 0.5
    iou = (pred & truth).sum() / (pred | truth).sum()
    assert iou > 0.5, f"IoU {iou:.3f}"
    par = float(pal.par(_detect("chelsea", EXAMPLES / "clean")[None])[0])
    assert par < 0.005, f"PAR {par:.4f}"


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee", "rocket"])
def test_par_ranks_each_corrupted_example_below_its_clean_original(name):
    corrupted = float(pal.par(_detect(name)[None])[0])
    clean = float(pal.par(_detect(name, EXAMPLES / "clean")[None])[0])
    assert corrupted > clean, (corrupted, clean)


def _psnr(a, b) -> float:
    return float(10 * torch.log10(1 / ((a - b) ** 2).mean()))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["rocket", "chelsea", "coffee", "astronaut"])
def test_the_fix_never_makes_an_example_worse(name):
    """Real content the detector flags (the rocket, its towers, the launch pad) stays."""
    from comfyui_pal.pipelines.fix import fix

    image = load_image(EXAMPLES / f"{name}.png")
    clean = load_image(EXAMPLES / "clean" / f"{name}.png")
    fixed, _, _ = fix(pal.load_model(), image)
    assert _psnr(fixed, clean) >= _psnr(image, clean) - 1e-6


def test_the_built_in_fix_lowers_par_on_an_example_and_keeps_far_pixels_exact():
    from comfyui_pal.core import masks as M
    from comfyui_pal.pipelines.fix import FixOptions, changed_mask, fix

    image = load_image(EXAMPLES / "rocket.png")
    probs = pal.detect(pal.load_model(), image)
    opts = FixOptions(max_iterations=1)
    fixed, _, history = fix(pal.load_model(), image, opts, probs=probs)
    before, after = history[0]["par"][0], history[1]["par"][0]
    assert after < 0.95 * before, (before, after)
    truth = load_mask(EXAMPLES / "masks" / "rocket.png")[0] > 0.5
    touched = changed_mask(image, fixed)[0] > 0
    assert (touched & truth).sum() > 0.25 * truth.sum()  # planted artifacts were repainted
    clean = load_image(EXAMPLES / "clean" / "rocket.png")
    assert _psnr(fixed, clean) > _psnr(image, clean) + 0.3  # and the image got better
    # nothing changes farther than grow + blend reach + the undo margin from a flagged pixel
    reach = opts.grow + 6 + 9 + 4
    near = M.grow((probs > opts.threshold).float(), reach)[0] > 0
    assert not (touched & ~near).any()
