"""DeepLab-v2 (ASPP of four dilated 3x3 convs, rates 6/12/18/24, summed) and DeepLab-v3+ on a dilated
timm backbone (docs/method.md §5: the WSSS DeepLab stage)."""
from __future__ import annotations

import timm
import torch
import torch.nn as nn
import torch.nn.functional as F

from bao.classes import NUM_CLASSES


class ASPPv2(nn.Module):
    def __init__(self, cin, num_classes, rates=(6, 12, 18, 24)):
        super().__init__()
        self.branches = nn.ModuleList(nn.Conv2d(cin, num_classes, 3, padding=r, dilation=r) for r in rates)
        for b in self.branches:  # N(0, 0.01) as DeepLab-v2
            nn.init.normal_(b.weight, 0, 0.01)
            nn.init.zeros_(b.bias)

    def forward(self, x):
        return sum(b(x) for b in self.branches)


def _conv_bn(cin, cout, k=1, d=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=d * (k // 2), dilation=d, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ASPPv3(nn.Module):
    def __init__(self, cin, cout=256, rates=(12, 24, 36)):
        super().__init__()
        self.branches = nn.ModuleList([_conv_bn(cin, cout)] + [_conv_bn(cin, cout, 3, r) for r in rates])
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), _conv_bn(cin, cout))
        self.project = _conv_bn(cout * (len(rates) + 2), cout)

    def forward(self, x):
        pooled = F.interpolate(self.pool(x), size=x.shape[2:], mode="bilinear", align_corners=False)
        return self.project(torch.cat([b(x) for b in self.branches] + [pooled], 1))


class DeepLab(nn.Module):
    def __init__(self, arch="deeplabv2", backbone="resnet101", num_classes=NUM_CLASSES, output_stride=8, pretrained=False):
        super().__init__()
        self.arch = arch
        v3 = arch == "deeplabv3plus"
        self.backbone = timm.create_model(backbone, features_only=True, pretrained=pretrained,
                                          output_stride=output_stride, out_indices=(1, 4) if v3 else (4,))
        chans = self.backbone.feature_info.channels()
        if v3:
            scale = 16 // output_stride
            self.aspp = ASPPv3(chans[-1], rates=tuple(r * scale for r in (6, 12, 18)))
            self.low = _conv_bn(chans[0], 48)
            self.head = nn.Sequential(_conv_bn(304, 256, 3), _conv_bn(256, 256, 3), nn.Conv2d(256, num_classes, 1))
        else:
            self.head = ASPPv2(chans[-1], num_classes)

    def head_modules(self):
        return [m for m in (getattr(self, "aspp", None), getattr(self, "low", None), self.head) if m is not None]

    def forward(self, x):
        feats = self.backbone(x)
        if self.arch == "deeplabv3plus":
            y = self.aspp(feats[-1])
            low = self.low(feats[0])
            y = F.interpolate(y, size=low.shape[2:], mode="bilinear", align_corners=False)
            y = self.head(torch.cat([y, low], 1))
        else:
            y = self.head(feats[-1])
        return F.interpolate(y, size=x.shape[2:], mode="bilinear", align_corners=False)


def build_deeplab(cfg, pretrained: bool = False) -> DeepLab:
    """The DeepLab of the ``deeplab`` params section (``pretrained``: ImageNet backbone weights)."""
    return DeepLab(cfg.arch, cfg.backbone, NUM_CLASSES, cfg.output_stride, pretrained)


def freeze_bn(model: nn.Module) -> None:
    """BatchNorm in eval mode with fixed affine parameters (the DeepLab-v2 recipe); call after train()."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)
