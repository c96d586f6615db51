"""Per-channel normalisations of activation maps (TransCAM's min-max; the max before eq. 6)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def max_norm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """ReLU, then divide each map by its spatial max (docs/method.md §3.1, a decision: before eq. 6)."""
    x = F.relu(x.float())
    return x / (x.flatten(-2).amax(-1)[..., None, None] + eps)


def minmax_norm(x: torch.Tensor) -> torch.Tensor:
    """TransCAM's per-class normalisation (infer_TransCAM.py l.69-74): ReLU, then
    (cam - min - 1e-5) / (max - min + 1e-5) per class over the image."""
    x = F.relu(x.float())
    mn = x.flatten(-2).amin(-1)[..., None, None]
    mx = x.flatten(-2).amax(-1)[..., None, None]
    return (x - mn - 1e-5) / (mx - mn + 1e-5)
