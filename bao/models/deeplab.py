"""DeepLab-v2 (ASPP of four dilated 3x3 convs, rates 6/12/18/24, summed) and DeepLab-v3+ on a dilated
backbone (docs/method.md §5: the WSSS DeepLab stage).

Backbones: ``resnet101_msra``, DeepLab-v2's own ResNet-101 (the MSRA/Caffe layout: stride on the first
1x1 conv of a block, ceil-mode max pool, BGR 0-255 input less the Caffe mean), with the module names
of kazuto1011/deeplab-pytorch (``layer1.conv1.conv``, ``layer2.block1.reduce.bn``, ...) so that the
ImageNet-initialised DeepLab-v2 checkpoint of the WSSS recipe loads key for key; or any timm ResNet.
"""
from __future__ import annotations

import timm
import torch
import torch.nn as nn
import torch.nn.functional as F

from bao.models.aspp import ASPPv2
from bao.models.resnet38 import ResNet38Seg, load_resnet38_imagenet


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


class ConvBn(nn.Sequential):
    def __init__(self, cin, cout, k, stride=1, dilation=1, relu=True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, dilation * (k // 2), dilation, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-5)
        if relu:
            self.relu = nn.ReLU(inplace=True)


class MSRABottleneck(nn.Module):
    def __init__(self, cin, cout, stride, dilation, shortcut):
        super().__init__()
        mid = cout // 4
        self.reduce = ConvBn(cin, mid, 1, stride)  # the stride sits on the 1x1 conv (Caffe ResNet)
        self.conv3x3 = ConvBn(mid, mid, 3, 1, dilation)
        self.increase = ConvBn(mid, cout, 1, relu=False)
        self.shortcut = ConvBn(cin, cout, 1, stride, relu=False) if shortcut else nn.Identity()

    def forward(self, x):
        return F.relu(self.increase(self.conv3x3(self.reduce(x))) + self.shortcut(x))


class ResNet101MSRA(nn.Module):
    """DeepLab-v2's ResNet-101 (blocks 3/4/23/3); output stride 8 dilates layer4/5 by 2/4, 16 layer5 by 2."""

    CAFFE_MEAN_BGR = (104.008, 116.669, 122.675)

    def __init__(self, output_stride: int = 8, out_indices=(4,)):
        super().__init__()
        self.layer1 = nn.Sequential()
        self.layer1.add_module("conv1", ConvBn(3, 64, 7, 2))
        self.layer1.add_module("pool", nn.MaxPool2d(3, 2, 1, ceil_mode=True))
        s4, d4, d5 = (1, 2, 4) if output_stride == 8 else (2, 1, 2)
        for name, n, cin, cout, stride, dil in (("layer2", 3, 64, 256, 1, 1), ("layer3", 4, 256, 512, 2, 1),
                                                ("layer4", 23, 512, 1024, s4, d4), ("layer5", 3, 1024, 2048, 1, d5)):
            layer = nn.Sequential()
            for i in range(n):
                layer.add_module(f"block{i + 1}", MSRABottleneck(cin if i == 0 else cout, cout, stride if i == 0 else 1,
                                                                 dil, i == 0))
            self.add_module(name, layer)
        self.out_indices = out_indices  # 1: layer2 (stride 4, 256 ch), 4: layer5 (2048 ch)
        self.channels = [{1: 256, 4: 2048}[i] for i in out_indices]
        self.register_buffer("mean", torch.tensor(self.CAFFE_MEAN_BGR).view(1, 3, 1, 1), persistent=False)

    def forward(self, x):
        from bao.core.image import MEAN, STD

        # the project's input is ImageNet-normalised RGB; these weights expect BGR 0-255 less the Caffe mean
        rgb = x * x.new_tensor(STD).view(1, 3, 1, 1) + x.new_tensor(MEAN).view(1, 3, 1, 1)
        x = rgb.flip(1) * 255.0 - self.mean.to(x.dtype)
        feats = []
        for i, name in enumerate(("layer1", "layer2", "layer3", "layer4", "layer5")):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                feats.append(x)
        return feats


def load_imagenet_backbone(model: "DeepLab", path) -> None:
    """DeepLab's ImageNet weights into the backbone, key for key (``aspp``/``fc`` entries of the file,
    a classifier of another task, are not used; ``proj`` is the older name of ``shortcut``)."""
    from bao.models.weights import check_keys, safe_load, unwrap_state_dict

    sd = unwrap_state_dict(safe_load(path), path)
    sd = {k.replace(".proj.", ".shortcut."): v for k, v in sd.items() if not k.startswith(("aspp.", "fc.", "head."))}
    own = model.backbone.state_dict()
    check_keys(own, sd, path, f"the {type(model.backbone).__name__} backbone")
    model.backbone.load_state_dict(sd, strict=False)  # strict up to BatchNorm counters (check_keys)


class DeepLab(nn.Module):
    def __init__(self, arch, backbone, num_classes, output_stride=8, aspp_rates=None):
        super().__init__()
        self.arch = arch
        v3 = arch == "deeplabv3plus"
        indices = (1, 4) if v3 else (4,)
        if backbone == "resnet101_msra":
            self.backbone = ResNet101MSRA(output_stride, indices)
            chans = self.backbone.channels
        else:  # timm: random init; ImageNet weights come from a staged file (load_imagenet_backbone)
            self.backbone = timm.create_model(backbone, features_only=True, pretrained=False,
                                              output_stride=output_stride, out_indices=indices)
            chans = self.backbone.feature_info.channels()
        if v3:
            scale = 16 // output_stride
            self.aspp = ASPPv3(chans[-1], rates=tuple(aspp_rates or (r * scale for r in (6, 12, 18))))
            self.low = _conv_bn(chans[0], 48)
            self.head = nn.Sequential(_conv_bn(304, 256, 3), _conv_bn(256, 256, 3), nn.Conv2d(256, num_classes, 1))
        else:
            self.head = ASPPv2(chans[-1], num_classes, rates=tuple(aspp_rates or (6, 12, 18, 24)))

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


def build_deeplab(cfg, num_classes: int, imagenet=None) -> nn.Module:
    """The segmentation network of the ``deeplab`` params section over ``num_classes`` classes
    (background included): DeepLab-v2/v3+ or MCTformer's
    ``resnet38_seg`` (bao.models.resnet38.ResNet38Seg; ``deeplab.backbone`` resnet38d | resnet38d_mini).
    ``imagenet``: a staged ImageNet checkpoint of its backbone (get_deeplab_weights; for resnet38_seg
    the ResNet-38 of get_resnet38_weights), else random init. Every model has ``head_modules()``."""
    if cfg.arch == "resnet38_seg":
        model = ResNet38Seg(cfg.backbone, num_classes)
        if imagenet is not None:
            load_resnet38_imagenet(model, imagenet, "deeplab.backbone")
        return model
    model = DeepLab(cfg.arch, cfg.backbone, num_classes, cfg.output_stride, cfg.aspp_rates)
    if imagenet is not None:
        load_imagenet_backbone(model, imagenet)
    return model


