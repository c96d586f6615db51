"""The device contract, checked on a CPU: what leaves model code for numpy/PIL/CRF/metrics goes through
``bao.cam.host``, and bf16 autocast does not reach the refinement or the normalisations.

A ``DeviceTensor`` stands for a tensor on a GPU: operations keep it a DeviceTensor, ``.numpy()`` on it
fails as a CUDA tensor's would, and only ``.cpu()`` brings it back to a plain tensor."""

import contextlib

import numpy as np
import pytest
import torch

from bao.core.image import host
from bao.method.transcam import multi_scale, multi_scale_many, refine, transcam_batch_fn, transcam_fn
from bao.models.factory import create_model


class DeviceTensor(torch.Tensor):
    def numpy(self, *a, **k):
        raise TypeError("can't convert a device tensor to numpy (call .cpu() first)")

    def __array__(self, *a, **k):
        raise TypeError("can't convert a device tensor to numpy (call .cpu() first)")

    def cpu(self, *a, **k):
        return torch.Tensor.cpu(self.as_subclass(torch.Tensor), *a, **k)


class OnDevice(torch.nn.Module):
    """Wraps a model so every tensor it returns is a DeviceTensor."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, *a, **k):
        out = self.model(*a, **k)
        return {key: v.as_subclass(DeviceTensor) for key, v in out.items()}


def test_device_tensor_stands_for_a_gpu_tensor():
    t = torch.ones(2).as_subclass(DeviceTensor)
    with pytest.raises(TypeError):
        (t * 2).numpy()
    assert type(host(t * 2)) is torch.Tensor and host(t).numpy().tolist() == [1.0, 1.0]


def test_cam_inference_returns_cpu_tensors():
    torch.manual_seed(0)
    model = OnDevice(create_model("conformer_mini", num_classes=21).eval())
    label = torch.zeros(20)
    label[[3, 7]] = 1
    img = np.random.default_rng(0).integers(0, 255, (40, 56, 3), dtype=np.uint8)
    cams = multi_scale(transcam_fn(model, label, contextlib.nullcontext), img, [32, 48], True, False, "cpu")
    assert type(cams) is torch.Tensor and cams.dtype == torch.float32 and cams.shape == (20, 40, 56)
    cams.numpy()  # what the stages do next


@pytest.mark.parametrize("keep_aspect", [False, True])
def test_multi_scale_many_equals_one_by_one(keep_aspect):
    # batching images per pass size gives each image multi_scale's sum, pass for pass: exactly, for a
    # batch-independent fn that routes every image's own labels (channel k = first pixel plane x label k)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for h, w in [(40, 56), (56, 40), (40, 56), (33, 47)]]
    labels = torch.from_numpy((rng.random((len(images), 20)) < 0.3).astype(np.float32))

    def fn(x, y):  # (B, 20, h, w); depends on each row alone, and is not symmetric under a flip
        ramp = torch.linspace(0, 1, x.shape[-1])
        return (x[:, :1] + ramp) * y[:, :, None, None]

    many = multi_scale_many(fn, images, labels, [32, 48], True, keep_aspect, "cpu")
    for im, y, got in zip(images, labels, many):
        want = multi_scale(lambda x: fn(x, y[None].expand(x.shape[0], -1)), im, [32, 48], True, keep_aspect, "cpu")
        assert type(got) is torch.Tensor and torch.equal(got, want)
    # a network in eval mode: the same maps as one image at a time, to float rounding (a batch of
    # another size may take another kernel), as CPU tensors
    torch.manual_seed(0)
    model = OnDevice(create_model("conformer_mini", num_classes=21).eval())
    fn = transcam_batch_fn(model, contextlib.nullcontext)
    many = multi_scale_many(fn, images, labels, [32, 48], True, keep_aspect, "cpu")
    for im, y, got in zip(images, labels, many):
        want = multi_scale(transcam_fn(model, y, contextlib.nullcontext), im, [32, 48], True, keep_aspect, "cpu")
        assert type(got) is torch.Tensor and torch.allclose(got, want, rtol=1e-5, atol=1e-4)


def test_seed_maps_return_cpu_tensors(params):
    from bao.method.bao import BAONet
    from bao.method.readouts import combine_seed_scores
    from bao.method.seeds import seed_maps

    torch.manual_seed(0)
    net = OnDevice(BAONet(create_model("conformer_mini", num_classes=21)).eval())
    label = np.zeros(20, np.float32)
    label[4] = 1
    img = np.random.default_rng(1).integers(0, 255, (48, 40, 3), dtype=np.uint8)
    am, cam = seed_maps(net, img, label, params.cams, "cpu", contextlib.nullcontext)
    assert type(am) is torch.Tensor and type(cam) is torch.Tensor
    combine_seed_scores(am, cam, torch.from_numpy(label), "am_bg").argmax(0).numpy()


def test_deeplab_prediction_reaches_numpy_through_host(params):
    from bao.models.deeplab import DeepLab

    class DeepLabOnDevice(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = DeepLab("deeplabv2", "resnet10t", 21, 8).eval()

        def forward(self, x):
            return self.m(x).as_subclass(DeviceTensor)

    from stages.evaluate import predict

    img = np.random.default_rng(2).integers(0, 255, (40, 48, 3), dtype=np.uint8)
    cfg = params.evaluate
    pred = predict(DeepLabOnDevice(), img, cfg, "cpu", contextlib.nullcontext)
    assert pred.shape == (40, 48) and pred.dtype == np.uint8


def test_refinement_stays_fp32_under_bf16_autocast():
    cam = torch.randn(1, 3, 4, 5, dtype=torch.bfloat16)
    attn = torch.rand(1, 20, 20)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = refine(cam, attn)
        assert torch.bmm(cam.float().flatten(2), attn).dtype == torch.bfloat16  # what autocast would do
    assert out.dtype == torch.float32
    exact = torch.bmm(cam.float().flatten(2), attn.transpose(1, 2)).reshape(1, 3, 4, 5)
    assert torch.allclose(out, exact, atol=1e-5)
