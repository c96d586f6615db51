"""BAO: online/target networks, threshold-free pseudo-labels, L_pcl and the target update (docs/method.md §3)."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from bao.cam import max_norm, minmax_norm, refine
from bao.classes import IGNORE, NUM_CLASSES
from bao.models import create_model
from bao.models.deeplab import ASPPv2

# Figure 4's curves: the three target updates of §3.4 and the TransCAM+AMN baseline (fixed labels)
VARIANTS = ("amn", "share", "ema", "share+ema")
AMN_ASPP_RATES = (6, 12, 18, 24)  # AMN's classifier: _ASPP(2048, 21, rates=[6, 12, 18, 24])


class BAONet(nn.Module):
    """Conformer + TransCAM heads + AMN's label-conditioned activation-map branch (docs/method.md §3.2).

    As AMN builds it (net/resnet50_amn.py): the multi-hot label is embedded by ``nn.Linear(20, C)``
    (PyTorch's default initialisation) and multiplied channel-wise into the CNN feature
    (``x * label_enc(y)``); the classifier is ``Dropout(0.1)`` then DeepLab-v2's ASPP (four 3x3 convs,
    dilations 6/12/18/24, biased, summed, weights N(0, 0.01)) to S = 21 channels, background included.
    BAO then refines the map by the network's own attention (eq. 5). Differences from AMN, each a
    decision of docs/method.md §3.2: eval mode turns the dropout off at inference (AMN's overridden
    ``train()`` leaves it on); the learning rate of these layers is ``bao.head_lr_mult`` x ``bao.lr``.
    """

    def __init__(self, backbone: nn.Module, num_classes: int = NUM_CLASSES, refine_am: bool = True,
                 attn_identity: float = 0.0):
        super().__init__()
        self.backbone = backbone
        self.refine_am = refine_am
        self.attn_identity = attn_identity  # cams.attn_identity, used wherever this net refines a map
        c = backbone.out_channels
        self.label_enc = nn.Linear(num_classes - 1, c)
        self.am_head = nn.Sequential(nn.Dropout(0.1), ASPPv2(c, num_classes, rates=AMN_ASPP_RATES))

    def new_parameters(self) -> list:
        """AMN's "newly added" layers: the label encoder and the AM classifier."""
        return list(self.label_enc.parameters()) + list(self.am_head.parameters())

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> dict:
        out = self.backbone(x, need_attn=True)
        f = out["feat"] * self.label_enc(label)[:, :, None, None]
        out["am_raw"] = self.am_head(f)
        # AM_o = A*_o . AM (eq. 5 applied to the AM, docs/method.md §3.2); bao.refine_am: false skips it
        out["am"] = refine(out["am_raw"], out["attn"], self.attn_identity) if self.refine_am else out["am_raw"]
        out["cam_refined"] = refine(out["cam"][:, 1:], out["attn"], self.attn_identity)  # M^fg* (eq. 5)
        return out


def build_bao(params, drop_path_rate: float = 0.0) -> BAONet:
    """The online/target network of the configured model (``bao.refine_am``, ``cams.attn_identity``)."""
    return BAONet(create_model(params.model.arch, num_classes=NUM_CLASSES, drop_path_rate=drop_path_rate),
                  refine_am=params.bao.refine_am, attn_identity=params.cams.attn_identity)


def cls_loss(out: dict, label: torch.Tensor) -> torch.Tensor:
    """L_cls (eq. 7), TransCAM's one loss: multi-label soft margin on the sum of the conv head's GAP
    logits and the class-token logits, over the 20 foreground classes (train_TransCAM.py l.94); fp32."""
    return F.multilabel_soft_margin_loss((out["logits_conv"] + out["logits_trans"]).float()[:, 1:], label)


def eq6_scores(cam_fg_refined: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Target scores [M_bg*, M_fg*] (B, 21, h, w) from the refined foreground CAM (docs/method.md eq. 6).

    Project decisions (docs/method.md §3.1): ReLU and per-class max-normalisation before eq. 6; classes absent
    from the image label take no part (score -inf, also excluded from the max of eq. 6).
    """
    present = label[:, :, None, None] > 0
    fg = max_norm(cam_fg_refined) * present
    bg = 1.0 - fg.amax(dim=1, keepdim=True)  # eq. 6
    fg = fg.masked_fill(~present, float("-inf"))
    return torch.cat([bg, fg], dim=1)


def pseudo_labels(cam_fg_refined: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """p_t = argmax of eq. 6's scores over background + the image's classes: no threshold."""
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
    """BYOL's schedule: tau = 1 - (1 - tau_base) * (cos(pi k / K) + 1) / 2, from tau_base to 1."""
    k = min(max(step, 0), total_steps)
    return 1.0 - (1.0 - tau_base) * (math.cos(math.pi * k / max(total_steps, 1)) + 1.0) / 2.0


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """theta <- tau * theta + (1 - tau) * omega for parameters and float buffers (BN running
    statistics); integer buffers (num_batches_tracked) are copied."""
    t_state = target.state_dict()
    for k, v in online.state_dict().items():
        if v.dtype.is_floating_point:
            t_state[k].mul_(tau).add_(v.detach(), alpha=1.0 - tau)
        else:
            t_state[k].copy_(v)


@torch.no_grad()
def share(target: nn.Module, online: nn.Module) -> None:
    """theta <- omega."""
    ema_update(target, online, 0.0)


def update_mode(update: str, epoch: int, share_epochs: int) -> str:
    """Which update applies during ``epoch`` (0-based): 'share', 'ema' or 'none' (amn: no target)."""
    if update == "share+ema":
        return "share" if epoch < share_epochs else "ema"
    return {"share": "share", "ema": "ema", "amn": "none"}[update]


COMBINES = ("am", "cam", "mean", "am_bg")


def combine_seed_scores(am_logits: torch.Tensor, cam_fg: torch.Tensor, label: torch.Tensor, combine: str) -> torch.Tensor:
    """Seed scores (21, H, W) from the target's activation map and refined foreground CAM (docs/method.md §3.5).

    am: softmax over background + the image's classes; cam: eq. 6 on the min-max normalised CAM;
    mean: the normalised foreground channels of both averaged, background from AM;
    am_bg: M_t = [AM^bg_t, M^fg*_t], the AM's background channel (1 x h x w) stacked on the refined
    foreground CAM ((S-1) x h x w), as the OCR of §3.5 gives the shapes. The background probability
    is max-normalised like the CAM channels: label smoothing (eps) caps a trained AM's softmax near
    1 - eps, which would otherwise lose every pixel to a CAM channel that peaks at 1.
    Absent classes are -inf, so the seed is a plain argmax: no threshold.
    """
    present = torch.cat([torch.ones(1, dtype=torch.bool), label > 0])[:, None, None]
    if combine == "cam":
        fg = minmax_norm(cam_fg) * present[1:]
        scores = torch.cat([1.0 - fg.amax(0, keepdim=True), fg])  # eq. 6
        return scores.masked_fill(~present, float("-inf"))
    prob = am_logits.float().masked_fill(~present, float("-inf")).softmax(0)
    if combine == "am":
        return prob.masked_fill(~present, float("-inf"))
    if combine == "am_bg":
        scores = torch.cat([max_norm(prob[:1]), minmax_norm(cam_fg)])
        return scores.masked_fill(~present, float("-inf"))
    if combine != "mean":
        raise ValueError(f"seeds.combine: {combine!r} is not one of {COMBINES}")
    fg = (max_norm(prob[1:]) + minmax_norm(cam_fg)) / 2
    scores = torch.cat([prob[:1], fg])
    return scores.masked_fill(~present, float("-inf"))


def seed_labels(scores: torch.Tensor) -> np.ndarray:
    """The seed (H, W) uint8: argmax of (21, H, W) scores over the class axis, the first maximum on ties.
    ``torch.max(dim).indices`` has argmax's tie rule and is several times faster than ``argmax(0)`` on
    a CPU, where a reduction over the outer axis is slow (bench/seed_argmax.py). Scores on a device are
    brought to the host."""
    return scores.max(0).indices.cpu().numpy().astype(np.uint8)
