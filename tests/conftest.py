"""Shared test helpers. Tests read like a specification: one behaviour per test.

Tests that take ``device`` and ``dtype`` run once per pair (kornia's habit): CPU and, when
available, CUDA; float32, float16 and bfloat16. ``--device`` / ``--dtype`` narrow the sets.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from comfyui_pal.constants import MEAN_RGB, STD_RGB

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FIXTURES = SHARED / "fixtures" / "pal_mmseg"


def load_pack_like_comfyui(name: str = "custom_nodes.comfyui-pal-under-test"):
    """The pack as ComfyUI imports a custom-node folder: by path, under a name of its choosing."""
    spec = importlib.util.spec_from_file_location(name, REPO / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pack():
    """The pack loaded like ComfyUI loads it (once per test module)."""
    return load_pack_like_comfyui()


DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# How far a soft (non-integer) result in each dtype may be from the float32 CPU result, in
# 0..1 units: the dtype's machine epsilon, two roundings near 1; float32 (on another device
# only) gets room for a different summation order.
SOFT_TOLERANCE = {torch.float32: 1e-5, torch.float16: 2**-10, torch.bfloat16: 2**-7}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--device",
        default="all",
        help="devices for tests taking `device`: cpu, cuda or all available (default)",
    )
    parser.addoption(
        "--dtype",
        default="all",
        help="dtypes for tests taking `dtype`: float32, float16, bfloat16, comma-separated, "
        "or all (default)",
    )


def _chosen(option: str, available: list[str], what: str) -> list[str]:
    if option == "all":
        return available
    names = option.split(",")
    unknown = [n for n in names if n not in available]
    if unknown:
        raise pytest.UsageError(f"--{what} {unknown} not available here; choose from {available}")
    return names


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    config = metafunc.config
    if "device" in metafunc.fixturenames:
        available = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
        names = _chosen(config.getoption("--device"), available, "device")
        metafunc.parametrize("device", names, indirect=True)
    if "dtype" in metafunc.fixturenames:
        names = _chosen(config.getoption("--dtype"), list(DTYPES), "dtype")
        metafunc.parametrize("dtype", names, indirect=True)


@pytest.fixture
def device(request: pytest.FixtureRequest) -> torch.device:
    """Each device of the run (see the module docstring)."""
    return torch.device(request.param)


@pytest.fixture
def dtype(request: pytest.FixtureRequest) -> torch.dtype:
    """Each floating dtype of the run (see the module docstring)."""
    return DTYPES[request.param]


def exact_in_every_dtype(x: torch.Tensor) -> torch.Tensor:
    """``x`` (0..1) rounded to multiples of 1/256, which float16 and bfloat16 hold exactly.

    Inputs made so are the same numbers in every dtype, so results can be compared with the
    float32 result exactly wherever the operation itself is exact.
    """
    return (x * 256).round() / 256


def assert_soft_close(out: torch.Tensor, reference: torch.Tensor, steps: float = 1) -> None:
    """``out`` (any device, dtype) agrees with the float32 CPU ``reference`` within ``steps``
    times ``SOFT_TOLERANCE`` of ``out``'s dtype (more for chains of rounded operations)."""
    atol = steps * SOFT_TOLERANCE[out.dtype]
    torch.testing.assert_close(out.cpu().float(), reference.float(), atol=atol, rtol=0)


@pytest.fixture
def rng() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


def blob_mask(h: int, w: int, blobs: list[tuple[int, int, int]], batch: int = 1) -> torch.Tensor:
    """``[batch,H,W]`` float mask with filled discs ``(cx, cy, r)``."""
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    m = torch.zeros(batch, h, w)
    for cx, cy, r in blobs:
        m[:, (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = 1.0
    return m


def requires_fixtures() -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        not FIXTURES.exists(),
        reason=f"reference fixtures not found at {FIXTURES} (clone ../shared beside the repo)",
    )


class PixelDetector(nn.Module):
    """A stand-in detector that decides from pixel colours: ``score(v)`` gets the image back in
    0..1 RGB ``[B,3,H,W]`` (the PAL normalisation undone) and returns the artifact logit
    ``[B,H,W]``; the output is the 2-class logits a real detector gives."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(()))  # detection reads the model's device

    def score(self, v: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(MEAN_RGB, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(STD_RGB, device=x.device).view(1, 3, 1, 1)
        logit = self.score((x * std + mean) / 255)
        return torch.stack([torch.zeros_like(logit), logit], 1)
