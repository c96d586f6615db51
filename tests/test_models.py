import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from bao.core.errors import CheckpointError
from bao.models.factory import create_model, list_models
from bao.models.weights import load_pretrained, safe_load
from bench.common import stacked_attention

KEYS = Path(__file__).resolve().parent / "data"


def official(name):
    """key -> shape of an official checkpoint (the published files' state_dict keys, in tests/data)."""
    path = KEYS / f"{name}_keys.tsv"
    out = {}
    for line in path.read_text().splitlines():
        k, _, shape = line.partition("\t")
        out[k] = tuple(int(v) for v in shape.split("x")) if shape else ()
    return out


@pytest.mark.parametrize("name", ["conformer_ti", "conformer_s", "conformer_b"])
def test_state_dict_matches_official(name):
    with torch.device("meta"):
        model = create_model(name, num_classes=1000)
    sd = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    ref = official(f"{name}_imagenet")
    heads = ("conv_cls_head.", "trans_cls_head.")
    assert {k for k in sd if not k.startswith(heads)} == {k for k in ref if not k.startswith(heads)}
    for k, shape in ref.items():
        if not k.startswith(heads):
            assert sd[k] == shape, k


def test_transcam_net_sm_keys():
    with torch.device("meta"):
        model = create_model("conformer_s", num_classes=21)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == official("transcam_sm")


@pytest.mark.parametrize("name", list_models())
def test_forward_backward_non_square(name):
    if name != "conformer_mini":
        pytest.skip("full-size configurations are covered by the meta-device key test")
    torch.manual_seed(0)
    model = create_model(name, num_classes=21)
    x = torch.randn(2, 3, 64, 96)
    out = model(x, need_attn=True)
    assert out["cam"].shape == (2, 21, 4, 6) and out["feat"].shape[2:] == (4, 6)
    assert out["attn"].shape == (2, 24, 24)
    (out["logits_conv"].sum() + out["logits_trans"].sum()).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_sdpa_and_explicit_attention_agree():
    torch.manual_seed(0)
    model = create_model("conformer_mini", num_classes=21).eval()
    x = torch.randn(1, 3, 48, 80)
    a, b = model(x, need_attn=False), model(x, need_attn=True)
    assert torch.allclose(a["cam"], b["cam"], rtol=1e-4, atol=1e-3)
    assert "attn" not in a
    # eq. 2-4: each block's head-mean attention has rows summing to 1; without the cls column, rows
    # of A* sum to at most depth, and over the full (1+N) row they would sum to exactly depth
    assert (b["attn"].sum(-1) <= model.depth + 1e-4).all() and (b["attn"] >= 0).all()


def test_rejects_bad_sizes():
    with pytest.raises(ValueError, match="multiples of 16"):
        create_model("conformer_mini", num_classes=21)(torch.randn(1, 3, 40, 48))


def test_load_pretrained_official_format(tmp_path):
    torch.manual_seed(0)
    src = create_model("conformer_mini", num_classes=1000)
    path = tmp_path / "ckpt.pth"
    torch.save({"model": src.state_dict()}, path)
    dst = create_model("conformer_mini", num_classes=21)
    load_pretrained(dst, path)
    for k, v in src.state_dict().items():
        if not k.startswith(("conv_cls_head", "trans_cls_head")):
            assert torch.equal(dst.state_dict()[k], v), k


def test_load_pretrained_names_bad_keys(tmp_path):
    sd = create_model("conformer_mini", num_classes=21).state_dict()
    sd["surprise.weight"] = torch.zeros(1)
    del sd["trans_1.attn.qkv.weight"]
    path = tmp_path / "bad.pth"
    torch.save(sd, path)
    with pytest.raises(
        CheckpointError, match=r"missing keys \['trans_1.attn.qkv.weight'\].*unexpected keys \['surprise.weight'\]"
    ):
        load_pretrained(create_model("conformer_mini", num_classes=21), path)


class Payload:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickle_payload_refused(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"model": Payload()}, f)
    with pytest.raises(CheckpointError, match="refused"):
        safe_load(path)
    torch.save({"w": torch.zeros(1), "obj": Payload()}, tmp_path / "evil2.pth")
    with pytest.raises(CheckpointError, match="refused"):
        safe_load(tmp_path / "evil2.pth")


def test_block_by_block_equals_stacked_attention():
    """eq. 3-4 accumulated block by block equals TransCAM's stack -> mean over heads -> sum."""
    torch.manual_seed(0)
    model = create_model("conformer_mini", num_classes=21).eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        a = model(x, need_attn=True)["attn"]
        b = stacked_attention(model, x)[1]
    assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("arch", ["deeplabv2", "deeplabv3plus"])
def test_deeplab_forward_backward(arch):
    from bao.models.deeplab import DeepLab
    from bao.models.norm import freeze_bn

    model = DeepLab(arch, "resnet10t", 21, output_stride=8).train()
    freeze_bn(model)
    out = model(torch.randn(2, 3, 64, 80))
    assert out.shape == (2, 21, 64, 80)
    out.mean().backward()
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert not bn.training and bn.weight.grad is None


@pytest.mark.parametrize("arch, published", [("deeplabv2", [6, 12, 18, 24]), ("deeplabv3plus", [12, 24, 36])])
def test_deeplab_aspp_rates(arch, published):
    """deeplab.aspp_rates: null gives the published dilations (v3+ at output stride 8: 6/12/18 x 2), a
    list replaces them (scaled to a smaller feature grid)."""
    from bao.models.deeplab import DeepLab

    def rates(m):
        branches = m.aspp.branches[1:] if arch == "deeplabv3plus" else m.head.branches
        return [(b[0] if isinstance(b, torch.nn.Sequential) else b).dilation[0] for b in branches]

    assert rates(DeepLab(arch, "resnet10t", 21, output_stride=8)) == published
    assert rates(DeepLab(arch, "resnet10t", 21, output_stride=8, aspp_rates=[2, 4, 5])) == [2, 4, 5]


def kazuto_keys(model) -> dict:
    """DeepLab-v2's ImageNet checkpoint as kazuto1011/deeplab-pytorch saves it: the MSC wrapper's
    ``base.`` prefix, an ``aspp`` head of another task, the older ``proj`` shortcut name, no BN counters."""
    sd = {
        f"base.{k}".replace(".shortcut.", ".proj."): v.clone()
        for k, v in model.backbone.state_dict().items()
        if not k.endswith("num_batches_tracked")
    }
    sd["base.aspp.c0.weight"] = torch.zeros(21, 2048, 3, 3)
    return sd


def test_deeplab_imagenet_checkpoint_loads_key_for_key(tmp_path):
    from bao.models.deeplab import DeepLab, load_imagenet_backbone

    torch.manual_seed(0)
    src = DeepLab("deeplabv2", "resnet101_msra", 21, 8)
    torch.save(kazuto_keys(src), tmp_path / "imagenet.pth")
    dst = DeepLab("deeplabv2", "resnet101_msra", 21, 8)
    load_imagenet_backbone(dst, tmp_path / "imagenet.pth")
    for k, v in src.backbone.state_dict().items():
        assert torch.equal(v, dst.backbone.state_dict()[k]), k
    bad = kazuto_keys(src)
    del bad["base.layer5.block3.increase.bn.weight"]
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="layer5.block3.increase.bn.weight"):
        load_imagenet_backbone(dst, tmp_path / "bad.pth")


def test_msra_backbone_shapes_and_caffe_input():
    """ResNet-101 of DeepLab-v2: 101 layers' worth of parameters, output stride 8, 2048 channels; the
    input is turned into BGR 0-255 less the Caffe mean."""
    from bao.core.image import to_tensor
    from bao.models.deeplab import ResNet101MSRA

    net = ResNet101MSRA(8).eval()
    assert sum(p.numel() for p in net.parameters()) == 42_500_160  # torchvision's resnet101 less its fc
    img = np.full((32, 32, 3), (10, 20, 30), np.uint8)
    seen = {}
    net.layer1.register_forward_pre_hook(lambda m, a: seen.setdefault("x", a[0]))
    with torch.no_grad():
        (f,) = net(to_tensor(img)[None])
    assert f.shape == (1, 2048, 5, 5)  # ceil-mode pooling, as Caffe: 32 -> 16 -> 9 -> 5 (321 -> 41)
    expected = torch.tensor([30 - 104.008, 20 - 116.669, 10 - 122.675])
    assert torch.allclose(seen["x"][0, :, 0, 0], expected, atol=1e-3)


def test_released_transcam_checkpoint_loads_key_for_key(tmp_path):
    """TransCAM's published Net_sm, heads included (its key list matches conformer_s: test above), as
    DataParallel saved it under ``model``; another architecture is refused naming the keys."""
    from bao.models.weights import load_released_transcam

    src = create_model("conformer_mini", num_classes=21)
    torch.save({"model": {f"module.{k}": v for k, v in src.state_dict().items()}}, tmp_path / "t.pth")
    dst = create_model("conformer_mini", num_classes=21)
    load_released_transcam(dst, tmp_path / "t.pth")
    assert all(torch.equal(v, dst.state_dict()[k]) for k, v in src.state_dict().items())
    with pytest.raises(CheckpointError, match="does not fit"):
        load_released_transcam(create_model("conformer_ti", num_classes=21), tmp_path / "t.pth")


def test_resnet38_seg_mini_forward_backward():
    """MCTformer's resnet38_seg: ResNet-38d conv6 -> 3x3 dilated conv to 512 (ReLU) -> 3x3 dilated conv to
    the classes, stride-8 logits (upsampled by the caller, once); the fc8 layers are the 10x-lr head."""
    from types import SimpleNamespace

    from bao.models.deeplab import build_deeplab

    cfg = SimpleNamespace(arch="resnet38_seg", backbone="resnet38d_mini", output_stride=8)
    net = build_deeplab(cfg, 21)
    y = net(torch.randn(2, 3, 64, 80))
    assert y.shape == (2, 21, 8, 10)
    y.mean().backward()
    c1, c2 = net.head_modules()
    assert (c1.in_channels, c1.out_channels, c2.out_channels) == (4096 // 8, 512 // 8, 21)
    assert c1.dilation == (4, 4) and c1.padding == (4, 4) and c1.bias is not None
    assert c1.weight.grad is not None and net.conv1a.weight.grad is not None


def test_resnet38_seg_keys_are_mctformers():
    """Paper size: MCTformer's key names and shapes (conv1a ... bn7 at top level, fc8_seg_conv1 4096 -> 512
    and fc8_seg_conv2 512 -> 21, dilation 12), built on the meta device (no memory)."""
    from bao.models.resnet38 import ResNet38Seg

    with torch.device("meta"):
        net = ResNet38Seg("resnet38d", 21)
    sd = net.state_dict()
    assert tuple(sd["fc8_seg_conv1.weight"].shape) == (512, 4096, 3, 3)
    assert tuple(sd["fc8_seg_conv2.weight"].shape) == (21, 512, 3, 3)
    assert tuple(sd["conv1a.weight"].shape) == (64, 3, 3, 3) and tuple(sd["bn7.weight"].shape) == (4096,)
    assert net.fc8_seg_conv1.dilation == (12, 12)
    with pytest.raises(ValueError, match="deeplab.backbone"):
        ResNet38Seg("resnet101_msra", 21)


def test_resnet38_seg_starts_from_imagenet_resnet38(tmp_path):
    """The ImageNet ResNet-38 (a converted state_dict here; the MXNet file in tests/test_psa.py) loads into
    the backbone key for key; the fc8 head keeps its initialisation."""
    from types import SimpleNamespace

    from bao.models.deeplab import build_deeplab
    from bao.models.resnet38 import ResNet38d

    torch.manual_seed(0)
    imagenet = ResNet38d(8).state_dict()
    torch.save(imagenet, tmp_path / "r38.pth")
    cfg = SimpleNamespace(arch="resnet38_seg", backbone="resnet38d_mini", output_stride=8)
    net = build_deeplab(cfg, 21, imagenet=tmp_path / "r38.pth")
    assert all(torch.equal(net.state_dict()[k], v) for k, v in imagenet.items())
    torch.save({"conv1a.weight": imagenet["conv1a.weight"]}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="deeplab.backbone"):
        build_deeplab(cfg, 21, imagenet=tmp_path / "bad.pth")


def test_resnet38_seg_starts_from_psas_voc_classifier(tmp_path):
    """MCTformer's start: PSA's res38_cls.pth (the backbone plus the 20-class fc8 of resnet38_cls.py)
    loads key for key, its fc8 dropped as train_seg.py's strict=False drops it; any other stray key fails."""
    from types import SimpleNamespace

    from bao.models.deeplab import build_deeplab
    from bao.models.resnet38 import ResNet38d

    torch.manual_seed(1)
    cls = ResNet38d(8).state_dict()
    cls["fc8.weight"] = torch.randn(20, 4096 // 8, 1, 1)
    torch.save(cls, tmp_path / "res38_cls.pth")
    cfg = SimpleNamespace(arch="resnet38_seg", backbone="resnet38d_mini", output_stride=8)
    net = build_deeplab(cfg, 21, imagenet=tmp_path / "res38_cls.pth")
    assert all(torch.equal(net.state_dict()[k], v) for k, v in cls.items() if k != "fc8.weight")
    assert "fc8.weight" not in net.state_dict()
    cls["fc9.weight"] = torch.zeros(1)
    torch.save(cls, tmp_path / "stray.pth")
    with pytest.raises(CheckpointError, match="unexpected"):
        build_deeplab(cfg, 21, imagenet=tmp_path / "stray.pth")


def test_seg_crops_one_scale_per_batch():
    """scale_per: batch draws one scale for the whole global batch (MCTformer get_data_from_chunk)."""
    from bao.core.runtime import batch_indices
    from bao.data.transforms import SegCrops

    ds = SimpleDS(12)
    crops = SegCrops(ds, None, 32, [0.7, 1.3], seed=3, scale_per="batch", batch_size=4)
    crops.set_epoch(1)
    rng = np.random.default_rng(0)
    batches = batch_indices(12, 4, 3, 1)
    per_batch = [{crops.scale(i, rng) for i in b} for b in batches]
    assert all(len(s) == 1 for s in per_batch) and len({s.pop() for s in per_batch}) == 3
    image = SegCrops(ds, None, 32, [0.7, 1.3], seed=3, scale_per="image", batch_size=4)
    assert len({image.scale(i, np.random.default_rng(i)) for i in batches[0]}) == 4


class SimpleDS:
    def __init__(self, n):
        self.ids = [str(i) for i in range(n)]

    def __len__(self):
        return len(self.ids)


@pytest.mark.parametrize("n", [3, 81])
def test_every_network_at_another_label_space(n):
    """Every network takes its size from the label space (n classes, background included): TransCAM's
    Conformer, BAO's online net (both heads), SeCo's, resnet38_seg and DeepLab, forward and backward."""
    from types import SimpleNamespace

    from bao.method.bao import BAONet
    from bao.method.transcam import cls_loss
    from bao.models.deeplab import build_deeplab
    from bao.models.seco_net import SeCoNet

    x, y = torch.randn(2, 3, 64, 64), torch.zeros(2, n - 1)
    y[0, 0] = y[1, n - 2] = 1
    conformer = create_model("conformer_mini", num_classes=n)
    out = conformer(x)
    assert out["logits_conv"].shape == out["logits_trans"].shape == (2, n) and out["cam"].shape[:2] == (2, n)
    cls_loss(out, y).backward()
    for head in ("classifier_x", "amn_aspp"):
        bao = BAONet(create_model("conformer_mini", num_classes=n), head=head, aspp_rates=[1, 2, 3, 4])
        out = bao(x, y)
        assert out["am"].shape[:2] == (2, n) and bao.label_enc.in_features == n - 1
        out["am"].float().mean().backward()
    seco = SeCoNet("vit_mini", n, queue_size=24, aspp_rates=(1, 2))
    cls, seg, _, cls_aux = seco(x)
    assert cls.shape == cls_aux.shape == (2, n - 1) and seg.shape[:2] == (2, n)
    (cls.sum() + seg.mean()).backward()
    for arch, backbone in (("resnet38_seg", "resnet38d_mini"), ("deeplabv2", "resnet10t")):
        net = build_deeplab(SimpleNamespace(arch=arch, backbone=backbone, output_stride=8, aspp_rates=None), n)
        seg = net(x)
        assert seg.shape[:2] == (2, n)
        seg.mean().backward()
