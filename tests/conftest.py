"""Shared test helpers. Tests read like a specification: one behaviour per test."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FIXTURES = SHARED / "fixtures" / "pal_mmseg"


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
