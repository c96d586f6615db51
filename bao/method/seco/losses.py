"""SeCo's losses: balanced segmentation, patch-token contrast, LIL (local crops against the memory
queue) and LIG (against the prototypes).

References are to zwyang6/SeCo's files (``model/losses.py``, ``model/PAR.py``, ``utils/camutils.py``,
``scripts/train_voc.py``); where the release departs from a textbook form, the release is implemented.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bao.core.classes import IGNORE


def balanced_seg_loss(logits: torch.Tensor, label: torch.Tensor, ignore_index: int = IGNORE) -> torch.Tensor:
    """Cross-entropy averaged over background pixels and over foreground pixels separately, then the
    two means averaged (losses.py ``get_seg_loss``, l.190-203; denominators + 1e-6)."""
    ce = F.cross_entropy(logits, label.long(), ignore_index=ignore_index, reduction="none")
    valid = label != ignore_index
    bg, fg = valid & (label == 0), valid & (label != 0)
    return 0.5 * ((ce * bg).sum() / (bg.sum() + 1e-6) + (ce * fg).sum() / (fg.sum() + 1e-6))


def label_to_aff_mask(label: torch.Tensor, ignore_index: int = IGNORE) -> torch.Tensor:
    """(B, HW, HW) pair labels from a (B, H, W) label map: 1 for the same label, 0 for different ones,
    ``ignore_index`` where either token is ignored and on the diagonal (camutils.py l.158-172)."""
    flat = label.flatten(1)
    aff = (flat[:, :, None] == flat[:, None, :]).long()
    ignored = flat == ignore_index
    aff = aff.masked_fill(ignored[:, :, None] | ignored[:, None, :], ignore_index)
    eye = torch.eye(flat.shape[1], dtype=torch.bool, device=label.device)
    return aff.masked_fill(eye, ignore_index)


def patch_contrast_loss(fmap: torch.Tensor, aff_mask: torch.Tensor) -> torch.Tensor:
    """Patch-token contrast (losses.py ``get_masked_ptc_loss``, l.173-188): |cosine| between every
    pair of tokens, pulled to 1 for pairs of one label and to 0 for pairs of two labels; each mean
    over its pairs (+1 in the denominator)."""
    x = F.normalize(fmap.flatten(2), p=2, dim=1, eps=1e-8)
    cos = (x.transpose(1, 2) @ x).abs()
    pos, neg = aff_mask == 1, aff_mask == 0
    return 0.5 * (1 - (cos * pos).sum() / (pos.sum() + 1)) + 0.5 * (cos * neg).sum() / (neg.sum() + 1)


def lil_loss(
    q: torch.Tensor,
    keys: torch.Tensor,
    flags: torch.Tensor,
    key_flags: torch.Tensor,
    temperature: float = 0.08,
    base_temperature: float = 0.08,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Local-to-local contrast of crop embeddings ``q`` (n, D) with the memory queue ``keys`` (Q, D)
    (losses.py ``LIL_Loss``, l.88-154; ``keys`` is the queue without the batch's own keys,
    ``queue_all[b:]``). ``flags``: each crop's class (1..C), 0 background, -1 more than one class.

    As released: logits shifted by their row maximum, so that entry (exactly 0) drops out of the
    denominator with every masked entry (the ``exp != 1`` filter); a crop whose positives are mostly
    below its row mean is relabelled 0 ("noisy"); each row's log-probabilities are summed over the
    whole queue (non-positive entries contribute ``-log(denominator)``), divided by the number of
    positive pairs in the batch, kept only when that sum is negative, and averaged over crops.
    Returns the loss and the revised flags (noisy crops set to 0), which LIG uses.
    """
    n = q.shape[0]
    logits = q @ keys.T / temperature
    logits = logits - logits.max(1, keepdim=True).values.detach()
    unsure = flags == -1
    logits = logits.masked_fill(unsure[:, None], 0.0)
    pos = (flags[:, None] == key_flags[None, :]) & ~unsure[:, None]
    logits_pos = logits * pos
    mean = logits_pos.mean(1, keepdim=True)  # l.104-110: the filter against wrongly tagged crops
    above = (logits_pos >= mean).sum(1)
    below = (logits_pos < mean).sum(1)
    noisy = below / (above + 1e-6) > 10
    flags = flags.masked_fill(noisy, 0)
    logits_pos = logits_pos.masked_fill(noisy[:, None], 0.0)
    logits = logits.masked_fill((key_flags == -1)[None, :], 0.0)
    exp = logits.exp()
    exp = exp * (exp != 1.0)
    denom = exp.sum(1, keepdim=True)
    log_prob = logits_pos - torch.log(denom + 1e-12)
    nonzero = (logits_pos != 0).sum()
    rows = log_prob.sum(1)
    keep = (nonzero > 0) & (denom[:, 0] > 0) & (rows < 0)
    loss = (rows * keep).sum() / nonzero.clamp(min=1) / n
    return -(temperature / base_temperature) * loss, flags


def lig_loss(
    q: torch.Tensor,
    prototypes: torch.Tensor,
    flags: torch.Tensor,
    temperature: float = 0.1,
    base_temperature: float = 0.1,
) -> torch.Tensor:
    """Local-to-global contrast of crop embeddings ``q`` (n, D) with the class prototypes (C, D)
    (losses.py ``LIG_Loss``, l.14-85): for each crop of class c, -log of the softmax of its
    prototype-c logit over the prototypes of the classes present among the batch's crops. No max
    shift (the release computes one and discards it); exact-zero logits drop out of the sums
    (``exp != 1``); the mean is over crops with a class, or over all crops when none has one."""
    n, num_classes = q.shape[0], prototypes.shape[0]
    logits = q @ prototypes.T / temperature
    classes = torch.arange(1, num_classes + 1, device=q.device, dtype=flags.dtype)
    pos = flags[:, None] == classes[None, :]
    present = torch.zeros(num_classes, dtype=torch.bool, device=q.device)
    tagged = flags[(flags != -1) & (flags != 0)].long()
    present[tagged - 1] = True
    logits_pos = logits * pos
    exp = (logits * present[None, :]).exp()
    exp = exp * (exp != 1.0)
    denom = exp.sum(1, keepdim=True)
    log_prob = (logits_pos - torch.log(denom + 1e-12)) * (logits_pos != 0)
    total = (log_prob.sum(1) * (denom[:, 0] > 0)).sum()
    count = pos.sum()
    mean = total / count if count > 0 else total / n
    return -(temperature / base_temperature) * mean
