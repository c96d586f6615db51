"""BAO's sections: ``bao`` (its training), ``ema`` (the target update) and ``seeds`` (the readout)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

from bao.config.choices import EMA_AVERAGES, EMA_SPANS, HEADS, PCL_GRADS, TARGET_MODES, UPDATES
from bao.config.transcam import Augment, Optim
from bao.core.errors import ParamsError
from bao.core.params import Section, check_rates, choice, positive
from bao.method.readouts import READOUTS


@dataclass
class Bao(Optim):
    KEY: ClassVar[str] = "bao"
    update: choice(UPDATES)
    head: choice(HEADS)
    aspp_rates: Optional[list[int]]
    target_mode: choice(TARGET_MODES)
    ignore_padding: bool
    label_smoothing: float
    refine_am: bool
    head_lr_mult: float
    l_pcl: float
    pcl_grad: choice(PCL_GRADS)
    amn_fg_thres: float
    amn_bg_thres: float
    augment: Augment
    epoch_eval_scales: Optional[list[int]]
    epoch_eval_every: int

    def check(self, p):
        super().check(p)
        positive(f"{p}.epoch_eval_every", self.epoch_eval_every)
        if self.l_pcl < 0:
            raise ParamsError(f"{p}.l_pcl: must be >= 0, got {self.l_pcl}")
        if not 0 <= self.label_smoothing < 1:
            raise ParamsError(f"{p}.label_smoothing: must be in [0, 1), got {self.label_smoothing}")
        if not 0 <= self.amn_bg_thres <= self.amn_fg_thres <= 1:
            raise ParamsError(f"{p}.amn_bg_thres/amn_fg_thres: need 0 <= bg <= fg <= 1")
        check_rates(f"{p}.aspp_rates", self.aspp_rates)


@dataclass
class Ema(Section):
    KEY: ClassVar[str] = "ema"
    tau: float
    span: choice(EMA_SPANS)
    averages: choice(EMA_AVERAGES)
    share_epochs: int

    def check(self, p):
        if not 0 <= self.tau <= 1:
            raise ParamsError(f"{p}.tau: must be in [0, 1], got {self.tau}")
        positive(f"{p}.share_epochs", self.share_epochs, allow_zero=True)


@dataclass
class Seeds(Section):
    KEY: ClassVar[str] = "seeds"
    combine: choice(READOUTS)
