"""Models built by name: ``create_model("conformer_s", num_classes=21)``."""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

from bao.models.conformer import Conformer

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn):
    _REGISTRY[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def create_model(name: str, num_classes: int = 21, **overrides) -> nn.Module:
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; known: {list_models()}")
    return _REGISTRY[name](num_classes=num_classes, **overrides)


# Official configurations (pengzhiliang/Conformer models.py; TransCAM network/conformer_CAM.py Net_ti/sm/bs)
@register_model
def conformer_ti(**kw):
    return Conformer(**{**dict(channel_ratio=1, embed_dim=384, depth=12, num_heads=6, mlp_ratio=4), **kw})


@register_model
def conformer_s(**kw):
    return Conformer(**{**dict(channel_ratio=4, embed_dim=384, depth=12, num_heads=6, mlp_ratio=4), **kw})


@register_model
def conformer_b(**kw):
    return Conformer(**{**dict(channel_ratio=6, embed_dim=576, depth=12, num_heads=9, mlp_ratio=4), **kw})


@register_model
def conformer_mini(**kw):
    """A small CPU configuration for mini-VOC (same structure, narrow and 6 blocks deep)."""
    return Conformer(**{**dict(stem_channels=16, base_channel=16, channel_ratio=2, embed_dim=96, depth=6,
                               num_heads=3, mlp_ratio=2), **kw})
