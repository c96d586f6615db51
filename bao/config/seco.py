"""The ``seco`` section: SeCo (zwyang6/SeCo scripts/train_voc.py arguments)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

from bao.config.archs import SECO_VITS
from bao.config.choices import ENERGY_KERNELS, SECO_SEG_SIZES
from bao.config.masks import Crf
from bao.core.errors import ParamsError
from bao.core.params import Section, check_rates, choice, positive


@dataclass
class Energy(Section):
    weight: float
    sigma_rgb: float
    sigma_xy: float
    scale: float
    kernel: choice(ENERGY_KERNELS)

    def check(self, p):
        positive(f"{p}.weight", self.weight, allow_zero=True)
        for k in ("sigma_rgb", "sigma_xy", "scale"):
            positive(f"{p}.{k}", getattr(self, k))


@dataclass
class Seco(Section):
    KEY: ClassVar[str] = "seco"
    """SeCo (zwyang6/SeCo scripts/train_voc.py arguments; the iteration points are max_iters')."""
    arch: str
    pretrained: Optional[str]
    pretrained_md5: Optional[str]
    drop_path_rate: float
    aux_layer: int
    iterations: int
    warmup_iters: int
    update_prototype: int
    lil_lig_after: int
    seg_after: int
    cam2mask: int
    seg_mask_source: Optional[int]
    batch_size: int
    lr: float
    warmup_ratio: float
    head_lr_mult: float
    weight_decay: float
    poly_power: float
    crop_size: int
    scale_range: list[float]
    local_crop_size: int
    ncrops: int
    tag_threshold: float
    color_jitter: list[float]
    cam_scales: list[float]
    high_thre: float
    low_thre: float
    bkg_thre: float
    par_dilations: list[int]
    par_iterations: int
    w_ptc: float
    w_lil: float
    w_lig: float
    w_seg: float
    w_reg: float
    proto_m: float
    temp_lil: float
    temp_lig: float
    momentum: float
    queue: int
    aspp_rates: list[int]
    energy: Energy
    checkpoint_every: int
    seed_scales: list[float]
    mask_scales: list[float]
    seg_scales: list[float]
    seg_size: choice(SECO_SEG_SIZES)
    crf: Crf

    def check(self, p):
        if self.arch not in SECO_VITS:
            raise ParamsError(f"{p}.arch: unknown ViT {self.arch!r}; known: {sorted(SECO_VITS)}")
        patch = SECO_VITS[self.arch]["patch_size"]
        if not 0 <= self.drop_path_rate < 1:
            raise ParamsError(f"{p}.drop_path_rate: must be in [0, 1), got {self.drop_path_rate}")
        depth = SECO_VITS[self.arch]["depth"]
        if not -depth <= self.aux_layer < depth:
            raise ParamsError(f"{p}.aux_layer: must index one of {self.arch}'s {depth} blocks, got {self.aux_layer}")
        for k in (
            "iterations",
            "batch_size",
            "lr",
            "crop_size",
            "local_crop_size",
            "par_iterations",
            "queue",
            "checkpoint_every",
            "poly_power",
        ):
            positive(f"{p}.{k}", getattr(self, k))
        for k in (
            "warmup_iters",
            "update_prototype",
            "lil_lig_after",
            "seg_after",
            "cam2mask",
            "warmup_ratio",
            "head_lr_mult",
            "weight_decay",
            "w_ptc",
            "w_lil",
            "w_lig",
            "w_seg",
            "w_reg",
            "temp_lil",
            "temp_lig",
        ):
            positive(f"{p}.{k}", getattr(self, k), allow_zero=True)
        if self.crop_size % patch or self.local_crop_size % patch:
            raise ParamsError(
                f"{p}.crop_size/local_crop_size: must be multiples of the patch size {patch}, "
                f"got {self.crop_size}/{self.local_crop_size}"
            )
        if self.seg_mask_source is not None:
            positive(f"{p}.seg_mask_source", self.seg_mask_source, allow_zero=True)
        if self.local_crop_size > self.crop_size:
            raise ParamsError(f"{p}.local_crop_size: larger than crop_size {self.crop_size}")
        if self.ncrops < 3:
            raise ParamsError(f"{p}.ncrops: needs 2 global views and at least one local crop, got {self.ncrops}")
        if self.queue % (self.batch_size * self.ncrops):
            raise ParamsError(
                f"{p}.queue: must be a multiple of batch_size x ncrops = "
                f"{self.batch_size * self.ncrops} (keys enqueued per step and GPU), got {self.queue}"
            )
        if len(self.scale_range) != 2 or not 0 < self.scale_range[0] <= self.scale_range[1]:
            raise ParamsError(f"{p}.scale_range: needs [low, high] with 0 < low <= high, got {self.scale_range}")
        if len(self.color_jitter) != 4:
            raise ParamsError(
                f"{p}.color_jitter: needs [brightness, contrast, saturation, hue], got {self.color_jitter}"
            )
        if not 0 <= self.low_thre <= self.high_thre <= 1 or not 0 <= self.bkg_thre <= 1:
            raise ParamsError(f"{p}.low_thre/high_thre/bkg_thre: need 0 <= low <= high <= 1 and bkg in [0, 1]")
        for k in ("proto_m", "momentum"):
            if not 0 <= getattr(self, k) <= 1:
                raise ParamsError(f"{p}.{k}: must be in [0, 1], got {getattr(self, k)}")
        for k in ("cam_scales", "seed_scales", "mask_scales", "seg_scales"):
            if not getattr(self, k):
                raise ParamsError(f"{p}.{k}: needs at least one scale")
            positive(f"{p}.{k}", getattr(self, k))
        check_rates(f"{p}.par_dilations", self.par_dilations)
        check_rates(f"{p}.aspp_rates", self.aspp_rates)
