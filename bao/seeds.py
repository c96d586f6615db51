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


def seed_maps(model, image: np.ndarray, label: np.ndarray, cams_cfg, device, amp) -> tuple[torch.Tensor, torch.Tensor]:
    """The target's activation map (21, H, W; logits averaged over passes) and its refined foreground
    CAM (20, H, W; summed over passes, as TransCAM's inference) of one image."""
    y = torch.from_numpy(label)

    def fn(x):
        with amp():
            out = model(x, y[None].expand(x.shape[0], -1).to(x.device))
        return torch.cat([out["am"].float(), out["cam_refined"]], dim=1)

    maps = multi_scale(fn, image, cams_cfg.scales, cams_cfg.flip, cams_cfg.keep_aspect, device)
    passes = len(cams_cfg.scales) * (2 if cams_cfg.flip else 1)
    return maps[:21] / passes, maps[21:]


def seed_scores(model, image: np.ndarray, label: np.ndarray, cams_cfg, combine: str, device, amp) -> torch.Tensor:
    """(21, H, W) seed scores of one image; the seed is their argmax."""
    am, cam = seed_maps(model, image, label, cams_cfg, device, amp)
    return combine_seed_scores(am, cam, torch.from_numpy(label), combine)


@torch.no_grad()
def seed_mious(model, root, split: str, cams_cfg, combines, device, amp, ids=None) -> dict[str, dict]:
    """Seed scores (``ConfusionMatrix.summary``) of ``model`` on a split's ground truth for each rule in
    ``combines``; the network runs once per image whatever the number of rules."""
    was_training = model.training
    model.eval()
    ds = VOCDataset(root, split, masks="gt", ids=ids)
    cms = {c: ConfusionMatrix(len(CLASSES)) for c in combines}
    for image_id in ds.ids:
        image = ds.load_image(image_id)
        label = ds.label(image_id)
        am, cam = seed_maps(model, image, label, cams_cfg, device, amp)
        gt = ds.load_mask(image_id, image.shape[:2])
        for c, cm in cms.items():
            cm.update(combine_seed_scores(am, cam, torch.from_numpy(label), c).argmax(0).numpy(), gt)
    model.train(was_training)
    return {c: cm.summary(CLASSES) for c, cm in cms.items()}
