"""The pretraining set of the mini setting: a generated single-label image-classification set, the
mini setting's stand-in for ImageNet (docs/method.md §7.1).

Like ImageNet for VOC, it has its own classes and visual vocabulary, distinct from mini-VOC's:
a class is a **shape** (triangle, star, hexagon, crescent, arrow, L, T, trapezoid) filled with a
**texture** (checks, rings, waves, dot grid, cross-hatch, grain), 8 x 6 = 48 classes. Colours are
drawn per image, so neither hue nor brightness names a class: the network has to learn shapes and
textures, and to tell an object from a cluttered background (smooth colour noise, strokes, and
textured fragments that have no class shape). None of mini-VOC's head shapes, body textures or
scene backgrounds occurs here.

Images are rendered on the fly, deterministic in (seed, split, epoch, index): the set is as large as the training
budget needs (``pretrain.images_per_epoch`` x ``pretrain.epochs``) and is never written to disk.
"""
from __future__ import annotations

import numpy as np
import torch

from bao.core.image import to_tensor

SHAPES = ("triangle", "star", "hexagon", "crescent", "arrow", "ell", "tee", "trapezoid")
TEXTURES = ("checks", "rings", "waves", "dots", "hatch", "grain")
NUM_CLASSES = len(SHAPES) * len(TEXTURES)


def _polygon(u, v, pts) -> np.ndarray:
    """Inside test of a convex or concave polygon (even-odd rule) on the grid (u, v)."""
    inside = np.zeros(u.shape, bool)
    n = len(pts)
    for i in range(n):
        (x0, y0), (x1, y1) = pts[i], pts[(i + 1) % n]
        crosses = (y0 > v) != (y1 > v)
        with np.errstate(divide="ignore", invalid="ignore"):
            xc = x0 + (v - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (u < xc)
    return inside


def shape_mask(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The shape in its own frame: (u, v) in units of the object's radius, centred at 0."""
    name = SHAPES[shape]
    if name == "triangle":
        return _polygon(u, v, [(0, -1), (0.95, 0.75), (-0.95, 0.75)])
    if name == "star":
        r, th = np.hypot(u, v), np.arctan2(v, u)
        return r <= 0.5 + 0.45 * np.cos(5 * th)
    if name == "hexagon":
        a = np.linspace(0, 2 * np.pi, 7)[:-1]
        return _polygon(u, v, list(zip(np.cos(a), np.sin(a))))
    if name == "crescent":
        return (u ** 2 + v ** 2 <= 1) & ((u - 0.45) ** 2 + v ** 2 > 0.7 ** 2)
    if name == "arrow":
        return _polygon(u, v, [(-1, -0.25), (0.2, -0.25), (0.2, -0.7), (1, 0), (0.2, 0.7), (0.2, 0.25), (-1, 0.25)])
    if name == "ell":
        return _polygon(u, v, [(-0.8, -1), (-0.3, -1), (-0.3, 0.5), (0.8, 0.5), (0.8, 1), (-0.8, 1)])
    if name == "tee":
        return _polygon(u, v, [(-1, -0.9), (1, -0.9), (1, -0.4), (0.25, -0.4), (0.25, 1), (-0.25, 1),
                               (-0.25, -0.4), (-1, -0.4)])
    return _polygon(u, v, [(-1, 0.7), (1, 0.7), (0.5, -0.7), (-0.5, -0.7)])  # trapezoid


def texture_pattern(texture: int, u: np.ndarray, v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A [0, 1] pattern in the object's frame (so it turns with the object); period drawn per image."""
    name = TEXTURES[texture]
    p = rng.uniform(0.25, 0.4)  # period, in object radii
    if name == "checks":
        return ((np.floor(u / p) + np.floor(v / p)) % 2).astype(np.float32)
    if name == "rings":
        return (np.mod(np.hypot(u, v) / p, 1.0) < 0.5).astype(np.float32)
    if name == "waves":
        return (0.5 + 0.5 * np.sin(2 * np.pi * (v + 0.25 * np.sin(2 * np.pi * u / (2 * p))) / p)).astype(np.float32)
    if name == "dots":
        du, dv = np.mod(u / p, 1.0) - 0.5, np.mod(v / p, 1.0) - 0.5
        return (du ** 2 + dv ** 2 < 0.09).astype(np.float32)
    if name == "hatch":
        return ((np.mod((u + v) / p, 1.0) < 0.25) | (np.mod((u - v) / p, 1.0) < 0.25)).astype(np.float32)
    return rng.random(u.shape).astype(np.float32)  # grain


def _smooth_noise(rng, size: int, cells: int) -> np.ndarray:
    small = torch.from_numpy(rng.random((1, 3, cells, cells)).astype(np.float32))
    big = torch.nn.functional.interpolate(small, size=(size, size), mode="bicubic", align_corners=False)
    return big[0].permute(1, 2, 0).numpy()


def _frame(rng, size: int, centre, radius: float):
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    th = rng.uniform(0, 2 * np.pi)
    dx, dy = (xx - centre[0]) / radius, (yy - centre[1]) / radius
    return dx * np.cos(th) + dy * np.sin(th), -dx * np.sin(th) + dy * np.cos(th)


def render(rng: np.random.Generator, size: int, label: int) -> tuple[np.ndarray, np.ndarray]:
    """One ``size`` x ``size`` RGB uint8 image of class ``label``, and its object mask (bool)."""
    img = 40 + 180 * _smooth_noise(rng, size, int(rng.integers(3, 8)))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    for _ in range(int(rng.integers(2, 6))):  # strokes (segments)
        x0, y0, ang = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(0, np.pi)
        across = np.abs((xx - x0) * np.sin(ang) - (yy - y0) * np.cos(ang))
        along = np.abs((xx - x0) * np.cos(ang) + (yy - y0) * np.sin(ang))
        img[(across < rng.uniform(0.5, 2.0)) & (along < rng.uniform(0.1, 0.5) * size)] = rng.uniform(30, 230, 3)
    for _ in range(int(rng.integers(0, 3))):  # textured fragments: a class's texture without its shape
        u, v = _frame(rng, size, rng.uniform(0, size, 2), rng.uniform(0.1, 0.2) * size)
        blob = (np.abs(u) < 1) & (np.abs(v) < rng.uniform(0.3, 1.0))
        pat = texture_pattern(int(rng.integers(len(TEXTURES))), u, v, rng)[..., None]
        c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        img[blob] = (c0 * pat + c1 * (1 - pat))[blob]
    shape, texture = divmod(label, len(TEXTURES))
    radius = rng.uniform(0.22, 0.42) * size
    centre = rng.uniform(radius * 0.8, size - radius * 0.8, 2)
    u, v = _frame(rng, size, centre, radius)
    mask = shape_mask(shape, u, v)
    pat = texture_pattern(texture, u, v, rng)[..., None]
    c0 = rng.uniform(0, 255, 3)
    c1 = np.clip(255 - c0 + rng.uniform(-60, 60, 3), 0, 255)  # contrasting second colour
    img[mask] = (c0 * pat + c1 * (1 - pat))[mask]
    img = img + rng.normal(0, 5, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), mask


def token_labels(mask: np.ndarray, label: int, patch: int = 16) -> np.ndarray:
    """Per-patch class (token labelling): ``label + 1`` where the object covers at least half of the
    16 x 16 patch, 0 (background) elsewhere."""
    h, w = mask.shape
    cover = mask.reshape(h // patch, patch, w // patch, patch).mean(axis=(1, 3))
    return np.where(cover >= 0.5, label + 1, 0).astype(np.int64)


class ShapesDataset(torch.utils.data.Dataset):
    """``images_per_epoch`` fresh images per epoch: image i of epoch e is rendered from (seed, e, i),
    its class is i mod NUM_CLASSES (balanced); normalised like every training crop of the project.
    ``tokens``: the per-patch labels of ``token_labels``."""

    def __init__(self, images_per_epoch: int, size: int, seed: int, split: str = "train"):
        self.n, self.size, self.seed, self.epoch = images_per_epoch, size, seed, 0
        self.split = 0 if split == "train" else 1  # a held-out split draws from other seeds

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict:
        label = index % NUM_CLASSES
        rng = np.random.default_rng((self.seed, self.split, self.epoch, index))
        img, mask = render(rng, self.size, label)
        return {"image": to_tensor(img), "target": label, "tokens": torch.from_numpy(token_labels(mask, label)),
                "index": index}
