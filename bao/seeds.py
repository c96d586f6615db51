"""Threshold-free seeds from a BAO target model (BAO.md §3.5), multi-scale and flip as the CAM inference."""
from __future__ import annotations

import numpy as np
import torch

from bao.cam import multi_scale
from bao.data import CLASSES, VOCDataset
from bao.method import BAONet, combine_seed_scores
from bao.metrics import ConfusionMatrix
from bao.models import create_model
from bao.models.weights import safe_load


def load_target(params, path, device) -> BAONet:
    """A trained BAO target (or the amn online model) in eval mode."""
    net = BAONet(create_model(params.model.arch, num_classes=21), refine_am=params.bao.refine_am,
                 attn_identity=params.cams.attn_identity)
    net.load_state_dict(safe_load(path))
    return net.to(device).eval()


def seed_scores(model, image: np.ndarray, label: np.ndarray, cams_cfg, combine: str, device, amp) -> torch.Tensor:
    """(21, H, W) seed scores of one image; the seed is their argmax."""
    y = torch.from_numpy(label)

    def fn(x):
        with amp():
            out = model(x, y[None].expand(x.shape[0], -1).to(x.device))
        return torch.cat([out["am"].float(), out["cam_refined"]], dim=1)

    maps = multi_scale(fn, image, cams_cfg.scales, cams_cfg.flip, cams_cfg.keep_aspect, device)
    passes = len(cams_cfg.scales) * (2 if cams_cfg.flip else 1)
    return combine_seed_scores(maps[:21] / passes, maps[21:], y, combine)


@torch.no_grad()
def seed_miou(model, root, split: str, cams_cfg, combine: str, device, amp, ids=None) -> float:
    """Seed mIoU of ``model`` on a split's ground truth (the per-epoch curve of Figure 4)."""
    was_training = model.training
    model.eval()
    ds = VOCDataset(root, split, masks="gt", ids=ids)
    cm = ConfusionMatrix(len(CLASSES))
    for image_id in ds.ids:
        image = ds.load_image(image_id)
        seed = seed_scores(model, image, ds.label(image_id), cams_cfg, combine, device, amp).argmax(0).numpy()
        cm.update(seed, ds.load_mask(image_id, image.shape[:2]))
    model.train(was_training)
    return cm.summary()["miou"]
