"""Stage train_bao_<variant>: online/target training (docs/method.md §3) or the TransCAM+AMN baseline.

    python -m stages.train_bao {amn,share,ema,share+ema}

Both networks start from the TransCAM checkpoint. Per step: the target (no gradients, in
``bao.target_mode``: the release's train mode by default, same augmented crop) gives threshold-free
pseudo-labels p_t (eq. 6); the online model is trained with L = L_cls + L_pcl (eq. 8); then the target
is updated (Share / EMA with a cosine tau over ``ema.span`` / Share then EMA; i2mond/BAO train_bao.py).
``amn``: no target; the online model learns L_pcl on fixed AMN-style labels from the TransCAM CAMs.
At epoch 0, after every ``bao.epoch_eval_every``-th epoch and after the last, the seed mIoU on VOC train
of the target (``miou_<rule>``) and of the online model (``online_miou_<rule>``) is logged for every
readout of ``bao.method.READOUTS`` (Figure 4), at ``bao.epoch_eval_scales`` (× flip), one protocol for
every scored epoch. Outputs ``<paths.bao>/<variant>/model.pt`` (the target; for amn the online model)
and ``metrics/bao/<variant>.csv`` (one row per epoch; unscored epochs have blank scores).
"""

import copy
import math
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from bao.config.bao import Bao, Ema
from bao.config.choices import UPDATES
from bao.config.transcam import Cams, Model
from bao.core.classes import IGNORE
from bao.core.io import load_label_png
from bao.core.launch import launcher
from bao.core.loop import Loop, Runtime
from bao.core.pipeline import paths
from bao.core.runtime import unwrap
from bao.core.stage import main_with_item
from bao.data.transforms import TrainCrops
from bao.data.voc import VOCDataset
from bao.method.bao import build_bao, ema_tau, ema_update, pcl_loss, pseudo_labels, share, update_mode
from bao.method.readouts import READOUTS
from bao.method.seeds import seed_mious
from bao.method.transcam import cls_loss
from bao.models.weights import START_FILE, safe_load, save_trained


def stage_name(variant: str) -> str:
    """dvc.yaml's stage for a variant: train_bao_share_ema for share+ema."""
    return "train_bao_" + variant.replace("+", "_")


def feature_labels(labels: torch.Tensor, size) -> torch.Tensor:
    """Nearest-resize (B, H, W) labels to the feature grid, each cell taking the pixel at its centre as
    AMN's PIL NEAREST resize does (``nearest-exact``; ``nearest`` would take the top-left pixel)."""
    return F.interpolate(labels[:, None].float(), size=size, mode="nearest-exact")[:, 0].long()


def run(params, variant: str):
    P = paths()
    stage = stage_name(variant)
    rt = Runtime.from_params(params.base)
    cfg, a = params.bao, params.bao.augment
    ds = VOCDataset(P.data, "train_aug", masks=None)
    amn_dir = Path(P.amn_labels)
    extra = (lambda i: load_label_png(amn_dir / f"{i}.png")) if variant == "amn" else None
    crops = TrainCrops(ds, a.resize_long, a.crop_size, a.color_jitter, rt.seed, extra=extra)

    online = build_bao(params, ds.space.n, drop_path_rate=params.model.drop_path_rate)
    online.pcl_grad = cfg.pcl_grad  # the target never sees a loss, so only the online model needs it
    online.backbone.load_state_dict(safe_load(Path(P.transcam) / START_FILE))  # transcam.bao_start_epoch
    target = None
    if variant != "amn":
        # the release never calls model_t.eval() (train_bao.py l.82-111): BatchNorm on batch statistics
        # (and updating its own running statistics), drop-path on; bao.target_mode: eval turns both off
        target = copy.deepcopy(online).to(rt.device).train(cfg.target_mode == "train").requires_grad_(False)
    model = rt.wrap(online, unused_parameters=variant == "amn")  # amn: L_pcl alone, the classifier gets none
    net = unwrap(model)
    # TransCAM's optimiser (the paper keeps TransCAM's hyper-parameters); AMN's new layers may get a
    # multiple of the lr (bao.head_lr_mult; AMN: 1e-4 vs 5e-6, x20)
    opt = torch.optim.AdamW(
        [
            {"params": list(net.backbone.parameters()), "lr": cfg.lr},
            {"params": net.new_parameters(), "lr": cfg.lr * cfg.head_lr_mult},
        ],
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        eps=1e-8,
    )
    steps_per_epoch = len(ds) // cfg.batch_size  # drop_last, as batch_indices
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
            if cfg.ignore_padding:  # the release labels and counts the crop's zero padding like any cell
                p_t = p_t.masked_fill(feature_labels(valid.long(), grid) == 0, IGNORE)
        else:  # the AMN labels mark the padding 255 themselves
            p_t = feature_labels(batch["extra"].to(rt.device), grid)
        l_cls = cls_loss(out, y)
        l_pcl = pcl_loss(out["am"], p_t, cfg.label_smoothing)
        # eq. 8 (the release weighs L_pcl by --l_pcl, 1.0); the amn baseline is AMN's own loss, L_pcl
        # alone (docs/method.md §4)
        w = cfg.l_pcl
        loss = w * l_pcl if variant == "amn" else l_cls + w * l_pcl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss.item(), "l_cls": l_cls.item(), "l_pcl": l_pcl.item()}

    def mode_of(epoch):
        # the target update of an epoch; ema.* are read only by the variants that use them (dvc.yaml
        # declares them there alone)
        return update_mode(variant, epoch, params.ema.share_epochs if variant == "share+ema" else 0)

    def after_step(global_step, epoch):
        mode = mode_of(epoch)
        if mode == "share":
            share(target, net)
        elif mode == "ema":
            e = params.ema
            batch = global_step - 1 - epoch * steps_per_epoch  # 0-based within the epoch
            ema_update(target, net, ema_tau(global_step, batch, steps_per_epoch, total, e.tau, e.span), e.averages)

    c = params.cams
    quick = SimpleNamespace(scales=cfg.epoch_eval_scales or c.scales, flip=c.flip, keep_aspect=c.keep_aspect)

    def evaluate(rules, online_is_target=False):
        # every readout of the seed model (the target; amn: the online model) and, beside a target, of
        # the online model, from one pass of each network; one protocol at every epoch (Figure 4)
        models = {"": target if target is not None else net}
        if target is not None and not online_is_target:
            models["online_"] = net
        row = {}
        for prefix, m in models.items():
            res = seed_mious(m, P.data, "train", quick, rules, rt.device, rt.amp)
            row.update({f"{prefix}miou_{r}": res[r]["miou"] if r in res else math.nan for r in READOUTS})
        if online_is_target:  # the same weights and buffers: the same scores, without a second pass
            row.update({f"online_miou_{r}": row[f"miou_{r}"] for r in READOUTS})
        return {**row, "scales": "/".join(map(str, quick.scales))}

    def end_epoch(epoch):
        if not rt.dist.main:
            return {}
        # after an epoch of Share (``epoch`` counts the finished ones) the target is the online model
        shared = target is not None and mode_of(epoch - 1) == "share"
        return evaluate(READOUTS, online_is_target=shared)

    def start():
        # epoch 0: the TransCAM weights; the AM head is untrained, so only eq. 6 on the CAM is scored
        return {"epoch": 0, "step": 0, **evaluate(("cam",))} if rt.dist.main else None

    loop = Loop(
        rt,
        model,
        opt,
        crops,
        cfg.batch_size,
        cfg.epochs,
        rt.checkpointer(stage),
        cfg.checkpoint_every,
        step,
        stage,
        after_step=None if variant == "amn" else after_step,
        end_epoch=end_epoch,
        eval_every=cfg.epoch_eval_every,
        extra_state={"target": target} if target is not None else {},
    )
    loop.finish(
        loop.run(start_hook=start),
        Path(P.metrics.bao) / f"{variant}.csv",
        lambda: save_trained(target if target is not None else net, Path(P.bao) / variant),
    )


if __name__ == "__main__":
    main_with_item(run, "train_bao", UPDATES, [Model, Cams, Bao, Ema], stage=stage_name, launcher=launcher)
