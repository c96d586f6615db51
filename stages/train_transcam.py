"""Stage train_transcam: TransCAM on train_aug (reference transcam.md §3).

One multi-label soft-margin loss on the sum of the conv head's GAP logits and the class-token
logits, over the 20 foreground classes (train_TransCAM.py l.94); AdamW, constant learning rate.
Outputs ``models/transcam/model.pt`` and per-epoch ``metrics/train_transcam.csv``.
"""
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from bao.config import section_dict
from bao.data import VOCDataset
from bao.data.transforms import TrainCrops
from bao.io import atomic_file, params_hash, write_text
from bao.models import create_model
from bao.models.weights import load_pretrained
from bao.runtime import Checkpointer, unwrap
from bao.stage import main
from bao.train import Loop, Runtime

OUT = Path("models/transcam/model.pt")


def build_model(params):
    model = create_model(params.model.arch, num_classes=21, drop_path_rate=params.model.drop_path_rate)
    weights = Path("models/pretrained/weights.pth")
    if params.model.pretrained and weights.exists():
        load_pretrained(model, weights)
    return model


def run(params):
    rt = Runtime.from_params(params.base)
    cfg = params.transcam
    ds = VOCDataset(params.data.root, "train_aug", masks=None)
    a = cfg.augment
    crops = TrainCrops(ds, a.resize_long, a.crop_size, a.color_jitter, rt.seed)
    model = rt.wrap(build_model(params))
    # all parameters, no exclusions, default betas (train_TransCAM.py)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, eps=1e-8)

    def step(batch):
        x = batch["image"].to(rt.device, non_blocking=True)
        y = batch["label"].to(rt.device)
        with rt.amp():
            out = model(x)
        logits = (out["logits_conv"] + out["logits_trans"]).float()[:, 1:]
        loss = F.multilabel_soft_margin_loss(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss.item()}

    key = params_hash(section_dict(params.model), section_dict(cfg), params.base.seed,
                      (Path(params.data.root) / "cls_labels.json").read_text())
    ckpt = Checkpointer("checkpoints/train_transcam", key, enabled=rt.dist.main)
    history = Loop(rt, model, opt, crops, cfg.batch_size, cfg.epochs, ckpt, cfg.checkpoint_every, step,
                   "train_transcam").run()
    if rt.dist.main:
        with atomic_file(OUT) as f:
            torch.save(unwrap(model).state_dict(), f)
        write_text("metrics/train_transcam.csv", pd.DataFrame(history).to_csv(index=False))
        ckpt.finish()


if __name__ == "__main__":
    main(run)
