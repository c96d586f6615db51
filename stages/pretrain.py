"""Stage pretrain: the mini setting's stand-in for ImageNet pretraining (docs/method.md §7.1).

Trains ``pretrain.arch`` as a single-label image classifier on the generated shape x texture set
(``bao.data.shapes``: 48 classes of its own, rendered on the fly), as Conformer is trained on ImageNet:
cross-entropy with label smoothing on each of its two heads (conv GAP and class token), summed; AdamW
with a linear warm-up and a cosine decay. ``pretrain.token_loss`` adds token labelling (LV-ViT, Jiang et
al., NeurIPS 2021: every patch token also predicts a label of its patch, here its class or background,
through a linear head dropped afterwards); ``pretrain.attention_loss`` asks the summed attention of each
patch to stay in its own region (object or background), the grouping eq. 5 assumes of an ImageNet
backbone's attention and that a classifier of this size does not learn by itself (docs/method.md §7.1). TransCAM then fine-tunes the backbone on mini-VOC, as the
paper fine-tunes an ImageNet Conformer, so the mini setting refines CAMs with eq. 5 as written.

Output ``<paths.pretrain>/weights.pth`` (an official-layout Conformer state_dict, 48-class heads, read
by get_conformer_weights like a published checkpoint) and ``metrics/pretrain.csv`` (loss, held-out
accuracy per epoch). The output is kept in git, so a fresh clone does not retrain it.

``python -m stages.pretrain vit`` (stage pretrain_vit) trains SeCo's mini ViT (``pretrain.vit_arch``) the same
way, on the same images and recipe: cross-entropy with label smoothing on its class-token head, plus
token labelling; the attention loss is the Conformer's (eq. 5 refines its CAMs; SeCo's do not read
attention), so it is left out. Output ``<paths.pretrain_vit>/weights.pth`` (a timm-layout ViT
state_dict) and ``metrics/pretrain_vit.csv``, kept in git likewise.

    python -m stages.pretrain {conformer,vit}
"""

from pathlib import Path

import torch
import torch.nn.functional as F

from bao.config.pretrain import Pretrain
from bao.core.io import atomic_dir
from bao.core.loop import Loop, Runtime
from bao.core.pipeline import paths
from bao.core.runtime import unwrap
from bao.core.stage import main_with_item
from bao.data.shapes import NUM_CLASSES, ShapesDataset
from bao.method.pretrain import HEADS, Pretrainer, ViTPretrainer, accuracy, grouping_loss, lr_at
from bao.models.factory import create_model
from bao.models.vit import ViTEncoder

STAGES = {"conformer": "pretrain", "vit": "pretrain_vit"}


def run(params, which):
    P = paths()
    cfg = params.pretrain
    stage = STAGES[which]
    rt = Runtime.from_params(params.base, seed=cfg.seed, num_workers=cfg.num_workers)
    train = ShapesDataset(cfg.images_per_epoch, cfg.image_size, cfg.seed)
    val = ShapesDataset(cfg.val_images, cfg.image_size, cfg.seed, split="val")
    if which == "conformer":
        net = create_model(cfg.arch, num_classes=NUM_CLASSES, drop_path_rate=cfg.drop_path_rate)
        model = rt.wrap(Pretrainer(net, NUM_CLASSES + 1))
        attention_loss, out_dir, out_csv = cfg.attention_loss, P.pretrain, P.metrics.pretrain
    else:
        net = ViTEncoder(cfg.vit_arch, drop_path_rate=cfg.drop_path_rate)
        model = rt.wrap(ViTPretrainer(net, NUM_CLASSES))
        attention_loss, out_dir, out_csv = 0.0, P.pretrain_vit, P.metrics.pretrain_vit
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    per_epoch = cfg.images_per_epoch // cfg.batch_size
    total, warmup = per_epoch * cfg.epochs, per_epoch * cfg.warmup_epochs

    def step(batch):
        x = batch["image"].to(rt.device, non_blocking=True)
        y = batch["target"].to(rt.device)
        with rt.amp():
            out = model(x, need_attn=attention_loss > 0)
        l_cls = sum(F.cross_entropy(out[k].float(), y, label_smoothing=cfg.label_smoothing) for k in HEADS if k in out)
        tokens = batch["tokens"].to(rt.device).flatten(1)
        l_tok = F.cross_entropy(out["token_logits"].float().flatten(0, 1), tokens.flatten())
        loss = l_cls + cfg.token_loss * l_tok
        losses = {"l_cls": l_cls.item(), "l_token": l_tok.item()}
        if attention_loss > 0:
            l_att = grouping_loss(out["attn"], tokens, net.depth)
            loss = loss + attention_loss * l_att
            losses["l_attention"] = l_att.item()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss.item(), **losses}

    def after_step(k, epoch):  # the learning rate of the next step
        for g in opt.param_groups:
            g["lr"] = lr_at(k, total, warmup, cfg.lr)

    after_step(0, 0)
    loop = Loop(
        rt,
        model,
        opt,
        train,
        cfg.batch_size,
        cfg.epochs,
        rt.checkpointer(stage),
        cfg.checkpoint_every,
        step,
        stage,
        after_step=after_step,
        end_epoch=lambda e: accuracy(model, val, cfg.batch_size, rt),
    )

    def save():
        with atomic_dir(out_dir) as out:
            net = unwrap(model).net
            # the backbone alone: the Conformer's official layout, or the timm ViT's
            torch.save((net.vit if which == "vit" else net).state_dict(), Path(out) / "weights.pth")

    loop.finish(loop.run(), out_csv, save)


if __name__ == "__main__":
    main_with_item(run, "pretrain", tuple(STAGES), [Pretrain], stage=STAGES.get)
