"""PSA (AffinityNet, random walk) against hand computations on tiny arrays, and its ResNet-38d."""

import struct

import numpy as np
import pytest
import torch

from bao.core.errors import CheckpointError
from bao.method.cam_labels import confident_labels
from bao.method.psa import (
    affinity_labels,
    affinity_loss,
    dense_affinity,
    inference_radius,
    pair_affinity,
    pair_indices,
    pair_offsets,
    random_walk,
)
from bao.models.mxnet import mxnet_to_resnet38, read_mxnet_params
from bao.models.resnet38 import AffinityNet, create_affinitynet, load_resnet38_imagenet


def test_confident_labels_keep_fg_of_the_high_threshold_and_bg_where_both_agree():
    fg = np.array([[0, 0, 1, 2]], np.uint8)  # high background score: confident foreground
    bg = np.array([[0, 3, 1, 2]], np.uint8)  # low background score: confident background
    assert confident_labels(fg, bg).tolist() == [[0, 255, 1, 2]]


def test_pair_offsets_are_the_half_disc():
    assert pair_offsets(2) == [(0, 1), (1, -1), (1, 0), (1, 1)]
    # r = 3: dx, dy in -2..2 with dx^2 + dy^2 < 9 (2^2 + 2^2 = 8 is in), one of each +- pair
    assert pair_offsets(3) == [
        (0, 1),
        (0, 2),
        (1, -2),
        (1, -1),
        (1, 0),
        (1, 1),
        (1, 2),
        (2, -2),
        (2, -1),
        (2, 0),
        (2, 1),
        (2, 2),
    ]


def test_pair_indices_on_a_2x3_grid():
    # radius 2 leaves one "from" pixel, (0, 1) = index 1; its partners (0,2) (1,0) (1,1) (1,2)
    src, dst = pair_indices(2, 3, 2)
    assert src.tolist() == [1]
    assert dst.tolist() == [2, 3, 4, 5]
    # a 3x4 grid: from = rows 0-1, cols 1-2 = [1, 2, 5, 6]; offset (1, -1) maps them to [4, 5, 8, 9]
    src, dst = pair_indices(3, 4, 2)
    assert src.tolist() == [1, 2, 5, 6]
    assert dst.reshape(4, -1)[1].tolist() == [4, 5, 8, 9]
    with pytest.raises(ValueError):
        pair_indices(1, 3, 2)


def test_inference_radius_shrinks_on_small_grids():
    assert inference_radius(20, 30, 5) == 5
    assert inference_radius(8, 30, 5) == 3  # (8 - 1) // 2


def test_affinity_labels_by_hand():
    # from pixel (0,1) against (0,2) (1,0) (1,1) (1,2)
    bg, fg, neg = affinity_labels(np.array([[0, 0, 255], [0, 3, 3]], np.uint8), 2)
    assert bg[:, 0].tolist() == [0, 1, 0, 0]  # (1,0) is background too; (0,2) is ignored
    assert fg[:, 0].tolist() == [0, 0, 0, 0]
    assert neg[:, 0].tolist() == [0, 0, 1, 1]  # background vs class 3
    bg, fg, neg = affinity_labels(np.array([[0, 3, 3], [255, 3, 0]], np.uint8), 2)
    assert bg[:, 0].tolist() == [0, 0, 0, 0]
    assert fg[:, 0].tolist() == [1, 0, 1, 0]
    assert neg[:, 0].tolist() == [0, 0, 0, 1]


def test_affinity_is_exp_of_minus_mean_abs_difference():
    feat = torch.zeros(1, 2, 2, 3)
    feat[0, :, 0, 2] = torch.tensor([1.0, 3.0])  # pixel index 2
    aff = pair_affinity(feat, 2)
    assert aff.shape == (1, 4, 1)
    assert torch.allclose(aff[0, :, 0], torch.tensor([float(np.exp(-2.0)), 1.0, 1.0, 1.0]))


def test_affinity_loss_by_hand():
    aff = torch.tensor([[0.5, 0.25, 0.8]])
    bg, fg, neg = torch.tensor([[1.0, 0, 0]]), torch.tensor([[0, 1.0, 0]]), torch.tensor([[0, 0, 1.0]])
    loss, parts = affinity_loss(aff, bg, fg, neg)
    want = -np.log(0.5 + 1e-5) / 4 - np.log(0.25 + 1e-5) / 4 - np.log(1 + 1e-5 - 0.8) / 2
    assert loss.item() == pytest.approx(want, rel=1e-4)
    assert parts["neg_loss"] == pytest.approx(-np.log(0.2 + 1e-5), rel=1e-4)


def test_dense_affinity_is_symmetric_with_unit_diagonal():
    a = dense_affinity(torch.tensor([[0.1], [0.2], [0.3], [0.4]]), 2, 3, 2)
    want = np.eye(6, dtype=np.float32)
    for j, v in zip([2, 3, 4, 5], [0.1, 0.2, 0.3, 0.4]):
        want[1, j] = want[j, 1] = v
    assert np.allclose(a.numpy(), want)


def test_random_walk_by_hand():
    a = torch.tensor([[1.0, 0.5], [0.5, 1.0]])
    # beta 1, logt 1: T = A / 1.5; T^2 = [[1.25, 1], [1, 1.25]] / 2.25
    out = random_walk(torch.tensor([[1.0, 0.0]]), a, beta=1, logt=1)
    assert np.allclose(out.numpy(), [[1.25 / 2.25, 1.0 / 2.25]])
    # beta 2 raises the affinities first: [[1, .25], [.25, 1]] / 1.25
    out = random_walk(torch.tensor([[1.0, 0.0]]), a, beta=2, logt=0)
    assert np.allclose(out.numpy(), [[1 / 1.25, 0.25 / 1.25]])
    # columns, not rows, sum to one
    a3 = torch.tensor([[1.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 1.0]])
    out = random_walk(torch.tensor([[1.0, 0.0, 0.0]]), a3, beta=1, logt=0)
    assert np.allclose(out.numpy(), [[1 / 1.5, 0.5 / 1.7, 0.0]])


def test_affinitynet_forward_backward_and_groups():
    torch.manual_seed(0)
    net = create_affinitynet("resnet38d_mini")
    net.freeze(AffinityNet.FROZEN)
    feat = net(torch.randn(2, 3, 48, 48))
    assert feat.shape == (2, 448, 6, 6)  # stride 8
    aff = pair_affinity(feat, 3)
    bg, fg, neg = (
        torch.from_numpy(x)[None].expand(2, -1, -1)
        for x in affinity_labels(np.array([[0, 0, 1, 1, 2, 2]] * 6, np.uint8), 3)
    )
    loss, _ = affinity_loss(aff, bg, fg, neg)
    loss.backward()
    assert net.f9.weight.grad is not None and torch.isfinite(net.f9.weight.grad).all()
    assert net.conv1a.weight.grad is None  # frozen
    groups = net.parameter_groups()
    assert {id(p) for p in groups[2]} == {id(m.weight) for m in net.new_modules()}
    assert id(net.conv1a.weight) not in {id(p) for g in groups for p in g}
    assert not any(isinstance(p, torch.nn.Parameter) and p.ndim == 1 for p in groups[0])  # no BN affine
    with pytest.raises(ValueError, match="psa.arch"):
        create_affinitynet("resnet50")


def test_resnet38_keys_are_psas():
    keys = set(create_affinitynet("resnet38d_mini").state_dict())
    for k in (
        "conv1a.weight",
        "b2.conv_branch1.weight",
        "b4_5.conv_branch2b1.weight",
        "b5.bn_branch2a.running_mean",
        "b6.bn_branch2b2.running_var",
        "b7.conv_branch2b2.weight",
        "bn7.weight",
        "f9.weight",
    ):
        assert k in keys
    assert "b2_1.conv_branch1.weight" not in keys  # same-shape blocks have no projection


def _mx_params(path, arrays: dict, legacy: bool = False):
    """A file in MXNet's NDArray-list layout (V2 arrays, or the legacy one)."""
    out = struct.pack("<QQQ", 0x112, 0, len(arrays))
    for a in arrays.values():
        a = np.asarray(a, np.float32)
        if legacy:
            out += struct.pack("<I", a.ndim) + struct.pack(f"<{a.ndim}I", *a.shape)
        else:
            out += struct.pack("<Iii", 0xF993FAC9, 0, a.ndim) + struct.pack(f"<{a.ndim}q", *a.shape)
        out += struct.pack("<iii", 1, 0, 0) + a.tobytes()
    out += struct.pack("<Q", len(arrays))
    for k in arrays:
        out += struct.pack("<Q", len(k)) + k.encode()
    path.write_bytes(out)


@pytest.mark.parametrize("legacy", [False, True])
def test_mxnet_params_are_read_and_renamed(tmp_path, legacy):
    arrays = {
        "arg:conv1a_weight": np.arange(6).reshape(1, 2, 3),
        "arg:res4b3_branch2b1_weight": np.ones((2, 2)),
        "arg:res2a_branch1_weight": np.zeros((1, 1)),
        "aux:bn5b2_branch2a_moving_var": np.ones(3),
        "arg:bn6a_branch2b2_gamma": np.ones(2),
        "arg:bn7_beta": np.zeros(4),
        "arg:linear1000_weight": np.ones(2),
    }
    _mx_params(tmp_path / "a.params", arrays, legacy)
    raw = read_mxnet_params(tmp_path / "a.params")
    assert raw["conv1a_weight"].tolist() == np.arange(6).reshape(1, 2, 3).tolist()
    state = mxnet_to_resnet38(raw)
    assert set(state) == {
        "conv1a.weight",
        "b4_3.conv_branch2b1.weight",
        "b2.conv_branch1.weight",
        "b5_2.bn_branch2a.running_var",
        "b6.bn_branch2b2.weight",
        "bn7.bias",
    }


def test_resnet38_checkpoint_that_does_not_fit_is_refused(tmp_path):
    net = create_affinitynet("resnet38d_mini")
    torch.save({"conv1a.weight": torch.zeros(1)}, tmp_path / "w.pth")
    with pytest.raises(CheckpointError, match="w.pth"):
        load_resnet38_imagenet(net, tmp_path / "w.pth")
    (tmp_path / "bad.params").write_bytes(struct.pack("<QQQ", 0x112, 0, 3))
    with pytest.raises(CheckpointError, match="bad.params"):
        load_resnet38_imagenet(net, tmp_path / "bad.params")
    # the backbone of another AffinityNet of the same arch loads key for key
    other = create_affinitynet("resnet38d_mini")
    torch.save({k: v for k, v in other.state_dict().items() if not k.startswith(("f8_", "f9"))}, tmp_path / "ok.pth")
    load_resnet38_imagenet(net, tmp_path / "ok.pth")
    assert torch.equal(net.b7.conv_branch1.weight, other.b7.conv_branch1.weight)
