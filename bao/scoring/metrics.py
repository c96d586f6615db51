"""Streaming confusion matrix for semantic segmentation (ignore label 255), kept apart from training."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bao.core.classes import IGNORE
from bao.core.io import write_json


class ConfusionMatrix:
    """Accumulates ``hist[gt, pred]`` over images; IoU_c = TP / (TP + FP + FN)."""

    def __init__(self, num_classes: int):
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


def details_path(metric_path: str | Path) -> Path:
    """Where the whole record of a metric file goes: ``metrics/seed.json`` -> ``metrics/details/seed.json``."""
    p = Path(metric_path)
    return p.parent / "details" / p.name


def write_scores(metric_path: str | Path, record: dict, headline: tuple[str, ...] = ("miou",)) -> None:
    """The DVC metric file gets the headline numbers only (what ``dvc metrics show`` and ``dvc exp show``
    list); the whole record (per-class IoU, pixel accuracy, counts, provenance) goes to
    ``details_path(metric_path)``, an output that is no metric."""
    write_json(details_path(metric_path), record)
    write_json(metric_path, {k: record[k] for k in headline})
