"""PSA (AffinityNet, Ahn & Kwak, CVPR 2018) as TransCAM uses it to turn its CAMs into masks
(docs/method.md §4.2); the confident labels it starts from are ``bao.eval_labels.confident_labels``.
Here: pixel-pair affinity labels within a radius,
AffinityNet's loss, and the random walk.

Facts followed (TransCAM repository): the pair layout of ``tool/pyutils.get_indices_of_pairs`` and
``tool/imutils.ExtractAffinityLabelInRadius``; the label of ``voc12/data.VOC12AffDataset``; the loss of
``train_aff.py``; the dense affinity and the walk of ``network/resnet38_aff.py`` and ``infer_aff.py``.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from bao.core.classes import IGNORE
from bao.core.image import to_tensor
from bao.data.transforms import SeededCrops, color_jitter


def pair_offsets(radius: int) -> list[tuple[int, int]]:
    """The half-disc of (dy, dx) offsets with 0 < dy² + dx² < radius²: (0, 1..r-1), then each
    dy = 1..r-1 with |dx| < r. Each unordered pair of pixels is counted once (pyutils l.127)."""
    out = [(0, dx) for dx in range(1, radius)]
    out += [
        (dy, dx) for dy in range(1, radius) for dx in range(-radius + 1, radius) if dx * dx + dy * dy < radius * radius
    ]
    return out


@functools.lru_cache(maxsize=64)
def pair_indices(height: int, width: int, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """(from, to): flat indices of the pairs of an HxW grid. ``from`` runs over the pixels that are
    r-1 away from the bottom, left and right borders (so every offset stays inside); ``to`` holds,
    offset by offset, ``from + (dy, dx)`` in the same order, so ``to`` has len(offsets) x len(from).
    Cached per grid (every training crop and each image's pair_affinity/dense_affinity ask again):
    callers must not modify the arrays."""
    r1 = radius - 1
    if height <= r1 or width <= 2 * r1:
        raise ValueError(f"a {height}x{width} grid is too small for radius {radius}")
    grid = np.arange(height * width, dtype=np.int64).reshape(height, width)
    h, w = height - r1, width - 2 * r1
    src = grid[:h, r1 : r1 + w].reshape(-1)
    dst = np.concatenate([grid[dy : dy + h, r1 + dx : r1 + dx + w].reshape(-1) for dy, dx in pair_offsets(radius)])
    return src, dst


def inference_radius(height: int, width: int, radius: int) -> int:
    """The radius AffinityNet uses on a grid: smaller on a grid whose short side is under 2r+1
    (network/resnet38_aff.py forward)."""
    short = min(height, width)
    return (short - 1) // 2 if short < 2 * radius + 1 else radius


def affinity_labels(label: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bg_pos, fg_pos, neg), each (len(offsets), n_from) float32, for a label map at the feature
    stride (0 background, classes, 255 ignored), ExtractAffinityLabelInRadius:
    bg_pos: both pixels background; fg_pos: the same foreground class; neg: different labels; pairs
    touching an ignored pixel count in none (bg_pos cannot touch one: 0 != 255)."""
    src, dst = pair_indices(*label.shape, radius)
    flat = label.reshape(-1)
    a = flat[src][None, :]
    b = flat[dst].reshape(len(pair_offsets(radius)), -1)
    valid = (a < IGNORE) & (b < IGNORE)
    same = a == b
    bg = same & (a == 0)
    fg = same & (a != 0) & valid
    neg = ~same & valid
    return bg.astype(np.float32), fg.astype(np.float32), neg.astype(np.float32)


def pair_affinity(feat: torch.Tensor, radius: int) -> torch.Tensor:
    """AffinityNet's affinity exp(-mean_c |f_i - f_j|) for the pairs of ``pair_indices``:
    (B, len(offsets), n_from) from features (B, C, H, W)."""
    b, c, h, w = feat.shape
    src, dst = (torch.from_numpy(i).to(feat.device) for i in pair_indices(h, w, radius))
    x = feat.reshape(b, c, h * w)
    ff = x.index_select(2, src).unsqueeze(2)
    ft = x.index_select(2, dst).reshape(b, c, -1, src.numel())
    return torch.exp(-(ft - ff).abs().mean(1))


def affinity_loss(
    aff: torch.Tensor, bg: torch.Tensor, fg: torch.Tensor, neg: torch.Tensor
) -> tuple[torch.Tensor, dict]:
    """train_aff.py: cross-entropy of the affinities against each label set, averaged within the set,
    weighted bg/4 + fg/4 + neg/2 (the positive sets together weigh as much as the negatives)."""
    eps = 1e-5
    aff = aff.float()
    n_bg, n_fg, n_neg = bg.sum() + eps, fg.sum() + eps, neg.sum() + eps
    bg_loss = (-bg * torch.log(aff + eps)).sum() / n_bg
    fg_loss = (-fg * torch.log(aff + eps)).sum() / n_fg
    neg_loss = (-neg * torch.log(1 + eps - aff)).sum() / n_neg
    loss = bg_loss / 4 + fg_loss / 4 + neg_loss / 2
    return loss, {
        "loss": loss.item(),
        "bg_loss": bg_loss.item(),
        "fg_loss": fg_loss.item(),
        "neg_loss": neg_loss.item(),
    }


def dense_affinity(aff: torch.Tensor, height: int, width: int, radius: int) -> torch.Tensor:
    """The symmetric (HW, HW) affinity matrix of one image: the pair affinities both ways, 1 on the
    diagonal, 0 beyond the radius (resnet38_aff.py forward(to_dense=True))."""
    src, dst = (torch.from_numpy(i).to(aff.device) for i in pair_indices(height, width, radius))
    n = height * width
    src = src.repeat(len(pair_offsets(radius)))
    a = torch.zeros(n, n, dtype=torch.float32, device=aff.device)
    v = aff.reshape(-1).float()
    a[src, dst] = v
    a[dst, src] = v
    a.fill_diagonal_(1.0)
    return a


def random_walk(scores: torch.Tensor, aff: torch.Tensor, beta: float, logt: int) -> torch.Tensor:
    """Propagate class scores (K, N) over the dense affinity (N, N): T = A^beta with each column
    normalised to sum 1, then T^(2^logt) by logt squarings, and scores @ T (infer_aff.py)."""
    t = aff.float().pow(beta)
    t = t / t.sum(0, keepdim=True)
    for _ in range(logt):
        t = t @ t
    return scores.float() @ t


class AffinityCrops(SeededCrops):
    """AffinityNet's training samples (TransCAM train_aff.py): ColorJitter, a random crop with zero
    padding of image (black, before normalisation) and label (0: background, as TransCAM pads the
    stacked image and labels), a horizontal flip; the label taken every ``stride`` pixels (cv2
    nearest at 1/8) and turned into the (bg_pos, fg_pos, neg) pair labels. ``label_fn(id)`` gives
    the confident labels (0, classes, 255)."""

    def __init__(self, ds, label_fn, crop_size: int, color_jitter, radius: int, stride: int, seed: int):
        super().__init__(ds, seed)
        if crop_size % stride:
            raise ValueError(f"psa.crop_size: {crop_size} is not a multiple of the feature stride {stride}")
        self.label_fn, self.crop, self.jitter, self.radius, self.stride = (
            label_fn,
            crop_size,
            color_jitter,
            radius,
            stride,
        )

    def __getitem__(self, index: int) -> dict:
        rng, image_id, img = self.sample(index)
        lab = self.label_fn(image_id)
        arr = np.asarray(color_jitter(img, self.jitter, rng))
        h, w = lab.shape
        y0, x0 = int(rng.integers(0, max(h - self.crop, 0) + 1)), int(rng.integers(0, max(w - self.crop, 0) + 1))
        oy, ox = int(rng.integers(0, max(self.crop - h, 0) + 1)), int(rng.integers(0, max(self.crop - w, 0) + 1))
        hh, ww = min(h, self.crop), min(w, self.crop)
        box = np.zeros((self.crop, self.crop, 3), np.uint8)
        box[oy : oy + hh, ox : ox + ww] = arr[y0 : y0 + hh, x0 : x0 + ww]
        lbox = np.zeros((self.crop, self.crop), np.uint8)
        lbox[oy : oy + hh, ox : ox + ww] = lab[y0 : y0 + hh, x0 : x0 + ww]
        if rng.random() < 0.5:
            box, lbox = box[:, ::-1], lbox[:, ::-1]
        bg, fg, neg = affinity_labels(np.ascontiguousarray(lbox[:: self.stride, :: self.stride]), self.radius)
        return {
            "image": to_tensor(np.ascontiguousarray(box)),
            "bg": torch.from_numpy(bg),
            "fg": torch.from_numpy(fg),
            "neg": torch.from_numpy(neg),
            "index": index,
        }
