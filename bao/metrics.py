"""Streaming confusion matrix for semantic segmentation (ignore label 255), kept apart from training."""
from __future__ import annotations

import numpy as np

from bao.classes import IGNORE, NUM_CLASSES


class ConfusionMatrix:
    """Accumulates ``hist[gt, pred]`` over images; IoU_c = TP / (TP + FP + FN)."""

    def __init__(self, num_classes: int = NUM_CLASSES):
        self.num_classes = num_classes
        self.hist = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        pred = np.asarray(pred)
        gt = np.asarray(gt)
        if pred.shape != gt.shape:
            raise ValueError(f"prediction shape {pred.shape} != ground-truth shape {gt.shape}")
        keep = gt != IGNORE
        g = gt[keep].astype(np.int64)
        p = pred[keep].astype(np.int64)
        n = self.num_classes
        if g.size and (g.max() >= n or p.max() >= n or p.min() < 0):
            raise ValueError(f"labels outside 0..{n - 1} (gt max {g.max()}, pred range {p.min()}..{p.max()})")
        self.hist += np.bincount(n * g + p, minlength=n * n).reshape(n, n)

    def merge(self, other: "ConfusionMatrix") -> None:
        self.hist += other.hist

    def iou(self) -> np.ndarray:
        tp = np.diag(self.hist).astype(np.float64)
        denom = self.hist.sum(0) + self.hist.sum(1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(denom > 0, tp / denom, np.nan)

    def summary(self, class_names: list[str] | None = None) -> dict:
        iou = self.iou()
        total = self.hist.sum()
        names = class_names or [str(i) for i in range(self.num_classes)]
        return {
            # classes absent from both GT and prediction are left out of the mean (nan)
            "miou": float(np.nanmean(iou)) if np.isfinite(iou).any() else 0.0,
            "pixel_acc": float(np.diag(self.hist).sum() / total) if total else 0.0,
            "iou": {n: (None if np.isnan(v) else float(v)) for n, v in zip(names, iou)},
        }
