"""BAO's formulas against hand computations (docs/method.md eq. 5, 6, 8; AMN L_pcl §4; BYOL cosine EMA §3.4)."""

import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from bao.method.bao import cosine_tau, ema_update, eq6_scores, pcl_loss, pseudo_labels, share, update_mode
from bao.method.norms import max_norm, minmax_norm
from bao.method.readouts import READOUTS, combine_seed_scores, seed_labels, seed_scores_by_rule
from bao.method.transcam import refine


def test_refine_matches_einsum():
    torch.manual_seed(0)
    cam = torch.randn(2, 5, 3, 4)
    attn = torch.rand(2, 12, 12)
    ref = torch.einsum("nij,ncj->nci", attn, cam.flatten(2)).reshape(2, 5, 3, 4)  # TransCAM's einsum
    assert torch.allclose(refine(cam, attn), ref, atol=1e-5)


def test_norms_by_hand():
    x = torch.tensor([[[[-1.0, 0.0], [2.0, 4.0]]]])
    assert torch.allclose(max_norm(x, eps=0), torch.tensor([[[[0, 0], [0.5, 1.0]]]]))
    mm = minmax_norm(x)
    assert torch.allclose(mm, (torch.tensor([[[[0, 0], [2.0, 4.0]]]]) - 1e-5) / (4 + 1e-5), atol=1e-7)


def test_eq6_by_hand():
    # two pixels, classes 1 and 3 present (label index 0 and 2), class 2 absent but with the largest CAM
    cam = torch.zeros(1, 20, 1, 2)
    cam[0, 0] = torch.tensor([[2.0, 1.0]])  # class 1: max 2 -> [1.0, 0.5]
    cam[0, 1] = torch.tensor([[9.0, 9.0]])  # class 2: absent
    cam[0, 2] = torch.tensor([[0.0, 4.0]])  # class 3: max 4 -> [0.0, 1.0]
    label = torch.zeros(1, 20)
    label[0, [0, 2]] = 1
    s = eq6_scores(cam, label)
    bg = 1 - torch.tensor([max(1.0, 0.0), max(0.5, 1.0)])  # eq. 6 over present classes only
    assert torch.allclose(s[0, 0, 0], bg, atol=1e-4)
    assert (s[0, 2] == 0).all()  # absent class: zeroed by the label, as the release (never the argmax)
    assert pseudo_labels(cam, label).tolist() == [[[1, 3]]]
    # a weak foreground loses to the background: no threshold, the argmax decides
    cam[0, 0] = torch.tensor([[4.0, 1.0]])
    cam[0, 2] = torch.tensor([[0.0, 0.0]])
    assert pseudo_labels(cam, label).tolist() == [[[1, 0]]]


def test_pcl_loss_by_hand():
    logits = torch.tensor([[[[2.0, 0.0, 1.0]], [[0.0, 1.0, 0.0]], [[1.0, 0.0, 3.0]]]])  # (1, 3, 1, 3)
    target = torch.tensor([[[0, 2, 255]]])
    eps = 0.4
    logp = torch.log_softmax(logits, 1)[0, :, 0]  # (3 classes, 3 pixels)
    ce = lambda px, c: -sum((1 - eps if k == c else eps / 2) * logp[k, px] for k in range(3))  # noqa: E731
    expected = (ce(0, 0) + ce(1, 2)) / 2  # one bg pixel, one fg pixel, the 255 pixel ignored
    assert torch.allclose(pcl_loss(logits, target, eps), expected)


def test_cosine_schedule_by_hand():
    assert cosine_tau(0, 100, 0.99) == pytest.approx(0.99)
    assert cosine_tau(50, 100, 0.99) == pytest.approx(1 - 0.01 * (math.cos(math.pi / 2) + 1) / 2)
    assert cosine_tau(100, 100, 0.99) == pytest.approx(1.0)
    taus = [cosine_tau(k, 100, 0.9995) for k in range(101)]
    assert all(a <= b for a, b in zip(taus, taus[1:]))


def test_ema_and_share_by_hand():
    t, o = nn.BatchNorm1d(2), nn.BatchNorm1d(2)
    with torch.no_grad():
        t.weight.copy_(torch.tensor([1.0, 2.0]))
        o.weight.copy_(torch.tensor([3.0, 6.0]))
        o.running_mean.copy_(torch.tensor([1.0, 1.0]))
    o.num_batches_tracked += 5
    ema_update(t, o, 0.75)
    assert torch.allclose(t.weight, torch.tensor([0.75 * 1 + 0.25 * 3, 0.75 * 2 + 0.25 * 6]))
    assert torch.allclose(t.running_mean, torch.tensor([0.25, 0.25]))
    assert t.num_batches_tracked.item() == 5
    share(t, o)
    assert torch.equal(t.weight, o.weight)


def test_update_modes():
    assert [update_mode("share+ema", e, 1) for e in range(3)] == ["share", "ema", "ema"]
    assert update_mode("share+ema", 1, 2) == "share"
    assert update_mode("ema", 0, 1) == "ema" and update_mode("amn", 0, 1) == "none"


def test_combine_seed_scores():
    am = torch.zeros(21, 1, 2)
    am[0] = torch.tensor([[5.0, -5.0]])
    am[4] = torch.tensor([[0.0, 5.0]])
    cam = torch.zeros(20, 1, 2)
    cam[3] = torch.tensor([[0.1, 1.0]])
    label = np.zeros(20, np.float32)
    label[3] = 1
    for combine in READOUTS:
        s = combine_seed_scores(am, cam, torch.from_numpy(label), combine)
        assert s.shape == (21, 1, 2)
        if combine == "camsfg_ambg":
            assert (s[1] == -1).all()  # absent class: the release's all-zero channel, normalised to -1
        else:
            assert torch.isinf(s[1]).all()  # absent class
        assert s.argmax(0).tolist() == [[0, 4]], combine


def test_seed_scores_by_rule_equal_one_rule_at_a_time():
    # the per-epoch scorer computes every rule from one normalised CAM and one softmax: the same scores
    g = torch.Generator().manual_seed(0)
    am, cam = torch.randn(21, 6, 7, generator=g) * 5, torch.randn(20, 6, 7, generator=g) * 50
    label = (torch.arange(20) % 7 == 2).float()
    together = seed_scores_by_rule(am, cam, label, tuple(READOUTS)[::-1], 6)
    assert list(together) == list(tuple(READOUTS)[::-1])
    for c in READOUTS:
        assert torch.equal(together[c], combine_seed_scores(am, cam, label, c, 6)), c
    with pytest.raises(ValueError, match="seeds.combine: 'nope'"):
        seed_scores_by_rule(am, cam, label, ("cam", "nope"))


def test_combine_am_bg_by_hand():
    """am_bg: [max-normalised AM background probability, min-max refined CAM] (docs/method.md §3.5)."""
    am = torch.zeros(21, 1, 3)
    am[0, 0] = torch.tensor([2.0, 0.0, -2.0])  # class 3 (channel 4) logits stay 0
    cam = torch.zeros(20, 1, 3)
    cam[3, 0] = torch.tensor([0.0, 0.55, 1.0])
    cam[7, 0] = torch.tensor([9.0, 9.0, 9.0])  # absent class: must not count
    label = torch.zeros(20)
    label[3] = 1
    s = combine_seed_scores(am, cam, label, "am_bg")
    p_bg = torch.sigmoid(torch.tensor([2.0, 0.0, -2.0]))  # softmax over {bg, class 3}
    assert torch.allclose(s[0, 0], p_bg / p_bg.max(), atol=1e-4)
    assert torch.allclose(s[4, 0], torch.tensor([0.0, 0.55, 1.0]), atol=1e-4)
    assert torch.isinf(s[8]).all()
    assert s.argmax(0).tolist() == [[0, 0, 4]]
    # eq. 6 alone calls the middle pixel foreground (1 - 0.55 < 0.55); the AM's background keeps it
    assert combine_seed_scores(am, cam, label, "cam").argmax(0).tolist() == [[0, 4, 4]]


def test_refine_with_identity():
    torch.manual_seed(1)
    cam = torch.randn(1, 3, 2, 2)
    attn = torch.rand(1, 4, 4)
    ref = torch.einsum("nij,ncj->nci", attn + 2.5 * torch.eye(4), cam.flatten(2)).reshape(1, 3, 2, 2)
    assert torch.allclose(refine(cam, attn, identity=2.5), ref, atol=1e-5)


def test_am_branch_is_amns():
    """AMN's net/resnet50_amn.py: Linear(20, C) label encoder, multiplied in; Dropout(0.1) + ASPP
    (rates 6/12/18/24, N(0, 0.01)) to 21 channels; the new layers are the label encoder and classifier."""
    import torch.nn as nn

    from bao.method.bao import BAONet
    from bao.models.aspp import ASPPv2
    from bao.models.factory import create_model

    net = BAONet(create_model("conformer_mini", num_classes=21), head="amn_aspp")
    drop, aspp = net.am_head
    assert isinstance(drop, nn.Dropout) and drop.p == 0.1 and isinstance(aspp, ASPPv2)
    assert [b.dilation[0] for b in aspp.branches] == [6, 12, 18, 24]
    assert all(b.out_channels == 21 and b.bias is not None for b in aspp.branches)
    assert net.label_enc.in_features == 20 and net.label_enc.out_features == net.backbone.out_channels
    ids = {id(p) for p in net.new_parameters()}
    assert ids == {id(p) for m in (net.label_enc, net.am_head) for p in m.parameters()}
    x, y = torch.randn(2, 3, 64, 64), torch.tensor([[1.0] + [0] * 19, [0] * 19 + [1.0]])
    net.eval()
    out = net(x, y)
    assert out["am"].shape == (2, 21, 4, 4)
    # the label conditions the map: another label, another map
    assert not torch.allclose(out["am_raw"], net(x, y.flip(0))["am_raw"])
    # bao.aspp_rates: the dilations scaled to a smaller grid
    scaled = BAONet(create_model("conformer_mini", num_classes=21), head="amn_aspp", aspp_rates=[1, 2, 3, 4])
    assert [b.dilation[0] for b in scaled.am_head[1].branches] == [1, 2, 3, 4]


def test_seed_labels_are_argmax_with_first_max_on_ties():
    scores = torch.tensor(
        [[[0.5, 0.2], [0.1, 1.0]], [[0.5, 0.9], [float("-inf"), 1.0]], [[float("-inf")] * 2, [float("-inf")] * 2]]
    )
    got = seed_labels(scores)
    assert got.dtype == np.uint8
    assert got.tolist() == [[0, 1], [0, 0]]  # ties go to the first channel (background), as argmax
    many = torch.randint(0, 3, (21, 33, 47)).float()
    assert np.array_equal(seed_labels(many), many.argmax(0).numpy())


def test_am_head_is_the_releases_by_default():
    """i2mond/BAO network/conformer.py: classifier_x = Conv2d(C, 21, 3, padding=1), Kaiming fan-out, its
    bias at PyTorch's default; label_enc = Linear(20, C), truncated normal std 0.02, bias 0."""
    import torch.nn as nn

    from bao.method.bao import BAONet
    from bao.models.factory import create_model

    torch.manual_seed(0)
    net = BAONet(create_model("conformer_mini", num_classes=21))
    c = net.backbone.out_channels
    assert isinstance(net.am_head, nn.Conv2d) and net.am_head.kernel_size == (3, 3) and net.am_head.padding == (1, 1)
    assert net.am_head.out_channels == 21
    fan_out = 21 * 9
    assert net.am_head.weight.std().item() == pytest.approx((2 / fan_out) ** 0.5, rel=0.1)
    bound = 1 / (c * 9) ** 0.5  # PyTorch's default bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert net.am_head.bias.abs().max() <= bound and net.am_head.bias.abs().max() > 0
    assert (net.label_enc.bias == 0).all()
    assert net.label_enc.weight.std().item() == pytest.approx(0.02, rel=0.15)  # timm truncates at +-2 (absolute)
    with pytest.raises(ValueError, match="bao.head"):
        BAONet(create_model("conformer_mini", num_classes=21), head="aspp")


def test_ema_tau_spans():
    """epoch: the cosine over one epoch's steps, indexed by the batch within the epoch (restarting);
    run: one cosine over all steps."""
    from bao.method.bao import ema_tau

    assert ema_tau(11, 0, 10, 30, 0.9995, "epoch") == pytest.approx(0.9995)
    assert ema_tau(21, 0, 10, 30, 0.9995, "epoch") == pytest.approx(0.9995)
    assert ema_tau(15, 4, 10, 30, 0.9995, "epoch") == pytest.approx(cosine_tau(4, 10, 0.9995))
    assert ema_tau(15, 4, 10, 30, 0.9995, "run") == pytest.approx(cosine_tau(15, 30, 0.9995))
    with pytest.raises(ValueError, match="ema.span"):
        ema_tau(1, 0, 10, 30, 0.9, "step")


def test_ema_of_parameters_leaves_buffers():
    t, o = nn.BatchNorm1d(2), nn.BatchNorm1d(2)
    with torch.no_grad():
        o.weight.copy_(torch.tensor([3.0, 5.0]))
        o.running_mean.copy_(torch.tensor([1.0, 1.0]))
    ema_update(t, o, 0.5, "params")
    assert torch.allclose(t.weight, torch.tensor([2.0, 3.0]))
    assert torch.equal(t.running_mean, torch.zeros(2))


def test_pcl_grad_head_stops_at_the_am_branch():
    """bao.pcl_grad: "all" (the release) sends L_pcl's gradient into the backbone; "head" only into the
    label encoder and the AM classifier, with the outputs unchanged."""
    from bao.method.bao import BAONet
    from bao.models.factory import create_model

    torch.manual_seed(0)
    net = BAONet(create_model("conformer_mini", num_classes=21)).eval()
    x, y = torch.randn(2, 3, 64, 64), torch.tensor([[1.0] + [0] * 19, [0] * 19 + [1.0]])
    grads = {}
    for mode in ("all", "head"):
        net.pcl_grad = mode
        net.zero_grad(set_to_none=True)
        out = net(x, y)
        out["am"].square().mean().backward()
        grads[mode] = out["am"].detach()
        backbone = [p.grad for p in net.backbone.parameters() if p.grad is not None]
        assert net.am_head.weight.grad is not None and net.label_enc.weight.grad is not None
        assert bool(backbone) == (mode == "all")
    assert torch.equal(grads["all"], grads["head"])


def test_a_seed_readout_is_one_function_and_its_name(tmp_path):
    """Adding a seed readout is a function registered in ``bao.method.readouts`` and its name in
    ``seeds.combine``'s line of conf/config.yaml: the params schema accepts it, the scorers
    (make_seeds, the per-epoch curves) compute it and the seed ablation table describes it."""
    import json

    import yaml
    from conftest import ROOT

    from bao.config.schema import parse_params
    from bao.core.errors import ParamsError
    from bao.method import readouts
    from bao.scoring.report import seed_ablation_markdown

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["seeds"]["combine"] = "fg_argmax"
    with pytest.raises(ParamsError, match="seeds.combine"):
        parse_params(raw)

    @readouts.readout("fg_argmax")
    def _fg_argmax(m):
        """the refined CAM's foreground alone, background never

        A test readout."""
        return m.only_present(torch.cat([torch.full_like(m.cam_norm[:1], -1.0), m.cam_norm]))

    try:
        assert parse_params(raw).seeds.combine == "fg_argmax"
        am, cam = torch.randn(21, 3, 4), torch.rand(20, 3, 4)
        label = (torch.arange(20) == 5).float()
        scores = seed_scores_by_rule(am, cam, label, tuple(readouts.READOUTS), 2)
        assert list(scores) == [*("camsfg_ambg", "am", "cam", "mean", "am_bg"), "fg_argmax"]
        assert (seed_labels(scores["fg_argmax"]) == 6).all()
        metric = tmp_path / "seed_ablation.json"
        metric.write_text(json.dumps({"method": "BAO", "split": "train", "miou": {"fg_argmax": 0.5}}))
        assert "the refined CAM's foreground alone, background never | 50.0" in seed_ablation_markdown(metric, "x")
    finally:
        del readouts.READOUTS["fg_argmax"]
