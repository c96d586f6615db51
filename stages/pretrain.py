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

``python stages/pretrain.py vit`` (stage pretrain_vit) trains SeCo's mini ViT (``seco.pretrain_arch``) the same
way, on the same images and recipe: cross-entropy with label smoothing on its class-token head, plus
token labelling; the attention loss is the Conformer's (eq. 5 refines its CAMs; SeCo's do not read
attention), so it is left out. Output ``<paths.pretrain_vit>/weights.pth`` (a timm-layout ViT
state_dict) and ``metrics/pretrain_vit.csv``, kept in git likewise.

    python stages/pretrain.py {conformer,vit}
"""
import sys
import math
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

# this checkout's bao, whatever is installed (DVC's temporary and queued workspaces, second clones)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bao.data.shapes import NUM_CLASSES, ShapesDataset
from bao.io import atomic_dir, write_text
from bao.models import create_model
from bao.models.seco_net import ViTEncoder
from bao.pipeline import paths, resume_key
from bao.runtime import Checkpointer, make_loader, unwrap
from bao.stage import main_with_item
from bao.train import Loop, Runtime

STAGES = {"conformer": "pretrain", "vit": "pretrain_vit"}
HEADS = ("logits_conv", "logits_trans", "logits")  # the Conformer's two classifiers, the ViT's one


class Pretrainer(torch.nn.Module):
    """The Conformer and the token-labelling head (one module, so that DDP synchronises both)."""

    def __init__(self, net: torch.nn.Module, num_token_classes: int):
        super().__init__()
        self.net = net
        self.token_head = torch.nn.Linear(net.embed_dim, num_token_classes)

    def forward(self, x, need_attn: bool = False):
        out = self.net(x, need_attn=need_attn)
        out["token_logits"] = self.token_head(out["patch_tokens"])
        return out


class ViTPretrainer(Pretrainer):
    """SeCo's ViT encoder (the position embedding resized to the input's grid as in SeCo), a classifier
    on its class token and the token-labelling head on its patch tokens."""

    def __init__(self, net: torch.nn.Module, num_classes: int):
        super().__init__(net, num_classes + 1)
        self.head = torch.nn.Linear(net.embed_dim, num_classes)

    def forward(self, x, need_attn: bool = False):
        cls_token, tokens, _ = self.net(x)  # after the final norm
        return {"logits": self.head(cls_token), "token_logits": self.token_head(tokens)}


def grouping_loss(attn: torch.Tensor, tokens: torch.Tensor, depth: int) -> torch.Tensor:
    """-log of the share of each patch's attention (eq. 4's A*, summed over the ``depth`` blocks, rows
    summing to ``depth`` with the class token) that lands on patches of its own region (same token
    label: its object, or the background), averaged over background patches and over object patches
    separately, then (bg + fg) / 2 (objects cover a sixth of an image). attn (B, N, N), tokens (B, N)."""
    same = (tokens[:, :, None] == tokens[:, None, :]).float()
    nll = -torch.log(((attn.float() * same).sum(-1) / depth).clamp_min(1e-6))
    bg, fg = tokens == 0, tokens > 0
    parts = [nll[m].mean() for m in (bg, fg) if m.any()]
    return sum(parts) / len(parts)


def lr_at(step: int, total: int, warmup: int, lr: float) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    return 0.5 * lr * (1 + math.cos(math.pi * (step - warmup) / max(total - warmup, 1)))


@torch.no_grad()
def accuracy(model, ds: ShapesDataset, batch_size: int, rt: Runtime) -> dict:
    """Top-1 accuracy of the summed heads, and of the token labels, on the held-out images."""
    model.eval()
    batches = [list(range(i, min(i + batch_size, len(ds)))) for i in range(0, len(ds), batch_size)]
    right, tok_right, tok_n = 0, 0, 0
    for batch in make_loader(ds, batches, rt.num_workers):
        with rt.amp():
            out = model(batch["image"].to(rt.device))
        right += int((sum(out[k] for k in HEADS if k in out).argmax(1).cpu() == batch["target"]).sum())
        tok = batch["tokens"].flatten(1)
        tok_right += int((out["token_logits"].argmax(-1).cpu() == tok).sum())
        tok_n += tok.numel()
    return {"val_acc": right / len(ds), "val_token_acc": tok_right / tok_n}


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
        net = ViTEncoder(params.seco.pretrain_arch, drop_path_rate=cfg.drop_path_rate)
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
        l_cls = sum(F.cross_entropy(out[k].float(), y, label_smoothing=cfg.label_smoothing)
                    for k in HEADS if k in out)
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
    ckpt = Checkpointer(Path(P.checkpoints) / stage, resume_key(stage), enabled=rt.dist.main)
    loop = Loop(rt, model, opt, train, cfg.batch_size, cfg.epochs, ckpt, cfg.checkpoint_every, step, stage,
                after_step=after_step, end_epoch=lambda e: accuracy(model, val, cfg.batch_size, rt))
    history = loop.run()
    if rt.dist.main:
        with atomic_dir(out_dir) as out:
            net = unwrap(model).net
            # the backbone alone: the Conformer's official layout, or the timm ViT's
            torch.save((net.vit if which == "vit" else net).state_dict(), Path(out) / "weights.pth")
        write_text(out_csv, pd.DataFrame(history).to_csv(index=False))
        ckpt.finish()


if __name__ == "__main__":
    main_with_item(run, "pretrain", tuple(STAGES), stage=STAGES.get)
