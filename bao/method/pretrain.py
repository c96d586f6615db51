"""The mini setting's stand-in for ImageNet pretraining (docs/method.md §7.1): the classifier and
token-labelling heads, the attention-grouping loss, the schedule and the held-out accuracy of the
pretrain and pretrain_vit stages."""

from __future__ import annotations

import math

import torch

from bao.core.loop import Runtime
from bao.core.runtime import make_loader
from bao.data.shapes import ShapesDataset

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
