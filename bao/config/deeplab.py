"""The ``deeplab`` and ``evaluate`` sections: the segmentation network, its training and its evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

from bao.config.choices import EVAL_COMBINES, SCALE_PER, SEG_ARCHS
from bao.config.masks import Crf
from bao.config.resnets import RESNET38, check_frozen
from bao.core.errors import ParamsError
from bao.core.params import Section, check_rates, choice, positive


@dataclass
class DeepLab(Section):
    KEY: ClassVar[str] = "deeplab"
    """The segmentation network and its training: MCTformer's resnet38_seg (the release) or DeepLab."""
    arch: choice(SEG_ARCHS)
    backbone: str
    pretrained: Optional[str]
    pretrained_md5: Optional[str]
    output_stride: int
    crop_size: int
    scale_range: list[float]
    batch_size: int
    iterations: int
    lr: float
    head_lr_mult: float
    momentum: float
    weight_decay: float
    poly_power: float
    freeze_bn: bool
    frozen: list[str]
    scale_per: choice(SCALE_PER)
    pad_label: int
    checkpoint_every: int
    log_every: int
    aspp_rates: Optional[list[int]]

    def check(self, p):
        check_rates(f"{p}.aspp_rates", self.aspp_rates)
        if self.arch == "resnet38_seg":
            if self.backbone not in RESNET38:
                raise ParamsError(f"{p}.backbone: resnet38_seg needs one of {sorted(RESNET38)}, got {self.backbone!r}")
        elif self.frozen:
            raise ParamsError(f"{p}.frozen: only resnet38_seg keeps layers frozen, got {self.frozen} for {self.arch}")
        check_frozen(p, self.frozen)
        if self.pad_label not in (0, 255):
            raise ParamsError(f"{p}.pad_label: must be 255 (ignored) or 0 (background), got {self.pad_label}")
        if self.output_stride not in (8, 16):
            raise ParamsError(f"{p}.output_stride: must be 8 or 16, got {self.output_stride}")
        for k in ("crop_size", "batch_size", "iterations", "lr", "checkpoint_every", "log_every"):
            positive(f"{p}.{k}", getattr(self, k))
        if len(self.scale_range) != 2 or not 0 < self.scale_range[0] <= self.scale_range[1]:
            raise ParamsError(f"{p}.scale_range: needs [lo, hi] with 0 < lo <= hi")


@dataclass
class Evaluate(Section):
    KEY: ClassVar[str] = "evaluate"
    split: str
    scales: list[float]
    flip: bool
    combine: choice(EVAL_COMBINES)
    use_crf: bool
    crf: Crf

    def check(self, p):
        if not self.scales:
            raise ParamsError(f"{p}.scales: needs at least one scale")
        positive(f"{p}.scales", self.scales)
