"""Stage train_bao@<variant>: online/target training (BAO.md §3) or the TransCAM+AMN baseline.

    python stages/train_bao.py {share,ema,share+ema,amn}

Both networks start from the TransCAM checkpoint. Per step: the target (eval mode, no gradients,
same augmented crop) gives threshold-free pseudo-labels p_t (eq. 6); the online model is trained with
L = L_cls + L_pcl (eq. 8); then the target is updated (Share / EMA with a cosine tau / Share then EMA).
``amn``: no target; the online model learns L_pcl on fixed AMN-style labels from the TransCAM CAMs.
After every epoch (and at epoch 0) the target's seed mIoU on VOC train is logged: Figure 4.
Outputs ``models/bao/<variant>/target.pt`` and ``metrics/bao/<variant>.csv``.
"""
import copy
import sys
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from bao.config import ParamsError, section_dict
from bao.data import VOCDataset
from bao.data.prepare import md5sum
from bao.data.transforms import TrainCrops
from bao.io import atomic_file, load_label_png, params_hash, write_text
from bao.method import COMBINES, BAONet, cosine_tau, ema_update, pcl_loss, pseudo_labels, share, update_mode
from bao.models import create_model
from bao.models.weights import safe_load
from bao.runtime import Checkpointer, unwrap
from bao.seeds import seed_mious
from bao.stage import main
from bao.train import Loop, Runtime

AMN_LABELS = Path("cams/amn_labels")


def feature_labels(labels: torch.Tensor, size) -> torch.Tensor:
    """Nearest-resize (B, H, W) labels to the feature grid (AMN resizes labels to the logit size)."""
    return F.interpolate(labels[:, None].float(), size=size, mode="nearest")[:, 0].long()


def run(params, variant: str):
    if variant not in params.bao.variants:
        raise ParamsError(f"bao.variants: {variant!r} is not one of {params.bao.variants}")
    rt = Runtime.from_params(params.base)
    cfg, a = params.bao, params.bao.augment
    ds = VOCDataset(params.data.root, "train_aug", masks=None)
    extra = (lambda i: load_label_png(AMN_LABELS / f"{i}.png")) if variant == "amn" else None
    crops = TrainCrops(ds, a.resize_long, a.crop_size, a.color_jitter, rt.seed, extra=extra)

    online = BAONet(create_model(params.model.arch, num_classes=21, drop_path_rate=params.model.drop_path_rate),
                    refine_am=cfg.refine_am, attn_identity=params.cams.attn_identity)
    online.backbone.load_state_dict(safe_load("models/transcam/model.pt"))
    target = None
    if variant != "amn":
        target = copy.deepcopy(online).to(rt.device).eval().requires_grad_(False)
    model = rt.wrap(online)
    net = unwrap(model)
    new = list(net.label_enc.parameters()) + list(net.am_head.parameters())
    opt = torch.optim.AdamW([{"params": list(net.backbone.parameters()), "lr": cfg.lr},
                             {"params": new, "lr": cfg.lr * cfg.head_lr_mult}],
                            lr=cfg.lr, weight_decay=cfg.weight_decay, eps=1e-8)
    steps_per_epoch = len(ds) // cfg.batch_size
    total = steps_per_epoch * cfg.epochs

    def step(batch):
        x = batch["image"].to(rt.device, non_blocking=True)
        y = batch["label"].to(rt.device)
        valid = batch["valid"].to(rt.device)
        with rt.amp():
            out = model(x, y)
        grid = out["am"].shape[2:]
        if target is not None:
            with torch.no_grad(), rt.amp():
                t = target(x, y)
            p_t = pseudo_labels(t["cam_refined"], y)  # eq. 6, argmax, no threshold
        else:
            p_t = feature_labels(batch["extra"].to(rt.device), grid)
        p_t = p_t.masked_fill(feature_labels(valid.long(), grid) == 0, 255)  # crop padding
        l_cls = F.multilabel_soft_margin_loss((out["logits_conv"] + out["logits_trans"]).float()[:, 1:], y)
        l_pcl = pcl_loss(out["am"], p_t, cfg.label_smoothing)
        # eq. 8; the amn baseline is AMN's own loss, L_pcl alone (amn.md A3)
        loss = l_pcl if variant == "amn" else l_cls + l_pcl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss.item(), "l_cls": l_cls.item(), "l_pcl": l_pcl.item()}

    def after_step(global_step, epoch):
        mode = update_mode(variant, epoch, params.ema.share_epochs)
        if mode == "share":
            share(target, net)
        elif mode == "ema":
            ema_update(target, net, cosine_tau(global_step, total, params.ema.tau))

    def evaluate(chosen):
        # every seeds.combine rule from one pass of the network; seed_miou is the configured one
        model_ = target if target is not None else net
        res = seed_mious(model_, params.data.root, "train", params.cams, COMBINES, rt.device, rt.amp)
        return {"seed_miou": res[chosen]["miou"], **{f"miou_{c}": r["miou"] for c, r in res.items()}}

    def end_epoch(epoch):
        return evaluate(params.seeds.combine) if rt.dist.main else {}

    def start():
        # epoch 0: the TransCAM weights; the AM head is untrained, so eq. 6 on the CAM (combine=cam)
        return {"epoch": 0, "step": 0, **evaluate("cam")} if rt.dist.main else None

    key = params_hash(variant, section_dict(params.model), section_dict(cfg), section_dict(params.ema),
                      section_dict(params.cams), params.seeds.combine, params.base.seed,
                      md5sum("models/transcam/model.pt"))
    ckpt = Checkpointer(f"checkpoints/train_bao/{variant}", key, enabled=rt.dist.main)
    loop = Loop(rt, model, opt, crops, cfg.batch_size, cfg.epochs, ckpt, cfg.checkpoint_every, step,
                f"train_bao@{variant}", after_step=after_step, end_epoch=end_epoch,
                extra_state={"target": target} if target is not None else {})
    history = loop.run(start_hook=start)
    if rt.dist.main:
        with atomic_file(Path("models/bao") / variant / "target.pt") as f:
            torch.save((target if target is not None else net).state_dict(), f)
        write_text(f"metrics/bao/{variant}.csv", pd.DataFrame(history).to_csv(index=False))
        ckpt.finish()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python stages/train_bao.py {share,ema,share+ema,amn}")
    main(lambda p: run(p, sys.argv[1]))
