"""Stage train_transcam: TransCAM on train_aug (docs/method.md §2; TransCAM train_TransCAM.py).

One multi-label soft-margin loss on the sum of the conv head's GAP logits and the class-token
logits, over the 20 foreground classes (``bao.method.cls_loss``); AdamW, constant learning rate.
After every ``transcam.epoch_eval_every``-th epoch and the last, the seed on VOC train at its best
background threshold (the oracle) is scored at ``transcam.epoch_eval_scales`` (× flip), one protocol
for every epoch, so that the curve shows when training has converged. ``transcam.bao_start_epoch`` keeps the weights after that epoch as BAO's start,
so that BAO (that many TransCAM epochs, then ``bao.epochs``) and TransCAM's Table 1 row (``transcam.epochs``)
can get the same total steps; null starts BAO from the final weights. Outputs ``<paths.transcam>/model.pt``
(TransCAM's row), ``<paths.transcam>/start.pt`` (BAO's start) and ``metrics/train_transcam.csv``.
"""

import os
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import torch

from bao.config.transcam import Cams, Model, TransCAM
from bao.core.classes import VOC
from bao.core.io import write_text
from bao.core.launch import launcher
from bao.core.loop import Carried, Loop, Runtime
from bao.core.pipeline import paths
from bao.core.runtime import unwrap
from bao.core.stage import main
from bao.data.transforms import TrainCrops
from bao.data.voc import VOCDataset
from bao.method.transcam import cls_loss, transcam_oracle
from bao.models.factory import create_model
from bao.models.weights import START_FILE, load_pretrained, load_released_transcam, save_state, save_trained, staged
from bao.scoring.labels import threshold_range

STAGE = "train_transcam"


def build_model(params, num_classes: int):
    model = create_model(params.model.arch, num_classes=num_classes, drop_path_rate=params.model.drop_path_rate)
    weights = staged(paths().pretrained.conformer, params.model.pretrained, "model.pretrained")
    if weights is not None:
        load_pretrained(model, weights)
    return model


def run(params):
    P = paths()
    cfg = params.transcam
    released = staged(P.pretrained.transcam, cfg.released, "transcam.released")
    if released is not None:  # TransCAM's published classifier stands in for this training
        if os.environ.get("RANK", "0") != "0":  # launched on several processes: one writes
            return
        model = create_model(params.model.arch, num_classes=VOC.n)  # VOC-trained (check_params: VOC only)
        load_released_transcam(model, released)
        save_trained(model, P.transcam)
        save_state(model.state_dict(), Path(P.transcam) / START_FILE)
        write_text(P.metrics.train_transcam, pd.DataFrame([{"epoch": 0, "loss": float("nan")}]).to_csv(index=False))
        print(f"train_transcam: the released checkpoint {cfg.released} is the TransCAM model (no training)")
        return
    rt = Runtime.from_params(params.base)
    ds = VOCDataset(P.data, "train_aug", masks=None)
    a = cfg.augment
    crops = TrainCrops(ds, a.resize_long, a.crop_size, a.color_jitter, rt.seed)
    model = rt.wrap(build_model(params, ds.space.n))
    # all parameters, no exclusions, default betas (train_TransCAM.py)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, eps=1e-8)

    def step(batch):
        x = batch["image"].to(rt.device, non_blocking=True)
        y = batch["label"].to(rt.device)
        with rt.amp():
            out = model(x)
        loss = cls_loss(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss.item()}

    c = params.cams
    quick = SimpleNamespace(scales=cfg.epoch_eval_scales, flip=c.flip, keep_aspect=c.keep_aspect)
    thresholds = threshold_range(*c.thresholds)

    start = Carried()  # BAO's start: kept in memory and in the resume checkpoint

    def after_epoch(epoch):
        if epoch == cfg.bao_start_epoch:
            start.value = {k: v.detach().cpu().clone() for k, v in unwrap(model).state_dict().items()}

    def end_epoch(epoch):
        if not (rt.dist.main and cfg.epoch_eval_scales):
            return {}
        res = transcam_oracle(unwrap(model), P.data, "train", quick, thresholds, rt.device, rt.amp, c.attn_identity)
        return {
            "miou_oracle": res["miou"],
            "threshold": res["best_threshold"],
            "scales": "/".join(map(str, quick.scales)),
        }

    loop = Loop(
        rt,
        model,
        opt,
        crops,
        cfg.batch_size,
        cfg.epochs,
        rt.checkpointer(STAGE),
        cfg.checkpoint_every,
        step,
        STAGE,
        end_epoch=end_epoch,
        eval_every=cfg.epoch_eval_every,
        after_epoch=after_epoch,
        extra_state={"bao_start": start},
    )

    def save():
        save_trained(unwrap(model), P.transcam)
        save_state(
            start.value if start.value is not None else unwrap(model).state_dict(), Path(P.transcam) / START_FILE
        )

    loop.finish(loop.run(), P.metrics.train_transcam, save)


if __name__ == "__main__":
    main(run, STAGE, [Model, TransCAM, Cams], launcher=launcher)
