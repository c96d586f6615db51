"""DeepLab-v2's ASPP head: four dilated 3x3 convolutions, summed (used by DeepLab-v2 and BAO's amn_aspp head)."""
from __future__ import annotations

import torch.nn as nn


class ASPPv2(nn.Module):
    def __init__(self, cin, num_classes, rates=(6, 12, 18, 24)):
        super().__init__()
        self.branches = nn.ModuleList(nn.Conv2d(cin, num_classes, 3, padding=r, dilation=r) for r in rates)
        for b in self.branches:  # N(0, 0.01) as DeepLab-v2
            nn.init.normal_(b.weight, 0, 0.01)
            nn.init.zeros_(b.bias)

    def forward(self, x):
        return sum(b(x) for b in self.branches)
