"""Fixed inputs shared by the parity tests (test_release_parity.py) and the script that ran the authors'
released code on them (release/make_release_numbers.py). Everything comes from numpy's legacy
``RandomState``, whose streams do not change between versions, so the project's side can rebuild the
same weights and inputs anywhere."""

from __future__ import annotations

import numpy as np
import torch

# a tiny Conformer the release's Net can build: its label encoder is Linear(20, 1024), so the CNN branch
# must end at 1024 channels (channel_ratio 4, base 64: Conformer-S's widths), 3 blocks, 2 heads of 24
TINY_CONFORMER = dict(
    channel_ratio=4, embed_dim=48, depth=3, num_heads=2, mlp_ratio=4, qkv_bias=True, drop_rate=0.0, drop_path_rate=0.0
)
IMAGE_SIZE = 64  # 4 x 4 tokens


def fill_state(state: dict, seed: int = 0) -> dict:
    """Deterministic values for every entry of a state_dict, in sorted key order: conv/linear weights
    N(0, 1/fan_in), norm weights 1 + N(0, 0.1), biases and running means N(0, 0.1), running variances
    U(0.5, 1.5); integer buffers 0."""
    rs = np.random.RandomState(seed)
    out = {}
    for k in sorted(state):
        v = state[k]
        if not v.dtype.is_floating_point:
            out[k] = torch.zeros_like(v)
            continue
        shape = tuple(v.shape)
        if k.endswith("running_var"):
            a = rs.uniform(0.5, 1.5, shape)
        elif len(shape) >= 2:
            fan_in = int(np.prod(shape[1:]))
            a = rs.standard_normal(shape) / np.sqrt(fan_in)
        elif k.endswith("weight"):
            a = 1.0 + 0.1 * rs.standard_normal(shape)
        else:
            a = 0.1 * rs.standard_normal(shape)
        out[k] = torch.from_numpy(a.astype(np.float32))
    return out


def to_release_key(key: str) -> str:
    """bao.method.BAONet's key -> the release's Net key (network/conformer.py)."""
    if key.startswith("backbone."):
        return key[len("backbone.") :]
    if key.startswith("am_head."):
        return "classifier_x." + key[len("am_head.") :]
    return key


def images(n: int, seed: int = 1) -> torch.Tensor:
    return torch.from_numpy(
        np.random.RandomState(seed).standard_normal((n, 3, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)
    )


def labels(n: int, seed: int = 2) -> torch.Tensor:
    """Multi-hot (n, 20) with one to three classes each."""
    rs = np.random.RandomState(seed)
    y = np.zeros((n, 20), np.float32)
    for i in range(n):
        y[i, rs.choice(20, rs.randint(1, 4), replace=False)] = 1
    return torch.from_numpy(y)


def refined_cams(n: int, h: int, w: int, seed: int = 3) -> torch.Tensor:
    """Stand-ins for the teacher's refined CAM (n, 21, h, w), both signs (eq. 6's input)."""
    return torch.from_numpy(np.random.RandomState(seed).standard_normal((n, 21, h, w)).astype(np.float32))


def seed_passes(h: int, w: int, seed: int = 4) -> list[np.ndarray]:
    """Six network outputs ``camsfg_ambg`` (1, 21, h_s, w_s) at three grids (the passes at three scales and
    their flips), the background channel a logit of either sign."""
    rs = np.random.RandomState(seed)
    out = []
    for s in (2, 3, 4):
        for _ in range(2):
            out.append((rs.standard_normal((1, 21, s, s)) * 2).astype(np.float32))
    return out


def crf_image(h: int = 24, w: int = 32, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """A small RGB image of two regions with noise, and a seed that misplaces part of the boundary."""
    rs = np.random.RandomState(seed)
    img = np.zeros((h, w, 3), np.float64)
    img[:, : w // 2] = (200, 40, 40)
    img[:, w // 2 :] = (30, 60, 190)
    img += rs.normal(0, 12, img.shape)
    seed_map = np.zeros((h, w), np.int64)
    seed_map[:, : w // 2 + 4] = 15
    seed_map[: h // 3, :] = 0
    seed_map[rs.rand(h, w) < 0.08] = 3
    return np.clip(img, 0, 255).astype(np.uint8), seed_map
