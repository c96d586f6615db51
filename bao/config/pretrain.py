"""The ``pretrain`` section: the mini setting's ImageNet stand-in (stages pretrain and pretrain_vit)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from bao.config.archs import SECO_VITS, check_arch
from bao.core.errors import ParamsError
from bao.core.params import Section, positive


@dataclass
class Pretrain(Section):
    KEY: ClassVar[str] = "pretrain"
    """The mini setting's ImageNet stand-in (stage pretrain, bao/data/shapes.py)."""
    seed: int
    arch: str
    vit_arch: str
    image_size: int
    images_per_epoch: int
    val_images: int
    epochs: int
    warmup_epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    label_smoothing: float
    token_loss: float
    attention_loss: float
    drop_path_rate: float
    num_workers: int
    checkpoint_every: int

    def check(self, p):
        check_arch(p, self.arch)
        if self.vit_arch not in SECO_VITS:
            raise ParamsError(f"{p}.vit_arch: unknown ViT {self.vit_arch!r}; known: {sorted(SECO_VITS)}")
        positive(f"{p}.num_workers", self.num_workers, allow_zero=True)
        positive(f"{p}.token_loss", self.token_loss, allow_zero=True)
        positive(f"{p}.attention_loss", self.attention_loss, allow_zero=True)
        for k in ("image_size", "images_per_epoch", "val_images", "epochs", "batch_size", "lr", "checkpoint_every"):
            positive(f"{p}.{k}", getattr(self, k))
        if self.image_size % 16:
            raise ParamsError(f"{p}.image_size: must be a multiple of 16 (token stride), got {self.image_size}")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ParamsError(f"{p}.warmup_epochs: must be in [0, epochs), got {self.warmup_epochs}")
        positive(f"{p}.weight_decay", self.weight_decay, allow_zero=True)
        if not 0 <= self.label_smoothing < 1:
            raise ParamsError(f"{p}.label_smoothing: must be in [0, 1), got {self.label_smoothing}")
