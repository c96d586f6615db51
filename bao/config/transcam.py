"""TransCAM's sections: ``model`` (the Conformer), ``transcam`` (its training) and ``cams`` (its CAMs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

from bao.config.archs import check_arch
from bao.core.errors import ParamsError
from bao.core.params import Section, positive


@dataclass
class Model(Section):
    KEY: ClassVar[str] = "model"
    arch: str
    pretrained: Optional[str]
    pretrained_md5: Optional[str]
    drop_path_rate: float

    def check(self, p):
        check_arch(p, self.arch)
        if not 0 <= self.drop_path_rate < 1:
            raise ParamsError(f"{p}.drop_path_rate: must be in [0, 1), got {self.drop_path_rate}")


@dataclass
class Augment(Section):
    resize_long: list[int]
    crop_size: int
    color_jitter: list[float]

    def check(self, p):
        if len(self.resize_long) != 2 or self.resize_long[0] > self.resize_long[1]:
            raise ParamsError(f"{p}.resize_long: needs [lo, hi] with lo <= hi, got {self.resize_long}")
        positive(f"{p}.resize_long", self.resize_long)
        if self.crop_size % 16:
            raise ParamsError(f"{p}.crop_size: must be a multiple of 16 (token stride), got {self.crop_size}")
        if len(self.color_jitter) != 4:
            raise ParamsError(f"{p}.color_jitter: needs 4 values (b, c, s, h), got {self.color_jitter}")


@dataclass
class Optim(Section):
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    checkpoint_every: int

    def check(self, p):
        for k in ("epochs", "batch_size", "lr", "checkpoint_every"):
            positive(f"{p}.{k}", getattr(self, k))
        positive(f"{p}.weight_decay", self.weight_decay, allow_zero=True)


@dataclass
class TransCAM(Optim):
    KEY: ClassVar[str] = "transcam"
    augment: Augment
    released: Optional[str]
    released_md5: Optional[str]
    epoch_eval_scales: Optional[list[int]]
    epoch_eval_every: int
    bao_start_epoch: Optional[int]

    def check(self, p):
        super().check(p)
        positive(f"{p}.epoch_eval_every", self.epoch_eval_every)
        if self.bao_start_epoch is not None and not 1 <= self.bao_start_epoch <= self.epochs:
            raise ParamsError(
                f"{p}.bao_start_epoch: must be null or in [1, epochs = {self.epochs}], got {self.bao_start_epoch}"
            )


@dataclass
class Cams(Section):
    KEY: ClassVar[str] = "cams"
    scales: list[int]
    keep_aspect: bool
    flip: bool
    attn_identity: float
    thresholds: list[float]

    def check(self, p):
        if not self.scales:
            raise ParamsError(f"{p}.scales: needs at least one scale")
        for s in self.scales:
            if s % 16 or s <= 0:
                raise ParamsError(f"{p}.scales: each must be a positive multiple of 16, got {s}")
        if len(self.thresholds) != 3 or self.thresholds[2] <= 0 or self.thresholds[0] >= self.thresholds[1]:
            raise ParamsError(f"{p}.thresholds: needs [start, stop, step], got {self.thresholds}")
