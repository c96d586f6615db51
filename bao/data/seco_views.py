"""SeCo's training views (zwyang6/SeCo ``datasets/voc.py`` ``VOC12ClsDataset``, ``datasets/transforms.py``).

Per image: the crop (random rescale, flip, random crop padded with black pixels; ``box`` is where the
image lies in it), normalised, which is both the network's input and the first global view; a
second global view from the original image (RandomResizedCrop to the crop size, scale 0.4-1, bicubic;
flip, colour jitter with p 0.8, grayscale p 0.2, Gaussian blur p 0.1, solarisation p 0.2); and an
augmented copy of the crop that the local "key" crops are cut from (flip, jitter, grayscale, blur
p 0.5), with torchvision's transforms as voc.py uses them. Randomness comes from (seed, epoch, index), as
every training set of the project (``bao.data.transforms.seeded``).
"""

from __future__ import annotations

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image, ImageFilter, ImageOps

from bao.core.image import to_tensor
from bao.data.transforms import SeededCrops, seeded
from bao.data.voc import VOCDataset


def flip_jitter_gray(jitter) -> T.Compose:
    """voc.py ``flip_and_color_jitter``: RandomHorizontalFlip, RandomApply(ColorJitter, p=0.8),
    RandomGrayscale(0.2), torchvision's."""
    return T.Compose(
        [T.RandomHorizontalFlip(0.5), T.RandomApply([T.ColorJitter(*jitter)], p=0.8), T.RandomGrayscale(0.2)]
    )


def _blur(img: Image.Image, p: float, rng: np.random.Generator) -> Image.Image:
    # transforms.py GaussianBlur (SeCo's own, PIL's filter): radius uniform in [0.1, 2]
    if rng.random() <= p:
        img = img.filter(ImageFilter.GaussianBlur(radius=rng.uniform(0.1, 2.0)))
    return img


class SeCoViews(SeededCrops):
    """Items: ``image`` (the normalised crop), ``global2``, ``local_src`` (3, S, S), ``label`` (20,),
    ``label_idx`` (the class of a one-class image, else -1), ``box`` (y0, y1, x0, x1) and ``index``."""

    def __init__(self, ds: VOCDataset, crop_size: int, scale_range, jitter, seed: int):
        super().__init__(ds, seed)
        self.crop, self.scales = crop_size, scale_range
        self.flip_jitter_gray = flip_jitter_gray(jitter)
        # voc.py global_view2's first step, bicubic
        self.resized_crop = T.RandomResizedCrop(crop_size, scale=(0.4, 1.0), interpolation=T.InterpolationMode.BICUBIC)

    def __getitem__(self, index: int) -> dict:
        rng, image_id, original = self.sample(index)
        # transforms.py random_scaling (bilinear, int sizes) and random_fliplr
        s = rng.uniform(*self.scales)
        img = original.resize((max(1, int(s * original.width)), max(1, int(s * original.height))), Image.BILINEAR)
        if rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        # random_crop: pad to at least the crop with black (mean_rgb 0) at a random offset, then crop
        arr = np.asarray(img)
        h, w = arr.shape[:2]
        H, W = max(self.crop, h), max(self.crop, w)
        oy, ox = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
        padded = np.zeros((H, W, 3), np.uint8)
        padded[oy : oy + h, ox : ox + w] = arr
        y0, x0 = int(rng.integers(0, H - self.crop + 1)), int(rng.integers(0, W - self.crop + 1))
        crop = padded[y0 : y0 + self.crop, x0 : x0 + self.crop]
        box = [max(oy - y0, 0), min(self.crop, h + oy - y0), max(ox - x0, 0), min(self.crop, w + ox - x0)]
        # local_view: flip and jitter, blur p 0.5 (of the crop)
        local_src = _blur(seeded(self.flip_jitter_gray, Image.fromarray(crop), rng), 0.5, rng)
        # global_view2, of the original image: RandomResizedCrop, flip and jitter, blur p 0.1, solarisation p 0.2
        g2 = _blur(seeded(T.Compose([self.resized_crop, self.flip_jitter_gray]), original, rng), 0.1, rng)
        if rng.random() < 0.2:
            g2 = ImageOps.solarize(g2)
        label = self.ds.label(image_id)
        # voc.py __getitem__: the class index (1..20) of a one-class image, -1 otherwise
        label_idx = int(np.argmax(label)) + 1 if label.sum() == 1 else -1
        return {
            "image": to_tensor(crop),
            "global2": to_tensor(np.asarray(g2)),
            "local_src": to_tensor(np.asarray(local_src)),
            "label": torch.from_numpy(label),
            "label_idx": label_idx,
            "box": torch.tensor(box),
            "index": index,
        }
