"""BAO: online/target networks, threshold-free pseudo-labels, L_pcl and the target update (docs/method.md §3)."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from timm.layers import trunc_normal_

from bao.cam import max_norm, minmax_norm, refine
from bao.classes import IGNORE, NUM_CLASSES
from bao.models import create_model
from bao.models.deeplab import ASPPv2

# Figure 4's curves: the three target updates of §3.4 and the TransCAM+AMN baseline (fixed labels)
VARIANTS = ("amn", "share", "ema", "share+ema")
AMN_ASPP_RATES = (6, 12, 18, 24)  # AMN's classifier: _ASPP(2048, 21, rates=[6, 12, 18, 24])


HEADS = ("classifier_x", "amn_aspp")  # bao.head


def _release_init(label_enc: nn.Linear, classifier: nn.Conv2d) -> None:
    """i2mond/BAO network/conformer.py l.402-411 (``Net._init_weights``): the label encoder truncated
    normal std 0.02 with bias 0; ``classifier_x`` Kaiming-normal fan-out with its bias left at PyTorch's
    default (the release's Conv2d branch does not touch biases)."""
    trunc_normal_(label_enc.weight, std=0.02)
    nn.init.zeros_(label_enc.bias)
    nn.init.kaiming_normal_(classifier.weight, mode="fan_out", nonlinearity="relu")


class BAONet(nn.Module):
    """Conformer + TransCAM heads + a label-conditioned activation-map branch (docs/method.md §3.2).

    The multi-hot label is embedded by ``nn.Linear(20, C)`` and multiplied channel-wise into the CNN
    feature (``x * label_enc(y)``), a classifier maps it to S = 21 channels (background included), and
    the map is refined by the network's own attention (eq. 5). ``head`` (``bao.head``):

    * ``classifier_x`` (the release, i2mond/BAO network/conformer.py l.312, l.330, l.483-496): one 3x3
      conv, Kaiming fan-out; the label encoder truncated normal std 0.02;
    * ``amn_aspp`` (AMN net/resnet50_amn.py): ``Dropout(0.1)`` then DeepLab-v2's ASPP (dilations
      6/12/18/24 on AMN's 32x32 grid, or ``bao.aspp_rates`` scaled to a smaller one, N(0, 0.01)); the
      label encoder at PyTorch's default initialisation.
    """

    def __init__(self, backbone: nn.Module, num_classes: int = NUM_CLASSES, refine_am: bool = True,
                 attn_identity: float = 0.0, head: str = "classifier_x", aspp_rates=None):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"bao.head: {head!r} is not one of {HEADS}")
        self.backbone = backbone
        self.refine_am = refine_am
        self.attn_identity = attn_identity  # cams.attn_identity, used wherever this net refines a map
        self.head = head
        # bao.pcl_grad (a diagnostic, set by train_bao): "head" stops L_pcl's gradient at the AM branch's
        # inputs (the CNN feature and A*), so the backbone learns from L_cls alone; "all" is the release
        self.pcl_grad = "all"
        c = backbone.out_channels
        self.label_enc = nn.Linear(num_classes - 1, c)
        if head == "classifier_x":
            self.am_head = nn.Conv2d(c, num_classes, 3, padding=1)
            _release_init(self.label_enc, self.am_head)
        else:
            self.am_head = nn.Sequential(nn.Dropout(0.1), ASPPv2(c, num_classes, rates=tuple(aspp_rates or AMN_ASPP_RATES)))

    def new_parameters(self) -> list:
        """The layers that TransCAM's checkpoint lacks: the label encoder and the AM classifier."""
        return list(self.label_enc.parameters()) + list(self.am_head.parameters())

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> dict:
        """Adds to the backbone's outputs ``am_raw`` (the classifier's map), ``am`` (A* . am_raw, eq. 5),
        ``cams`` (A* . CAM, all 21 channels), ``cam_refined`` (its 20 foreground channels) and
        ``camsfg_ambg`` = [am[:, :1], cams[:, 1:]] (the release's seed map, conformer.py l.490-495)."""
        out = self.backbone(x, need_attn=True)
        feat, attn = out["feat"], out["attn"]
        if self.pcl_grad == "head":
            feat, attn = feat.detach(), attn.detach()
        f = feat * self.label_enc(label.float())[:, :, None, None]
        out["am_raw"] = self.am_head(f)
        # AM_o = A*_o . AM (eq. 5 applied to the AM, docs/method.md §3.2); bao.refine_am: false skips it
        out["am"] = refine(out["am_raw"], attn, self.attn_identity) if self.refine_am else out["am_raw"]
        out["cams"] = refine(out["cam"], out["attn"], self.attn_identity)  # M* (eq. 5), background channel too
        out["cam_refined"] = out["cams"][:, 1:]
        out["camsfg_ambg"] = torch.cat([out["am"][:, :1].float(), out["cam_refined"]], dim=1)
        return out


def build_bao(params, drop_path_rate: float = 0.0) -> BAONet:
    """The online/target network of the configured model (``bao.head``, ``bao.refine_am``, ``cams.attn_identity``)."""
    return BAONet(create_model(params.model.arch, num_classes=NUM_CLASSES, drop_path_rate=drop_path_rate),
                  refine_am=params.bao.refine_am, attn_identity=params.cams.attn_identity, head=params.bao.head,
                  aspp_rates=params.bao.aspp_rates)


def cls_loss(out: dict, label: torch.Tensor) -> torch.Tensor:
    """L_cls (eq. 7), TransCAM's one loss: multi-label soft margin on the sum of the conv head's GAP
    logits and the class-token logits, over the 20 foreground classes (train_TransCAM.py l.94); fp32."""
    return F.multilabel_soft_margin_loss((out["logits_conv"] + out["logits_trans"]).float()[:, 1:], label)


def eq6_scores(cam_fg_refined: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Target scores [M_bg*, M_fg*] (B, 21, h, w) from the refined foreground CAM (docs/method.md eq. 6),
    as the release computes them (i2mond/BAO train_bao.py l.150-156): the CAM times the image label,
    ReLU, each channel divided by its spatial max + 1e-5, background = 1 - the max over classes.
    Absent classes score 0 and never win the argmax (background or a present class scores >= 0.5)."""
    fg = max_norm(cam_fg_refined * label[:, :, None, None].to(cam_fg_refined.dtype))
    bg = 1.0 - fg.amax(dim=1, keepdim=True)  # eq. 6
    return torch.cat([bg, fg], dim=1)


def pseudo_labels(cam_fg_refined: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """p_t = argmax of eq. 6's scores over the 21 channels: no threshold (train_bao.py l.156)."""
    return eq6_scores(cam_fg_refined, label).argmax(dim=1)


def pcl_loss(logits: torch.Tensor, target: torch.Tensor, eps: float) -> torch.Tensor:
    """AMN's per-pixel classification loss (docs/method.md §4; AMN step/train_amn.py): cross-entropy
    against label-smoothed targets (1-eps on the pseudo class, eps/(C-1) elsewhere), averaged over
    background pixels and over foreground pixels separately, then (bg + fg) / 2; IGNORE (255) is ignored."""
    c = logits.shape[1]
    logp = F.log_softmax(logits.float(), dim=1)
    valid = target != IGNORE
    t = target.clamp(max=c - 1)
    smooth = torch.full_like(logp, eps / (c - 1)).scatter_(1, t[:, None], 1.0 - eps)
    per_pixel = -(logp * smooth).sum(1)
    bg = valid & (target == 0)
    fg = valid & (target > 0)
    loss_bg = per_pixel[bg].mean() if bg.any() else per_pixel.sum() * 0
    loss_fg = per_pixel[fg].mean() if fg.any() else per_pixel.sum() * 0
    return (loss_bg + loss_fg) / 2


def cosine_tau(step: int, total_steps: int, tau_base: float) -> float:
    """BYOL's schedule: tau = 1 - (1 - tau_base) * (cos(pi k / K) + 1) / 2, from tau_base to 1
    (the release's ``pyutils.cosine_scheduler(0.9995, 1.0, 1322)[k]``, tool/pyutils.py l.249-260)."""
    k = min(max(step, 0), total_steps)
    return 1.0 - (1.0 - tau_base) * (math.cos(math.pi * k / max(total_steps, 1)) + 1.0) / 2.0


EMA_SPANS = ("epoch", "run")  # ema.span
EMA_AVERAGES = ("params", "params+buffers")  # ema.averages


def ema_tau(step: int, batch: int, steps_per_epoch: int, total_steps: int, tau_base: float, span: str) -> float:
    """tau after optimiser step ``step`` (1-based over the run), the ``batch``-th (0-based) of its epoch.

    ``span: epoch`` is the release (train_bao.py l.113, l.190): a cosine over one epoch's steps indexed by
    the batch within the epoch, so it restarts at tau_base every epoch (1,322 = a VOC train_aug epoch at
    batch 8). ``span: run``: one cosine over the whole run (BYOL)."""
    if span == "epoch":
        return cosine_tau(batch, steps_per_epoch, tau_base)
    if span == "run":
        return cosine_tau(step, total_steps, tau_base)
    raise ValueError(f"ema.span: {span!r} is not one of {EMA_SPANS}")


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, tau: float, averages: str = "params+buffers") -> None:
    """theta <- tau * theta + (1 - tau) * omega.

    ``averages: params`` (the release, train_bao.py l.191-192: ``zip(model_s.parameters(),
    model_t.parameters())``) leaves the target's buffers alone: a target in train mode keeps its own
    BatchNorm running statistics. ``params+buffers`` also averages float buffers (BN running statistics)
    and copies integer ones (num_batches_tracked)."""
    if averages == "params":
        for p_t, p_o in zip(target.parameters(), online.parameters()):
            p_t.mul_(tau).add_(p_o.detach(), alpha=1.0 - tau)
        return
    if averages != "params+buffers":
        raise ValueError(f"ema.averages: {averages!r} is not one of {EMA_AVERAGES}")
    t_state = target.state_dict()
    for k, v in online.state_dict().items():
        if v.dtype.is_floating_point:
            t_state[k].mul_(tau).add_(v.detach(), alpha=1.0 - tau)
        else:
            t_state[k].copy_(v)


@torch.no_grad()
def share(target: nn.Module, online: nn.Module) -> None:
    """theta <- omega, buffers included (the release's epoch 0: ``model_t.load_state_dict(model_s.state_dict())``,
    train_bao.py l.181-183)."""
    ema_update(target, online, 0.0, "params+buffers")


def update_mode(update: str, epoch: int, share_epochs: int) -> str:
    """Which update applies during ``epoch`` (0-based): 'share', 'ema' or 'none' (amn: no target)."""
    if update == "share+ema":
        return "share" if epoch < share_epochs else "ema"
    return {"share": "share", "ema": "ema", "amn": "none"}[update]


# seeds.combine; the first is the release's readout and the default, the others are ablation rows
COMBINES = ("camsfg_ambg", "am", "cam", "mean", "am_bg")


def release_norm(x: torch.Tensor) -> torch.Tensor:
    """The release's per-channel normalisation of summed maps (i2mond/BAO infer_bao.py l.86-90, TransCAM's
    infer_TransCAM.py): ReLU; values below the channel's min + 1e-5 set to 0 (min taken after the ReLU);
    then (x - min - 1e-5) / (max - min + 1e-5). The zeroed values become negative, and an all-zero
    channel (an absent class) becomes -1 everywhere: this is what the released code computes."""
    x = F.relu(x.float())
    mx = x.flatten(-2).amax(-1)[..., None, None]
    mn = x.flatten(-2).amin(-1)[..., None, None]
    x = torch.where(x < mn + 1e-5, torch.zeros_like(x), x)
    return (x - mn - 1e-5) / (mx - mn + 1e-5)


def camsfg_ambg_scores(maps_sum: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """The release's seed scores (21, H, W): ``camsfg_ambg`` = [the refined AM's raw background logit,
    the refined CAM's foreground] summed over the passes, times [1, label], then ``release_norm``; the
    seed is their argmax (infer_bao.py l.71-102). No softmax, no threshold."""
    keep = torch.cat([maps_sum.new_ones(1), label.to(maps_sum)])[:, None, None]  # on the maps' device
    return release_norm(maps_sum * keep)


def combine_seed_scores(am_sum: torch.Tensor, cam_sum: torch.Tensor, label: torch.Tensor, combine: str,
                        passes: int = 1) -> torch.Tensor:
    """Seed scores (21, H, W) from the target's refined activation map and refined foreground CAM, each
    summed over ``passes`` inference passes (docs/method.md §3.5). The seed is their argmax: no threshold.

    camsfg_ambg: the release (``camsfg_ambg_scores``): [AM background logit, CAM foreground], min-max.
    Ablation rows, the AM's logits averaged over the passes:
    am: softmax over background + the image's classes; cam: eq. 6 on the min-max normalised CAM;
    mean: the normalised foreground channels of both averaged, background from AM;
    am_bg: the AM's background softmax probability max-normalised, stacked on the min-max refined CAM.
    Except for camsfg_ambg (which keeps the release's values) absent classes are -inf.
    """
    return seed_scores_by_rule(am_sum, cam_sum, label, (combine,), passes)[combine]


def seed_scores_by_rule(am_sum: torch.Tensor, cam_sum: torch.Tensor, label: torch.Tensor, combines,
                        passes: int = 1) -> dict[str, torch.Tensor]:
    """``combine_seed_scores`` for several rules, the normalised CAM and the AM's softmax computed once."""
    for c in combines:
        if c not in COMBINES:
            raise ValueError(f"seeds.combine: {c!r} is not one of {COMBINES}")
    present = torch.cat([label.new_ones(1, dtype=torch.bool), label > 0])[:, None, None].to(am_sum.device)
    out = {}
    if "camsfg_ambg" in combines:
        out["camsfg_ambg"] = camsfg_ambg_scores(torch.cat([am_sum[:1].float(), cam_sum.float()]), label)
    if {"cam", "am_bg", "mean"} & set(combines):
        cam_norm = minmax_norm(cam_sum)
    if {"am", "am_bg", "mean"} & set(combines):
        prob = (am_sum.float() / passes).masked_fill(~present, float("-inf")).softmax(0)
    for c in combines:
        if c == "cam":
            fg = cam_norm * present[1:]
            scores = torch.cat([1.0 - fg.amax(0, keepdim=True), fg])  # eq. 6
        elif c == "am":
            scores = prob
        elif c == "am_bg":
            scores = torch.cat([max_norm(prob[:1]), cam_norm])
        elif c == "mean":
            scores = torch.cat([prob[:1], (max_norm(prob[1:]) + cam_norm) / 2])
        else:
            continue
        out[c] = scores.masked_fill(~present, float("-inf"))
    return {c: out[c] for c in combines}


def seed_labels(scores: torch.Tensor) -> np.ndarray:
    """The seed (H, W) uint8: argmax of (21, H, W) scores over the class axis, the first maximum on ties.
    ``torch.max(dim).indices`` has argmax's tie rule and is several times faster than ``argmax(0)`` on
    a CPU, where a reduction over the outer axis is slow (bench/seed_argmax.py). Scores on a device are
    brought to the host."""
    return scores.max(0).indices.cpu().numpy().astype(np.uint8)
