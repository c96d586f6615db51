"""SeCo (Separate and Conquer, CVPR 2024) losses and PAR, as zwyang6/SeCo releases them.

References are to that repository's files (``model/losses.py``, ``model/PAR.py``,
``utils/camutils.py``, ``scripts/train_voc.py``). Where the released code departs from the textbook
form of a loss (the LIL denominator, the energy's gradient), the release is what is implemented, and
the docstring says so.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

IGNORE = 255


# --- segmentation head and patch-token contrast --------------------------------------------------

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


# --- the schedule (scripts/train_voc.py, utils/optimizer.py) ------------------------------------

def poly_warmup_lr(step: int, warmup: int, total: int, ratio: float, power: float) -> float:
    """The learning-rate multiplier of step ``step`` (``PolyWarmupAdamW.step``, l.58-70): linear from
    ``ratio`` to 1 over ``warmup`` steps, then (1 - step / total) ** power; constant after ``total``."""
    if step < warmup:
        return 1 - (1 - step / warmup) * (1 - ratio)
    return (1 - min(step, total) / total) ** power


def loss_weights(n_iter: int, cfg) -> dict[str, float]:
    """Each loss's weight at iteration ``n_iter`` (train_voc.py l.225-231): classification, auxiliary
    classification and patch-token contrast throughout; LIL and LIG after ``lil_lig_after``; the
    segmentation and energy losses after ``seg_after``."""
    w = {"cls": 1.0, "cls_aux": 1.0, "ptc": cfg.w_ptc, "lil": 0.0, "lig": 0.0, "seg": 0.0, "reg": 0.0}
    if n_iter > cfg.lil_lig_after:
        w.update(lil=cfg.w_lil, lig=cfg.w_lig)
    if n_iter > cfg.seg_after:
        w.update(seg=cfg.w_seg, reg=cfg.w_reg)
    return w


# --- CAMs (camutils.py) -----------------------------------------------------------------------

@torch.no_grad()
def multi_scale_cam(model, images: torch.Tensor, scales) -> tuple[torch.Tensor, torch.Tensor]:
    """(CAM, aux CAM) of ``images`` (camutils.py ``multi_scale_cam2``, l.116-156): at each scale (the
    input size first, then the others of ``scales``), the classifiers on every token of the image
    and its flip, bilinear to the input size, the max of the two, ReLU; summed over scales; each
    image's map shifted to min 0 and divided by its max (+1e-5), over all classes together."""
    b, _, h, w = images.shape
    cams, auxes = [], []
    for s in [1.0] + [s for s in scales if s != 1.0]:
        x = images if s == 1.0 else F.interpolate(images, size=(int(s * h), int(s * w)), mode="bilinear",
                                                  align_corners=False)
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


def cam_to_label(cam: torch.Tensor, cls_label: torch.Tensor, img_box: torch.Tensor, high: float, low: float,
                 mid: int = IGNORE, ignore_index: int = IGNORE) -> tuple[torch.Tensor, torch.Tensor]:
    """The image's classes' CAMs (B, C, H, W; normalised to [0, 1]) to labels: the top class where its
    score is above ``high``, background at or below ``low``, ``mid`` between (``ignore_index`` for the
    pseudo label, -1 for the crop-tag map of ``cam_to_roi_mask``), ``ignore_index`` outside the box
    (camutils.py ``cam_to_label`` with ``ignore_mid``, l.63-83; ``bkg_thre`` is overridden there)."""
    valid = cam * cls_label[:, :, None, None]
    value, top = valid.max(1)
    label = top + 1
    label = label.masked_fill(value <= high, mid).masked_fill(value <= low, 0)
    return valid, _inside_box(label, img_box, ignore_index)


def refine_with_background(image: torch.Tensor, cams: torch.Tensor, cls_label: torch.Tensor, img_box: torch.Tensor,
                           high: float, low: float, ignore_index: int = IGNORE, down_scale: int = 2,
                           **par) -> torch.Tensor:
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
            refined = F.interpolate(par_refine(image_s[n:n + 1], probs, **par), size=(h, w), mode="bilinear",
                                    align_corners=False)
            out[n] = valid[refined.argmax(1)[0]]
        labels.append(_inside_box(out, img_box, ignore_index))
    label_h, label_l = labels
    label = label_h.masked_fill(label_h == 0, ignore_index)
    return label.masked_fill((label_h + label_l) == 0, 0)


# --- image-level decomposition: local crops against a memory queue (LIL) and prototypes (LIG) ----

def assign_crop_tags(images: torch.Tensor, roi: torch.Tensor, crop_num: int, crop_size: int,
                     threshold: float = 0.2) -> tuple[list[torch.Tensor], torch.Tensor]:
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
        centres = (labelled[n, margin:h - margin, margin:w - margin] < 0).nonzero()
        if centres.shape[0] < crop_num:
            centres = (conf[n, margin:h - margin, margin:w - margin] >= 0).nonzero()
        classes = conf[n].unique()
        classes = classes[classes != 0]
        if len(classes) >= 2:
            flags[n, :2] = -1
        elif len(classes) == 1:
            flags[n, :2] = classes[0]
            conf[n] = conf[n] + unsure[n] * classes[0]
        order = torch.randperm(centres.shape[0], generator=torch.Generator().manual_seed(0))
        for k, (y, x) in enumerate(centres[order[:crop_num].to(centres.device)].tolist()):
            crops[n, k] = images[n, :, y:y + crop_size, x:x + crop_size]
            if counted[n, y:y + crop_size, x:x + crop_size].sum() / crop_size ** 2 <= threshold:
                flags[n, k + 2] = 0
            else:
                inside = conf[n, y:y + crop_size, x:x + crop_size].unique()
                inside = inside[inside != 0]
                flags[n, k + 2] = inside[-1] if len(inside) == 1 else -1
    return [crops[:, k] for k in range(crop_num)], flags


def lil_loss(q: torch.Tensor, keys: torch.Tensor, flags: torch.Tensor, key_flags: torch.Tensor,
             temperature: float = 0.08, base_temperature: float = 0.08) -> tuple[torch.Tensor, torch.Tensor]:
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


def lig_loss(q: torch.Tensor, prototypes: torch.Tensor, flags: torch.Tensor,
             temperature: float = 0.1, base_temperature: float = 0.1) -> torch.Tensor:
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


# --- PAR: pixel-adaptive refinement (PAR.py) ----------------------------------------------------

# the 8 neighbours in the release's kernel order (PAR.py get_kernel, l.10-23); diagonals at sqrt(2)
_OFFSETS = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]


def _neighbours(x: torch.Tensor, dilations) -> torch.Tensor:
    """(B, C, K, H, W): each pixel's 8 neighbours at every dilation, replicate padding."""
    h, w = x.shape[-2:]
    out = []
    for d in dilations:
        p = F.pad(x, [d] * 4, mode="replicate")
        out += [p[..., d + dy * d: d + dy * d + h, d + dx * d: d + dx * d + w] for dy, dx in _OFFSETS]
    return torch.stack(out, 2)


def par_refine(image: torch.Tensor, masks: torch.Tensor, dilations=(1, 2, 4, 8, 12, 24), iterations: int = 10,
               w1: float = 0.3, w2: float = 0.01) -> torch.Tensor:
    """Refine ``masks`` (B, K, h, w) by ``image`` (B, 3, H, W) (PAR.py ``PAR.forward``, l.64-93).
    The masks are resized to the image (bilinear, corners aligned); each pixel's weights over its
    neighbours are softmax(-(|I_n - I| / std_n(I_n) / w1)^2, channel mean) + w2 softmax(-(dist /
    std(dist) / w1)^2), and the masks are averaged with them ``iterations`` times."""
    masks = F.interpolate(masks, size=image.shape[-2:], mode="bilinear", align_corners=True)
    nb = _neighbours(image, dilations)
    diff = (nb - image.unsqueeze(2)).abs()
    aff = -(diff / (nb.std(2, keepdim=True) + 1e-8) / w1) ** 2
    aff = aff.mean(1, keepdim=True)
    dist = torch.tensor([d * (math.sqrt(2) if dy and dx else 1.0) for d in dilations for dy, dx in _OFFSETS],
                        dtype=image.dtype, device=image.device).view(1, 1, -1, 1, 1)
    pos = -(dist / (dist.std(2, keepdim=True) + 1e-8) / w1) ** 2
    weights = aff.softmax(2) + w2 * pos.softmax(2)
    for _ in range(iterations):
        masks = (_neighbours(masks, dilations) * weights).sum(2)
    return masks


# --- dense energy (rloss's DenseEnergyLoss), in PyTorch ------------------------------------------

def bilateral_apply(image: torch.Tensor, values: torch.Tensor, sigma_rgb: float, sigma_xy: float,
                    chunk: int = 4096) -> torch.Tensor:
    """``out[b, k, i] = sum_j W_ij values[b, k, j]`` with the dense Gaussian bilateral kernel
    W_ij = exp(-|p_i - p_j|^2 / 2 sigma_xy^2 - |I_i - I_j|^2 / 2 sigma_rgb^2) (self pair included),
    computed exactly, ``chunk`` rows of W at a time. rloss filters with a permutohedral lattice,
    an approximation of this kernel."""
    b, k, h, w = values.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=image.device, dtype=image.dtype),
                            torch.arange(w, device=image.device, dtype=image.dtype), indexing="ij")
    pos = torch.stack([ys, xs]).flatten(1) / sigma_xy  # (2, N)
    out = torch.empty_like(values.flatten(2))
    for n in range(b):
        feats = torch.cat([pos, image[n].flatten(1) / sigma_rgb]).T  # (N, 5)
        vals = values[n].flatten(1).T  # (N, K)
        for s in range(0, feats.shape[0], chunk):
            w_rows = torch.exp(-0.5 * torch.cdist(feats[s:s + chunk], feats).square())
            out[n, :, s:s + chunk] = (w_rows @ vals).T
    return out.view(b, k, h, w)


def dense_energy_loss(image: torch.Tensor, probs: torch.Tensor, roi: torch.Tensor, label: torch.Tensor,
                      weight: float = 1e-7, sigma_rgb: float = 15.0, sigma_xy: float = 100.0,
                      scale: float = 0.5, ignore_index: int = IGNORE) -> torch.Tensor:
    """The dense-CRF energy regulariser (losses.py ``DenseEnergyLoss``, l.224-288; from meng-tang/rloss).

    ``image``: (B, 3, H, W) in 0-255; ``probs``: (B, K, H, W) softmax of the segmentation logits;
    ``roi``: (B, H, W) 1 inside the image (not the crop's padding); ``label``: (B, H, W) the pseudo
    label (255 unlabelled). Everything is scaled by ``scale`` (image, ROI, label nearest; probs
    bilinear) and ``sigma_xy`` with it. With S = probs x ROI and the gate
    G = max(ROI - max_k S, 0), set to 1 where the label is 255, the loss is
    ``-weight / B * sum S * (G * W S)``, and its gradient is rloss's ``-2 weight / B * G * W S``
    (times the ROI) with the gate held fixed.
    """
    image = F.interpolate(image, scale_factor=scale, recompute_scale_factor=True)
    probs = F.interpolate(probs, scale_factor=scale, mode="bilinear", align_corners=False,
                          recompute_scale_factor=True)
    roi = F.interpolate(roi[:, None].float(), scale_factor=scale, recompute_scale_factor=True)[:, 0]
    label = F.interpolate(label[:, None].float(), scale_factor=scale, mode="nearest",
                          recompute_scale_factor=True)[:, 0]
    gate = (roi - probs.detach().amax(1)).masked_fill(label.long() == ignore_index, 1.0).clamp(min=0)
    s = probs * roi[:, None]
    dtype = torch.float64 if s.dtype == torch.float64 else torch.float32  # fp32 at least (under autocast)
    with torch.no_grad():
        ws = gate[:, None] * bilateral_apply(image.to(dtype), s.detach().to(dtype), sigma_rgb, sigma_xy * scale).to(s)
    b = probs.shape[0]
    energy = (s.detach() * ws).sum()
    # value -sum(S . WS) / B; gradient -2 WS / B (rloss's backward): 2 S.WS - S.WS with S.WS held
    return -weight * (2 * (s * ws).sum() - energy) / b


# --- inference (tools/infer_cam.py, tools/infer_seg_voc.py) ---------------------------------------

def _input(image: torch.Tensor, size: int) -> torch.Tensor:
    # the release resizes every normalised image to crop_size x crop_size (bilinear) before inference
    return F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False)


@torch.no_grad()
def infer_cams(model, image: torch.Tensor, size: int, scales) -> torch.Tensor:
    """The normalised CAMs (1, C, H, W) of one normalised image (1, 3, H, W) at its own size
    (infer_cam.py ``_validate``, l.69-84: resize to ``size`` square, ``multi_scale_cam2``, bilinear back)."""
    cam, _ = multi_scale_cam(model, _input(image, size), scales)
    return F.interpolate(cam, size=image.shape[-2:], mode="bilinear", align_corners=False)


@torch.no_grad()
def infer_seg(model, image: torch.Tensor, size: int, scales) -> torch.Tensor:
    """Segmentation logits (1, K, H, W) of one normalised image (infer_seg_voc.py ``_validate``,
    l.56-75): at each scale s the input at int(size x s) square with its flip, logits + flipped
    logits, bilinear to the image; the max over scales."""
    outs = []
    for s in scales:
        x = _input(image, int(size * s))
        seg = model(torch.cat([x, x.flip(-1)]))[1].float()
        seg = F.interpolate(seg, size=image.shape[-2:], mode="bilinear", align_corners=False)
        outs.append(seg[:1] + seg[1:].flip(-1))
    return torch.stack(outs).amax(0)
