"""Detection: probabilities at the input's resolution, modes, TTA, chunking, PAR, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import FIXTURES, requires_fixtures
from PIL import Image
from torch import nn

import comfyui_pal as pal
from comfyui_pal.pipelines.detect import MODES, DetectOptions, normalize, resize_input


class StripeDetector(nn.Module):
    """Flags fine 1-px horizontal stripes (an 'artifact' only visible at native resolution)."""

    def __init__(self) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.tensor(40.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = x.mean(1, keepdim=True)
        lap = (2 * g - torch.roll(g, 1, 2) - torch.roll(g, -1, 2)).abs()
        energy = F.avg_pool2d(lap, 5, stride=1, padding=2)
        return torch.cat([torch.zeros_like(energy), self.gain * (energy - 0.5)], dim=1)


class LeftBiased(nn.Module):
    """Logit grows left to right, so flipping changes the answer (to test TTA)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(1.0))

    def forward(self, x):
        ramp = (
            torch.linspace(-2, 2, x.shape[-1])
            .view(1, 1, 1, -1)
            .expand(x.shape[0], 1, x.shape[2], -1)
        )
        return torch.cat([torch.zeros_like(ramp), self.w * ramp], dim=1)


def _stripes_image(size: int, box: tuple[int, int, int, int]) -> torch.Tensor:
    img = torch.full((1, 3, size, size), 0.5)
    x0, y0, x1, y1 = box
    img[0, :, y0:y1:2, x0:x1] = 0.9
    return img


def test_probabilities_come_back_at_the_input_resolution_in_both_modes():
    model = StripeDetector()
    img = torch.rand(3, 3, 37, 83)
    for mode in MODES:
        p = pal.detect(model, img, mode=mode)
        assert p.shape == (3, 37, 83) and p.min() >= 0 and p.max() <= 1


def test_tiled_mode_keeps_small_artifacts_on_large_images():
    model = StripeDetector()
    img = _stripes_image(1536, (700, 700, 740, 740))
    truth = torch.zeros(1536, 1536, dtype=torch.bool)
    truth[700:740, 700:740] = True
    squashed = pal.detect(model, img, mode="resize")[0]
    tiled = pal.detect(model, img, mode="tiled", global_weight=0.0)[0]
    assert squashed[truth].mean() < 0.1  # lost when squashed to 512
    assert tiled[truth].mean() > 0.8 and tiled[~truth].mean() < 0.05


def test_results_do_not_depend_on_the_chunk_size():
    model = StripeDetector()
    img = torch.rand(5, 3, 600, 700)
    a = pal.detect(model, img, mode="tiled", batch_size=1)
    b = pal.detect(model, img, mode="tiled", batch_size=7)
    assert torch.allclose(a, b, atol=1e-6)


def test_flip_tta_averages_the_mirrored_pass():
    model = LeftBiased()
    img = torch.rand(1, 3, 64, 64)
    plain = pal.detect(model, img)
    tta = pal.detect(model, img, tta=True)
    assert (plain[0, :, -1] > 0.8).all()
    assert torch.allclose(tta, torch.full_like(tta, 0.5), atol=1e-5)


@pytest.mark.slow
@requires_fixtures()
def test_resize_mode_on_a_512_image_is_the_official_inference():
    model = pal.load_model(FIXTURES / "reduced.pth", device="cpu")
    rgb = np.array(Image.open(FIXTURES / "input.png").convert("RGB"), dtype=np.float32) / 255
    probs = pal.detect(model, torch.from_numpy(rgb).permute(2, 0, 1)[None])
    expected = torch.from_numpy(np.load(FIXTURES / "expected_prob1.npy"))
    assert (probs[0] - expected).abs().max() < 5e-5


def test_grayscale_rgba_and_tiny_images_are_accepted():
    model = StripeDetector()
    assert pal.detect(model, torch.rand(1, 1, 40, 40)).shape == (1, 40, 40)
    assert pal.detect(model, torch.rand(2, 4, 40, 40)).shape == (2, 40, 40)
    assert pal.detect(model, torch.rand(1, 3, 5, 9), mode="tiled").shape == (1, 5, 9)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (torch.full((1, 3, 8, 8), float("nan")), "NaN"),
        (torch.rand(1, 64, 64), r"\[B,C,H,W\]"),
        (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), "float"),
        (torch.rand(1, 2, 8, 8), "1, 3 or 4 channels"),
        (torch.rand(1, 64, 64, 3), "looks like ComfyUI's IMAGE"),
    ],
)
def test_bad_images_raise_naming_the_problem(bad, message):
    with pytest.raises(ValueError, match=message):
        pal.detect(StripeDetector(), bad)


def test_progress_is_reported_and_can_interrupt():
    seen = []
    pal.detect(
        StripeDetector(),
        torch.rand(3, 3, 600, 600),
        mode="tiled",
        batch_size=2,
        progress=lambda d, t: seen.append((d, t)),
    )
    assert seen[-1][0] == seen[-1][1] and len(seen) > 1

    def stop(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pal.detect(StripeDetector(), torch.rand(2, 3, 64, 64), progress=stop)


def test_par_is_the_fraction_of_pixels_above_the_threshold():
    probs = torch.zeros(2, 10, 10)
    probs[0, :5] = 0.9
    probs[1, 0, 0] = 0.5  # not above 0.5
    assert pal.par(probs).tolist() == [0.5, 0.0]
    assert pal.par(probs, 0.4).tolist() == pytest.approx([0.5, 0.01])


def test_normalisation_uses_the_paper_constants():
    x = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1) / 255
    assert torch.allclose(normalize(x), torch.zeros(1, 3, 1, 1), atol=1e-5)


def _fixture_bchw(name: str = "input_odd.png") -> tuple[np.ndarray, torch.Tensor]:
    rgb8 = np.array(Image.open(FIXTURES / name).convert("RGB"))
    return rgb8, torch.from_numpy(rgb8).permute(2, 0, 1)[None].float() / 255


@requires_fixtures()
@pytest.mark.parametrize("size", [512, 300])
def test_resize_input_matches_the_official_apps_pil_bicubic_resize(size):
    rgb8, x = _fixture_bchw()  # 317x203: upsampled to 512, downsampled to 300
    pil = np.asarray(Image.fromarray(rgb8).resize((size, size), Image.BICUBIC), np.float32) / 255
    ours = resize_input(x, size)[0].permute(1, 2, 0).numpy()
    err = np.abs(ours - pil)
    assert err.max() <= 1.5 / 255 and err.mean() < 0.3 / 255  # PIL rounds to 8 bits


@requires_fixtures()
@pytest.mark.parametrize("name", ["input_odd.png", "input_wide.png"])
def test_resize_mode_on_a_non_512_image_sees_what_the_official_app_feeds_the_model(name):
    # the official app: PIL bicubic to 512x512, the model, logits resized back bilinearly.
    # Measured: mean |dp| 0.0010 / max 0.007-0.014 (PIL's 8-bit rounding); the antialiased
    # bilinear resize used before gave mean 0.005 / max 0.026-0.038.
    model = pal.load_model(FIXTURES / "reduced.pth", device="cpu")
    rgb8, x = _fixture_bchw(name)
    pil = np.asarray(Image.fromarray(rgb8).resize((512, 512), Image.BICUBIC), np.float32) / 255
    with torch.inference_mode():
        ref = model(normalize(torch.from_numpy(pil).permute(2, 0, 1)[None]))
        ref = F.interpolate(ref, size=x.shape[-2:], mode="bilinear", align_corners=False)
    expected = ref.softmax(1)[0, 1]
    err = (pal.detect(model, x)[0] - expected).abs()
    assert err.mean() < 1.5e-3 and err.max() < 0.02


class CountingDetector(StripeDetector):
    """Records the batch size of every call; raises out-of-memory above ``limit`` items."""

    def __init__(self, limit: int = 1000) -> None:
        super().__init__()
        self.sizes: list[int] = []
        self.limit = limit

    def forward(self, x):
        if x.shape[0] > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        self.sizes.append(x.shape[0])
        return super().forward(x)


def test_batch_size_is_honoured_exactly_not_capped():
    model = CountingDetector()
    pal.detect(model, torch.rand(9, 3, 64, 64), batch_size=8)
    assert model.sizes == [8, 1]


def test_out_of_memory_halves_the_batch_with_a_warning_and_gives_the_same_result():
    img = torch.rand(6, 3, 96, 80)
    expected = pal.detect(StripeDetector(), img, batch_size=1)
    model = CountingDetector(limit=2)
    with pytest.warns(ResourceWarning, match="batch_size=2"):
        probs = pal.detect(model, img, batch_size=8)
    assert max(model.sizes) == 2 and sum(model.sizes) == 6
    assert torch.allclose(probs, expected, atol=1e-6)


def test_out_of_memory_at_batch_one_is_raised():
    with pytest.raises(torch.cuda.OutOfMemoryError):
        pal.detect(CountingDetector(limit=0), torch.rand(1, 3, 64, 64))


def test_options_object_and_keywords_give_the_same_detection():
    img = torch.rand(2, 3, 600, 500)
    opts = DetectOptions(mode="tiled", overlap=0.5)
    a = pal.detect(StripeDetector(), img, opts)
    b = pal.detect(StripeDetector(), img, mode="tiled", overlap=0.5)
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"mode": "squash"}, r"mode must be one of \['resize', 'tiled'\]"),
        ({"batch_size": 0}, r"batch_size must be in \[1, 256\]"),
        ({"overlap": 1.0}, r"overlap must be in \[0, 0.95\]"),
        ({"tile": 16}, r"tile must be in \[32, 4096\]"),
        ({"tta": "yes"}, "tta must be true or false"),
        ({"precision": "fp8"}, "precision must be one of"),
    ],
)
def test_bad_detection_options_raise_naming_the_option(bad, message):
    with pytest.raises(ValueError, match=message):
        pal.detect(StripeDetector(), torch.rand(1, 3, 32, 32), **bad)


def test_a_positional_mode_string_is_refused_with_the_keyword_to_use():
    with pytest.raises(TypeError, match="mode='tiled'"):
        pal.detect(StripeDetector(), torch.rand(1, 3, 32, 32), "tiled")


def test_the_shipped_model_resizes_with_its_own_bilinear_filter():
    model = pal.load_model()  # PAL-Lite: tuned with antialiased bilinear, not bicubic
    x = torch.rand(1, 3, 300, 451)
    with torch.inference_mode():
        ref = model(normalize(resize_input(x, 512, "bilinear")))
        ref = F.interpolate(ref, size=x.shape[-2:], mode="bilinear", align_corners=False)
    assert torch.allclose(pal.detect(model, x)[0], ref.softmax(1)[0, 1], atol=1e-5)


def test_an_unknown_resize_filter_is_refused():
    with pytest.raises(ValueError, match="resample must be one of"):
        resize_input(torch.rand(1, 3, 8, 8), 16, "lanczos")
