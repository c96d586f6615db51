"""SeCo's network (zwyang6/SeCo ``model/model_seco.py``, ``model/backbone/vit.py``,
``model/proj_head.py``, ``model/decoder/conv_head.py``) on a timm ViT.

One ViT encoder with a classifier on its last patch tokens and an auxiliary classifier on the
tokens of block ``aux_layer`` (1x1 convolutions without bias, global max pooling), an ASPP
segmentation head on the last tokens, and the image-level decomposition's parts: a momentum copy of
the encoder for the local "key" crops, a projection head with its EMA copy, class prototypes and a
memory queue of crop embeddings with their tags.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from bao.config.archs import SECO_VITS
from bao.models.vit import ViTEncoder, create_vit
from bao.models.weights import load_vit_pretrained


class ProjectionHead(nn.Module):
    """DINO's head as SeCo uses it (proj_head.py ``DINOHead``, l.9-38): a 3-layer MLP (GELU) to the
    bottleneck, L2-normalised; the weight-normed last layer is built but never applied, so it is left out."""

    def __init__(self, in_dim: int, hidden_dim: int = 2048, bottleneck_dim: int = 768):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, hidden_dim),
                                 nn.GELU(), nn.Linear(hidden_dim, bottleneck_dim))
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return F.normalize(self.mlp(x), dim=-1)


class ASPPHead(nn.Module):
    """Sum of dilated 3x3 convolutions (conv_head.py ``ASPP``, l.42-60; weights N(0, 0.01), bias 0)."""

    def __init__(self, in_dim: int, num_classes: int, rates=(6, 12, 18, 24)):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(in_dim, num_classes, 3, padding=r, dilation=r) for r in rates)
        for c in self.convs:
            nn.init.normal_(c.weight, std=0.01)
            nn.init.zeros_(c.bias)

    def forward(self, x):
        return sum(c(x) for c in self.convs)


def _gather(t: torch.Tensor) -> torch.Tensor:
    """All ranks' rows (no gradient), or ``t`` itself in one process (model_seco.py concat_all_gather)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return t
    out = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(out, t.contiguous())
    return torch.cat(out)


class SeCoNet(nn.Module):
    def __init__(self, arch: str, num_classes: int, aux_layer: int = -3,
                 ctc_dim: int | None = None, queue_size: int = 4608, proto_m: float = 0.9, momentum: float = 0.999,
                 drop_path_rate: float = 0.0, aspp_rates=(6, 12, 18, 24)):
        super().__init__()
        self.num_classes, self.proto_m, self.momentum = num_classes, proto_m, momentum
        self.encoder = ViTEncoder(arch, aux_layer, drop_path_rate)
        self.encoder_k = ViTEncoder(arch, aux_layer, drop_path_rate)
        # vit.py l.238: SeCo's position embedding keeps its pretrained values (no gradient, no weight decay)
        self.encoder.vit.pos_embed.requires_grad_(False)
        dim = self.encoder.embed_dim
        # the prototypes average raw class tokens and LIG compares them with projected crop embeddings:
        # the release's sizes agree (768 both); so must these
        ctc_dim = dim if ctc_dim is None else ctc_dim
        if ctc_dim != dim:
            raise ValueError(f"ctc_dim {ctc_dim} must equal the backbone's embed_dim {dim} (prototypes are class tokens)")
        # DINOHead's hidden width, 2048 for ViT-B's 768, scaled with the backbone's width (256 for vit_mini)
        hidden = 2048 * dim // 768
        self.proj_head = ProjectionHead(dim, hidden, ctc_dim)
        self.proj_head_t = ProjectionHead(dim, hidden, ctc_dim)
        for student, teacher in ((self.encoder, self.encoder_k), (self.proj_head, self.proj_head_t)):
            teacher.load_state_dict(student.state_dict())
            teacher.requires_grad_(False)
        self.classifier = nn.Conv2d(dim, num_classes - 1, 1, bias=False)
        self.aux_classifier = nn.Conv2d(dim, num_classes - 1, 1, bias=False)
        self.decoder = ASPPHead(dim, num_classes, aspp_rates)
        # model_seco.py l.45-49: random prototypes and queue, tags 0
        self.register_buffer("prototypes", torch.randn(num_classes - 1, ctc_dim))
        self.register_buffer("queue", F.normalize(torch.randn(queue_size, ctc_dim), dim=0))
        self.register_buffer("queue_flags", torch.zeros(queue_size, 1))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    def load_backbone(self, path) -> None:
        """ImageNet (or pretrain_vit) weights into the encoder and its momentum copy (model_seco.py l.27-31)."""
        load_vit_pretrained(self.encoder.vit, path)
        self.encoder_k.load_state_dict(self.encoder.state_dict())

    def param_groups(self) -> list[list[nn.Parameter]]:
        """backbone, backbone norms, classifiers + projection head, segmentation head
        (model_seco.py ``get_param_groups``, l.191-212)."""
        groups = [[], [], [], []]
        for name, p in self.encoder.named_parameters():
            if p.requires_grad:  # not the frozen position embedding (the release's AdamW skips it: no grad)
                groups[1 if "norm" in name else 0].append(p)
        groups[2] += [self.classifier.weight, self.aux_classifier.weight, *self.proj_head.parameters()]
        groups[3] += list(self.decoder.parameters())
        return groups

    def _grid(self, tokens, x):
        h, w = x.shape[-2] // self.encoder.patch_size, x.shape[-1] // self.encoder.patch_size
        return tokens.transpose(1, 2).reshape(x.shape[0], -1, h, w)

    def cams(self, x):
        """(aux CAM, CAM): the classifiers applied to every patch token, no gradient (``cam_only``)."""
        with torch.no_grad():
            _, tokens, aux = self.encoder(x)
            return (F.conv2d(self._grid(aux, x), self.aux_classifier.weight),
                    F.conv2d(self._grid(tokens, x), self.classifier.weight))

    def forward(self, x, crops: list | None = None, flags: torch.Tensor | None = None,
                label_idx: torch.Tensor | None = None, update_prototypes: bool = False):
        """Class logits, segmentation logits, the last tokens as a map and aux class logits; with
        ``crops`` (two global views, then the local "query" crops, then as many "key" crops) also the
        reservoir's query embeddings, keys and tags, and the prototypes, moved first by this batch's
        class tokens when ``update_prototypes`` (model_seco.py ``forward``, l.219-254). One call, so
        that DistributedDataParallel sees every use of the encoder."""
        cls_token, tokens, aux = self.encoder(x)
        fmap, aux_map = self._grid(tokens, x), self._grid(aux, x)
        cls = self.classifier(F.adaptive_max_pool2d(fmap, 1)).flatten(1)
        cls_aux = self.aux_classifier(F.adaptive_max_pool2d(aux_map, 1)).flatten(1)
        seg = self.decoder(fmap)
        if crops is None:
            return cls, seg, fmap, cls_aux
        protos = (self.update_prototypes(cls_token.detach(), label_idx) if update_prototypes
                  else self.prototypes.clone())
        n_l = (len(crops) - 2) // 2
        out_q, feats, tags = self.reservoir(crops[:2], crops[2:2 + n_l], crops[2 + n_l:], flags)
        return cls, seg, fmap, cls_aux, out_q, feats, tags, protos

    @torch.no_grad()
    def update_prototypes(self, embeds: torch.Tensor, label_idx: torch.Tensor) -> torch.Tensor:
        """Moving average of each class's class-token embedding, then L2-normalised
        (model_seco.py ``update_prototype``, l.52-63; ``label_idx`` -1 for images with no single class)."""
        for feat, label in zip(_gather(embeds), _gather(label_idx).view(-1).tolist()):
            if label != -1:
                self.prototypes[label - 1] = self.prototypes[label - 1] * self.proto_m + (1 - self.proto_m) * feat
        self.prototypes.copy_(F.normalize(self.prototypes, dim=1))
        return self.prototypes.clone()

    @torch.no_grad()
    def _momentum_update(self):
        # model_seco.py l.176-189: encoder_k and proj_head_t, one constant momentum, parameters only
        for s, t in ((self.encoder, self.encoder_k), (self.proj_head, self.proj_head_t)):
            for ps, pt in zip(s.parameters(), t.parameters()):
                pt.mul_(self.momentum).add_(ps.detach(), alpha=1 - self.momentum)

    @torch.no_grad()
    def _enqueue(self, keys: torch.Tensor, flags: torch.Tensor):
        keys, flags = _gather(keys), _gather(flags)
        n, ptr = keys.shape[0], int(self.queue_ptr)
        if self.queue.shape[0] % n:
            raise ValueError(f"queue size {self.queue.shape[0]} is not a multiple of the keys per step {n}")
        self.queue[ptr:ptr + n] = keys
        self.queue_flags[ptr:ptr + n] = flags
        self.queue_ptr[0] = (ptr + n) % self.queue.shape[0]

    def reservoir(self, global_views: list, local_q: list, local_k: list, flags: torch.Tensor):
        """Embeddings of the two global views and the local "query" crops (student), of the global
        views and the local "key" crops (momentum teacher), enqueued with their tags
        (model_seco.py ``maintain_reservoir``, l.66-101). Returns the student's embeddings (b x views, D),
        every key row with its tag (the batch's student rows first), for LIL."""
        b = global_views[0].shape[0]
        n_g, n_l = len(global_views), len(local_q)
        g = self.encoder(torch.cat(global_views))[0].reshape(n_g, b, -1)
        q = self.encoder(torch.cat(local_q))[0].reshape(n_l, b, -1)
        out_q = self.proj_head(torch.cat([g, q]).transpose(0, 1).reshape(b * (n_g + n_l), -1))
        self._momentum_update()
        with torch.no_grad():
            k = self.encoder_k(torch.cat(local_k))[0].reshape(n_l, b, -1)
        # the global views' key rows carry no gradient: the release sends them through _batch_shuffle_ddp,
        # which gathers under no_grad (model_seco.py l.8, l.94, l.124); the shuffle itself ("for BN") is
        # left out: the head has no BatchNorm, and unshuffling restores the order
        out_k = self.proj_head_t(torch.cat([g.detach(), k]).transpose(0, 1).reshape(b * (n_g + n_l), -1))
        self._enqueue(out_k.detach(), flags)
        feats = torch.cat([out_q, out_k, self.queue.clone()])
        tags = torch.cat([flags, flags, self.queue_flags.clone()])
        return out_q, feats, tags


def build_seco(cfg, num_classes: int) -> SeCoNet:
    """SeCo's network from the ``seco`` params section (random weights)."""
    return SeCoNet(cfg.arch, num_classes, cfg.aux_layer, queue_size=cfg.queue, proto_m=cfg.proto_m,
                   momentum=cfg.momentum, drop_path_rate=cfg.drop_path_rate, aspp_rates=tuple(cfg.aspp_rates))
