"""SeCo's local crops and their tags (image-level decomposition).

References are to zwyang6/SeCo's files (``model/losses.py``, ``model/PAR.py``, ``utils/camutils.py``,
``scripts/train_voc.py``); where the release departs from a textbook form, the release is implemented.
"""

from __future__ import annotations

import torch

from bao.core.classes import IGNORE

# --- image-level decomposition: local crops against a memory queue (LIL) and prototypes (LIG) ----


def assign_crop_tags(
    images: torch.Tensor, roi: torch.Tensor, crop_num: int, crop_size: int, threshold: float = 0.2
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Local crops and their class tags (camutils.py ``assign_csc_tags``, l.4-61).

    ``roi`` (B, H, W): 255 outside the box, -1 uncertain, 0 background, 1..C a class
    (``cam_to_label(..., mid=-1)``). Crop centres are drawn among the uncertain pixels at least
    crop_size/2 from the border (all such pixels when fewer than ``crop_num``), by a permutation from a
    generator seeded 0 for every image, so two calls on the same map crop the same places (the release
    re-seeds torch's global generator instead). Tags (B, 2 + crop_num): the two global views get the
    image's class if it has one confident class, -1 if more; an image with none keeps the release's
    initial 1. A crop is background (0) when its sum of labels (uncertain counted 1; the release sums
    label values, not a pixel fraction) is at most ``threshold`` x its area, else its one class or -1;
    in a one-class image the uncertain pixels count as that class.
    """
    b, _, h, w = images.shape
    margin = crop_size // 2
    flags = images.new_ones(b, crop_num + 2)
    labelled = roi.masked_fill(roi == IGNORE, 0)
    unsure = labelled == -1
    conf = labelled.masked_fill(unsure, 0)
    counted = conf + unsure.long()
    crops = images.new_zeros(b, crop_num, images.shape[1], crop_size, crop_size)
    for n in range(b):
        centres = (labelled[n, margin : h - margin, margin : w - margin] < 0).nonzero()
        if centres.shape[0] < crop_num:
            centres = (conf[n, margin : h - margin, margin : w - margin] >= 0).nonzero()
        classes = conf[n].unique()
        classes = classes[classes != 0]
        if len(classes) >= 2:
            flags[n, :2] = -1
        elif len(classes) == 1:
            flags[n, :2] = classes[0]
            conf[n] = conf[n] + unsure[n] * classes[0]
        order = torch.randperm(centres.shape[0], generator=torch.Generator().manual_seed(0))
        for k, (y, x) in enumerate(centres[order[:crop_num].to(centres.device)].tolist()):
            crops[n, k] = images[n, :, y : y + crop_size, x : x + crop_size]
            if counted[n, y : y + crop_size, x : x + crop_size].sum() / crop_size**2 <= threshold:
                flags[n, k + 2] = 0
            else:
                inside = conf[n, y : y + crop_size, x : x + crop_size].unique()
                inside = inside[inside != 0]
                flags[n, k + 2] = inside[-1] if len(inside) == 1 else -1
    return [crops[:, k] for k in range(crop_num)], flags
