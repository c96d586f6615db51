"""Models built by name: ``create_model("conformer_s", num_classes=21)`` (configurations: ``bao.archs``);
``num_classes`` counts the background (the label space's size, ``bao.core.classes``)."""
from __future__ import annotations

import torch.nn as nn

from bao.config.archs import CONFORMERS
from bao.models.conformer import Conformer


def list_models() -> list[str]:
    return sorted(CONFORMERS)


def create_model(name: str, num_classes: int, **overrides) -> nn.Module:
    if name not in CONFORMERS:
        raise ValueError(f"unknown model {name!r}; known: {list_models()}")
    return Conformer(**{**CONFORMERS[name], "num_classes": num_classes, **overrides})
