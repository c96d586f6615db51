"""The project's BAO against numbers computed by the authors' released code (i2mond/BAO, commit 8756746).

How the numbers were made: ``python tests/release/make_release_numbers.py /path/to/i2mond/BAO`` built the
release's ``network.conformer.Net`` and ran its ``forward('bao', ...)``, and executed the lines of
``train_bao.py`` (pseudo-labels and loss l.148-175, balanced_cross_entropy l.20-47, momentum l.113-115,
Share/EMA l.181-192), ``tool/pyutils.py`` (cosine_scheduler l.249-260), ``infer_bao.py`` (the seed,
l.63-90 and l.102) and ``tool/imutils.py`` (crf_inference_label l.274-296) on the fixed inputs of
``release_inputs.py``; it stored their outputs in ``data/release_numbers.npz``. The released code itself
is not in this project.
"""

import sys
from types import SimpleNamespace

import numpy as np
import pytest
import release_inputs as RI
import torch
from conftest import ROOT

sys.path.insert(0, str(ROOT / "tests" / "release"))
from make_release_numbers import simulated_step, tiny_pair  # noqa: E402

REL = np.load(ROOT / "tests" / "data" / "release_numbers.npz")


def project_net():
    from bao.method.bao import BAONet
    from bao.models.factory import create_model

    net = BAONet(create_model("conformer_s", num_classes=21, **RI.TINY_CONFORMER))
    net.load_state_dict(RI.fill_state(net.state_dict()), strict=True)
    return net


def test_state_dict_keys_match_the_releases():
    """Every key of the project's BAONet is a key of the release's Net (network/conformer.py) once the
    ``backbone.`` prefix goes and ``am_head`` is named ``classifier_x``, with the same shapes."""
    net = project_net()
    keys = {RI.to_release_key(k) for k in net.state_dict()}
    assert "classifier_x.weight" in keys and "label_enc.weight" in keys and "conv_cls_head.weight" in keys
    assert net.am_head.kernel_size == (3, 3) and net.am_head.padding == (1, 1)


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_forward_bao_matches_the_release(mode):
    """Net.forward('bao', x, label): am (A* . classifier_x(x * label_enc(y))), cams (A* . conv_cls_head),
    camsfg_ambg = [am bg, cams fg] and the two logits; train mode is the release's target (BN on batch
    statistics)."""
    net = project_net().train(mode == "train")
    with torch.no_grad():
        out = net(RI.images(2), RI.labels(2))
    pairs = {
        "conv_logits": out["logits_conv"],
        "trans_logits": out["logits_trans"],
        "am": out["am"],
        "cams": out["cams"],
        "camsfg_ambg": out["camsfg_ambg"],
    }
    for k, v in pairs.items():
        ref = REL[f"net_{mode}_{k}"]
        scale = np.abs(ref).max()
        np.testing.assert_allclose(v.numpy(), ref, rtol=1e-4, atol=1e-5 * scale, err_msg=k)


def test_pseudo_labels_match_the_release():
    from bao.method.bao import pseudo_labels

    cams, label = torch.from_numpy(REL["pseudo_cams"]), torch.from_numpy(REL["pseudo_label_cls"])
    got = pseudo_labels(cams[:, 1:], label)
    np.testing.assert_array_equal(got.numpy(), REL["pseudo_labels"])
    # a class absent from the image never wins
    present = np.concatenate([np.ones((8, 1)), REL["pseudo_label_cls"]], 1)
    assert all(present[b, c] for b in range(8) for c in np.unique(got[b].numpy()))


def test_loss_matches_the_release_and_its_epoch0_weight_cancels():
    """L_cls + 1.0 x balanced CE (eps 0.4) on the pseudo-labels; the release's w_pcl 0.5 in epoch 0
    multiplies the foreground mean's numerator and denominator alike, so epochs 0 and 1 agree."""
    from bao.method.bao import pcl_loss, pseudo_labels
    from bao.method.transcam import cls_loss

    out = {
        "logits_conv": torch.from_numpy(REL["loss_inputs_conv"]),
        "logits_trans": torch.from_numpy(REL["loss_inputs_trans"]),
    }
    label = torch.from_numpy(REL["pseudo_label_cls"])
    p_t = pseudo_labels(torch.from_numpy(REL["pseudo_cams"])[:, 1:], label)
    l_pcl = pcl_loss(torch.from_numpy(REL["loss_inputs_am"]), p_t, 0.4)
    for ep in (0, 1):
        assert l_pcl.item() == pytest.approx(float(REL[f"loss_pcl_ep{ep}"]), rel=1e-5)
        assert (cls_loss(out, label) + l_pcl).item() == pytest.approx(float(REL[f"loss_ep{ep}"]), rel=1e-5)


def test_share_then_ema_matches_the_release_over_three_epochs():
    """Epoch 0: Share (state_dict, buffers included); epochs 1-2: EMA of parameters only, tau from a
    cosine 0.9995 -> 1 over one epoch's steps indexed within the epoch (restarting every epoch). The
    target's BatchNorm statistics are its own (its forwards in train mode)."""
    from bao.method.bao import ema_tau, ema_update, share, update_mode

    steps = int(REL["ema_steps_per_epoch"])
    student, teacher = tiny_pair()
    taus, step = [], 0
    for ep in range(3):
        for batch in range(steps):
            simulated_step(student, teacher, step)
            step += 1
            mode = update_mode("share+ema", ep, 1)
            if mode == "share":
                share(teacher, student)
                taus.append(np.nan)
            else:
                tau = ema_tau(step, batch, steps, 3 * steps, 0.9995, "epoch")
                ema_update(teacher, student, tau, "params")
                taus.append(tau)
        for k, v in teacher.state_dict().items():
            np.testing.assert_allclose(v.numpy(), REL[f"ema_ep{ep}_{k}"], rtol=1e-6, atol=1e-7, err_msg=f"{ep} {k}")
    np.testing.assert_allclose(taus, REL["ema_taus"], rtol=0, atol=1e-12)


def test_seed_from_six_passes_matches_the_release():
    """infer_bao.py: each pass's camsfg_ambg upsampled (bilinear) to the image, times [1, label], flipped
    back, summed; ReLU, the release's min-max, argmax over the 21 channels."""
    from bao.method.readouts import camsfg_ambg_scores, combine_seed_scores, seed_labels
    from bao.method.transcam import multi_scale

    passes = [torch.from_numpy(p) for p in RI.seed_passes(20, 28)]
    label = torch.from_numpy(REL["seed_label"])
    calls = iter(range(3))

    def fn(x):  # the network's two outputs of a scale: the image and its flip
        i = next(calls)
        return torch.cat([passes[2 * i], passes[2 * i + 1]])

    total = multi_scale(fn, np.zeros((20, 28, 3), np.uint8), [2, 3, 4], True, False, "cpu")
    scores = camsfg_ambg_scores(total, label)
    np.testing.assert_allclose(scores.numpy(), REL["seed_norm_cam"], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(seed_labels(scores), REL["seed"])
    am_sum = torch.cat([total[:1], torch.zeros(20, 20, 28)])
    via_rule = combine_seed_scores(am_sum, total[1:], label, "camsfg_ambg", passes=6)
    np.testing.assert_array_equal(seed_labels(via_rule), REL["seed"])


def test_fn_passes_are_flipped_back():
    """The parity test above feeds a flipped view's output through multi_scale, which flips it back: a
    map that is not symmetric must come out as given (the release flips pass 2k+1 after upsampling)."""
    from bao.method.transcam import multi_scale

    m = torch.arange(6.0).reshape(1, 1, 2, 3)
    total = multi_scale(lambda x: torch.cat([m, m.flip(-1)]), np.zeros((2, 3, 3), np.uint8), [2], True, False, "cpu")
    assert torch.equal(total[0], 2 * m[0, 0])


@pytest.mark.parametrize("absent", ["merged", "literal"])
@pytest.mark.parametrize("n_labels", [91, 21])
def test_mask_crf_matches_the_release(n_labels, absent):
    """crf_inference_label(img, seed): gt_prob 0.7, Gaussian 3/3, bilateral 50/5/10, 10 iterations, over
    n_labels labels (the release's call leaves the default 91); the absent labels merged into one (the
    default) or each its own (the release's call)."""
    from bao.method.crf import crf_labels

    img, seed = RI.crf_image()
    cfg = SimpleNamespace(
        gauss_sxy=3,
        gauss_compat=3,
        bilateral_sxy=50,
        bilateral_srgb=5,
        bilateral_compat=10,
        iterations=10,
        gt_prob=0.7,
        absent=absent,
    )
    np.testing.assert_array_equal(crf_labels(img, seed, cfg, n_labels=n_labels), REL[f"crf_mask_{n_labels}"])


def test_release_norm_by_hand():
    """Zeroed values go negative; an absent (all-zero) channel is -1."""
    from bao.method.readouts import release_norm

    x = torch.tensor([[[2.0, 4.0, 6.0]], [[0.0, 0.0, 0.0]]])
    got = release_norm(x)
    # channel 0: min 2 -> the 2 is zeroed, then (0 - 2 - 1e-5) / (4 + 1e-5)
    ref0 = torch.tensor([(0 - 2 - 1e-5) / (4 + 1e-5), (4 - 2 - 1e-5) / (4 + 1e-5), (6 - 2 - 1e-5) / (4 + 1e-5)])
    assert torch.allclose(got[0, 0], ref0)
    assert torch.allclose(got[1, 0], torch.full((3,), -1.0))
