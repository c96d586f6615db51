"""The segmentation network's training rules (MCTformer's ``seg/train_seg.py`` for resnet38_seg,
kazuto1011/deeplab-pytorch's for DeepLab): the frozen layers, the two learning-rate groups, the poly
schedule and the loss."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from bao.core.classes import IGNORE
from bao.models.norm import freeze_bn


def freeze(net: nn.Module, frozen, batchnorm: bool) -> None:
    """``frozen`` layers keep their start (MCTformer's resnet38d.py ``not_training``: conv1a); with
    ``batchnorm`` every BatchNorm is in eval mode with fixed affine parameters (resnet38d.py ``train``,
    l.191-212). Call after ``train()``, which puts BatchNorm back in training mode."""
    for name in frozen:
        getattr(net, name).requires_grad_(False)
    if batchnorm:
        freeze_bn(net)


def param_groups(net: nn.Module, lr: float, head_lr_mult: float) -> list[dict]:
    """The backbone at ``lr``, the head (``head_modules()``: MCTformer's ``fc8`` layers, DeepLab's ASPP)
    at ``lr x head_lr_mult`` (train_seg.py l.66-69). Parameters frozen now stay out."""
    head = [p for m in net.head_modules() for p in m.parameters()]
    ids = {id(p) for p in head}
    backbone = [p for p in net.parameters() if id(p) not in ids and p.requires_grad]
    return [{"params": backbone, "lr": lr}, {"params": head, "lr": lr * head_lr_mult}]


def poly_factor(step: int, total: int, power: float, mctformer: bool) -> float:
    """The learning-rate factor of step ``step`` (0-based): MCTformer's ``PolyOptimizer_cls`` divides by
    max_step (``seg/tool/torchutils.py`` l.46-59), DeepLab's train.py by max_iter + 1."""
    return (1 - step / (total if mctformer else total + 1)) ** power


def seg_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy (255 ignored) on the logits upsampled to the target (train_seg.py l.92-93;
    resnet38_seg's logits are at stride 8, DeepLab's already at the input's size)."""
    logits = F.interpolate(logits.float(), size=target.shape[-2:], mode="bilinear", align_corners=False)
    return F.cross_entropy(logits, target, ignore_index=IGNORE)
