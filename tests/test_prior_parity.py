"""Table 1's other rows against numbers computed by their authors' released code: SeCo (zwyang6/SeCo
202357f, with meng-tang/rloss 1caa759's bilateral filter), MCTformer's segmentation (xulianuwa/MCTformer
0acc27a) and TransCAM's PSA step (liruiwen/TransCAM 4ffe693).

How the numbers were made: ``python tests/release/make_prior_numbers.py SECO MCTFORMER TRANSCAM RLOSS``
imported the releases' modules (SeCo ``model/losses.py``, ``model/PAR.py``, ``utils/camutils.py``,
``utils/imutils.py``, ``utils/optimizer.py``; MCTformer ``seg/network/resnet38_seg.py``; TransCAM
``tool/imutils.py``, ``voc12/data.py`` ExtractAffinityLabelInRadius), ran the lines of MCTformer's
``seg/infer_seg.py`` l.87-98 and TransCAM's ``infer_aff.py`` l.108-121 and l.123-137 on the fixed
inputs of ``prior_inputs.py``, with rloss's C++ filter compiled by g++, and stored the outputs in
``data/prior_release_numbers.npz``. The released code itself is not in this project.
"""

import contextlib
import sys
from types import SimpleNamespace

import numpy as np
import prior_inputs as PI
import pytest
import release_inputs as RI
import torch
import torch.nn.functional as F
from conftest import ROOT

REL = np.load(ROOT / "tests" / "data" / "prior_release_numbers.npz")


def close(ours, theirs, rtol=1e-5, atol=1e-6):
    ours = ours.detach().numpy() if isinstance(ours, torch.Tensor) else np.asarray(ours)
    np.testing.assert_allclose(ours, np.asarray(theirs).reshape(ours.shape), rtol=rtol, atol=atol)


# --- SeCo ----------------------------------------------------------------------------------------


def test_seco_segmentation_and_patch_contrast_losses():
    from bao.method.seco.losses import balanced_seg_loss, label_to_aff_mask, patch_contrast_loss

    logits, label = PI.seg_inputs()
    logits.requires_grad_(True)
    loss = balanced_seg_loss(logits, label)
    loss.backward()
    close(loss, REL["seco_seg_loss"])
    close(logits.grad, REL["seco_seg_grad"])
    fmap, small = PI.ptc_inputs()
    fmap.requires_grad_(True)
    loss = patch_contrast_loss(fmap, label_to_aff_mask(small))
    loss.backward()
    close(loss, REL["seco_ptc_loss"])
    close(fmap.grad, REL["seco_ptc_grad"])


def test_seco_lil_and_lig_with_the_queue():
    from bao.method.seco.losses import lig_loss, lil_loss

    q, queue_all, flags, queue_flags, protos = PI.contrast_inputs()
    q.requires_grad_(True)
    n = q.shape[0]
    lil, revised = lil_loss(q, queue_all[n:], flags[:, 0], queue_flags[n:, 0], 0.08, 0.08)
    lig = lig_loss(q, protos, revised, 0.1, 0.1)
    (lil + lig).backward()
    close(lil, REL["seco_lil"])
    close(lig, REL["seco_lig"])
    close(revised.float(), REL["seco_revised"])
    close(q.grad, REL["seco_contrast_grad"])


@pytest.mark.parametrize("size", PI.ENERGY_SIZES)
def test_seco_energy_is_rloss_lattice(size):
    """seco.energy.kernel: lattice gives rloss's value and gradient (its permutohedral lattice is
    pydensecrf's, bit for bit); the exact Gaussian sum is about twice as large."""
    from bao.method.seco.energy import dense_energy_loss

    img, logits, roi, label = PI.energy_inputs(size)
    logits.requires_grad_(True)
    loss = dense_energy_loss(img, logits.softmax(1), roi, label, 1e-7, 15, 100, 0.5, kernel="lattice")
    loss.backward()
    close(loss, REL[f"seco_energy_{size}"], rtol=1e-5, atol=0)
    close(logits.grad, REL[f"seco_energy_grad_{size}"], rtol=1e-4, atol=1e-12)
    exact = dense_energy_loss(img, logits.detach().softmax(1), roi, label, 1e-7, 15, 100, 0.5, kernel="exact")
    assert 1.8 < exact.item() / loss.item() < 2.2


def test_seco_lattice_side_by_side_is_one_after_another(monkeypatch):
    """A batch's crops filtered in several processes (rloss's OpenMP loop over the batch) give the same
    bits as one process filtering them in turn."""
    from bao.method.seco import energy

    torch.manual_seed(0)
    img, values = torch.rand(3, 3, 40, 56) * 255, torch.rand(3, 5, 40, 56).softmax(1)
    monkeypatch.setattr(energy, "lattice_processes", lambda b: 1)
    alone = energy.lattice_apply(img, values, 15, 50)
    monkeypatch.setattr(energy, "lattice_processes", lambda b: 2)
    assert torch.equal(energy.lattice_apply(img, values, 15, 50), alone)
    assert energy._POOL is not None and energy._POOL[0] == 2  # the pool did the filtering


def test_seco_labels_par_and_crop_tags():
    """cam_to_label, the PAR-refined pseudo label on denormalize_img2's uint8 image, cam_to_roi_mask and
    assign_csc_tags (its crops and tags)."""
    from bao.method.seco.cams import cam_to_pseudo_label, refine_with_background
    from bao.method.seco.crops import assign_crop_tags
    from stages.train_seco import par_image

    x, cams, cls_label, box = PI.label_inputs()
    valid, label = cam_to_pseudo_label(cams, cls_label, box, 0.65, 0.25)
    close(valid, REL["seco_valid_cam"])
    np.testing.assert_array_equal(label.numpy(), REL["seco_cam_label"])
    refined = refine_with_background(
        par_image(x), valid, cls_label, box, 0.65, 0.25, dilations=(1, 2, 4, 8, 12, 24), iterations=10
    )
    np.testing.assert_array_equal(refined.numpy(), REL["seco_par_label"])
    _, roi = cam_to_pseudo_label(cams, cls_label, box, 0.65, 0.25, mid=-1)
    np.testing.assert_array_equal(roi.numpy(), REL["seco_roi"])
    crops, tags = assign_crop_tags(x, roi, 4, 16, 0.2)
    np.testing.assert_array_equal(torch.stack(crops).numpy(), REL["seco_crops"])
    np.testing.assert_array_equal(tags.numpy(), REL["seco_tags"])


def test_seco_par_image_is_the_releases_uint8_cast():
    """The float image (no cast) would change PAR's label: the cast matters on these inputs."""
    from bao.method.seco.cams import cam_to_pseudo_label, refine_with_background
    from stages.train_seco import denormalize

    x, cams, cls_label, box = PI.label_inputs()
    valid, _ = cam_to_pseudo_label(cams, cls_label, box, 0.65, 0.25)
    floats = refine_with_background(
        denormalize(x) / 255, valid, cls_label, box, 0.65, 0.25, dilations=(1, 2, 4, 8, 12, 24), iterations=10
    )
    assert (floats.numpy() != REL["seco_par_label"]).any()


def test_seco_learning_rate_schedule():
    """PolyWarmupAdamW's rate over max_iter (10) steps; the loop stops at max_iters, where the release's
    rate stays at its last value."""
    from bao.method.seco.schedule import poly_warmup_lr

    ours = [6e-5 * poly_warmup_lr(k, 3, 10, 1e-6, 0.9) for k in range(10)]
    np.testing.assert_allclose(ours, REL["seco_lrs"][:10], rtol=1e-12)


@pytest.mark.parametrize("tag, scales", [("seed", [1.0]), ("mask", [1.0, 0.5, 0.75, 1.25, 1.5, 1.75, 2.0])])
def test_seco_cam_inference(tag, scales):
    """tools/infer_cam.py: the image at the crop size (448; 64 here), multi_scale_cam2, back to the image."""
    from bao.method.seco.infer import infer_cams

    cam = infer_cams(PI.SeCoStub(), PI.seco_infer_image(), PI.SECO_INFER_SIZE, scales)
    close(cam, REL[f"seco_infer_cam_{tag}"])


def test_seco_segmentation_inference():
    """tools/infer_seg_voc.py: crop size x (1, 1.25, 1.5) squares, logits + flipped logits, max over scales."""
    from bao.method.seco.infer import infer_seg

    seg = infer_seg(PI.SeCoStub(), PI.seco_infer_image(), PI.SECO_INFER_SIZE, [1.0, 1.25, 1.5])
    close(seg, REL["seco_infer_seg"])


def test_seco_frozen_position_embedding_and_keys_without_gradient():
    """vit.py l.238 freezes the position embedding; model_seco.py sends the batch's key rows through
    _batch_shuffle_ddp under no_grad (l.8, l.94, l.124): a loss on the key rows reaches no parameter."""
    from bao.models.seco_net import SeCoNet

    torch.manual_seed(0)
    net = SeCoNet("vit_mini", num_classes=4, queue_size=24)
    assert not net.encoder.vit.pos_embed.requires_grad
    assert all(p is not net.encoder.vit.pos_embed for g in net.param_groups() for p in g)
    b, views = 2, [torch.randn(2, 3, 32, 32) for _ in range(2)]
    local = [torch.randn(2, 3, 16, 16) for _ in range(2)]
    out_q, feats, tags = net.reservoir(views, local, local, torch.ones(b * 4, 1))
    n = out_q.shape[0]
    params = [p for p in net.parameters() if p.requires_grad]
    through_keys = torch.autograd.grad(feats[n : 2 * n].sum(), params, retain_graph=True, allow_unused=True)
    assert all(g is None or not g.any() for g in through_keys)
    out_q.sum().backward()
    assert net.encoder.vit.pos_embed.grad is None
    assert net.encoder.vit.blocks[0].attn.qkv.weight.grad.abs().sum() > 0


# --- MCTformer's segmentation ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def mct_net():
    from bao.models.resnet38 import ResNet38Seg

    net = ResNet38Seg("resnet38d", 21)
    net.load_state_dict(RI.fill_state(net.state_dict(), seed=5))
    return net.eval()


def test_resnet38_seg_keys_and_forward_are_mctformers(mct_net):
    keys = sorted(k for k in mct_net.state_dict() if not k.endswith("num_batches_tracked"))
    assert keys == sorted(k for k in REL["mct_keys"].tolist() if not k.endswith("num_batches_tracked"))
    with torch.no_grad():
        logits = mct_net(PI.seg_image_tensor())
    assert logits.shape[-2:] == (5, 6)  # stride 8, upsampled by the caller
    close(logits, REL["mct_logits"], rtol=1e-4, atol=1e-4)


def test_segmentation_test_protocol_upsamples_once(mct_net):
    """infer_seg.py l.87-98 at scale 1.0 (where its input resize is the identity): the stride-8 logits
    upsampled to the image once, softmax, max over scales."""
    from stages.evaluate import predict

    cfg = SimpleNamespace(scales=[1.0], flip=False, combine="max_softmax", use_crf=False)
    pred = predict(mct_net, PI.seg_image(), cfg, torch.device("cpu"), contextlib.nullcontext)
    np.testing.assert_array_equal(pred, REL["mct_probs"][0].argmax(0))


def test_segmentation_frozen_set_is_mctformers(mct_net):
    """resnet38d.py ``train`` (l.191-212): conv1a and every BatchNorm's affine frozen, BatchNorm in eval
    mode; the paper setting's deeplab.frozen / freeze_bn, through the stage's ``freeze``."""
    import copy

    from bao.method.segmentation import freeze, param_groups

    net = copy.deepcopy(mct_net).train()
    freeze(net, ["conv1a"], True)
    assert sorted(k for k, p in net.named_parameters() if not p.requires_grad) == REL["mct_frozen"].tolist()
    bn_eval = sorted(k for k, m in net.named_modules() if isinstance(m, torch.nn.BatchNorm2d) and not m.training)
    assert bn_eval == REL["mct_bn_eval"].tolist()
    backbone, head = param_groups(net, 7e-4, 10.0)
    assert {id(p) for p in head["params"]} == {id(p) for n, p in net.named_parameters() if "fc8" in n}
    assert all(p.requires_grad for p in backbone["params"]) and (backbone["lr"], head["lr"]) == (7e-4, 7e-3)


def test_segmentation_loss_and_learning_rates():
    """train_seg.py l.92-93 (the stride-8 logits upsampled to the crop, CE with 255 ignored) and
    PolyOptimizer_cls: the fc8 layers at 10x, poly 0.9 over max_step, and --wt_dec in SGD's momentum
    slot (the paper setting's deeplab.momentum 1e-5, weight_decay 0)."""
    import yaml

    from bao.method.segmentation import poly_factor, seg_loss

    logits, target = PI.mct_loss_inputs()
    logits.requires_grad_(True)
    loss = seg_loss(logits, target)
    loss.backward()
    close(loss, REL["mct_loss"])
    close(logits.grad, REL["mct_loss_grad"])
    ours = [
        [7e-4 * poly_factor(k, 10, 0.9, mctformer=True), 7e-3 * poly_factor(k, 10, 0.9, mctformer=True)]
        for k in range(10)
    ]
    np.testing.assert_allclose(ours, REL["mct_lrs"], rtol=1e-12)
    paper = yaml.safe_load((ROOT / "conf" / "experiment" / "paper.yaml").read_text())["deeplab"]
    assert [paper["momentum"], paper["weight_decay"], paper["head_lr_mult"], paper["poly_power"]] == [
        *REL["mct_sgd"].tolist(),
        10.0,
        0.9,
    ]


def test_label_maps_resize_on_opencvs_nearest_grid():
    from bao.data.transforms import resize_nearest

    for k, (lab, size) in enumerate(PI.label_resizes()):
        np.testing.assert_array_equal(resize_nearest(lab, size), REL[f"cv2_nearest_{k}"])


# --- TransCAM's PSA ----------------------------------------------------------------------------------


def test_psa_affinity_labels():
    from bao.method.psa import affinity_labels

    bg, fg, neg = affinity_labels(PI.affinity_label_map(), 5)
    for ours, name in ((bg, "psa_bg"), (fg, "psa_fg"), (neg, "psa_neg")):
        np.testing.assert_array_equal(ours, REL[name])


def test_psa_affinity_loss():
    """train_aff.py l.101-109: bg/4 + fg/4 + neg/2, each a cross-entropy averaged within its set."""
    from bao.method.psa import affinity_labels, affinity_loss

    bg, fg, neg = (torch.from_numpy(a)[None] for a in affinity_labels(PI.affinity_label_map(), 5))
    aff = PI.affinities(bg.shape[1:]).requires_grad_(True)
    loss, _ = affinity_loss(aff, bg, fg, neg)
    loss.backward()
    close(loss, REL["psa_loss"])
    close(aff.grad, REL["psa_loss_grad"])


def test_psa_random_walk():
    from bao.method.psa import random_walk

    aff, cam, (dh, dw) = PI.walk_inputs()
    pooled = F.avg_pool2d(torch.from_numpy(cam)[None], 8, 8)[0].reshape(21, -1)
    walked = random_walk(pooled, aff, 14, 7).reshape(1, 21, dh, dw)
    walked = F.interpolate(walked, (dh * 8, dw * 8), mode="bilinear", align_corners=False)
    close(walked, REL["psa_walk"], rtol=1e-5, atol=1e-7)


def test_psa_final_crf_sees_the_truncated_image():
    import yaml

    from bao.method.crf import crf_labels
    from stages.random_walk import crf_image

    image, h, w = PI.psa_crf_inputs()
    hp, wp = -(-h // 8) * 8, -(-w // 8) * 8
    rebuilt = crf_image(image, hp, wp)
    np.testing.assert_array_equal(rebuilt, REL["psa_crf_image"])
    assert (rebuilt[:h, :w] != image).mean() > 0.1  # the cast truncates: not the original image
    crf = SimpleNamespace(**yaml.safe_load((ROOT / "params.yaml").read_text())["masks"]["crf"])
    label = PI.psa_crf_scores(hp, wp).argmax(0).astype(np.uint8)
    mask = crf_labels(rebuilt, label, crf, 21)[:h, :w]
    np.testing.assert_array_equal(mask, REL["psa_crf_mask"])


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
