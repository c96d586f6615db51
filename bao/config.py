"""Typed, validated view of ``params.yaml``.

``params.yaml`` holds every value; the dataclasses below only say what keys exist, their types and
their allowed ranges. ``load_params`` fails before any work, naming the offending key, on an unknown
key, a missing key, a wrong type or an impossible value.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import yaml

from bao.archs import CONFORMERS, RESNET38, SECO_VITS
from bao.errors import ParamsError

_READS: set[str] | None = None  # dotted keys read since record_reads(); None: not recording


def record_reads() -> None:
    """From now on, note every parameter a stage reads (``bao.trace``: dvc.yaml's params are checked
    against it)."""
    global _READS
    _READS = set()


def reads() -> set[str]:
    return set(_READS or ())


class Section:
    """Base of every params section: attribute reads of leaf values are recorded when recording."""

    _key = ""

    def __getattribute__(self, name):
        value = object.__getattribute__(self, name)
        if _READS is not None and not name.startswith("_") and not isinstance(value, Section) \
                and name in object.__getattribute__(self, "__dataclass_fields__"):
            _READS.add(object.__getattribute__(self, "_key") + name)
        return value


def _check_rates(key: str, rates) -> None:
    if rates is not None and (not rates or any(not isinstance(r, int) or r < 1 for r in rates)):
        raise ParamsError(f"{key}: needs null or a list of positive integer dilations, got {rates}")


def _positive(key: str, value, allow_zero=False):
    if value is None:
        return
    values = value if isinstance(value, (list, tuple)) else [value]
    for v in values:
        if v < 0 or (v == 0 and not allow_zero):
            raise ParamsError(f"{key}: must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def _check_arch(p: str, arch: str) -> None:
    if arch not in CONFORMERS:
        raise ParamsError(f"{p}.arch: unknown model {arch!r}; known: {sorted(CONFORMERS)}")


@dataclass
class Base(Section):
    seed: int
    device: Literal["auto", "cpu", "cuda"]
    amp: bool  # bf16 autocast on CUDA; losses and CAM normalisation stay fp32
    num_workers: int
    infer_workers: int | Literal["auto"]  # processes for CAM/seed inference (auto: one per GPU, 1 on CPU)
    bad_input: Literal["error", "skip"]

    def check(self, p):
        _positive(f"{p}.num_workers", self.num_workers, allow_zero=True)
        if self.infer_workers != "auto":
            _positive(f"{p}.infer_workers", self.infer_workers)


@dataclass
class MiniVOC(Section):
    num_train: int
    num_val: int
    num_test: int
    num_aug: int
    min_side: int
    max_side: int

    def check(self, p):
        for k in ("num_train", "num_val", "min_side", "max_side"):
            _positive(f"{p}.{k}", getattr(self, k))
        for k in ("num_test", "num_aug"):
            _positive(f"{p}.{k}", getattr(self, k), allow_zero=True)
        if self.min_side > self.max_side:
            raise ParamsError(f"{p}.min_side: {self.min_side} > max_side {self.max_side}")
        if self.min_side < 64:
            raise ParamsError(f"{p}.min_side: must be >= 64, got {self.min_side}")


@dataclass
class Data(Section):
    source: Literal["mini", "voc", "folder"]
    folder: Optional[str]  # source folder: an existing VOC-layout dataset, linked or copied into root
    download_dir: str
    voc_urls: list[str]
    voc_md5: str
    sbd_urls: list[str]
    sbd_md5: str
    mini: MiniVOC

    def check(self, p):
        if self.source == "folder" and not self.folder:
            raise ParamsError(f"{p}.folder: data.source is 'folder', so name the VOC-layout dataset folder")
        for k in ("voc_urls", "sbd_urls"):
            if not getattr(self, k):
                raise ParamsError(f"{p}.{k}: needs at least one URL")
        for k in ("voc_md5", "sbd_md5"):
            v = getattr(self, k)
            if len(v) != 32 or any(c not in "0123456789abcdef" for c in v.lower()):
                raise ParamsError(f"{p}.{k}: not an md5 hex digest: {v!r}")


@dataclass
class Model(Section):
    arch: str
    pretrained: Optional[str]  # null, a local path, or an http(s) URL / gdrive://ID
    pretrained_md5: Optional[str]
    drop_path_rate: float

    def check(self, p):
        _check_arch(p, self.arch)
        if not 0 <= self.drop_path_rate < 1:
            raise ParamsError(f"{p}.drop_path_rate: must be in [0, 1), got {self.drop_path_rate}")


@dataclass
class Pretrain(Section):
    """The mini setting's ImageNet stand-in (stage pretrain, bao/data/shapes.py)."""
    seed: int
    arch: str
    image_size: int
    images_per_epoch: int
    val_images: int
    epochs: int
    warmup_epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    label_smoothing: float
    token_loss: float  # weight of token labelling (0: image classification alone)
    attention_loss: float  # weight of the attention-grouping loss (0: none)
    drop_path_rate: float
    num_workers: int
    checkpoint_every: int

    def check(self, p):
        _check_arch(p, self.arch)
        _positive(f"{p}.num_workers", self.num_workers, allow_zero=True)
        _positive(f"{p}.token_loss", self.token_loss, allow_zero=True)
        _positive(f"{p}.attention_loss", self.attention_loss, allow_zero=True)
        for k in ("image_size", "images_per_epoch", "val_images", "epochs", "batch_size", "lr", "checkpoint_every"):
            _positive(f"{p}.{k}", getattr(self, k))
        if self.image_size % 16:
            raise ParamsError(f"{p}.image_size: must be a multiple of 16 (token stride), got {self.image_size}")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ParamsError(f"{p}.warmup_epochs: must be in [0, epochs), got {self.warmup_epochs}")
        _positive(f"{p}.weight_decay", self.weight_decay, allow_zero=True)
        if not 0 <= self.label_smoothing < 1:
            raise ParamsError(f"{p}.label_smoothing: must be in [0, 1), got {self.label_smoothing}")


@dataclass
class Augment(Section):
    resize_long: list[int]  # RandomResizeLong(lo, hi), TransCAM train_TransCAM.py
    crop_size: int
    color_jitter: list[float]  # brightness, contrast, saturation, hue

    def check(self, p):
        if len(self.resize_long) != 2 or self.resize_long[0] > self.resize_long[1]:
            raise ParamsError(f"{p}.resize_long: needs [lo, hi] with lo <= hi, got {self.resize_long}")
        _positive(f"{p}.resize_long", self.resize_long)
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
    checkpoint_every: int  # steps between resume checkpoints

    def check(self, p):
        for k in ("epochs", "batch_size", "lr", "checkpoint_every"):
            _positive(f"{p}.{k}", getattr(self, k))
        _positive(f"{p}.weight_decay", self.weight_decay, allow_zero=True)


@dataclass
class TransCAM(Optim):
    augment: Augment = None
    released: Optional[str] = None  # TransCAM's published classifier instead of training (path/URL/gdrive://)
    released_md5: Optional[str] = None
    # the per-epoch oracle seed on train at these CAM scales (x flip); null: not scored
    epoch_eval_scales: Optional[list[int]] = None
    epoch_eval_every: int = 1  # scored after every n-th epoch and the last (a count: the curve's sampling)
    # the epoch whose weights BAO starts from (null: the last), so that BAO and TransCAM's row can get the
    # same total steps: bao_start_epoch + bao.epochs = epochs at equal batch sizes
    bao_start_epoch: Optional[int] = None

    def check(self, p):
        super().check(p)
        _positive(f"{p}.epoch_eval_every", self.epoch_eval_every)
        if self.bao_start_epoch is not None and not 1 <= self.bao_start_epoch <= self.epochs:
            raise ParamsError(f"{p}.bao_start_epoch: must be null or in [1, epochs = {self.epochs}], "
                              f"got {self.bao_start_epoch}")


@dataclass
class Cams(Section):
    scales: list[int]  # square sides (TransCAM) or long sides (keep_aspect)
    keep_aspect: bool
    flip: bool
    attn_identity: float  # refine with A* + w I (TransCAM: 0)
    thresholds: list[float]  # [start, stop, step] of the background-threshold sweep

    def check(self, p):
        if not self.scales:
            raise ParamsError(f"{p}.scales: needs at least one scale")
        for s in self.scales:
            if s % 16 or s <= 0:
                raise ParamsError(f"{p}.scales: each must be a positive multiple of 16, got {s}")
        if len(self.thresholds) != 3 or self.thresholds[2] <= 0 or self.thresholds[0] >= self.thresholds[1]:
            raise ParamsError(f"{p}.thresholds: needs [start, stop, step], got {self.thresholds}")


@dataclass
class Bao(Optim):
    update: Literal["share", "ema", "share+ema", "amn"] = "share+ema"
    head: Literal["classifier_x", "amn_aspp"] = "classifier_x"  # the AM classifier (bao.method.BAONet)
    # amn_aspp's dilations: null = AMN's 6/12/18/24 (a 32x32 grid: crop 512, stride 16); scaled to smaller grids
    aspp_rates: Optional[list[int]] = None
    target_mode: Literal["train", "eval"] = "train"  # the target's forward mode (the release: train)
    ignore_padding: bool = False  # ignore the crop's zero padding in L_pcl (the release: false)
    label_smoothing: float = 0.4  # AMN --eps
    refine_am: bool = True  # refine the activation map by the attention (docs/method.md §3.2)
    head_lr_mult: float = 1.0
    # diagnostics of which component costs points (docs/results.md); the release: 1.0 and "all"
    l_pcl: float = 1.0  # the weight of L_pcl in eq. 8 (the release's --l_pcl, train_bao.py l.175)
    pcl_grad: Literal["all", "head"] = "all"  # head: L_pcl trains only the AM branch (label encoder, classifier)
    amn_fg_thres: float = 0.30
    amn_bg_thres: float = 0.05
    augment: Augment = None
    # Figure 4's per-epoch seed score at these CAM scales (x flip; null: cams.scales), the same at every epoch
    epoch_eval_scales: Optional[list[int]] = None
    epoch_eval_every: int = 1  # scored at epoch 0, after every n-th epoch and the last (the curve's sampling)

    def check(self, p):
        super().check(p)
        _positive(f"{p}.epoch_eval_every", self.epoch_eval_every)
        if self.l_pcl < 0:
            raise ParamsError(f"{p}.l_pcl: must be >= 0, got {self.l_pcl}")
        if not 0 <= self.label_smoothing < 1:
            raise ParamsError(f"{p}.label_smoothing: must be in [0, 1), got {self.label_smoothing}")
        if not 0 <= self.amn_bg_thres <= self.amn_fg_thres <= 1:
            raise ParamsError(f"{p}.amn_bg_thres/amn_fg_thres: need 0 <= bg <= fg <= 1")
        _check_rates(f"{p}.aspp_rates", self.aspp_rates)


@dataclass
class Ema(Section):
    tau: float  # tau_base of the cosine schedule (BYOL); paper 0.9995
    span: Literal["epoch", "run"]  # the cosine over each epoch, restarting (the release) or over the run
    averages: Literal["params", "params+buffers"]  # what EMA averages (the release: params)
    share_epochs: int  # share+ema: epochs of Share before EMA (paper: 1)

    def check(self, p):
        if not 0 <= self.tau <= 1:
            raise ParamsError(f"{p}.tau: must be in [0, 1], got {self.tau}")
        _positive(f"{p}.share_epochs", self.share_epochs, allow_zero=True)


@dataclass
class Seeds(Section):
    combine: Literal["camsfg_ambg", "am", "cam", "mean", "am_bg"]


@dataclass
class Crf(Section):
    """Dense-CRF kernels (the DeepLab test's dense_crf starts from probabilities)."""
    gauss_sxy: float
    gauss_compat: float
    bilateral_sxy: float
    bilateral_srgb: float
    bilateral_compat: float
    iterations: int

    def check(self, p):
        _positive(f"{p}.iterations", self.iterations)


@dataclass
class LabelCrf(Crf):
    """The pseudo-label CRF: unary from hard labels (gt_prob) or from the seed scores."""
    unary: Literal["labels", "scores"] = "labels"
    gt_prob: float = 0.7
    # labels unary: the CRF's label count, all of 0..n_labels-1 (the release: crf_inference_label's
    # default 91, tool/imutils.py l.274) | null: the classes present in the seed only (IRN)
    n_labels: Optional[int] = None

    def check(self, p):
        super().check(p)
        if not 0 < self.gt_prob < 1:
            raise ParamsError(f"{p}.gt_prob: must be in (0, 1), got {self.gt_prob}")
        if self.n_labels is not None and self.n_labels < 21:
            raise ParamsError(f"{p}.n_labels: must be null or >= 21 (every VOC class), got {self.n_labels}")


@dataclass
class Masks(Section):
    workers: int | Literal["auto"]  # CRF processes (auto: one per CPU core)
    crf: LabelCrf

    def check(self, p):
        if self.workers != "auto":
            _positive(f"{p}.workers", self.workers)


@dataclass
class Psa(Section):
    """PSA (AffinityNet) refinement of TransCAM's CAMs (TransCAM train_aff.py / infer_aff.py)."""
    fg_thres: float  # confident foreground: argmax over [fg_thres, CAMs] + label CRF (TransCAM: 0.60)
    bg_thres: float  # confident background: argmax over [bg_thres, CAMs] + label CRF (TransCAM: 0.25)
    crf_labels: Literal["all", "present"]  # label CRF over all 21 labels (TransCAM) or the present ones (IRN)
    arch: Literal["resnet38d", "resnet38d_mini"]
    pretrained: Optional[str]  # ImageNet ResNet-38: null | path | https URL | gdrive://<id>
    pretrained_md5: Optional[str]
    frozen: list[str]  # layers kept at their ImageNet weights (TransCAM: conv1a, b2, b2_1, b2_2)
    freeze_bn: bool  # BatchNorm in eval mode (TransCAM resnet38d.py train())
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
    bg_score: float  # the constant background score of the walk (TransCAM infer_aff.py --bkg)
    crf: bool  # label CRF after the walk

    def check(self, p):
        for k in ("fg_thres", "bg_thres"):
            if not 0 <= getattr(self, k) <= 1:
                raise ParamsError(f"{p}.{k}: must be in [0, 1], got {getattr(self, k)}")
        if self.bg_thres > self.fg_thres:
            raise ParamsError(f"{p}.bg_thres: must not exceed fg_thres ({self.bg_thres} > {self.fg_thres})")
        for k in ("radius", "crop_size", "batch_size", "epochs", "lr", "checkpoint_every", "beta"):
            _positive(f"{p}.{k}", getattr(self, k))
        if self.radius < 2:
            raise ParamsError(f"{p}.radius: must be at least 2, got {self.radius}")
        if self.crop_size % 8:
            raise ParamsError(f"{p}.crop_size: must be a multiple of 8 (feature stride), got {self.crop_size}")
        if self.crop_size // 8 < 2 * self.radius - 1:
            raise ParamsError(f"{p}.crop_size: {self.crop_size} // 8 is under 2 * radius - 1 = {2 * self.radius - 1}")
        _positive(f"{p}.logt", self.logt, allow_zero=True)
        _positive(f"{p}.weight_decay", self.weight_decay, allow_zero=True)
        _positive(f"{p}.momentum", self.momentum, allow_zero=True)
        if len(self.color_jitter) != 4:
            raise ParamsError(f"{p}.color_jitter: needs 4 values (b, c, s, h), got {self.color_jitter}")
        _check_frozen(p, self.frozen)


RESNET38_EARLY = ("conv1a", "b2", "b2_1", "b2_2", "b3", "b3_1", "b3_2")  # layers that may be kept frozen


def _check_frozen(p: str, frozen: list[str]) -> None:
    for k in frozen:
        if k not in RESNET38_EARLY:
            raise ParamsError(f"{p}.frozen: unknown layer {k!r} (one of {', '.join(RESNET38_EARLY)})")


@dataclass
class DeepLab(Section):
    """The segmentation network and its training: MCTformer's resnet38_seg (the release) or DeepLab."""
    arch: Literal["resnet38_seg", "deeplabv2", "deeplabv3plus"]
    # resnet38_seg: resnet38d | resnet38d_mini; deeplab*: resnet101_msra (DeepLab-v2's ResNet-101) or a timm name
    backbone: str
    # ImageNet weights (deeplab* only; resnet38_seg starts from psa.pretrained's ResNet-38, staged by
    # get_resnet38_weights): null (random init) | path | https URL | gdrive://<id>
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
    frozen: list[str]  # resnet38_seg: layers kept at their ImageNet weights (MCTformer: conv1a)
    scale_per: Literal["image", "batch"]  # one random scale per image | per batch (MCTformer)
    pad_label: int  # the label of the crop's padding: 255 (ignored) | 0 (background, MCTformer's crop)
    checkpoint_every: int
    log_every: int
    # the ASPP's dilations (deeplab* only): null = the published ones (v2: 6/12/18/24 on crop 321 at
    # stride 8, a 41x41 grid; v3+: 6/12/18 x 16/output_stride); smaller grids need them scaled
    aspp_rates: Optional[list[int]] = None

    def check(self, p):
        _check_rates(f"{p}.aspp_rates", self.aspp_rates)
        if self.arch == "resnet38_seg":
            if self.backbone not in RESNET38:
                raise ParamsError(f"{p}.backbone: resnet38_seg needs one of {sorted(RESNET38)}, got {self.backbone!r}")
            if self.pretrained:
                raise ParamsError(f"{p}.pretrained: resnet38_seg starts from psa.pretrained's ImageNet ResNet-38 "
                                  "(get_resnet38_weights); set deeplab.pretrained to null")
        elif self.frozen:
            raise ParamsError(f"{p}.frozen: only resnet38_seg keeps layers frozen, got {self.frozen} for {self.arch}")
        _check_frozen(p, self.frozen)
        if self.pad_label not in (0, 255):
            raise ParamsError(f"{p}.pad_label: must be 255 (ignored) or 0 (background), got {self.pad_label}")
        if self.output_stride not in (8, 16):
            raise ParamsError(f"{p}.output_stride: must be 8 or 16, got {self.output_stride}")
        for k in ("crop_size", "batch_size", "iterations", "lr", "checkpoint_every", "log_every"):
            _positive(f"{p}.{k}", getattr(self, k))
        if len(self.scale_range) != 2 or not 0 < self.scale_range[0] <= self.scale_range[1]:
            raise ParamsError(f"{p}.scale_range: needs [lo, hi] with 0 < lo <= hi")


@dataclass
class Evaluate(Section):
    split: str
    scales: list[float]
    flip: bool
    combine: Literal["max_softmax", "mean_logits"]  # passes: max of softmaxes (MCTformer) | mean of logits
    use_crf: bool
    crf: Crf

    def check(self, p):
        if not self.scales:
            raise ParamsError(f"{p}.scales: needs at least one scale")
        _positive(f"{p}.scales", self.scales)


@dataclass
class Energy(Section):
    weight: float
    sigma_rgb: float
    sigma_xy: float
    scale: float

    def check(self, p):
        _positive(f"{p}.weight", self.weight, allow_zero=True)
        for k in ("sigma_rgb", "sigma_xy", "scale"):
            _positive(f"{p}.{k}", getattr(self, k))


@dataclass
class Seco(Section):
    """SeCo (zwyang6/SeCo scripts/train_voc.py arguments; the iteration points are max_iters')."""
    arch: str
    pretrained: Optional[str]
    pretrain_arch: str  # the ViT of stage pretrain_vit
    pretrained_md5: Optional[str]
    drop_path_rate: float
    aux_layer: int
    iterations: int
    warmup_iters: int
    update_prototype: int
    lil_lig_after: int
    seg_after: int
    cam2mask: int
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
    crf: Crf

    def check(self, p):
        for k in ("arch", "pretrain_arch"):
            if getattr(self, k) not in SECO_VITS:
                raise ParamsError(f"{p}.{k}: unknown ViT {getattr(self, k)!r}; known: {sorted(SECO_VITS)}")
        patch = SECO_VITS[self.arch]["patch_size"]
        if not 0 <= self.drop_path_rate < 1:
            raise ParamsError(f"{p}.drop_path_rate: must be in [0, 1), got {self.drop_path_rate}")
        depth = SECO_VITS[self.arch]["depth"]
        if not -depth <= self.aux_layer < depth:
            raise ParamsError(f"{p}.aux_layer: must index one of {self.arch}'s {depth} blocks, got {self.aux_layer}")
        for k in ("iterations", "batch_size", "lr", "crop_size", "local_crop_size", "par_iterations",
                  "queue", "checkpoint_every", "poly_power"):
            _positive(f"{p}.{k}", getattr(self, k))
        for k in ("warmup_iters", "update_prototype", "lil_lig_after", "seg_after", "cam2mask", "warmup_ratio",
                  "head_lr_mult", "weight_decay", "w_ptc", "w_lil", "w_lig", "w_seg", "w_reg", "temp_lil", "temp_lig"):
            _positive(f"{p}.{k}", getattr(self, k), allow_zero=True)
        if self.crop_size % patch or self.local_crop_size % patch:
            raise ParamsError(f"{p}.crop_size/local_crop_size: must be multiples of the patch size {patch}, "
                              f"got {self.crop_size}/{self.local_crop_size}")
        if self.local_crop_size > self.crop_size:
            raise ParamsError(f"{p}.local_crop_size: larger than crop_size {self.crop_size}")
        if self.ncrops < 3:
            raise ParamsError(f"{p}.ncrops: needs 2 global views and at least one local crop, got {self.ncrops}")
        if self.queue % (self.batch_size * self.ncrops):
            raise ParamsError(f"{p}.queue: must be a multiple of batch_size x ncrops = "
                              f"{self.batch_size * self.ncrops} (keys enqueued per step and GPU), got {self.queue}")
        if len(self.scale_range) != 2 or not 0 < self.scale_range[0] <= self.scale_range[1]:
            raise ParamsError(f"{p}.scale_range: needs [low, high] with 0 < low <= high, got {self.scale_range}")
        if len(self.color_jitter) != 4:
            raise ParamsError(f"{p}.color_jitter: needs [brightness, contrast, saturation, hue], got {self.color_jitter}")
        if not 0 <= self.low_thre <= self.high_thre <= 1 or not 0 <= self.bkg_thre <= 1:
            raise ParamsError(f"{p}.low_thre/high_thre/bkg_thre: need 0 <= low <= high <= 1 and bkg in [0, 1]")
        for k in ("proto_m", "momentum"):
            if not 0 <= getattr(self, k) <= 1:
                raise ParamsError(f"{p}.{k}: must be in [0, 1], got {getattr(self, k)}")
        for k in ("cam_scales", "seed_scales", "mask_scales", "seg_scales"):
            if not getattr(self, k):
                raise ParamsError(f"{p}.{k}: needs at least one scale")
            _positive(f"{p}.{k}", getattr(self, k))
        _check_rates(f"{p}.par_dilations", self.par_dilations)
        _check_rates(f"{p}.aspp_rates", self.aspp_rates)


@dataclass
class Report(Section):
    figure2_ids: list[str]
    figure3_ids: list[str]
    test_miou: Optional[float]  # a score from the VOC evaluation server, if any


@dataclass
class Params(Section):
    base: Base
    data: Data
    pretrain: Pretrain
    model: Model
    transcam: TransCAM
    cams: Cams
    bao: Bao
    ema: Ema
    seeds: Seeds
    masks: Masks
    psa: Psa
    deeplab: DeepLab
    evaluate: Evaluate
    seco: Seco
    report: Report


def _check_type(key: str, tp, value):
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ParamsError(f"{key}: must be one of {list(typing.get_args(tp))}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            if len(args) < len(typing.get_args(tp)):
                return None
            raise ParamsError(f"{key}: must be set, got null")
        errors = []
        for a in args:
            try:
                return _check_type(key, a, value)
            except ParamsError as e:
                errors.append(str(e))
        raise ParamsError(" or ".join(errors))
    if origin is list:
        if not isinstance(value, list):
            raise ParamsError(f"{key}: must be a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_check_type(f"{key}[{i}]", item, v) for i, v in enumerate(value)]
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{key}: must be a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{key}: must be an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{key}: must be true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ParamsError(f"{key}: must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported parameter type {tp} for {key}")


def _build(cls, raw, prefix: str):
    if not isinstance(raw, dict):
        raise ParamsError(f"{prefix or 'params'}: must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for k in raw:
        if k not in names:
            raise ParamsError(f"{prefix + '.' if prefix else ''}{k}: unknown parameter (known: {', '.join(names)})")
    values = {}
    for name in names:
        key = f"{prefix}.{name}" if prefix else name
        if name not in raw:
            raise ParamsError(f"{key}: missing parameter")
        values[name] = _check_type(key, hints[name], raw[name])
    obj = cls(**values)
    object.__setattr__(obj, "_key", f"{prefix}." if prefix else "")
    if hasattr(obj, "check"):
        obj.check(prefix)
    return obj


def parse_params(raw: dict) -> Params:
    return _build(Params, raw, "")


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: parameters file not found (run from the project root)") from None
    except yaml.YAMLError as e:
        raise ParamsError(f"{path}: not valid YAML: {e}") from None
    return parse_params(raw)

