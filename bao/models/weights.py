"""Pretrained weights: fetch (URL or Google Drive through gdown) and load key for key."""
from __future__ import annotations

import pickle
from pathlib import Path

import torch
import torch.nn as nn

from bao.core.errors import CheckpointError
from bao.core.io import atomic_file, md5sum, safe_load

HEADS = ("conv_cls_head.", "trans_cls_head.")


MODEL_FILE = "model.pt"  # what a training stage saves in its output folder
START_FILE = "start.pt"  # train_transcam: the weights BAO starts from (transcam.bao_start_epoch)


def save_state(state: dict, path: str | Path) -> None:
    """A state_dict as ``path``, atomically."""
    with atomic_file(Path(path)) as f:
        torch.save(state, f)


def save_trained(model: nn.Module, folder: str | Path) -> None:
    """The state_dict of a trained model as ``<folder>/model.pt``, atomically."""
    save_state(model.state_dict(), Path(folder) / MODEL_FILE)


def load_trained(model: nn.Module, folder: str | Path, device) -> nn.Module:
    """``model`` with the weights a training stage saved in ``folder``, on ``device``, in eval mode."""
    model.load_state_dict(safe_load(Path(folder) / MODEL_FILE))
    return model.to(device).eval()


def staged(folder: str | Path, source: str | None, param: str) -> Path | None:
    """The checkpoint a get_*_weights stage put in ``folder`` for ``param`` (None when unset). A set
    parameter whose file is missing is an error, never a silent random start."""
    if not source:
        return None
    path = Path(folder) / "weights.pth"
    if not path.exists():
        raise CheckpointError(f"{path}: {param} is {source!r} but its checkpoint is missing "
                              "(run the get_*_weights stages, or put the file there by hand)")
    return path


def fetch_weights(source: str, dest: str | Path, md5: str | None = None, param: str = "model.pretrained") -> str:
    """Copy or download ``source`` (path, http(s) URL, or ``gdrive://<id>``) to ``dest``, checked
    against ``md5`` when given; returns the file's md5 (recorded by the stage, to pin it)."""
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
            raise CheckpointError(f"{param}: {source}: file not found")
        shutil.copyfile(source, tmp)
    got_md5 = md5sum(tmp)
    if md5 and got_md5 != md5:
        tmp.unlink()
        raise CheckpointError(f"{source}: md5 {got_md5} does not match {param}_md5 = {md5}")
    tmp.replace(dest)
    return got_md5


def unwrap_state_dict(sd, path) -> dict:
    """The state_dict inside a checkpoint (``model``/``state_dict`` entries; ``module.``/``base.``
    prefixes of DataParallel and DeepLab's multi-scale wrapper removed)."""
    for k in ("model", "state_dict"):
        if isinstance(sd, dict) and isinstance(sd.get(k), dict):
            sd = sd[k]
    if not isinstance(sd, dict):
        raise CheckpointError(f"{path}: expected a state_dict, got {type(sd).__name__}")
    out = {}
    for k, v in sd.items():
        for prefix in ("module.", "base."):
            k = k.removeprefix(prefix)
        out[k] = v
    return out


def check_keys(own: dict, sd: dict, path, what: str) -> None:
    """Every key of ``own`` present in ``sd`` with its shape, and nothing else; else an error naming them."""
    # files from older PyTorch versions carry no BatchNorm batch counters; they change nothing
    missing = sorted(k for k in set(own) - set(sd) if not k.endswith("num_batches_tracked"))
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
        raise CheckpointError(f"{path}: does not fit {what}: " + "; ".join(parts))


def load_released_transcam(model: nn.Module, path: str | Path) -> None:
    """TransCAM's published classifier (its Net_sm, heads included) into ``model``, key for key."""
    sd = unwrap_state_dict(safe_load(path), path)
    check_keys(model.state_dict(), sd, path, type(model).__name__)
    model.load_state_dict(sd)


def load_pretrained(model: nn.Module, path: str | Path) -> None:
    """Load an official ImageNet Conformer checkpoint into ``model``; heads are re-initialised.

    Every backbone key must be present with the right shape, and no unexpected key may remain.
    """
    sd = {k: v for k, v in unwrap_state_dict(safe_load(path), path).items() if not k.startswith(HEADS)}
    own = {k: v for k, v in model.state_dict().items() if not k.startswith(HEADS)}
    check_keys(own, sd, path, type(model).__name__)
    model.load_state_dict(sd, strict=False)
    if hasattr(model, "reset_heads"):
        model.reset_heads()


# a ViT checkpoint's classifier (and the in21k checkpoints' pre-logits layer): not part of the backbone
VIT_HEADS = ("head.", "pre_logits.")


def load_vit_pretrained(vit: nn.Module, path) -> None:
    """A timm-layout ViT checkpoint (SeCo's ``jx_vit_base_p16_224-80ecf9dd.pth``, timm's, or the
    pretrain_vit stage's) into ``vit``, key for key except the classifier."""
    sd = {k: v for k, v in unwrap_state_dict(safe_load(path), path).items() if not k.startswith(VIT_HEADS)}
    own = {k: v for k, v in vit.state_dict().items() if not k.startswith(VIT_HEADS)}
    check_keys(own, sd, path, "the ViT backbone")
    vit.load_state_dict(sd, strict=False)
