"""Threshold-free seeds from a BAO target model (docs/method.md §3.5), multi-scale and flip as the CAM
inference. Every map returned here is a CPU float32 tensor (``bao.cam.multi_scale_many``)."""
from __future__ import annotations

import numpy as np
import torch

from bao.cam import minmax_norm, multi_scale_many, transcam_batch_fn
from bao.classes import CLASSES, NUM_CLASSES
from bao.data import VOCDataset
from bao.eval_labels import add_threshold_sweep, sweep_result
from bao.method import BAONet, build_bao, combine_seed_scores, seed_labels, seed_scores_by_rule
from bao.metrics import ConfusionMatrix
from bao.models.weights import load_trained


def load_target(params, folder, device) -> BAONet:
    """A trained BAO target (or the amn online model) in eval mode."""
    return load_trained(build_bao(params), folder, device)


def passes(cams_cfg) -> int:
    return len(cams_cfg.scales) * (2 if cams_cfg.flip else 1)


def _seed_fn(model, amp):
    def fn(x, y):
        with amp():
            out = model(x, y)
        return torch.cat([out["am"].float(), out["cam_refined"]], dim=1)

    return fn


def seed_maps(model, image: np.ndarray, label: np.ndarray, cams_cfg, device, amp) -> tuple[torch.Tensor, torch.Tensor]:
    """The target's refined activation map (21, H, W) and refined foreground CAM (20, H, W) of one
    image, each summed over the passes (as TransCAM's and the release's inference), on the CPU."""
    maps = multi_scale_many(_seed_fn(model, amp), [image], torch.from_numpy(label)[None], cams_cfg.scales,
                            cams_cfg.flip, cams_cfg.keep_aspect, device)[0]
    return maps[:NUM_CLASSES], maps[NUM_CLASSES:]


# images loaded and scored together by the split-wide scorers below (``multi_scale_many`` batches them)
GROUP = 16


def _groups(ds):
    for start in range(0, len(ds.ids), GROUP):
        ids = ds.ids[start:start + GROUP]
        images = [ds.load_image(i) for i in ids]
        labels = torch.from_numpy(np.stack([ds.label(i) for i in ids]))
        yield ids, images, labels


def seed_scores(model, image: np.ndarray, label: np.ndarray, cams_cfg, combine: str, device, amp) -> torch.Tensor:
    """(21, H, W) seed scores of one image; the seed is their argmax."""
    am, cam = seed_maps(model, image, label, cams_cfg, device, amp)
    return combine_seed_scores(am, cam, torch.from_numpy(label), combine, passes(cams_cfg))


def rule_confusions(am: torch.Tensor, cam: torch.Tensor, label: np.ndarray, gt: np.ndarray,
                    rules, n_passes: int) -> dict[str, ConfusionMatrix]:
    """Per-rule confusion matrices of one image's seeds against its ground truth."""
    out = {}
    for c, scores in seed_scores_by_rule(am, cam, torch.from_numpy(label), rules, n_passes).items():
        out[c] = ConfusionMatrix(NUM_CLASSES)
        out[c].update(seed_labels(scores), gt)
    return out


@torch.no_grad()
def seed_confusions(model, root, split: str, cams_cfg, combines, device, amp, ids=None) -> dict[str, ConfusionMatrix]:
    """Confusion matrices of ``model``'s seeds on a split's ground truth for each rule in ``combines``;
    the network runs once per image whatever the number of rules."""
    was_training = model.training
    model.eval()
    ds = VOCDataset(root, split, masks="gt", ids=ids)
    total = {c: ConfusionMatrix(NUM_CLASSES) for c in combines}
    for group, images, labels in _groups(ds):
        maps = multi_scale_many(_seed_fn(model, amp), images, labels, cams_cfg.scales, cams_cfg.flip,
                                cams_cfg.keep_aspect, device)
        for image_id, image, label, m in zip(group, images, labels.numpy(), maps):
            gt = ds.load_mask(image_id, image.shape[:2])
            for c, cm in rule_confusions(m[:NUM_CLASSES], m[NUM_CLASSES:], label, gt, combines,
                                         passes(cams_cfg)).items():
                total[c].merge(cm)
    model.train(was_training)
    return total


def seed_mious(model, root, split: str, cams_cfg, combines, device, amp, ids=None) -> dict[str, dict]:
    """``ConfusionMatrix.summary`` per rule (``seed_confusions``)."""
    cms = seed_confusions(model, root, split, cams_cfg, combines, device, amp, ids)
    return {c: cm.summary(CLASSES) for c, cm in cms.items()}


@torch.no_grad()
def transcam_oracle(model, root, split: str, cams_cfg, thresholds, device, amp, identity: float = 0.0) -> dict:
    """TransCAM's seed on a split at its best background threshold (the oracle: tuned on the ground
    truth), from CAMs made as make_cams makes them at ``cams_cfg``'s passes; ``model`` is a Conformer.
    Returns ``{"miou", "best_threshold"}``."""
    was_training = model.training
    model.eval()
    ds = VOCDataset(root, split, masks="gt")
    thresholds = [round(float(t), 6) for t in thresholds]
    cms = [ConfusionMatrix(NUM_CLASSES) for _ in thresholds]
    fn = transcam_batch_fn(model, amp, identity)
    for group, images, labels in _groups(ds):
        maps = multi_scale_many(fn, images, labels, cams_cfg.scales, cams_cfg.flip, cams_cfg.keep_aspect, device)
        for image_id, image, label, cams in zip(group, images, labels.numpy(), maps):
            keys = np.flatnonzero(label) + 1
            norm = minmax_norm(cams[keys - 1]).numpy() if len(keys) else cams[:0].numpy()
            add_threshold_sweep(cms, thresholds, keys, norm, ds.load_mask(image_id, image.shape[:2]))
    model.train(was_training)
    res = sweep_result(cms, thresholds, split, len(ds))
    return {"miou": res["miou"], "best_threshold": res["best_threshold"]}
