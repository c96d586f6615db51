"""CAMs to labels: reading a CAM file, the argmax over [background threshold, CAMs], and one label map
with an ignore band from two CRF-refined seeds (PSA's and AMN's confident labels)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bao.core.classes import IGNORE
from bao.core.errors import DataError
from bao.core.io import load_npz


def load_cam(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(keys, cams): foreground class indices (1..) and their maps (K,H,W) float32; a dense ``.npy`` holds
    every foreground class's map (VOC: 20), in order."""
    if path.suffix == ".npz":
        z = load_npz(path)
        return z["keys"].astype(np.int64), z["cams"].astype(np.float32)
    dense = np.load(path, allow_pickle=False).astype(np.float32)
    if dense.ndim != 3 or dense.shape[0] < 1:
        raise DataError(
            f"{path}: expected a (K, H, W) array of the K foreground classes' CAMs, got shape {dense.shape}"
        )
    return np.arange(1, dense.shape[0] + 1), dense


def cam_to_label(keys: np.ndarray, cams: np.ndarray, threshold: float) -> np.ndarray:
    """argmax over [t, CAMs]; ties go to background (the first channel), as np.argmax."""
    if len(keys) == 0:
        return np.zeros(cams.shape[1:], np.uint8)
    best = cams.argmax(0)
    return np.where(cams.max(0) > threshold, keys[best], 0).astype(np.uint8)


def confident_labels(fg_conf: np.ndarray, bg_conf: np.ndarray) -> np.ndarray:
    """One label map from two CRF-refined seeds: ``fg_conf`` at a high background threshold (its
    foreground is confident), ``bg_conf`` at a low one (its background is confident). Foreground from
    ``fg_conf``; background where both say background; the band between ignored (255).
    TransCAM voc12/data.py VOC12AffDataset (la = 0.60, ha = 0.25); AMN cam_to_ir_label.py."""
    out = fg_conf.astype(np.uint8).copy()
    out[fg_conf == 0] = IGNORE
    out[(fg_conf == 0) & (bg_conf == 0)] = 0
    return out
