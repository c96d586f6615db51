"""Fixed inputs of the parity tests of Table 1's other rows (test_prior_parity.py) and of the script that
ran SeCo's, MCTformer's and TransCAM's released code on them (release/make_prior_numbers.py). Everything
comes from numpy's legacy ``RandomState``, whose streams do not change between versions."""

from __future__ import annotations

import numpy as np
import torch

MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
ENERGY_SIZES = (16, 48)
AFF_LABEL_SIZE = 96  # a 96 crop: a 12 x 12 label map at stride 8


def _blocks(rs, shape, cell):
    """A uint8 image of flat rectangles (so that colour edges matter to the CRFs) plus a little noise."""
    h, w = shape
    coarse = rs.randint(0, 256, (-(-h // cell), -(-w // cell), 3))
    img = np.repeat(np.repeat(coarse, cell, 0), cell, 1)[:h, :w]
    return np.clip(img + rs.randint(-6, 7, img.shape), 0, 255).astype(np.uint8)


def normalise(img: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 -> 3xHxW float32, ImageNet's mean and std, computed in float64 (imutils.Normalize)."""
    return ((img / 255.0 - MEAN) / STD).astype(np.float32).transpose(2, 0, 1)


def seg_inputs():
    rs = np.random.RandomState(1)
    logits = torch.from_numpy(rs.standard_normal((2, 5, 12, 12)).astype(np.float32))
    label = rs.randint(0, 5, (2, 12, 12))
    label[rs.rand(2, 12, 12) < 0.2] = 255
    return logits, torch.from_numpy(label)


def ptc_inputs():
    rs = np.random.RandomState(2)
    fmap = torch.from_numpy(rs.standard_normal((2, 8, 4, 4)).astype(np.float32))
    small = rs.choice([0, 1, 2, 255], size=(2, 4, 4))
    return fmap, torch.from_numpy(small)


def contrast_inputs():
    """8 crop embeddings, the key set (the batch's 8 query rows, 8 key rows, a queue of 32), their
    tags (-1 several classes, 0 background, 1..3 a class) and 3 prototypes, all L2-normalised."""
    rs = np.random.RandomState(3)

    def unit(n):
        v = rs.standard_normal((n, 16)).astype(np.float32)
        return torch.from_numpy(v / np.linalg.norm(v, axis=1, keepdims=True))

    q = unit(8)
    queue_all = torch.cat([q.clone(), unit(40)])
    flags = torch.from_numpy(rs.choice([-1, 0, 1, 2, 3], size=(8, 1)).astype(np.float32))
    queue_flags = torch.cat([flags, torch.from_numpy(rs.choice([-1, 0, 1, 2, 3], size=(40, 1)).astype(np.float32))])
    return q, queue_all, flags, queue_flags, unit(3)


def energy_inputs(size: int):
    """Image (0-255 floats), segmentation logits, the crop's ROI (a padded strip) and a pseudo label."""
    rs = np.random.RandomState(10 + size)
    img = torch.from_numpy(
        np.stack([_blocks(rs, (size, size), 4).transpose(2, 0, 1) for _ in range(2)]).astype(np.float32)
    )
    logits = torch.from_numpy(rs.standard_normal((2, 4, size, size)).astype(np.float32))
    roi = torch.ones(2, size, size)
    roi[0, :, -size // 4 :] = 0
    roi[1, -size // 8 :] = 0
    label = rs.randint(0, 4, (2, size, size))
    label[rs.rand(2, size, size) < 0.3] = 255
    return img, logits, roi, torch.from_numpy(label).float()


def label_inputs():
    """Normalised images (2, 3, 48, 48), CAMs of 3 classes in [0, 1], image labels and crop boxes."""
    rs = np.random.RandomState(4)
    x = torch.from_numpy(np.stack([normalise(_blocks(rs, (48, 48), 6)) for _ in range(2)]))
    base = rs.rand(2, 3, 6, 6).astype(np.float32)
    cams = torch.nn.functional.interpolate(torch.from_numpy(base), size=(48, 48), mode="bilinear", align_corners=False)
    cls_label = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    box = torch.tensor([[0, 48, 0, 40], [4, 48, 0, 48]])
    return x, cams, cls_label, box


def seg_image() -> np.ndarray:
    return _blocks(np.random.RandomState(6), (40, 48), 5)


def seg_image_tensor() -> torch.Tensor:
    return torch.from_numpy(normalise(seg_image()))[None]


def label_resizes():
    """(label, (w, h)) pairs: down, up and odd ratios, as exutils.py's scale_gt draws them."""
    rs = np.random.RandomState(7)
    out = []
    for h, w, s in ((37, 53, 0.7), (40, 31, 1.3), (61, 47, 0.93), (25, 25, 1.77), (120, 90, 0.51)):
        out.append((rs.randint(0, 21, (h, w)).astype(np.uint8), (int(w * s), int(h * s))))
    return out


def affinity_label_map() -> np.ndarray:
    rs = np.random.RandomState(8)
    n = AFF_LABEL_SIZE // 8
    return rs.choice([0, 0, 3, 7, 255], size=(n, n)).astype(np.uint8)


def walk_inputs():
    """A dense affinity of a 5 x 6 grid (symmetric, 1 on the diagonal) and the 21-channel CAM array at
    the padded image size (background 0.42, two classes)."""
    rs = np.random.RandomState(9)
    dh, dw = 5, 6
    f = rs.standard_normal((dh * dw, 4)).astype(np.float32)
    aff = torch.from_numpy(np.exp(-np.abs(f[:, None] - f[None]).mean(-1)).astype(np.float32))
    cam = np.zeros((21, dh * 8, dw * 8), np.float32)
    cam[0] = 0.42
    cam[3] = rs.rand(dh * 8, dw * 8)
    cam[12] = rs.rand(dh * 8, dw * 8)
    return aff, cam, (dh, dw)


def psa_crf_inputs():
    rs = np.random.RandomState(11)
    h, w = 37, 45
    return _blocks(rs, (h, w), 7), h, w


def psa_crf_scores(hp: int, wp: int) -> np.ndarray:
    """Walked scores at the padded size: background and two classes, blocky, with noise."""
    rs = np.random.RandomState(12)
    s = np.zeros((21, hp, wp), np.float32)
    for c in (0, 5, 9):
        coarse = rs.rand(-(-hp // 8), -(-wp // 8))
        s[c] = np.repeat(np.repeat(coarse, 8, 0), 8, 1)[:hp, :wp] + 0.2 * rs.rand(hp, wp)
    return s


class SeCoStub(torch.nn.Module):
    """A fixed stand-in for SeCo's network in the inference protocols: 16 x 16 average pooling (the
    token grid), then fixed 1 x 1 maps to 3 CAM classes, 3 aux CAM classes and 4 segmentation classes.
    ``forward(x, cam_only=True)`` answers as the release's model, ``cams(x)`` as the project's."""

    def __init__(self):
        super().__init__()
        rs = np.random.RandomState(13)
        for name, k in (("w_aux", 3), ("w_cam", 3), ("w_seg", 4)):
            self.register_buffer(name, torch.from_numpy(rs.standard_normal((k, 3, 1, 1)).astype(np.float32)))

    def cams(self, x):
        p = torch.nn.functional.avg_pool2d(x, 16)
        return torch.nn.functional.conv2d(p, self.w_aux), torch.nn.functional.conv2d(p, self.w_cam)

    def forward(self, x, cam_only=False):
        if cam_only:
            return self.cams(x)
        return None, torch.nn.functional.conv2d(torch.nn.functional.avg_pool2d(x, 16), self.w_seg)


SECO_INFER_SIZE = 64  # the release's 448, scaled down


def seco_infer_image() -> torch.Tensor:
    return torch.from_numpy(normalise(_blocks(np.random.RandomState(14), (50, 70), 6)))[None]


def affinities(shape) -> torch.Tensor:
    """Fixed affinities in (0, 1), one per pair of the affinity labels (1, offsets, pixels)."""
    rs = np.random.RandomState(15)
    return torch.from_numpy(rs.uniform(0.01, 0.99, (1, *shape)).astype(np.float32))


def mct_loss_inputs():
    """Stride-8 logits of a 40 x 48 crop and its label (255 in places)."""
    rs = np.random.RandomState(16)
    logits = torch.from_numpy(rs.standard_normal((2, 21, 5, 6)).astype(np.float32))
    target = rs.randint(0, 21, (2, 40, 48))
    target[rs.rand(2, 40, 48) < 0.1] = 255
    return logits, torch.from_numpy(target)
