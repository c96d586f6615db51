"""PSA's ResNet-38 ("38d": Wu et al.'s model A1, dilated to output stride 8) and AffinityNet on it.

Module names follow the published PyTorch conversion of the ImageNet weights
(``ilsvrc-cls_rna-a1_cls1000_ep-0001.params``, TransCAM/PSA ``network/resnet38d.py``), so that its
state_dict loads key for key; ``load_resnet38_imagenet`` reads the MXNet file itself (no MXNet needed)
or an already converted state_dict. ``resnet38d_mini`` has an eighth of the channels, for mini-VOC.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from bao.config.resnets import RESNET38
from bao.core.errors import CheckpointError
from bao.models.mxnet import is_mxnet_params, mxnet_to_resnet38, read_mxnet_params

# resnet38_seg's head dilation: MCTformer's 12 on VOC; 4 on mini-VOC, whose images are about a third
# of VOC's side (12 x 176/500), so that the 3x3 taps span the same share of the object
SEG_DILATION = {"resnet38d": 12, "resnet38d_mini": 4}


class ResBlock(nn.Module):
    """Pre-activation basic block (BN-ReLU-conv3x3-BN-ReLU-conv3x3); the 1x1 shortcut, when the shape
    changes, takes the pre-activated input."""

    def __init__(self, cin, mid, cout, stride=1, first_dilation=None, dilation=1):
        super().__init__()
        first_dilation = dilation if first_dilation is None else first_dilation
        self.same_shape = cin == cout and stride == 1
        self.bn_branch2a = nn.BatchNorm2d(cin)
        self.conv_branch2a = nn.Conv2d(cin, mid, 3, stride, padding=first_dilation, dilation=first_dilation, bias=False)
        self.bn_branch2b1 = nn.BatchNorm2d(mid)
        self.conv_branch2b1 = nn.Conv2d(mid, cout, 3, padding=dilation, dilation=dilation, bias=False)
        if not self.same_shape:
            self.conv_branch1 = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        """(output, the pre-activated input): PSA's affinity features tap the latter."""
        pre = F.relu(self.bn_branch2a(x))
        short = x if self.same_shape else self.conv_branch1(pre)
        y = self.conv_branch2b1(F.relu(self.bn_branch2b1(self.conv_branch2a(pre))))
        return short + y, pre


class ResBlockBottleneck(nn.Module):
    """Pre-activation bottleneck (1x1 -> 3x3 dilated -> 1x1, widths out/4, out/2, out) with
    Dropout2d before the last two convolutions; the shortcut is always a 1x1 conv."""

    def __init__(self, cin, cout, stride=1, dilation=1, dropout=0.0):
        super().__init__()
        self.bn_branch2a = nn.BatchNorm2d(cin)
        self.conv_branch2a = nn.Conv2d(cin, cout // 4, 1, stride, bias=False)
        self.bn_branch2b1 = nn.BatchNorm2d(cout // 4)
        self.dropout_2b1 = nn.Dropout2d(dropout)
        self.conv_branch2b1 = nn.Conv2d(cout // 4, cout // 2, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn_branch2b2 = nn.BatchNorm2d(cout // 2)
        self.dropout_2b2 = nn.Dropout2d(dropout)
        self.conv_branch2b2 = nn.Conv2d(cout // 2, cout, 1, bias=False)
        self.conv_branch1 = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        pre = F.relu(self.bn_branch2a(x))
        y = self.dropout_2b1(F.relu(self.bn_branch2b1(self.conv_branch2a(pre))))
        y = self.dropout_2b2(F.relu(self.bn_branch2b2(self.conv_branch2b1(y))))
        return self.conv_branch1(pre) + self.conv_branch2b2(y), pre


class ResNet38d(nn.Module):
    """Strides 2, 4, 8 from b2, b3, b4; b5 (dilation 2), b6 and b7 (dilation 4) stay at stride 8.
    ``features`` returns PSA's taps: conv4 (b5's pre-activated input, 512 ch), conv5 (b6's, 1024 ch)
    and conv6 (ReLU(BN(b7)), 4096 ch); channels divided by ``div``."""

    def __init__(self, div: int = 1):
        super().__init__()
        c = lambda n: n // div  # noqa: E731
        self.conv1a = nn.Conv2d(3, c(64), 3, padding=1, bias=False)
        self.b2 = ResBlock(c(64), c(128), c(128), stride=2)
        self.b2_1 = ResBlock(c(128), c(128), c(128))
        self.b2_2 = ResBlock(c(128), c(128), c(128))
        self.b3 = ResBlock(c(128), c(256), c(256), stride=2)
        self.b3_1 = ResBlock(c(256), c(256), c(256))
        self.b3_2 = ResBlock(c(256), c(256), c(256))
        self.b4 = ResBlock(c(256), c(512), c(512), stride=2)
        for i in range(1, 6):
            setattr(self, f"b4_{i}", ResBlock(c(512), c(512), c(512)))
        self.b5 = ResBlock(c(512), c(512), c(1024), first_dilation=1, dilation=2)
        self.b5_1 = ResBlock(c(1024), c(512), c(1024), dilation=2)
        self.b5_2 = ResBlock(c(1024), c(512), c(1024), dilation=2)
        self.b6 = ResBlockBottleneck(c(1024), c(2048), dilation=4, dropout=0.3)
        self.b7 = ResBlockBottleneck(c(2048), c(4096), dilation=4, dropout=0.5)
        self.bn7 = nn.BatchNorm2d(c(4096))
        self.channels = (c(512), c(1024), c(4096))

    def features(self, x):
        x = self.conv1a(x)
        for name in ("b2", "b2_1", "b2_2", "b3", "b3_1", "b3_2", "b4", "b4_1", "b4_2", "b4_3", "b4_4", "b4_5"):
            x, _ = getattr(self, name)(x)
        x, conv4 = self.b5(x)
        x, _ = self.b5_1(x)
        x, _ = self.b5_2(x)
        x, conv5 = self.b6(x)
        x, _ = self.b7(x)
        return conv4, conv5, F.relu(self.bn7(x))


class AffinityNet(ResNet38d):
    """ResNet-38d + PSA's affinity head (network/resnet38_aff.py): 1x1 convs of the three taps to
    64/128/256 channels (ELU), concatenated and mixed by a 1x1 conv to 448 (ELU); features at stride 8."""

    STRIDE = 8
    FROZEN = ("conv1a", "b2", "b2_1", "b2_2")  # resnet38_aff.py not_training (with ImageNet weights)

    def __init__(self, div: int = 1):
        super().__init__(div)
        c4, c5, c6 = self.channels
        self.f8_3 = nn.Conv2d(c4, 64, 1, bias=False)
        self.f8_4 = nn.Conv2d(c5, 128, 1, bias=False)
        self.f8_5 = nn.Conv2d(c6, 256, 1, bias=False)
        self.f9 = nn.Conv2d(448, 448, 1, bias=False)
        for m in (self.f8_3, self.f8_4, self.f8_5):
            nn.init.kaiming_normal_(m.weight)
        nn.init.xavier_uniform_(self.f9.weight, gain=4)

    def new_modules(self) -> list[nn.Module]:
        return [self.f8_3, self.f8_4, self.f8_5, self.f9]

    def forward(self, x):
        conv4, conv5, conv6 = self.features(x)
        f = torch.cat([F.elu(self.f8_3(conv4)), F.elu(self.f8_4(conv5)), F.elu(self.f8_5(conv6))], 1)
        return F.elu(self.f9(f))

    def parameter_groups(self) -> list[list[nn.Parameter]]:
        """PSA's four groups (resnet38_aff.py get_parameter_groups): backbone conv weights, backbone
        conv biases, new-layer weights, new-layer biases (lr x1, x2, x10, x20). Only convolutions are
        collected: BatchNorm's affine parameters are never optimised. Frozen layers are left out."""
        new = {id(m) for m in self.new_modules()}
        groups = [[], [], [], []]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                k = 2 if id(m) in new else 0
                if m.weight.requires_grad:
                    groups[k].append(m.weight)
                if m.bias is not None and m.bias.requires_grad:
                    groups[k + 1].append(m.bias)
        return groups

    def freeze(self, layers) -> None:
        for name in layers:
            for p in getattr(self, name).parameters():
                p.requires_grad_(False)


class ResNet38Seg(ResNet38d):
    """MCTformer's ``resnet38_seg`` (seg/network/resnet38_seg.py), the segmentation network i2mond/BAO
    trains: ResNet-38d's conv6 (4096 ch, stride 8), ``fc8_seg_conv1`` = 3x3 conv to 512 (dilation 12,
    ReLU), ``fc8_seg_conv2`` = 3x3 conv to the classes (dilation 12); both Xavier-uniform weights, biases
    at PyTorch's default. Returns the stride-8 logits, as MCTformer's ``forward``: train_seg.py l.92
    upsamples them to the crop for the loss, infer_seg.py l.96 to the image, once. Keys are MCTformer's
    (top-level ``conv1a``, ``b2``..., ``fc8_seg_conv*``)."""

    def __init__(self, arch: str, num_classes: int):
        if arch not in RESNET38:
            raise ValueError(f"deeplab.backbone: resnet38_seg needs one of {', '.join(RESNET38)}, got {arch!r}")
        div, d = RESNET38[arch], SEG_DILATION[arch]
        super().__init__(div)
        self.fc8_seg_conv1 = nn.Conv2d(4096 // div, 512 // div, 3, padding=d, dilation=d)
        self.fc8_seg_conv2 = nn.Conv2d(512 // div, num_classes, 3, padding=d, dilation=d)
        for m in (self.fc8_seg_conv1, self.fc8_seg_conv2):
            nn.init.xavier_uniform_(m.weight)

    def head_modules(self) -> list[nn.Module]:
        """The 10x-lr layers (MCTformer's get_10x_lr_params: names containing 'fc8')."""
        return [self.fc8_seg_conv1, self.fc8_seg_conv2]

    def forward(self, x):
        return self.fc8_seg_conv2(F.relu(self.fc8_seg_conv1(self.features(x)[-1])))


def create_affinitynet(arch: str) -> AffinityNet:
    if arch not in RESNET38:
        raise ValueError(f"psa.arch: unknown '{arch}' (one of {', '.join(RESNET38)})")
    return AffinityNet(RESNET38[arch])





def load_resnet38_imagenet(model: ResNet38d, path: str | Path, param: str = "psa.arch") -> None:
    """Load ResNet-38 weights into ``model``'s backbone, key for key and shape for shape: ImageNet's
    (MXNet ``.params`` or a converted state_dict) or PSA's VOC-trained classifier ``res38_cls.pth``,
    MCTformer's start for resnet38_seg, whose 20-class ``fc8`` is dropped as train_seg.py's
    ``strict=False`` drops it. Only the new head (affinity or segmentation) may be missing."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: ResNet-38 checkpoint not found")
    if is_mxnet_params(path):
        state = mxnet_to_resnet38(read_mxnet_params(path))
    else:
        from bao.core.io import safe_load

        state = safe_load(path)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
    own = model.state_dict()
    backbone = {k for k in own if not k.startswith(("f8_", "f9", "fc8_")) and not k.endswith("num_batches_tracked")}
    missing = sorted(backbone - set(state))
    unexpected = sorted(k for k in set(state) - set(own) if not k.startswith("fc8."))  # PSA's classifier head
    bad = sorted(k for k in backbone & set(state) if tuple(state[k].shape) != tuple(own[k].shape))
    if missing or unexpected or bad:
        raise CheckpointError(f"{path}: does not fit {type(model).__name__} ({param}): "
                              f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                              f"unexpected {unexpected[:5]}, wrong shape {bad[:5]}")
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
