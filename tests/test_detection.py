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
from comfyui_pal.detection import normalize


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
    img = torch.full((1, size, size, 3), 0.5)
    x0, y0, x1, y1 = box
    img[0, y0:y1:2, x0:x1] = 0.9
    return img


def test_probabilities_come_back_at_the_input_resolution_in_both_modes():
    model = StripeDetector()
    img = torch.rand(3, 37, 83, 3)
    for mode in pal.detection.MODES:
        p = pal.detect(model, img, mode)
        assert p.shape == (3, 37, 83) and p.min() >= 0 and p.max() <= 1


def test_tiled_mode_keeps_small_artifacts_on_large_images():
    model = StripeDetector()
    img = _stripes_image(1536, (700, 700, 740, 740))
    truth = torch.zeros(1536, 1536, dtype=torch.bool)
    truth[700:740, 700:740] = True
    squashed = pal.detect(model, img, "resize")[0]
    tiled = pal.detect(model, img, "tiled", global_weight=0.0)[0]
    assert squashed[truth].mean() < 0.1  # lost when squashed to 512
    assert tiled[truth].mean() > 0.8 and tiled[~truth].mean() < 0.05


def test_results_do_not_depend_on_the_chunk_size():
    model = StripeDetector()
    img = torch.rand(5, 600, 700, 3)
    a = pal.detect(model, img, "tiled", batch_size=1)
    b = pal.detect(model, img, "tiled", batch_size=7)
    assert torch.allclose(a, b, atol=1e-6)


def test_flip_tta_averages_the_mirrored_pass():
    model = LeftBiased()
    img = torch.rand(1, 64, 64, 3)
    plain = pal.detect(model, img)
    tta = pal.detect(model, img, tta=True)
    assert (plain[0, :, -1] > 0.8).all()
    assert torch.allclose(tta, torch.full_like(tta, 0.5), atol=1e-5)


@requires_fixtures()
def test_resize_mode_on_a_512_image_is_the_official_inference():
    model = pal.load_model(FIXTURES / "reduced.pth", device="cpu")
    rgb = np.array(Image.open(FIXTURES / "input.png").convert("RGB"), dtype=np.float32) / 255
    probs = pal.detect(model, torch.from_numpy(rgb)[None])
    expected = torch.from_numpy(np.load(FIXTURES / "expected_prob1.npy"))
    assert (probs[0] - expected).abs().max() < 5e-5


def test_grayscale_rgba_and_tiny_images_are_accepted():
    model = StripeDetector()
    assert pal.detect(model, torch.rand(1, 40, 40, 1)).shape == (1, 40, 40)
    assert pal.detect(model, torch.rand(2, 40, 40, 4)).shape == (2, 40, 40)
    assert pal.detect(model, torch.rand(1, 5, 9, 3), "tiled").shape == (1, 5, 9)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (torch.full((1, 8, 8, 3), float("nan")), "NaN"),
        (torch.rand(1, 64, 64), "looks like a MASK"),
        (torch.zeros(1, 8, 8, 3, dtype=torch.uint8), "float"),
        (torch.rand(1, 8, 8, 2), "1, 3 or 4 channels"),
    ],
)
def test_bad_images_raise_naming_the_problem(bad, message):
    with pytest.raises(ValueError, match=message):
        pal.detect(StripeDetector(), bad)


def test_progress_is_reported_and_can_interrupt():
    seen = []
    pal.detect(
        StripeDetector(),
        torch.rand(3, 600, 600, 3),
        "tiled",
        batch_size=2,
        progress=lambda d, t: seen.append((d, t)),
    )
    assert seen[-1][0] == seen[-1][1] and len(seen) > 1

    def stop(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pal.detect(StripeDetector(), torch.rand(2, 64, 64, 3), progress=stop)


def test_par_is_the_fraction_of_pixels_above_the_threshold():
    probs = torch.zeros(2, 10, 10)
    probs[0, :5] = 0.9
    probs[1, 0, 0] = 0.5  # not above 0.5
    assert pal.par(probs).tolist() == [0.5, 0.0]
    assert pal.par(probs, 0.4).tolist() == pytest.approx([0.5, 0.01])


def test_normalisation_uses_the_paper_constants():
    x = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1) / 255
    assert torch.allclose(normalize(x), torch.zeros(1, 3, 1, 1), atol=1e-5)
