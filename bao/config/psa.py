"""The ``psa`` section: PSA's AffinityNet and random walk for TransCAM's row."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

from bao.config.choices import PSA_CRF_LABELS
from bao.config.resnets import RESNET38, check_frozen
from bao.core.errors import ParamsError
from bao.core.params import Section, choice, positive


@dataclass
class Psa(Section):
    KEY: ClassVar[str] = "psa"
    """PSA (AffinityNet) refinement of TransCAM's CAMs (TransCAM train_aff.py / infer_aff.py)."""
    fg_thres: float
    bg_thres: float
    crf_labels: choice(PSA_CRF_LABELS)
    arch: choice(RESNET38)
    pretrained: Optional[str]
    pretrained_md5: Optional[str]
    frozen: list[str]
    freeze_bn: bool
    radius: int
    crop_size: int
    color_jitter: list[float]
    batch_size: int
    epochs: int
    lr: float
    weight_decay: float
    momentum: float
    poly_power: float
    checkpoint_every: int
    beta: float
    logt: int
    bg_score: float
    crf: bool

    def check(self, p):
        for k in ("fg_thres", "bg_thres"):
            if not 0 <= getattr(self, k) <= 1:
                raise ParamsError(f"{p}.{k}: must be in [0, 1], got {getattr(self, k)}")
        if self.bg_thres > self.fg_thres:
            raise ParamsError(f"{p}.bg_thres: must not exceed fg_thres ({self.bg_thres} > {self.fg_thres})")
        for k in ("radius", "crop_size", "batch_size", "epochs", "lr", "checkpoint_every", "beta"):
            positive(f"{p}.{k}", getattr(self, k))
        if self.radius < 2:
            raise ParamsError(f"{p}.radius: must be at least 2, got {self.radius}")
        if self.crop_size % 8:
            raise ParamsError(f"{p}.crop_size: must be a multiple of 8 (feature stride), got {self.crop_size}")
        if self.crop_size // 8 < 2 * self.radius - 1:
            raise ParamsError(f"{p}.crop_size: {self.crop_size} // 8 is under 2 * radius - 1 = {2 * self.radius - 1}")
        positive(f"{p}.logt", self.logt, allow_zero=True)
        positive(f"{p}.weight_decay", self.weight_decay, allow_zero=True)
        positive(f"{p}.momentum", self.momentum, allow_zero=True)
        if len(self.color_jitter) != 4:
            raise ParamsError(f"{p}.color_jitter: needs 4 values (b, c, s, h), got {self.color_jitter}")
        check_frozen(p, self.frozen)
