"""SeCo's losses and PAR against hand computations on tiny tensors."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bao.method.seco.cams import cam_seed, cam_to_pseudo_label, multi_scale_cam, refine_with_background
from bao.method.seco.crops import assign_crop_tags
from bao.method.seco.energy import bilateral_apply, dense_energy_loss
from bao.method.seco.losses import balanced_seg_loss, label_to_aff_mask, lig_loss, lil_loss, patch_contrast_loss
from bao.method.seco.par import par_refine
from bao.method.seco.schedule import loss_weights, poly_warmup_lr


def test_balanced_seg_loss_by_hand():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [5.0, 0.0, 0.0]]).T.reshape(1, 3, 1, 3)
    label = torch.tensor([[[0, 1, 255]]])
    ce0 = -math.log(math.exp(2) / (math.exp(2) + 2))  # the background pixel
    ce1 = -math.log(math.e / (math.e + 2))  # the foreground pixel; 255 ignored
    expected = 0.5 * (ce0 / (1 + 1e-6) + ce1 / (1 + 1e-6))
    assert balanced_seg_loss(logits, label).item() == pytest.approx(expected, rel=1e-6)


def test_label_to_aff_mask_by_hand():
    aff = label_to_aff_mask(torch.tensor([[[0, 1], [1, 255]]]))[0]
    i = 255
    assert aff.tolist() == [[i, 0, 0, i], [0, i, 1, i], [0, 1, i, i], [i, i, i, i]]


def test_patch_contrast_by_hand():
    s = 1 / math.sqrt(2)
    fmap = torch.tensor([[1.0, 0.0, s], [0.0, 1.0, s]]).reshape(1, 2, 1, 3)  # tokens (1,0), (0,1), (s,s)
    aff = label_to_aff_mask(torch.tensor([[[0, 0, 1]]]))
    # one-label pairs (0,1),(1,0): |cos| 0; two-label pairs: four at |cos| s
    expected = 0.5 * (1 - 0 / (2 + 1)) + 0.5 * (4 * s) / (4 + 1)
    assert patch_contrast_loss(fmap, aff).item() == pytest.approx(expected, rel=1e-6)


def test_lil_by_hand():
    q = torch.tensor([[1.0]])
    keys = torch.tensor([[1.0], [3.0], [2.5]])  # logits 1, 3, 2.5 at temperature 1
    loss, flags = lil_loss(q, keys, torch.tensor([1.0]), torch.tensor([1.0, 2.0, 2.0]), 1.0, 1.0)
    # shifted by the max: -2, 0, -0.5; the max (exactly 0) leaves the denominator; the row's log-probs
    # are summed over all three keys (two non-positive ones give -log(denominator)); one positive pair
    denom = math.exp(-2) + math.exp(-0.5)
    assert loss.item() == pytest.approx(-(-2 - 3 * math.log(denom)), rel=1e-6)
    assert flags.tolist() == [1.0]
    # the batch's unsure crops (-1) and the queue's unsure keys take no part; n = 2 crops
    flags, key_flags = torch.tensor([1.0, -1.0]), torch.tensor([1.0, 2.0, 2.0, -1.0])
    loss2, _ = lil_loss(
        torch.tensor([[1.0], [7.0]]), torch.cat([keys, torch.tensor([[0.5]])]), flags, key_flags, 1.0, 1.0
    )
    assert loss2.item() == pytest.approx(-(-2 - 4 * math.log(denom)) / 2, rel=1e-6)
    # a row whose summed log-probabilities are positive is dropped: here the unsure key is the max
    loss3, _ = lil_loss(
        torch.tensor([[1.0], [7.0]]), torch.cat([keys, torch.tensor([[9.0]])]), flags, key_flags, 1.0, 1.0
    )
    d3 = math.exp(-8) + math.exp(-6) + math.exp(-6.5)
    assert -8 - 4 * math.log(d3) > 0 and loss3.item() == 0.0


def test_lil_relabels_a_crop_whose_positives_sit_below_its_mean():
    # twelve positives at logit 0 under one negative at 2: shifted, the positives are all -2, below
    # the row mean (-24/13): 12 below vs 1 above, more than 10 -> flag 0 and no loss
    keys = torch.tensor([[2.0]] + [[0.0]] * 12)
    loss, flags = lil_loss(torch.tensor([[1.0]]), keys, torch.tensor([3.0]), torch.tensor([5.0] + [3.0] * 12), 1.0, 1.0)
    assert flags.tolist() == [0.0] and loss.item() == 0.0


def test_lig_by_hand():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    prototypes = torch.tensor([[1.0, 0.3], [2.0, 0.7], [0.5, 5.0]])
    # crop 0 class 1, crop 1 class 2, crop 2 background: classes 1 and 2 present, prototype 3 left out
    loss = lig_loss(q, prototypes, torch.tensor([1.0, 2.0, 0.0]), 1.0, 1.0)
    lp0 = 1.0 - math.log(math.exp(1.0) + math.exp(2.0))
    lp1 = 0.7 - math.log(math.exp(0.3) + math.exp(0.7))
    assert loss.item() == pytest.approx(-(lp0 + lp1) / 2, rel=1e-6)
    # at temperature 0.5 (base 0.1) the logits double and the loss is scaled by 5
    loss_t = lig_loss(q, prototypes, torch.tensor([1.0, 2.0, 0.0]), 0.5, 0.1)
    lp0 = 2.0 - math.log(math.exp(2.0) + math.exp(4.0))
    lp1 = 1.4 - math.log(math.exp(0.6) + math.exp(1.4))
    assert loss_t.item() == pytest.approx(-5 * (lp0 + lp1) / 2, rel=1e-6)


def test_par_on_a_flat_image_scales_by_one_plus_w2_per_iteration():
    image = torch.full((1, 3, 6, 6), 0.5)
    # flat image: uniform image weights (sum 1) plus w2 x a softmax (sum w2) over the neighbours
    flat = par_refine(image, torch.ones(1, 1, 6, 6), dilations=(1, 2), iterations=3)
    assert torch.allclose(flat, torch.full_like(flat, 1.01**3))


def test_par_matches_a_per_pixel_loop():
    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, 5, 4, generator=g)
    masks = torch.rand(1, 2, 5, 4, generator=g)
    out = par_refine(image, masks, dilations=(1, 2), iterations=1)
    img, m = image[0].numpy().astype(np.float64), masks[0].numpy().astype(np.float64)
    offsets = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]
    nbrs = [(d * dy, d * dx, d * (math.sqrt(2) if dy and dx else 1)) for d in (1, 2) for dy, dx in offsets]
    dist = np.array([r for _, _, r in nbrs])
    pos = -((dist / (dist.std(ddof=1) + 1e-8) / 0.3) ** 2)
    pos = np.exp(pos) / np.exp(pos).sum()
    ref = np.zeros_like(m)
    for y in range(5):
        for x in range(4):
            at = [(min(max(y + dy, 0), 4), min(max(x + dx, 0), 3)) for dy, dx, _ in nbrs]  # replicate border
            cols = np.stack([img[:, a, b] for a, b in at], 1)  # (3, K)
            aff = -((np.abs(cols - img[:, y, x][:, None]) / (cols.std(1, ddof=1, keepdims=True) + 1e-8) / 0.3) ** 2)
            aff = aff.mean(0)
            w = np.exp(aff) / np.exp(aff).sum() + 0.01 * pos
            ref[:, y, x] = sum(w[k] * m[:, a, b] for k, (a, b) in enumerate(at))
    assert np.allclose(out[0].numpy(), ref, atol=1e-5)


def _direct_w(image, sigma_rgb, sigma_xy):
    """The bilateral kernel pair by pair: O(N^2) Python loops."""
    _, h, w = image.shape
    pix = [(y, x) for y in range(h) for x in range(w)]
    W = np.zeros((len(pix), len(pix)))
    for i, (yi, xi) in enumerate(pix):
        for j, (yj, xj) in enumerate(pix):
            dxy = (yi - yj) ** 2 + (xi - xj) ** 2
            drgb = float(((image[:, yi, xi] - image[:, yj, xj]) ** 2).sum())
            W[i, j] = math.exp(-dxy / (2 * sigma_xy**2) - drgb / (2 * sigma_rgb**2))
    return W


def test_bilateral_apply_matches_the_direct_sum():
    g = torch.Generator().manual_seed(1)
    image = torch.rand(2, 3, 3, 4, generator=g, dtype=torch.float64) * 255
    values = torch.rand(2, 2, 3, 4, generator=g, dtype=torch.float64)
    out = bilateral_apply(image, values, sigma_rgb=40.0, sigma_xy=2.0, chunk=5)  # chunks cut rows
    for n in range(2):
        W = _direct_w(image[n].numpy(), 40.0, 2.0)
        ref = values[n].flatten(1).numpy() @ W.T
        assert np.allclose(out[n].flatten(1).numpy(), ref, rtol=1e-10)


def test_dense_energy_value_and_rloss_gradient_by_direct_sum():
    g = torch.Generator().manual_seed(2)
    image = torch.rand(1, 3, 3, 4, generator=g, dtype=torch.float64) * 255
    logits = torch.randn(1, 3, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    roi = torch.ones(1, 3, 4, dtype=torch.float64)
    roi[0, :, 3] = 0  # the last column is crop padding
    label = torch.zeros(1, 3, 4, dtype=torch.long)
    label[0, 0, 0] = 255
    probs = logits.softmax(1)
    loss = dense_energy_loss(
        image, probs, roi, label, weight=0.5, sigma_rgb=60.0, sigma_xy=3.0, scale=1.0, kernel="exact"
    )
    loss.backward()
    # direct: S = P x ROI, G = max(ROI - max_k P, 0) with G = 1 at the 255 pixel; E = -w sum S (G W S)
    P = probs.detach()[0].flatten(1).numpy()
    r = roi[0].flatten().numpy()
    S = P * r
    G = np.maximum(r - P.max(0), 0)
    G[0] = 1.0
    W = _direct_w(image[0].numpy(), 60.0, 3.0)
    WS = S @ W.T
    assert loss.item() == pytest.approx(-0.5 * (S * G * WS).sum(), rel=1e-12)
    # rloss's backward: dE/dP = -2 w G WS x ROI (gate held fixed), then through the softmax
    dP = torch.from_numpy(-2 * 0.5 * G * WS * r).reshape(1, 3, 3, 4)
    expected = torch.autograd.grad(logits.softmax(1), logits, dP)[0]
    assert torch.allclose(logits.grad, expected, rtol=1e-9, atol=1e-12)


def test_dense_energy_scales_the_inputs():
    g = torch.Generator().manual_seed(3)
    image = torch.rand(2, 3, 8, 8, generator=g) * 255
    logits = torch.randn(2, 4, 8, 8, generator=g, requires_grad=True)
    roi, label = torch.ones(2, 8, 8), torch.zeros(2, 8, 8, dtype=torch.long)
    loss = dense_energy_loss(image, logits.softmax(1), roi, label)  # SeCo's 1e-7, 15, 100, 0.5
    loss.backward()
    assert loss.item() < 0 and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_cam_to_pseudo_label_by_hand():
    cam = torch.tensor([[[0.9, 0.5], [0.1, 0.8]], [[0.95, 0.2], [0.3, 0.1]]])[None]  # classes 1, 2
    box = torch.tensor([[0, 2, 0, 1]])  # the right column is the crop's padding
    valid, label = cam_to_pseudo_label(cam, torch.tensor([[1.0, 0.0]]), box, high=0.7, low=0.25)
    assert torch.equal(valid[0, 1], torch.zeros(2, 2))  # class 2 is not in the image
    assert label[0].tolist() == [[1, 255], [0, 255]]
    _, roi = cam_to_pseudo_label(cam, torch.tensor([[1.0, 1.0]]), torch.tensor([[0, 2, 0, 2]]), 0.7, 0.25, mid=-1)
    assert roi[0].tolist() == [[2, -1], [-1, 1]]


def test_refine_with_background_by_hand():
    # no PAR iterations and no rescaling: each pixel's label is the argmax of [background plane, CAM]
    cam = torch.tensor([[0.9, 0.5, 0.1, 0.9]]).reshape(1, 1, 1, 4).repeat(1, 1, 2, 1)
    image = torch.rand(1, 3, 2, 4)
    label = refine_with_background(
        image, cam, torch.tensor([[1.0]]), torch.tensor([[0, 2, 0, 3]]), high=0.7, low=0.25, down_scale=1, iterations=0
    )
    # 0.9: the class over both planes; 0.5: under the high plane only -> ignored; 0.1: background;
    # the last column lies outside the box
    assert label[0].tolist() == [[1, 255, 0, 255]] * 2


def test_crop_tags_by_hand():
    images = torch.arange(3 * 36, dtype=torch.float32).reshape(3, 1, 6, 6)  # pixel values locate a crop
    roi = torch.zeros(3, 6, 6, dtype=torch.long)
    roi[:, :, 5] = 255
    roi[0, 0, :2] = 3
    roi[0, 1, 0] = 3
    roi[0, 1, 1] = -1  # two uncertain pixels: the two crop centres (at crop_size/2 from the border)
    roi[0, 3, 3] = -1
    roi[1, 0, 0], roi[1, 4, 4] = 1, 2  # two classes, nothing uncertain: centres drawn from all
    crops, flags = assign_crop_tags(images, roi, crop_num=2, crop_size=2, threshold=0.3)
    # image 0 has one class: its views are tagged 3 and its uncertain pixels count as class 3
    where = {int(c[0, 0, 0, 0]): int(f) for c, f in zip(crops, flags[0, 2:])}
    # crop [0:2, 0:2] holds labels 3, 3, 3 and the uncertain one: sum 10 / 4 > 0.3 -> 3;
    # crop [2:4, 2:4] holds one uncertain pixel: 1 / 4 <= 0.3 -> background
    assert flags[0, :2].tolist() == [3, 3] and where == {0: 3, 14: 0}
    assert flags[1, :2].tolist() == [-1, -1]
    assert flags[2, :2].tolist() == [1, 1]  # no confident class: the release's initial tag stays
    for k, c in enumerate(crops):  # image 1: each crop's tag from its own labels
        y, x = divmod(int(c[1, 0, 0, 0]) - 36, 6)
        inside = roi[1, y : y + 2, x : x + 2]
        classes = set(inside.unique().tolist()) - {0}
        expected = 0 if inside.sum() / 4 <= 0.3 else (classes.pop() if len(classes) == 1 else -1)
        assert flags[1, k + 2] == expected
    # the same map crops the same places again (the release re-seeds for every image)
    again, _ = assign_crop_tags(images, roi, crop_num=2, crop_size=2, threshold=0.3)
    assert all(torch.equal(a, b) for a, b in zip(crops, again))


def test_seco_net_trains_a_step_with_every_loss():
    from bao.models.seco_net import SeCoNet

    torch.manual_seed(0)
    net = SeCoNet("vit_mini", num_classes=4, queue_size=24, aspp_rates=(1, 2))
    x = torch.rand(2, 3, 64, 64)
    cls_label = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    cls, seg, fmap, cls_aux = net(x)
    assert cls.shape == cls_aux.shape == (2, 3) and seg.shape == (2, 4, 4, 4) and fmap.shape == (2, 96, 4, 4)
    cam_aux, cam = net.cams(x)
    assert cam.shape == cam_aux.shape == (2, 3, 4, 4) and not cam.requires_grad
    # two global views and two local crops of 32 px per image: tags (2 images x 4 views)
    crops_q = [torch.rand(2, 3, 32, 32) for _ in range(2)]
    crops_k = [torch.rand(2, 3, 32, 32) for _ in range(2)]
    flags = torch.tensor([[1.0, 1.0, 1.0, 0.0], [-1.0, -1.0, 2.0, 3.0]]).reshape(-1, 1)
    before = net.prototypes.clone()
    cls, seg, fmap, cls_aux, out_q, feats, tags, protos = net(
        x, [x, x.flip(-1)] + crops_q + crops_k, flags, torch.tensor([[1], [-1]]), update_prototypes=True
    )
    assert out_q.shape == (8, 96) and feats.shape == (8 + 8 + 24, 96) and tags.shape == (40, 1)
    assert int(net.queue_ptr) == 8 and torch.equal(net.queue_flags[:8], flags)
    assert torch.allclose(protos.norm(dim=1), torch.ones(3))
    # only class 1's prototype moved (image 1 has two classes): 0.9 old + 0.1 class token, renormalised
    assert torch.allclose(protos[1:], torch.nn.functional.normalize(before[1:], dim=1))
    assert not torch.allclose(protos[0], torch.nn.functional.normalize(before[:1], dim=1)[0])
    lil, revised = lil_loss(out_q, feats[8:], flags[:, 0], tags[8:, 0])
    lig = lig_loss(out_q, protos, revised)
    label = torch.randint(0, 4, (2, 64, 64))
    seg_up = F.interpolate(seg, size=(64, 64), mode="bilinear", align_corners=False)
    loss = (
        F.multilabel_soft_margin_loss(cls, cls_label)
        + F.multilabel_soft_margin_loss(cls_aux, cls_label)
        + 0.3 * patch_contrast_loss(fmap, label_to_aff_mask(label[:, ::16, ::16]))
        + 0.5 * lil
        + 0.5 * lig
        + 0.12 * balanced_seg_loss(seg_up, label)
        + 0.05 * dense_energy_loss(x * 255, seg_up.softmax(1), torch.ones(2, 64, 64), label)
    )
    loss.backward()
    assert all(p.grad is not None for p in net.classifier.parameters())
    assert net.encoder.vit.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.encoder_k.parameters())  # the momentum encoder takes no gradient
    with pytest.raises(ValueError, match="ctc_dim"):
        SeCoNet("vit_mini", 21, ctc_dim=16)
    assert sum(len(g) for g in net.param_groups()) == sum(1 for p in net.parameters() if p.requires_grad)
    # vit.py l.238: the position embedding is frozen
    assert net.encoder.vit.pos_embed.grad is None and not net.encoder.vit.pos_embed.requires_grad


def test_schedule_follows_the_release():
    # PolyWarmupAdamW: 1 - (1 - s/W)(1 - r) during warm-up, (1 - s/T)^p after (global_step before the increment)
    assert poly_warmup_lr(0, 1500, 20000, 1e-6, 0.9) == pytest.approx(1e-6)
    assert poly_warmup_lr(750, 1500, 20000, 1e-6, 0.9) == pytest.approx(0.5 + 0.5e-6)
    assert poly_warmup_lr(1500, 1500, 20000, 1e-6, 0.9) == pytest.approx((1 - 1500 / 20000) ** 0.9)
    assert poly_warmup_lr(19999, 1500, 20000, 1e-6, 0.9) == pytest.approx((1 / 20000) ** 0.9)
    from types import SimpleNamespace

    cfg = SimpleNamespace(w_ptc=0.3, w_lil=0.5, w_lig=0.5, w_seg=0.12, w_reg=0.05, lil_lig_after=1000, seg_after=2000)
    at = {n: loss_weights(n, cfg) for n in (0, 1000, 1001, 2000, 2001)}
    assert at[1000] == {"cls": 1.0, "cls_aux": 1.0, "ptc": 0.3, "lil": 0.0, "lig": 0.0, "seg": 0.0, "reg": 0.0}
    assert at[1001]["lil"] == at[1001]["lig"] == 0.5 and at[2000]["seg"] == 0.0
    assert (at[2001]["seg"], at[2001]["reg"]) == (0.12, 0.05)


class FixedCams(torch.nn.Module):
    """A stand-in network whose CAMs are a fixed map resized to the input's grid (16-px tokens)."""

    def __init__(self, cam):
        super().__init__()
        self.cam = cam

    def cams(self, x):
        h, w = x.shape[-2] // 16, x.shape[-1] // 16
        cam = F.interpolate(self.cam, size=(h, w), mode="bilinear", align_corners=False)
        cam = cam.expand(x.shape[0], -1, -1, -1).clone()
        cam[x.shape[0] // 2 :] = cam[x.shape[0] // 2 :].flip(-1)  # the flipped half sees the flipped image
        return torch.full_like(cam, -1.0), cam  # (aux, cam): the aux CAM negative everywhere


def test_multi_scale_cam_by_hand():
    cam = torch.tensor([[[[2.0, -1.0], [0.0, 4.0]], [[1.0, 1.0], [1.0, 3.0]]]])  # 2 classes, 2x2 grid
    out, aux = multi_scale_cam(FixedCams(cam), torch.zeros(1, 3, 32, 32), scales=[1.0])
    # one scale: up to the input, the max with the flipped pass (the same map), ReLU, each class to
    # [0, 1] by its min and max
    up = F.interpolate(cam, size=(32, 32), mode="bilinear", align_corners=False).clamp(min=0)
    expected = (up - up.amin((2, 3), keepdim=True)) / (
        up.amax((2, 3), keepdim=True) - up.amin((2, 3), keepdim=True) + 1e-5
    )
    assert torch.allclose(out, expected, atol=1e-6) and torch.equal(aux, torch.zeros_like(aux))
    # two scales sum before the normalisation: the same map twice normalises to the same result
    twice, _ = multi_scale_cam(FixedCams(cam), torch.zeros(1, 3, 32, 32), scales=[1.0, 1.0])
    assert torch.allclose(twice, expected, atol=1e-6)
    # the seed: the top present class above bkg, else background
    label = cam_seed(expected, torch.tensor([[1.0, 1.0]]), bkg=0.5)
    top = expected.max(1)
    assert torch.equal(label, (top.indices + 1).masked_fill(top.values <= 0.5, 0))
    only2 = cam_seed(expected, torch.tensor([[0.0, 1.0]]), bkg=0.5)
    assert set(only2.unique().tolist()) <= {0, 2}


def test_seco_views_are_seeded_and_boxed(mini_root):
    from bao.data.seco_views import SeCoViews
    from bao.data.voc import VOCDataset

    ds = VOCDataset(mini_root, "train_aug", masks=None)
    views = SeCoViews(ds, crop_size=64, scale_range=[0.5, 2.0], jitter=[0.4, 0.4, 0.2, 0.1], seed=3)
    a, b = views[0], views[0]
    assert all(torch.equal(a[k], b[k]) for k in ("image", "global2", "local_src", "box"))
    assert a["image"].shape == a["global2"].shape == a["local_src"].shape == (3, 64, 64)
    y0, y1, x0, x1 = a["box"].tolist()
    assert 0 <= y0 < y1 <= 64 and 0 <= x0 < x1 <= 64
    # outside the box the crop is the release's black padding, normalised
    black = torch.from_numpy(((0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225]))).float()
    pad = torch.ones(64, 64, dtype=torch.bool)
    pad[y0:y1, x0:x1] = False
    if pad.any():
        assert torch.allclose(a["image"][:, pad], black[:, None].expand(3, int(pad.sum())), atol=1e-6)
    views.set_epoch(1)
    assert not torch.equal(views[0]["image"], a["image"])
    labels = ds.label(ds.ids[0])
    assert torch.equal(a["label"], torch.from_numpy(labels))
    assert a["label_idx"] == (int(np.argmax(labels)) + 1 if labels.sum() == 1 else -1)


def test_seco_params_are_checked():
    import yaml
    from conftest import ROOT

    from bao.config.schema import parse_params
    from bao.core.errors import ParamsError

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for key, value, message in (
        ("queue", 100, "seco.queue: must be a multiple of batch_size x ncrops"),
        ("crop_size", 100, "multiples of the patch size 16"),
        ("arch", "vit_huge", "seco.arch: unknown ViT"),
        ("aux_layer", -7, "seco.aux_layer"),
    ):
        bad = yaml.safe_load(yaml.safe_dump(raw))
        bad["seco"][key] = value
        with pytest.raises(ParamsError, match=message):
            parse_params(bad)


def test_vit_checkpoint_loads_key_for_key(tmp_path):
    from bao.core.errors import CheckpointError
    from bao.models.seco_net import SeCoNet, create_vit

    vit = create_vit("vit_mini", num_classes=48)  # a pretraining layout: its classifier is dropped
    torch.save(vit.state_dict(), tmp_path / "ok.pth")
    net = SeCoNet("vit_mini", num_classes=4, queue_size=24, aspp_rates=(1,))
    net.load_backbone(tmp_path / "ok.pth")
    assert torch.equal(net.encoder.vit.pos_embed, vit.pos_embed)
    assert torch.equal(net.encoder_k.vit.blocks[0].attn.qkv.weight, vit.blocks[0].attn.qkv.weight)
    sd = vit.state_dict()
    del sd["blocks.1.mlp.fc1.weight"]
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(
        CheckpointError, match=r"bad.pth: does not fit the ViT backbone: missing keys \['blocks.1.mlp.fc1.weight'\]"
    ):
        net.load_backbone(tmp_path / "bad.pth")
