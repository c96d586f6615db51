"""SeCo's CAMs: multi-scale CAM, the seed at a background score, pseudo-labels with an ignore band
and their PAR refinement with the background.

References are to zwyang6/SeCo's files (``model/losses.py``, ``model/PAR.py``, ``utils/camutils.py``,
``scripts/train_voc.py``); where the release departs from a textbook form, the release is implemented.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bao.core.classes import IGNORE
from bao.method.seco.par import par_refine

# --- CAMs (camutils.py) -----------------------------------------------------------------------


@torch.no_grad()
def multi_scale_cam(model, images: torch.Tensor, scales) -> tuple[torch.Tensor, torch.Tensor]:
    """(CAM, aux CAM) of ``images`` (camutils.py ``multi_scale_cam2``, l.116-156): at each scale (the
    input size first, then the others of ``scales``), the classifiers on every token of the image
    and its flip, bilinear to the input size, the max of the two, ReLU; summed over scales; each
    image's map shifted to min 0 and divided by its max (+1e-5), per class (``adaptive_max_pool2d`` to
    1 x 1 keeps the channels)."""
    b, _, h, w = images.shape
    cams, auxes = [], []
    for s in [1.0] + [s for s in scales if s != 1.0]:
        x = (
            images
            if s == 1.0
            else F.interpolate(images, size=(int(s * h), int(s * w)), mode="bilinear", align_corners=False)
        )
        aux, cam = model.cams(torch.cat([x, x.flip(-1)]))
        for out, m in ((cams, cam), (auxes, aux)):
            m = F.interpolate(m.float(), size=(h, w), mode="bilinear", align_corners=False)
            out.append(F.relu(torch.max(m[:b], m[b:].flip(-1))))
    res = []
    for maps in (cams, auxes):
        m = torch.stack(maps).sum(0)
        m = m - m.amin((2, 3), keepdim=True)
        res.append(m / (m.amax((2, 3), keepdim=True) + 1e-5))
    return res[0], res[1]


def cam_seed(cam: torch.Tensor, cls_label: torch.Tensor, bkg: float) -> torch.Tensor:
    """A label map from normalised CAMs (camutils.py ``cam_to_label`` without a box, l.63-73): the top
    present class, background where its score is at most ``bkg``. cam (B, C, H, W), cls_label (B, C)."""
    value, top = (cam * cls_label[:, :, None, None]).max(1)
    return (top + 1).masked_fill(value <= bkg, 0)


# --- CAM to labels (camutils.py) ----------------------------------------------------------------


def _inside_box(label: torch.Tensor, img_box: torch.Tensor, fill: int) -> torch.Tensor:
    """``fill`` outside each image's box (rows box[0]:box[1], columns box[2]:box[3]): the crop's
    padding (camutils.py ``ignore_img_box``)."""
    out = torch.full_like(label, fill)
    for n, (y0, y1, x0, x1) in enumerate(img_box.tolist()):
        out[n, y0:y1, x0:x1] = label[n, y0:y1, x0:x1]
    return out


def cam_to_pseudo_label(
    cam: torch.Tensor,
    cls_label: torch.Tensor,
    img_box: torch.Tensor,
    high: float,
    low: float,
    mid: int = IGNORE,
    ignore_index: int = IGNORE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The image's classes' CAMs (B, C, H, W; normalised to [0, 1]) to labels: the top class where its
    score is above ``high``, background at or below ``low``, ``mid`` between (``ignore_index`` for the
    pseudo label, -1 for the crop-tag map of ``cam_to_roi_mask``), ``ignore_index`` outside the box
    (camutils.py ``cam_to_label`` with ``ignore_mid``, l.63-83; ``bkg_thre`` is overridden there)."""
    valid = cam * cls_label[:, :, None, None]
    value, top = valid.max(1)
    label = top + 1
    label = label.masked_fill(value <= high, mid).masked_fill(value <= low, 0)
    return valid, _inside_box(label, img_box, ignore_index)


def refine_with_background(
    image: torch.Tensor,
    cams: torch.Tensor,
    cls_label: torch.Tensor,
    img_box: torch.Tensor,
    high: float,
    low: float,
    ignore_index: int = IGNORE,
    down_scale: int = 2,
    **par,
) -> torch.Tensor:
    """SeCo's pseudo label (camutils.py ``refine_cams_with_bkg_v2``, l.174-214): the image's CAMs with a
    constant background plane at ``high`` and again at ``low``, at half the image size, softmax over
    background + the image's classes, PAR-refined on the half-size image, upsampled, argmax. Background
    where both agree on it, ignored where only the ``high`` plane wins, the class elsewhere; ignored
    outside the box."""
    b, _, h, w = image.shape
    small = (h // down_scale, w // down_scale)
    image_s = F.interpolate(image, size=small, mode="bilinear", align_corners=False)
    keys = torch.cat([cls_label.new_ones(b, 1), cls_label], 1)
    labels = []
    for bkg in (high, low):
        with_bkg = torch.cat([torch.full_like(cams[:, :1], bkg), cams], 1)
        with_bkg = F.interpolate(with_bkg, size=small, mode="bilinear", align_corners=False)
        out = torch.full((b, h, w), ignore_index, dtype=torch.long, device=cams.device)
        for n in range(b):
            valid = torch.nonzero(keys[n])[:, 0]
            probs = with_bkg[n, valid][None].softmax(1)
            refined = F.interpolate(
                par_refine(image_s[n : n + 1], probs, **par), size=(h, w), mode="bilinear", align_corners=False
            )
            out[n] = valid[refined.argmax(1)[0]]
        labels.append(_inside_box(out, img_box, ignore_index))
    label_h, label_l = labels
    label = label_h.masked_fill(label_h == 0, ignore_index)
    return label.masked_fill((label_h + label_l) == 0, 0)
