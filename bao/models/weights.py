"""Pretrained weights: fetch (URL or Google Drive through gdown) and load key for key."""
from __future__ import annotations

import pickle
from pathlib import Path

import torch
import torch.nn as nn

from bao.errors import CheckpointError

HEADS = ("conv_cls_head.", "trans_cls_head.")


MODEL_FILE = "model.pt"  # what a training stage saves in its output folder


def save_trained(model: nn.Module, folder: str | Path) -> None:
    """The state_dict of a trained model as ``<folder>/model.pt``, atomically."""
    from bao.io import atomic_file

    with atomic_file(Path(folder) / MODEL_FILE) as f:
        torch.save(model.state_dict(), f)


def load_trained(model: nn.Module, folder: str | Path, device) -> nn.Module:
    """``model`` with the weights a training stage saved in ``folder``, on ``device``, in eval mode."""
    model.load_state_dict(safe_load(Path(folder) / MODEL_FILE))
    return model.to(device).eval()


def safe_load(path: str | Path, map_location="cpu"):
    """``torch.load(weights_only=True)``: a checkpoint carrying pickled objects is refused."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"{path}: refused: it holds objects other than tensors and plain "
                              f"containers (weights_only=True): {str(e).splitlines()[0]}") from None
    except (RuntimeError, EOFError, OSError) as e:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({e})") from None


def fetch_weights(source: str, dest: str | Path, md5: str | None = None) -> Path:
    """Copy or download ``source`` (path, http(s) URL, or ``gdrive://<id>``) to ``dest``."""
    import shutil

    import gdown

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    if source.startswith("gdrive://"):
        got = gdown.download(id=source[len("gdrive://"):], output=str(tmp), quiet=False, resume=True)
        if got is None:
            raise CheckpointError(f"{source}: Google Drive download failed")
    elif source.startswith(("http://", "https://")):
        got = gdown.download(url=source, output=str(tmp), quiet=False, resume=True)
        if got is None:
            raise CheckpointError(f"{source}: download failed")
    else:
        if not Path(source).exists():
            raise CheckpointError(f"model.pretrained: {source}: file not found")
        shutil.copyfile(source, tmp)
    if md5:
        from bao.io import md5sum

        if md5sum(tmp) != md5:
            tmp.unlink()
            raise CheckpointError(f"{source}: md5 mismatch (model.pretrained_md5 = {md5})")
    tmp.replace(dest)
    return dest


def load_pretrained(model: nn.Module, path: str | Path) -> None:
    """Load an official ImageNet Conformer checkpoint into ``model``; heads are re-initialised.

    Every backbone key must be present with the right shape, and no unexpected key may remain.
    """
    sd = safe_load(path)
    if isinstance(sd, dict) and "model" in sd and isinstance(sd["model"], dict):
        sd = sd["model"]
    if not isinstance(sd, dict):
        raise CheckpointError(f"{path}: expected a state_dict, got {type(sd).__name__}")
    sd = {k.removeprefix("module."): v for k, v in sd.items() if not k.removeprefix("module.").startswith(HEADS)}
    own = {k: v for k, v in model.state_dict().items() if not k.startswith(HEADS)}
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    wrong = sorted(k for k in set(own) & set(sd) if tuple(own[k].shape) != tuple(sd[k].shape))
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:10]}{' ...' if len(missing) > 10 else ''}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:10]}{' ...' if len(unexpected) > 10 else ''}")
        if wrong:
            parts.append("shape mismatches " + ", ".join(
                f"{k}: {tuple(sd[k].shape)} vs {tuple(own[k].shape)}" for k in wrong[:10]))
        raise CheckpointError(f"{path}: does not fit {type(model).__name__}: " + "; ".join(parts))
    model.load_state_dict(sd, strict=False)
    if hasattr(model, "reset_heads"):
        model.reset_heads()
