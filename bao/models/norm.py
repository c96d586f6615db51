"""Normalisation layers in training: BatchNorm kept frozen (DeepLab-v2's and PSA's recipes)."""
from __future__ import annotations

import torch.nn as nn


def freeze_bn(model: nn.Module) -> None:
    """BatchNorm in eval mode with fixed affine parameters (the DeepLab-v2 recipe); call after train()."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)
