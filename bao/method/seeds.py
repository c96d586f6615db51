"""Threshold-free seeds from a BAO target model (docs/method.md §3.5), multi-scale and flip as the CAM
inference. Every map returned here is a CPU float32 tensor (``bao.cam.multi_scale_many``)."""

from __future__ import annotations

import numpy as np
import torch

from bao.core.classes import read_label_space
from bao.data.voc import VOCDataset
from bao.method.bao import BAONet, build_bao
from bao.method.readouts import combine_seed_scores, seed_labels, seed_scores_by_rule
from bao.method.transcam import image_groups, multi_scale_many
from bao.models.weights import load_trained
from bao.scoring.metrics import ConfusionMatrix


def load_target(params, folder, device, num_classes: int) -> BAONet:
    """A trained BAO target (or the amn online model) over ``num_classes`` classes, in eval mode."""
    return load_trained(build_bao(params, num_classes), folder, device)


def passes(cams_cfg) -> int:
    return len(cams_cfg.scales) * (2 if cams_cfg.flip else 1)


def _seed_fn(model, amp):
    def fn(x, y):
        with amp():
            out = model(x, y)
        return torch.cat([out["am"].float(), out["cam_refined"]], dim=1)

    return fn


def seed_maps(model, image: np.ndarray, label: np.ndarray, cams_cfg, device, amp) -> tuple[torch.Tensor, torch.Tensor]:
    """The target's refined activation map (K, H, W) and refined foreground CAM (K - 1, H, W) of one
    image (K classes, background included; ``label`` is K - 1 long), each summed over the passes (as
    TransCAM's and the release's inference), on the CPU."""
    maps = multi_scale_many(
        _seed_fn(model, amp),
        [image],
        torch.from_numpy(label)[None],
        cams_cfg.scales,
        cams_cfg.flip,
        cams_cfg.keep_aspect,
        device,
    )[0]
    return maps[: len(label) + 1], maps[len(label) + 1 :]


def seed_scores(model, image: np.ndarray, label: np.ndarray, cams_cfg, combine: str, device, amp) -> torch.Tensor:
    """(K, H, W) seed scores of one image; the seed is their argmax."""
    am, cam = seed_maps(model, image, label, cams_cfg, device, amp)
    return combine_seed_scores(am, cam, torch.from_numpy(label), combine, passes(cams_cfg))


def rule_confusions(
    am: torch.Tensor, cam: torch.Tensor, label: np.ndarray, gt: np.ndarray, rules, n_passes: int
) -> dict[str, ConfusionMatrix]:
    """Per-rule confusion matrices of one image's seeds against its ground truth."""
    out = {}
    for c, scores in seed_scores_by_rule(am, cam, torch.from_numpy(label), rules, n_passes).items():
        out[c] = ConfusionMatrix(am.shape[0])
        out[c].update(seed_labels(scores), gt)
    return out


@torch.no_grad()
def seed_confusions(model, root, split: str, cams_cfg, combines, device, amp, ids=None) -> dict[str, ConfusionMatrix]:
    """Confusion matrices of ``model``'s seeds on a split's ground truth for each rule in ``combines``;
    the network runs once per image whatever the number of rules."""
    was_training = model.training
    model.eval()
    ds = VOCDataset(root, split, masks="gt", ids=ids)
    n = ds.space.n
    total = {c: ConfusionMatrix(n) for c in combines}
    for group, images, labels in image_groups(ds):
        maps = multi_scale_many(
            _seed_fn(model, amp), images, labels, cams_cfg.scales, cams_cfg.flip, cams_cfg.keep_aspect, device
        )
        for image_id, image, label, m in zip(group, images, labels.numpy(), maps):
            gt = ds.load_mask(image_id, image.shape[:2])
            for c, cm in rule_confusions(m[:n], m[n:], label, gt, combines, passes(cams_cfg)).items():
                total[c].merge(cm)
    model.train(was_training)
    return total


def seed_mious(model, root, split: str, cams_cfg, combines, device, amp, ids=None) -> dict[str, dict]:
    """``ConfusionMatrix.summary`` per rule (``seed_confusions``)."""
    cms = seed_confusions(model, root, split, cams_cfg, combines, device, amp, ids)
    names = read_label_space(root).names
    return {c: cm.summary(names) for c, cm in cms.items()}
