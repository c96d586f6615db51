"""TransCAM: its loss, class activation maps (attention refinement, normalisation, multi-scale
inference) and its seed at the oracle background threshold.

References: docs/method.md §2 (eq. 1-5) and §6 (TransCAM's inference, infer_TransCAM.py: fixed
squares 256/512/768 x flip, upsample each pass to the image size, restrict to the image's classes,
sum, ReLU, per-class min-max).

Device contract: the inference helpers here return CPU float32 tensors (``host``); model outputs
reach numpy, PIL, the CRF and the metrics only through them.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from bao.core.image import host, to_tensor
from bao.data.voc import VOCDataset
from bao.method.norms import minmax_norm
from bao.scoring.labels import add_threshold_sweep, sweep_result
from bao.scoring.metrics import ConfusionMatrix


def _no_autocast(device_type: str):
    """Autocast off on a device that has it (meta tensors, used to count FLOPs, have none)."""
    if device_type in ("cuda", "cpu"):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


def refine(cam: torch.Tensor, attn: torch.Tensor, identity: float = 0.0) -> torch.Tensor:
    """eq. 5 (docs/method.md §2): M* = A* · M, i.e. refined[c, i] = sum_j A*[i, j] M[c, j] (rows of A* are queries).

    cam (B, K, h, w), attn (B, N, N) with N = h*w -> (B, K, h, w). Computed in fp32.
    ``identity`` (``cams.attn_identity``, TransCAM: 0) refines with A* + identity * I instead, as
    attention rollout adds the identity: it keeps each position's own CAM in the mix.
    """
    b, k, h, w = cam.shape
    m = cam.float().flatten(2)
    with _no_autocast(cam.device.type):  # fp32 even inside a bf16 autocast region
        out = torch.bmm(m, attn.float().transpose(1, 2))
    if identity:
        out = out + identity * m
    return out.reshape(b, k, h, w)


def pass_size(h: int, w: int, scale: int, keep_aspect: bool) -> tuple[int, int]:
    """TransCAM resizes to a fixed square; with keep_aspect the long side is ``scale`` and the short
    side is rounded to a multiple of 16 (the token stride)."""
    if not keep_aspect:
        return scale, scale
    r = scale / max(h, w)
    return max(16, round(h * r / 16) * 16), max(16, round(w * r / 16) * 16)


@torch.no_grad()
def multi_scale(fn, image: np.ndarray, scales, flip: bool, keep_aspect: bool, device) -> torch.Tensor:
    """Sum over scales (x flip) of ``fn(batch) -> (B, K, h, w)``, each pass upsampled bilinearly to
    the image size and flipped back, added one pass at a time (scale 1, its flip, scale 2, ...), as the
    released code's np.sum over its list of passes. The original and flipped view of a scale run as one
    batch. ``multi_scale_many`` for one image. Returns a (K, H, W) float32 CPU tensor."""
    return multi_scale_many(lambda x, _: fn(x), [image], torch.zeros(1, 0), scales, flip, keep_aspect, device)[0]


# pixels per batch in ``multi_scale_many``: 8 images (16 passes with flips) at 128 px, one at 362 px
# and above, where a pass alone is big enough to keep the device busy
BATCH_PIXELS = 8 * 128 * 128


@torch.no_grad()
def multi_scale_many(fn, images: list[np.ndarray], labels: torch.Tensor, scales, flip: bool, keep_aspect: bool, device):
    """``multi_scale`` for a list of images: at each scale, images whose passes have one size run as one
    batch (with their flips) of up to ``BATCH_PIXELS`` pixels; ``fn(x, labels_of_x) -> (B, K, h, w)``
    with ``labels`` (N, 20) the images' labels. Each image's passes are summed in ``multi_scale``'s
    order, so the result is ``multi_scale``'s wherever ``fn`` does not depend on the batch; a network in
    eval mode does not, up to the rounding of the kernel its batch size selects (tests:
    test_multi_scale_many_equals_one_by_one). Returns a list of (K, H, W) CPU float32 tensors. The
    per-epoch scorers use it, where one small image at a time leaves most of a CPU idle; the stages'
    seeds and CAMs are made one image at a time (``multi_scale``)."""
    totals: list = [None] * len(images)
    pils = [Image.fromarray(im) for im in images]
    for s in scales:
        sizes = [pass_size(*im.shape[:2], s, keep_aspect) for im in images]
        per_batch = max(1, BATCH_PIXELS // (s * s))
        for size in dict.fromkeys(sizes):
            idx = [i for i, z in enumerate(sizes) if z == size]
            for start in range(0, len(idx), per_batch):
                chunk = idx[start : start + per_batch]
                x = torch.stack([to_tensor(np.asarray(pils[i].resize(size[::-1], Image.BICUBIC))) for i in chunk])
                y = labels[chunk]
                if flip:  # each image followed by its flip, as multi_scale's batch of two
                    x = torch.stack([x, x.flip(-1)], 1).flatten(0, 1)
                    y = y.repeat_interleave(2, 0)
                maps = fn(x.to(device), y.to(device)).float()
                for j, i in enumerate(chunk):
                    h, w = images[i].shape[:2]
                    views = maps[2 * j : 2 * j + 2] if flip else maps[j : j + 1]
                    views = F.interpolate(views, size=(h, w), mode="bilinear", align_corners=False)
                    if flip:
                        views = torch.stack([views[0], views[1].flip(-1)])
                    for m in views:
                        totals[i] = m if totals[i] is None else totals[i] + m
    return [host(t) for t in totals]


def transcam_fn(model, fg_mask: torch.Tensor, amp_ctx, identity: float = 0.0):
    """One TransCAM pass: the conv CAM (fg channels) refined by the summed attention, restricted
    to the image's classes (fg_mask: (20,) 0/1)."""
    fn = transcam_batch_fn(model, amp_ctx, identity)
    return lambda x: fn(x, fg_mask[None])


def transcam_batch_fn(model, amp_ctx, identity: float = 0.0):
    """``transcam_fn`` for a batch of images with their own classes: ``fn(x, fg_masks (B, 20))``."""

    def fn(x, fg_masks):
        with amp_ctx():
            out = model(x, need_attn=True)
        cam = refine(out["cam"][:, 1:], out["attn"], identity)
        return cam * fg_masks.to(cam.device)[:, :, None, None]

    return fn


def cls_loss(out: dict, label: torch.Tensor) -> torch.Tensor:
    """L_cls (eq. 7), TransCAM's one loss: multi-label soft margin on the sum of the conv head's GAP
    logits and the class-token logits, over the 20 foreground classes (train_TransCAM.py l.94); fp32."""
    return F.multilabel_soft_margin_loss((out["logits_conv"] + out["logits_trans"]).float()[:, 1:], label)


def present_cams(cams: torch.Tensor, label: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
    """The image's foreground classes (indices 1..20) and their summed CAMs (K, H, W), min-max
    normalised per class: what make_cams stores and the oracle seed sweeps."""
    keys = np.flatnonzero(label) + 1
    return keys, (minmax_norm(cams[keys - 1]) if len(keys) else cams[:0])


# images loaded and scored together by the split-wide scorers (``multi_scale_many`` batches them)
GROUP = 16


def image_groups(ds):
    """(ids, images, labels (N, 20)) of up to ``GROUP`` images of ``ds`` at a time."""
    for start in range(0, len(ds.ids), GROUP):
        ids = ds.ids[start : start + GROUP]
        images = [ds.load_image(i) for i in ids]
        labels = torch.from_numpy(np.stack([ds.label(i) for i in ids]))
        yield ids, images, labels


@torch.no_grad()
def transcam_oracle(model, root, split: str, cams_cfg, thresholds, device, amp, identity: float = 0.0) -> dict:
    """TransCAM's seed on a split at its best background threshold (the oracle: tuned on the ground
    truth), from CAMs made as make_cams makes them at ``cams_cfg``'s passes; ``model`` is a Conformer.
    Returns ``{"miou", "best_threshold"}``."""
    was_training = model.training
    model.eval()
    ds = VOCDataset(root, split, masks="gt")
    thresholds = [round(float(t), 6) for t in thresholds]
    cms = [ConfusionMatrix(ds.space.n) for _ in thresholds]
    fn = transcam_batch_fn(model, amp, identity)
    for group, images, labels in image_groups(ds):
        maps = multi_scale_many(fn, images, labels, cams_cfg.scales, cams_cfg.flip, cams_cfg.keep_aspect, device)
        for image_id, image, label, cams in zip(group, images, labels.numpy(), maps):
            keys, norm = present_cams(cams, label)
            add_threshold_sweep(cms, thresholds, keys, norm.numpy(), ds.load_mask(image_id, image.shape[:2]))
    model.train(was_training)
    res = sweep_result(cms, thresholds, split, len(ds), ds.space.names)
    return {"miou": res["miou"], "best_threshold": res["best_threshold"]}
