"""Evaluation metrics on hand-made masks."""

from __future__ import annotations

import math

import pytest
import torch

from comfyui_pal.training.metrics import Counts, pearson


def test_counts_on_a_hand_made_case():
    truth = torch.zeros(1, 4, 4, dtype=torch.bool)
    truth[0, :2, :2] = True  # 4 artifact px
    pred = torch.zeros(1, 4, 4, dtype=torch.bool)
    pred[0, :2, :3] = True  # 6 predicted: 4 right, 2 wrong
    c = Counts()
    c.add(pred, truth)
    s = c.summary()
    assert (c.tp, c.fp, c.fn, c.tn) == (4, 2, 0, 10)
    assert s["precision"] == pytest.approx(4 / 6) and s["recall"] == 1.0
    assert s["f1"] == pytest.approx(8 / 10) and s["iou"] == pytest.approx(4 / 6)
    assert s["iou_clean"] == pytest.approx(10 / 12)
    assert s["miou"] == pytest.approx((4 / 6 + 10 / 12) / 2)


def test_perfect_prediction_scores_one():
    t = torch.rand(3, 8, 8) > 0.5
    c = Counts()
    c.add(t, t)
    s = c.summary()
    assert s["f1"] == s["iou"] == s["miou"] == 1.0
    assert s["par_pearson"] == pytest.approx(1.0)


def test_par_correlation_is_pearson_over_images():
    assert pearson([0.1, 0.2, 0.3], [0.2, 0.4, 0.6]) == pytest.approx(1.0)
    assert pearson([0.1, 0.2, 0.3], [0.3, 0.2, 0.1]) == pytest.approx(-1.0)
    assert math.isnan(pearson([0.1], [0.1]))


def test_merge_adds_counts_and_mismatched_shapes_raise():
    a, b = Counts(1, 2, 3, 4), Counts(10, 20, 30, 40)
    m = a.merge(b)
    assert (m.tp, m.fp, m.fn, m.tn) == (11, 22, 33, 44)
    with pytest.raises(ValueError, match="differ"):
        Counts().add(torch.zeros(1, 2, 2), torch.zeros(1, 3, 3))
