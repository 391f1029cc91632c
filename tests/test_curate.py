"""Curation by PAR: ranking and best-of-N selection."""

from __future__ import annotations

import pytest
import torch

from comfyui_pal.pipelines.curate import rank, select_best

PARS = torch.tensor([0.03, 0.001, 0.2, 0.001, 0.05])


def test_rank_orders_from_fewest_artifacts_and_keeps_ties_in_batch_order():
    assert rank(PARS).tolist() == [1, 3, 0, 4, 2]


def test_select_best_takes_the_top_k_under_the_threshold():
    assert select_best(PARS, top_k=2).tolist() == [1, 3]
    assert select_best(PARS, top_k=0, max_par=0.04).tolist() == [1, 3, 0]
    assert select_best(PARS, top_k=1, max_par=0.0005, when_none="empty").tolist() == []


def test_when_nothing_passes_the_policy_decides():
    assert select_best(PARS, max_par=0.0, when_none="best_one").tolist() == [1]
    with pytest.raises(ValueError, match=r"best is 0\.0010"):
        select_best(PARS, max_par=0.0, when_none="error")


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="top_k"):
        select_best(PARS, top_k=-1)
    with pytest.raises(ValueError, match="when_none"):
        select_best(PARS, when_none="maybe")
    with pytest.raises(ValueError, match="NaN"):
        rank(torch.tensor([0.1, float("nan")]))
