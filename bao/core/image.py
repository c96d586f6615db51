"""Image helpers of every model-facing stage: ImageNet normalisation (``to_tensor``) and the one way
out of model code (``host``)."""

from __future__ import annotations

import numpy as np
import torch

MEAN = np.array([0.485, 0.456, 0.406])


STD = np.array([0.229, 0.224, 0.225])


def host(t: torch.Tensor) -> torch.Tensor:
    """The one way out of model code: a detached float32 CPU tensor (``.numpy()`` is safe on it)."""
    return t.detach().float().cpu()


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 -> normalised float32 CHW (ImageNet mean/std on [0, 1] RGB), computed in float64 and
    rounded once, as TransCAM's and the release's ``imutils.Normalize`` (tool/imutils.py l.202-216)."""
    x = (image / 255.0 - MEAN.astype(np.float64)) / STD.astype(np.float64)
    return torch.from_numpy(x.astype(np.float32).transpose(2, 0, 1).copy())
