"""Segmentation metrics as the paper reports them: artifact-class precision / recall / F1 /
IoU, mIoU over both classes, and the correlation of predicted and true PAR per image."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class Counts:
    """Pixel confusion counts plus per-image PAR pairs, accumulated over a data set."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    par_pred: list[float] = field(default_factory=list)
    par_true: list[float] = field(default_factory=list)

    def add(self, pred: Tensor, truth: Tensor) -> None:
        """Add binary ``pred`` and ``truth`` ``[B,H,W]`` (bool or 0/1) of equal shape."""
        if pred.shape != truth.shape:
            raise ValueError(
                f"prediction {tuple(pred.shape)} and truth {tuple(truth.shape)} differ"
            )
        p, t = pred.bool(), truth.bool()
        self.tp += int((p & t).sum())
        self.fp += int((p & ~t).sum())
        self.fn += int((~p & t).sum())
        self.tn += int((~p & ~t).sum())
        self.par_pred += p.float().mean(dim=(-2, -1)).flatten().tolist()
        self.par_true += t.float().mean(dim=(-2, -1)).flatten().tolist()

    def merge(self, other: Counts) -> Counts:
        out = Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn)
        out.par_pred = self.par_pred + other.par_pred
        out.par_true = self.par_true + other.par_true
        return out

    def summary(self) -> dict:
        """Precision, recall, F1 and IoU of the artifact class, mIoU, PAR Pearson r."""

        def ratio(a: int, b: int) -> float:
            return a / b if b else float("nan")

        precision = ratio(self.tp, self.tp + self.fp)
        recall = ratio(self.tp, self.tp + self.fn)
        f1 = ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)
        iou = ratio(self.tp, self.tp + self.fp + self.fn)
        iou_clean = ratio(self.tn, self.tn + self.fp + self.fn)
        return {
            "images": len(self.par_pred),
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "iou": iou,
            "iou_clean": iou_clean,
            "miou": (iou + iou_clean) / 2,
            "par_pearson": pearson(self.par_pred, self.par_true),
        }


def pearson(a: list[float], b: list[float]) -> float:
    """Pearson correlation; NaN with fewer than 2 values or zero variance."""
    if len(a) < 2:
        return float("nan")
    x, y = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    x, y = x - x.mean(), y - y.mean()
    den = math.sqrt(float((x * x).sum()) * float((y * y).sum()))
    return float((x * y).sum()) / den if den > 0 else float("nan")
