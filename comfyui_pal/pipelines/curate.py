"""Curation by PAR: rank a batch from fewest to most artifacts, pick the best of N.

Pure functions over ``[B]`` PAR tensors (lower is better); ties keep batch order.
"""

from __future__ import annotations

import torch
from torch import Tensor

EMPTY_POLICIES = ("best_one", "empty", "error")


def rank(pars: Tensor) -> Tensor:
    """Indices ``[B]`` (int64) ordering ``pars`` from lowest to highest, stable on ties."""
    pars = torch.as_tensor(pars, dtype=torch.float64).flatten()
    if torch.isnan(pars).any():
        raise ValueError("PAR values contain NaN; detect again or drop those images")
    return torch.sort(pars, stable=True).indices


def select_best(
    pars: Tensor, top_k: int = 1, max_par: float = 1.0, when_none: str = "best_one"
) -> Tensor:
    """Indices of the images to keep, best first.

    Keeps images with ``PAR <= max_par``, at most ``top_k`` of them (0 = no limit). When none
    passes: ``best_one`` keeps the single best image anyway, ``empty`` returns no index, and
    ``error`` raises, naming the best PAR seen.
    """
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0 (0 = no limit), got {top_k}")
    if when_none not in EMPTY_POLICIES:
        raise ValueError(f"when_none must be one of {EMPTY_POLICIES}, got {when_none!r}")
    order = rank(pars)
    pars = torch.as_tensor(pars, dtype=torch.float64).flatten()
    if len(order) == 0:
        raise ValueError("no images to select from (the batch is empty)")
    keep = order[pars[order] <= max_par]
    if top_k:
        keep = keep[:top_k]
    if len(keep) == 0:
        if when_none == "best_one":
            return order[:1]
        if when_none == "error":
            raise ValueError(
                f"no image has PAR <= {max_par} (best is {float(pars[order[0]]):.4f}); raise "
                "max_par, or set when_none to best_one / empty"
            )
    return keep
