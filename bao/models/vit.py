"""SeCo's ViT backbone on timm (zwyang6/SeCo ``model/backbone/vit.py``): built by configuration name
(``bao.config.archs.SECO_VITS``), its ImageNet checkpoint loaded key for key, and the encoder that returns
the class token, the last and an auxiliary block's patch tokens."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from bao.config.archs import SECO_VITS


def create_vit(arch: str, num_classes: int = 0, drop_path_rate: float = 0.0) -> nn.Module:
    """A timm VisionTransformer of the configuration ``arch`` (``bao.archs.SECO_VITS``), random weights."""
    import timm

    if arch not in SECO_VITS:
        raise ValueError(f"unknown SeCo backbone {arch!r}; known: {sorted(SECO_VITS)}")
    return timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=num_classes,
                             drop_path_rate=drop_path_rate, **SECO_VITS[arch])


class ViTEncoder(nn.Module):
    """A timm ViT returning the class token, the last patch tokens (after the final norm) and the
    patch tokens of block ``aux_layer`` (vit.py ``forward_features``, l.305-324); the position
    embedding is resized to the input's grid by bicubic interpolation (vit.py l.286-303)."""

    def __init__(self, arch: str, aux_layer: int = -3, drop_path_rate: float = 0.0):
        super().__init__()
        self.vit = create_vit(arch, drop_path_rate=drop_path_rate)
        self.patch_size = SECO_VITS[arch]["patch_size"]
        self.embed_dim = SECO_VITS[arch]["embed_dim"]
        self.aux_layer = aux_layer

    def forward(self, x):
        v = self.vit
        h, w = x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size
        tokens = v.patch_embed.proj(x).flatten(2).transpose(1, 2)
        grid = v.patch_embed.grid_size
        pos = v.pos_embed[:, 1:].reshape(1, grid[0], grid[1], -1).permute(0, 3, 1, 2)
        pos = F.interpolate(pos, size=(h, w), mode="bicubic", align_corners=False).flatten(2).transpose(1, 2)
        x = torch.cat([v.cls_token.expand(x.shape[0], -1, -1), tokens], 1)
        x = v.pos_drop(x + torch.cat([v.pos_embed[:, :1], pos], 1))
        embeds = []
        for blk in v.blocks:
            x = blk(x)
            embeds.append(x)
        embeds[-1] = x = v.norm(x)
        return x[:, 0], x[:, 1:], embeds[self.aux_layer][:, 1:]
