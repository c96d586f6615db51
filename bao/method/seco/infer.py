"""Inference of a trained SeCo network: multi-scale CAMs and segmentation, and loading the network.

References are to zwyang6/SeCo's files (``model/losses.py``, ``model/PAR.py``, ``utils/camutils.py``,
``scripts/train_voc.py``); where the release departs from a textbook form, the release is implemented.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bao.core.runtime import amp_context, select_device
from bao.method.seco.cams import multi_scale_cam

# --- inference (tools/infer_cam.py, tools/infer_seg_voc.py) ---------------------------------------


def _input(image: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    # the release resizes every normalised image to crop_size x crop_size (bilinear) before inference
    # (infer_seg_coco.py: to the image's own size x scale, a (h, w) here)
    size = (size, size) if isinstance(size, int) else size
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False)


@torch.no_grad()
def infer_cams(model, image: torch.Tensor, size: int, scales) -> torch.Tensor:
    """The normalised CAMs (1, C, H, W) of one normalised image (1, 3, H, W) at its own size
    (infer_cam.py ``_validate``, l.69-84: resize to ``size`` square, ``multi_scale_cam2``, bilinear back)."""
    cam, _ = multi_scale_cam(model, _input(image, size), scales)
    return F.interpolate(cam, size=image.shape[-2:], mode="bilinear", align_corners=False)


@torch.no_grad()
def infer_seg(model, image: torch.Tensor, size: int | None, scales) -> torch.Tensor:
    """Segmentation logits (1, K, H, W) of one normalised image (infer_seg_voc.py ``_validate``,
    l.56-75): at each scale s the input at int(size x s) square (``size`` None: the image's own
    int(h x s) x int(w x s), infer_seg_coco.py l.78) with its flip, logits + flipped logits, bilinear
    to the image; the max over scales."""
    outs = []
    h, w = image.shape[-2:]
    for s in scales:
        x = _input(image, int(size * s) if size is not None else (int(h * s), int(w * s)))
        seg = model(torch.cat([x, x.flip(-1)]))[1].float()
        seg = F.interpolate(seg, size=image.shape[-2:], mode="bilinear", align_corners=False)
        outs.append(seg[:1] + seg[1:].flip(-1))
    return torch.stack(outs).amax(0)


def load_seco(params, folder, num_classes: int):
    """The trained SeCo network of ``folder`` (``num_classes`` classes, background included) on
    ``base.device`` in eval mode, and its autocast context."""
    from bao.models.seco_net import build_seco
    from bao.models.weights import load_trained

    device = select_device(params.base.device)
    net = load_trained(build_seco(params.seco, num_classes), folder, device)
    return net, device, amp_context(device, params.base.amp)
