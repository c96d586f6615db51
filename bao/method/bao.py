"""BAO: online/target networks, threshold-free pseudo-labels, L_pcl and the target update (docs/method.md §3)."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import trunc_normal_

from bao.config.choices import EMA_AVERAGES, EMA_SPANS, HEADS
from bao.core.classes import IGNORE
from bao.method.norms import max_norm
from bao.method.transcam import refine
from bao.models.aspp import ASPPv2
from bao.models.factory import create_model

AMN_ASPP_RATES = (6, 12, 18, 24)  # AMN's classifier: _ASPP(2048, 21, rates=[6, 12, 18, 24])


def _release_init(label_enc: nn.Linear, classifier: nn.Conv2d) -> None:
    """i2mond/BAO network/conformer.py l.402-411 (``Net._init_weights``): the label encoder truncated
    normal std 0.02 with bias 0; ``classifier_x`` Kaiming-normal fan-out with its bias left at PyTorch's
    default (the release's Conv2d branch does not touch biases)."""
    trunc_normal_(label_enc.weight, std=0.02)
    nn.init.zeros_(label_enc.bias)
    nn.init.kaiming_normal_(classifier.weight, mode="fan_out", nonlinearity="relu")


class BAONet(nn.Module):
    """Conformer + TransCAM heads + a label-conditioned activation-map branch (docs/method.md §3.2).

    The multi-hot label of the K foreground classes (VOC: 20) is embedded by ``nn.Linear(K, C)`` and
    multiplied channel-wise into the CNN feature (``x * label_enc(y)``), a classifier maps it to S = K + 1
    channels (background included), and the map is refined by the network's own attention (eq. 5). ``head`` (``bao.head``):

    * ``classifier_x`` (the release, i2mond/BAO network/conformer.py l.312, l.330, l.483-496): one 3x3
      conv, Kaiming fan-out; the label encoder truncated normal std 0.02;
    * ``amn_aspp`` (AMN net/resnet50_amn.py): ``Dropout(0.1)`` then DeepLab-v2's ASPP (dilations
      6/12/18/24 on AMN's 32x32 grid, or ``bao.aspp_rates`` scaled to a smaller one, N(0, 0.01)); the
      label encoder at PyTorch's default initialisation.
    """

    def __init__(
        self,
        backbone: nn.Module,
        refine_am: bool = True,
        attn_identity: float = 0.0,
        head: str = "classifier_x",
        aspp_rates=None,
    ):
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
        c, num_classes = backbone.out_channels, backbone.num_classes  # the AM has the CAM's classes
        self.label_enc = nn.Linear(num_classes - 1, c)
        if head == "classifier_x":
            self.am_head = nn.Conv2d(c, num_classes, 3, padding=1)
            _release_init(self.label_enc, self.am_head)
        else:
            self.am_head = nn.Sequential(
                nn.Dropout(0.1), ASPPv2(c, num_classes, rates=tuple(aspp_rates or AMN_ASPP_RATES))
            )

    def new_parameters(self) -> list:
        """The layers that TransCAM's checkpoint lacks: the label encoder and the AM classifier."""
        return list(self.label_enc.parameters()) + list(self.am_head.parameters())

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> dict:
        """Adds to the backbone's outputs ``am_raw`` (the classifier's map), ``am`` (A* . am_raw, eq. 5),
        ``cams`` (A* . CAM, all K + 1 channels), ``cam_refined`` (its K foreground channels) and
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


def build_bao(params, num_classes: int, drop_path_rate: float = 0.0) -> BAONet:
    """The online/target network of the configured model (``bao.head``, ``bao.refine_am``,
    ``cams.attn_identity``) over ``num_classes`` classes, background included."""
    return BAONet(
        create_model(params.model.arch, num_classes=num_classes, drop_path_rate=drop_path_rate),
        refine_am=params.bao.refine_am,
        attn_identity=params.cams.attn_identity,
        head=params.bao.head,
        aspp_rates=params.bao.aspp_rates,
    )


def eq6_scores(cam_fg_refined: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Target scores [M_bg*, M_fg*] (B, K + 1, h, w) from the refined foreground CAM (docs/method.md eq. 6),
    as the release computes them (i2mond/BAO train_bao.py l.150-156): the CAM times the image label,
    ReLU, each channel divided by its spatial max + 1e-5, background = 1 - the max over classes.
    Absent classes score 0 and never win the argmax (background or a present class scores >= 0.5)."""
    fg = max_norm(cam_fg_refined * label[:, :, None, None].to(cam_fg_refined.dtype))
    bg = 1.0 - fg.amax(dim=1, keepdim=True)  # eq. 6
    return torch.cat([bg, fg], dim=1)


def pseudo_labels(cam_fg_refined: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """p_t = argmax of eq. 6's scores over the K + 1 channels: no threshold (train_bao.py l.156)."""
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
