"""Training augmentation (TransCAM train_TransCAM.py order): RandomResizeLong -> flip -> ColorJitter
(torchvision's) -> normalise -> RandomCrop (zero padding after normalisation).

Randomness comes from ``numpy.random.default_rng((seed, epoch, index))`` per sample, so a batch is
the same whatever the number of workers or processes, and a resumed run sees the same crops.
"""

from __future__ import annotations

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image

from bao.core.image import to_tensor
from bao.data.voc import VOCDataset
from bao.core.runtime import batch_indices


def seeded(transform, img, rng: np.random.Generator):
    """A torchvision transform applied with its randomness drawn from ``rng``: torch's CPU generator
    is forked and seeded from ``rng`` for the call, so a sample stays a function of (seed, epoch,
    index) whatever the workers."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(rng.integers(2**63 - 1)))
        return transform(img)


def color_jitter(img: Image.Image, jitter, rng: np.random.Generator) -> Image.Image:
    """torchvision's ColorJitter(brightness, contrast, saturation, hue), as TransCAM's train_aff.py and
    train_TransCAM.py call it: its four operations in a random order per sample; a 0 leaves that
    property alone."""
    return seeded(T.ColorJitter(*jitter), img, rng)


def resize_nearest(label: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A label map resized to ``size`` (w, h) on OpenCV's INTER_NEAREST grid, the one MCTformer's
    seg/tool/exutils.py l.33-35 (and DeepLab's loaders) use: source index floor(i / (w / w0)) in double
    precision, clamped (OpenCV's resizeNN). PIL's NEAREST samples pixel centres instead, which differs
    on 0.65-2.5 % of the pixels."""
    h0, w0 = label.shape[:2]
    w, h = size
    ys = np.minimum(np.floor(np.arange(h) * (1.0 / (h / h0))).astype(np.int64), h0 - 1)
    xs = np.minimum(np.floor(np.arange(w) * (1.0 / (w / w0))).astype(np.int64), w0 - 1)
    return label[ys[:, None], xs[None, :]]


class SeededCrops(torch.utils.data.Dataset):
    """Per-sample randomness from (seed, epoch, index): the same crops whatever the workers."""

    def __init__(self, ds: VOCDataset, seed: int):
        self.ds, self.seed, self.epoch = ds, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self):
        return len(self.ds)

    def sample(self, index: int):
        """(rng, image id, PIL image) of a sample."""
        image_id = self.ds.ids[index]
        rng = np.random.default_rng((self.seed, self.epoch, index))
        return rng, image_id, Image.fromarray(self.ds.load_image(image_id))


class TrainCrops(SeededCrops):
    """Augmented square crops of a split with image-level labels (and, optionally, extra label maps
    cropped identically, e.g. fixed pseudo-labels: ``extra(image_id) -> HxW uint8``)."""

    def __init__(self, ds: VOCDataset, resize_long, crop_size, color_jitter, seed: int, extra=None):
        super().__init__(ds, seed)
        self.lo, self.hi = resize_long
        self.crop = crop_size
        self.jitter = color_jitter
        self.extra = extra

    def __getitem__(self, index: int) -> dict:
        rng, image_id, img = self.sample(index)
        extra = self.extra(image_id) if self.extra else None
        # RandomResizeLong(lo, hi), bicubic
        long = int(rng.integers(self.lo, self.hi + 1))
        w, h = img.size
        r = long / max(w, h)
        size = (max(1, round(w * r)), max(1, round(h * r)))
        img = img.resize(size, Image.BICUBIC)
        if extra is not None:
            extra = np.array(Image.fromarray(extra).resize(size, Image.NEAREST))
        if rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
            extra = extra[:, ::-1] if extra is not None else None
        img = color_jitter(img, self.jitter, rng)
        x = to_tensor(np.asarray(img))
        # RandomCrop with zero padding (after normalisation) when the image is smaller than the crop
        _, h, w = x.shape
        ch, cw = max(h - self.crop, 0), max(w - self.crop, 0)
        ph, pw = max(self.crop - h, 0), max(self.crop - w, 0)
        y0, x0 = int(rng.integers(0, ch + 1)), int(rng.integers(0, cw + 1))
        oy, ox = int(rng.integers(0, ph + 1)), int(rng.integers(0, pw + 1))
        out = torch.zeros(3, self.crop, self.crop)
        valid = torch.zeros(self.crop, self.crop, dtype=torch.bool)
        hh, ww = min(h, self.crop), min(w, self.crop)
        out[:, oy : oy + hh, ox : ox + ww] = x[:, y0 : y0 + hh, x0 : x0 + ww]
        valid[oy : oy + hh, ox : ox + ww] = True
        item = {"image": out, "label": torch.from_numpy(self.ds.label(image_id)), "valid": valid, "index": index}
        if extra is not None:
            lab = torch.full((self.crop, self.crop), 255, dtype=torch.long)
            lab[oy : oy + hh, ox : ox + ww] = torch.from_numpy(
                np.ascontiguousarray(extra[y0 : y0 + hh, x0 : x0 + ww])
            ).long()
            item["extra"] = lab
        return item


class SegCrops(SeededCrops):
    """Segmentation training crops: random scale, flip, crop with padding (image 0 after normalisation,
    label ``pad_label``). ``label_fn(image_id) -> HxW uint8`` gives the (pseudo-)labels.

    ``scale_per``: one scale per image, or one per batch as MCTformer's seg/tool/exutils.py
    ``get_data_from_chunk`` (l.110); the batches are ``bao.runtime.batch_indices``' for ``batch_size``.
    ``pad_label`` 0 is MCTformer's crop (exutils.py ``crop``: the label padded with zeros, background);
    255 ignores the padding."""

    def __init__(
        self,
        ds: VOCDataset,
        label_fn,
        crop_size: int,
        scale_range,
        seed: int,
        scale_per: str = "image",
        batch_size: int = 1,
        pad_label: int = 255,
    ):
        super().__init__(ds, seed)
        self.label_fn, self.crop, self.scales = label_fn, crop_size, scale_range
        self.scale_per, self.batch_size, self.pad_label = scale_per, batch_size, pad_label
        self.batch_of: dict[int, int] = {}
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        if self.scale_per == "batch":
            batches = batch_indices(len(self.ds), self.batch_size, self.seed, epoch)
            self.batch_of = {i: b for b, idx in enumerate(batches) for i in idx}

    def scale(self, index: int, rng: np.random.Generator) -> float:
        if self.scale_per == "batch":  # the same draw for every image of the global batch
            batch_rng = np.random.default_rng((self.seed, self.epoch, self.batch_of.get(index, -1), 11))
            return float(batch_rng.uniform(*self.scales))
        return float(rng.uniform(*self.scales))

    def __getitem__(self, index: int) -> dict:
        rng, image_id, img = self.sample(index)
        lab = self.label_fn(image_id)
        s = self.scale(index, rng)
        size = (max(1, int(img.width * s)), max(1, int(img.height * s)))  # exutils.py scale_im: int()
        img, lab = img.resize(size, Image.BILINEAR), resize_nearest(lab, size)
        if rng.random() < 0.5:
            img, lab = img.transpose(Image.FLIP_LEFT_RIGHT), lab[:, ::-1]
        x = to_tensor(np.asarray(img))
        y = torch.from_numpy(np.ascontiguousarray(lab, dtype=np.int64))
        _, h, w = x.shape
        out = torch.zeros(3, self.crop, self.crop)
        tgt = torch.full((self.crop, self.crop), self.pad_label, dtype=torch.long)
        y0, x0 = int(rng.integers(0, max(h - self.crop, 0) + 1)), int(rng.integers(0, max(w - self.crop, 0) + 1))
        hh, ww = min(h, self.crop), min(w, self.crop)
        out[:, :hh, :ww] = x[:, y0 : y0 + hh, x0 : x0 + ww]
        tgt[:hh, :ww] = y[y0 : y0 + hh, x0 : x0 + ww]
        return {"image": out, "target": tgt, "index": index}
