"""Stage train_deeplab@<source>: DeepLab on the masks of train_aug (reference amn.md, topic C).

    python stages/train_deeplab.py {bao,transcam}

``bao``: the BAO masks (Table 1's BAO row); ``transcam``: the TransCAM masks (its row's val).

SGD with momentum, the head at ``head_lr_mult`` x the learning rate, poly decay, frozen BatchNorm
(paper setting), cross-entropy with 255 ignored. Training runs whole passes over train_aug until
``deeplab.iterations`` steps (rounded up to a whole pass). the loss every ``log_every`` steps: ``models/deeplab/<source>/model.pt``, ``metrics/train_deeplab/<source>.csv``.
"""
import math
import sys
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from bao.config import ParamsError, section_dict
from bao.data import VOCDataset
from bao.data.transforms import SegCrops
from bao.io import atomic_file, load_label_png, params_hash, write_text
from bao.models.deeplab import DeepLab, freeze_bn
from bao.runtime import Checkpointer, unwrap
from bao.stage import main
from bao.train import Loop, Runtime, StepLog

SOURCES = ("bao", "transcam")


def build(params):
    d = params.deeplab
    return DeepLab(d.arch, d.backbone, 21, d.output_stride, d.pretrained)


def run(params, source):
    if source not in SOURCES:
        raise ParamsError(f"train_deeplab: unknown mask source {source!r}; known: {SOURCES}")
    rt = Runtime.from_params(params.base)
    d = params.deeplab
    ds = VOCDataset(params.data.root, "train_aug", masks=None)
    crops = SegCrops(ds, lambda i: load_label_png(Path("masks") / source / f"{i}.png"), d.crop_size, d.scale_range, rt.seed)
    net = build(params)
    head = [p for m in net.head_modules() for p in m.parameters()]
    head_ids = {id(p) for p in head}
    backbone = [p for p in net.parameters() if id(p) not in head_ids]
    model = rt.wrap(net)
    opt = torch.optim.SGD([{"params": backbone, "lr": d.lr}, {"params": head, "lr": d.lr * d.head_lr_mult}],
                          lr=d.lr, momentum=d.momentum, weight_decay=d.weight_decay)
    base_lrs = [g["lr"] for g in opt.param_groups]
    steps_per_epoch = len(ds) // d.batch_size
    epochs = math.ceil(d.iterations / steps_per_epoch)
    total = epochs * steps_per_epoch
    log = StepLog()
    last = {}

    def step(batch):
        if d.freeze_bn:
            freeze_bn(model)
        x = batch["image"].to(rt.device, non_blocking=True)
        y = batch["target"].to(rt.device)
        with rt.amp():
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y, ignore_index=255)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        last["loss"] = loss.item()
        return dict(last)

    def after_step(global_step, epoch):
        if global_step % d.log_every == 0 or global_step == 1:
            log.rows.append({"step": global_step, **last})
        factor = (1 - global_step / (total + 1)) ** d.poly_power  # poly, as deeplab/train_deeplab.py
        for g, lr in zip(opt.param_groups, base_lrs):
            g["lr"] = lr * factor

    key = params_hash(source, section_dict(d), params.base.seed, section_dict(params.masks))
    ckpt = Checkpointer(f"checkpoints/train_deeplab/{source}", key, enabled=rt.dist.main)
    Loop(rt, model, opt, crops, d.batch_size, epochs, ckpt, d.checkpoint_every, step, "train_deeplab",
         after_step=after_step, extra_state={"log": log}).run()
    if rt.dist.main:
        with atomic_file(f"models/deeplab/{source}/model.pt") as f:
            torch.save(unwrap(model).state_dict(), f)
        write_text(f"metrics/train_deeplab/{source}.csv", pd.DataFrame(log.rows).to_csv(index=False))
        ckpt.finish()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python stages/train_deeplab.py {bao,transcam}")
    main(lambda p: run(p, sys.argv[1]))
