"""Conformer (Peng et al., ICCV 2021) with TransCAM's CAM heads (Li et al., 2022).

Module names follow the official pengzhiliang/Conformer checkpoints key for key
(``conv1``, ``conv_1``, ``trans_patch_conv``, ``trans_1``, ``conv_trans_<i>.{cnn_block,fusion_block,
squeeze_block,expand_block,trans_block}``, ``trans_norm``, ``cls_token``); docs/method.md §2.1.
TransCAM's changes (its network/conformer.py l.267 and l.328):

* the last fusion block has stride 1, so the CNN map and the token grid are both at stride 16;
* ``conv_cls_head`` is a 3x3 conv applied *before* global average pooling (its output is the CAM);
* ``trans_cls_head`` classifies the class token after ``trans_norm``.

Unlike TransCAM, any H, W that are multiples of 16 work (non-square too). Attention weights (mean over
heads, summed over blocks: eq. 2-4 of docs/method.md) are computed only when asked for; otherwise attention
runs through ``F.scaled_dot_product_attention``.
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import DropPath, Mlp, trunc_normal_

BatchNorm = partial(nn.BatchNorm2d, eps=1e-6)


class Attention(nn.Module):
    def __init__(self, dim, num_heads, qkv_bias=True, attn_drop=0.0, proj_drop=0.0):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x, need_weights: bool = False):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        drop = self.attn_drop if self.training else 0.0
        if need_weights:
            # explicit softmax(QK^T / sqrt(d)) (docs/method.md eq. 1), one head at a time so that at most one
            # (B, N, N) map is alive besides the running head mean (eq. 2), which alone leaves the block
            outs, weights = [], None
            for h in range(self.num_heads):
                attn = ((q[:, h] * self.scale) @ k[:, h].transpose(-2, -1)).float().softmax(dim=-1)
                outs.append(F.dropout(attn.to(q.dtype), drop, self.training) @ v[:, h])
                weights = attn if weights is None else weights + attn
            out = torch.stack(outs, dim=1)
            weights = weights / self.num_heads
        else:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=drop)
            weights = None
        out = out.transpose(1, 2).reshape(b, n, c)
        return self.proj_drop(self.proj(out)), weights


class Block(nn.Module):
    """Pre-norm transformer block (LayerNorm eps 1e-6)."""

    def __init__(self, dim, num_heads, mlp_ratio=4.0, qkv_bias=True, drop=0.0, attn_drop=0.0, drop_path=0.0):
        super().__init__()
        norm = partial(nn.LayerNorm, eps=1e-6)
        self.norm1 = norm(dim)
        self.attn = Attention(dim, num_heads, qkv_bias, attn_drop, drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = norm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU, drop=drop)

    def forward(self, x, need_weights=False):
        y, w = self.attn(self.norm1(x), need_weights)
        x = x + self.drop_path(y)
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x, w


class ConvBlock(nn.Module):
    """ResNet bottleneck (expansion 4); returns the 3x3 activation too (the FCU input)."""

    def __init__(self, inplanes, outplanes, stride=1, res_conv=False, groups=1):
        super().__init__()
        med = outplanes // 4
        self.conv1 = nn.Conv2d(inplanes, med, 1, bias=False)
        self.bn1 = BatchNorm(med)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(med, med, 3, stride, 1, groups=groups, bias=False)
        self.bn2 = BatchNorm(med)
        self.act2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(med, outplanes, 1, bias=False)
        self.bn3 = BatchNorm(outplanes)
        self.act3 = nn.ReLU(inplace=True)
        if res_conv:
            self.residual_conv = nn.Conv2d(inplanes, outplanes, 1, stride, bias=False)
            self.residual_bn = BatchNorm(outplanes)
        self.res_conv = res_conv

    def forward(self, x, x_t=None):
        residual = x
        x = self.act1(self.bn1(self.conv1(x)))
        # the transformer feature is added before the 3x3 conv (docs/method.md §2.1; TransCAM network/conformer.py l.119)
        x2 = self.act2(self.bn2(self.conv2(x if x_t is None else x + x_t)))
        x = self.bn3(self.conv3(x2))
        if self.res_conv:
            residual = self.residual_bn(self.residual_conv(residual))
        return self.act3(x + residual), x2


class FCUDown(nn.Module):
    """CNN -> transformer: 1x1 conv, average-pool to the token grid, LayerNorm, GELU, prepend cls."""

    def __init__(self, inplanes, outplanes, dw_stride):
        super().__init__()
        self.dw_stride = dw_stride
        self.conv_project = nn.Conv2d(inplanes, outplanes, 1)
        self.sample_pooling = nn.AvgPool2d(dw_stride, dw_stride)
        self.ln = nn.LayerNorm(outplanes, eps=1e-6)
        self.act = nn.GELU()

    def forward(self, x, x_t):
        x = self.sample_pooling(self.conv_project(x)).flatten(2).transpose(1, 2)
        x = self.act(self.ln(x))
        return torch.cat([x_t[:, :1], x], dim=1)


class FCUUp(nn.Module):
    """Transformer -> CNN: drop cls, 1x1 conv, BN, ReLU, nearest upsampling to the CNN grid."""

    def __init__(self, inplanes, outplanes, up_stride):
        super().__init__()
        self.up_stride = up_stride
        self.conv_project = nn.Conv2d(inplanes, outplanes, 1)
        self.bn = BatchNorm(outplanes)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x, h, w):
        b, _, c = x.shape
        x = x[:, 1:].transpose(1, 2).reshape(b, c, h, w)
        x = self.act(self.bn(self.conv_project(x)))
        return F.interpolate(x, size=(h * self.up_stride, w * self.up_stride))


class ConvTransBlock(nn.Module):
    def __init__(self, inplanes, outplanes, res_conv, stride, dw_stride, embed_dim, num_heads, mlp_ratio,
                 qkv_bias, drop_rate, attn_drop_rate, drop_path_rate, last_fusion=False, last_stride=1):
        super().__init__()
        self.cnn_block = ConvBlock(inplanes, outplanes, stride, res_conv)
        if last_fusion:
            self.fusion_block = ConvBlock(outplanes, outplanes, stride=last_stride, res_conv=True)
        else:
            self.fusion_block = ConvBlock(outplanes, outplanes)
        self.squeeze_block = FCUDown(outplanes // 4, embed_dim, dw_stride)
        self.expand_block = FCUUp(embed_dim, outplanes // 4, dw_stride)
        self.trans_block = Block(embed_dim, num_heads, mlp_ratio, qkv_bias, drop_rate, attn_drop_rate, drop_path_rate)
        self.dw_stride = dw_stride

    def forward(self, x, x_t, need_weights=False):
        x, x2 = self.cnn_block(x)
        h, w = x2.shape[2:]
        x_st = self.squeeze_block(x2, x_t)
        x_t, weights = self.trans_block(x_st + x_t, need_weights)
        x_t_r = self.expand_block(x_t, h // self.dw_stride, w // self.dw_stride)
        x, _ = self.fusion_block(x, x_t_r)
        return x, x_t, weights


class Conformer(nn.Module):
    """Conformer backbone + TransCAM heads. ``forward`` returns a dict (see ``forward``)."""

    def __init__(self, num_classes, patch_size=16, stem_channels=64, base_channel=64, channel_ratio=4,
                 embed_dim=384, depth=12, num_heads=6, mlp_ratio=4.0, qkv_bias=True, drop_rate=0.0,
                 attn_drop_rate=0.0, drop_path_rate=0.1, last_stride=1):
        super().__init__()
        if depth % 3:
            raise ValueError(f"depth must be a multiple of 3, got {depth}")
        if patch_size != 16:
            raise ValueError("only patch_size 16 is supported (TransCAM's stride-16 CAM)")
        self.num_classes = num_classes
        self.embed_dim = embed_dim
        self.depth = depth
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        dpr = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]  # linspace(0, rate, depth)
        c1 = int(base_channel * channel_ratio)
        self.out_channels = c1 * 4

        self.conv1 = nn.Conv2d(3, stem_channels, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_channels)  # the stem's BN keeps PyTorch's eps 1e-5 (Conformer, TransCAM l.334)
        self.act1 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.conv_1 = ConvBlock(stem_channels, c1, res_conv=True)
        self.trans_patch_conv = nn.Conv2d(stem_channels, embed_dim, patch_size // 4, patch_size // 4)
        self.trans_1 = Block(embed_dim, num_heads, mlp_ratio, qkv_bias, drop_rate, attn_drop_rate, dpr[0])

        kw = dict(embed_dim=embed_dim, num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                  drop_rate=drop_rate, attn_drop_rate=attn_drop_rate)
        third = depth // 3
        stages = [(2, third + 1, c1, c1, patch_size // 4),           # blocks 2-4: stride 4
                  (third + 1, 2 * third + 1, c1, 2 * c1, patch_size // 8),   # 5-8: stride 8
                  (2 * third + 1, depth + 1, 2 * c1, 4 * c1, patch_size // 16)]  # 9-12: stride 16
        for si, (start, stop, cin, cout, dw) in enumerate(stages):
            for i in range(start, stop):
                first = i == start and si > 0
                block = ConvTransBlock(cin if first else cout, cout, res_conv=first, stride=2 if first else 1,
                                       dw_stride=dw, drop_path_rate=dpr[i - 1], last_fusion=i == depth,
                                       last_stride=last_stride, **kw)
                self.add_module(f"conv_trans_{i}", block)

        self.trans_norm = nn.LayerNorm(embed_dim)
        self.trans_cls_head = nn.Linear(embed_dim, num_classes)
        self.conv_cls_head = nn.Conv2d(self.out_channels, num_classes, 3, padding=1)
        trunc_normal_(self.cls_token, std=0.02)
        self.apply(_init_weights)

    def reset_heads(self):
        for m in (self.trans_cls_head, self.conv_cls_head):
            _init_weights(m)

    def forward_features(self, x, need_attn: bool = False):
        """CNN feature (B, C, H/16, W/16), token sequence, and (if asked) the summed attention."""
        b, _, h, w = x.shape
        if h % 16 or w % 16:
            raise ValueError(f"input height and width must be multiples of 16, got {h}x{w}")
        x_base = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        x, _ = self.conv_1(x_base)
        x_t = self.trans_patch_conv(x_base).flatten(2).transpose(1, 2)
        x_t = torch.cat([self.cls_token.expand(b, -1, -1), x_t], dim=1)
        x_t, attn = self.trans_1(x_t, need_attn)
        # eq. 3: A = sum over blocks, accumulated block by block (TransCAM stacks all 12 blocks' per-head
        # maps first; bench/cam_inference.py measures what accumulating saves)
        acc = attn.float() if need_attn else None
        for i in range(2, self.depth + 1):
            x, x_t, attn = getattr(self, f"conv_trans_{i}")(x, x_t, need_attn)
            if need_attn:
                acc = acc + attn.float()
        return x, x_t, acc

    def forward(self, x, need_attn: bool = False) -> dict:
        """Returns ``feat`` (B,C,h,w), ``cam`` (B,K,h,w: 3x3 conv head, before GAP), ``logits_conv``
        (GAP of cam), ``logits_trans`` (class token), ``patch_tokens`` (B,N,D: the normalised patch
        tokens, for token labelling in stage pretrain), and with ``need_attn`` ``attn`` (B,N,N: eq. 4's
        A*, attention summed over blocks, mean over heads, class token removed)."""
        feat, x_t, acc = self.forward_features(x, need_attn)
        cam = self.conv_cls_head(feat)
        tokens = self.trans_norm(x_t)
        out = {
            "feat": feat,
            "cam": cam,
            "logits_conv": cam.mean(dim=(2, 3)),
            "logits_trans": self.trans_cls_head(tokens[:, 0]),
            "patch_tokens": tokens[:, 1:],
        }
        if acc is not None:
            out["attn"] = acc[:, 1:, 1:]  # eq. 4: drop the class-token row and column
        return out


def _init_weights(m):
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
