"""PASCAL VOC 2012 (+ SBD ``SegmentationClassAug``) devkit reader.

The same class reads the real devkit and the generated mini-VOC, which share the layout::

    <root>/JPEGImages/<id>.jpg
    <root>/SegmentationClass/<id>.png      VOC ground truth, palette PNG, 255 = ignore band
    <root>/SegmentationClassAug/<id>.png   SBD-derived masks (train_aug images)
    <root>/ImageSets/Segmentation/{train,val,trainval,test,train_aug}.txt
    <root>/cls_labels.json                 image-level labels, derived once from the masks
    <root>/classes.txt                     the label space (bao.core.classes; VOC's when absent)
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from bao.core.classes import IGNORE, read_label_space
from bao.core.errors import DataError
from bao.core.io import load_label_png, write_json

LABELS_FILE = "cls_labels.json"


def split_path(root: str | Path, split: str) -> Path:
    return Path(root) / "ImageSets" / "Segmentation" / f"{split}.txt"


def read_split(root: str | Path, split: str) -> list[str]:
    path = split_path(root, split)
    if not path.exists():
        raise DataError(f"{path}: split list not found (is data.root a VOC2012 devkit folder?)")
    ids = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    if not ids:
        raise DataError(f"{path}: split '{split}' is empty")
    return ids


PHOTO_MODES = ("L", "CMYK")  # JPEG photographs read as RGB: grey (its value in the 3 channels) and CMYK


def load_image(path: Path) -> np.ndarray:
    """RGB uint8 HxWx3; corrupt and truncated files, and modes other than RGB and ``PHOTO_MODES``
    (COCO 2014 has grey and CMYK photographs; SeCo's reader stacks a grey one), raise DataError naming
    the file."""
    if not path.exists():
        raise DataError(f"{path}: image listed in the split but not found")
    try:
        with Image.open(path) as img:
            mode = img.mode
            img.load()
            arr = np.asarray(img.convert("RGB") if mode in PHOTO_MODES else img)
    except Exception as e:
        raise DataError(f"{path}: cannot decode image ({type(e).__name__}: {e})") from None
    if mode != "RGB" and mode not in PHOTO_MODES:
        raise DataError(f"{path}: image mode is {mode}, expected RGB (or a grey or CMYK photograph)")
    return arr


def check_mask(path: Path, mask: np.ndarray, image_hw: tuple[int, int] | None, n_classes: int) -> None:
    bad = np.setdiff1d(np.unique(mask), np.r_[np.arange(n_classes), IGNORE])
    if bad.size:
        raise DataError(
            f"{path}: label values {bad.tolist()} outside 0-{n_classes - 1} and {IGNORE} "
            f"(the label space has {n_classes} classes: data.classes)"
        )
    if image_hw is not None and tuple(mask.shape) != tuple(image_hw):
        raise DataError(f"{path}: mask size {mask.shape[1]}x{mask.shape[0]} != image size "
                        f"{image_hw[1]}x{image_hw[0]}")


def mask_palette(root: str | Path) -> np.ndarray:
    """(256, 3) uint8 class colours: the palette of the dataset's masks (the first palette PNG of
    ``SegmentationClass``), or VOC's colour map when they have none."""
    from bao.core.io import voc_palette

    folder = Path(root) / "SegmentationClass"
    for png in sorted(folder.glob("*.png")) if folder.is_dir() else ():
        with Image.open(png) as img:
            pal = img.getpalette() if img.mode == "P" else None
        if pal:
            pal = (pal + [0] * 768)[:768]
            return np.array(pal, np.uint8).reshape(256, 3)
        break
    return np.array(voc_palette(), np.uint8).reshape(256, 3)


def classes_in(mask: np.ndarray, n_classes: int) -> list[int]:
    """Foreground classes present in a mask (0 and 255 do not count)."""
    return [int(c) for c in np.unique(mask) if 0 < c < n_classes]


class VOCDataset:
    """Image, mask and multi-hot foreground label (``space.n_fg`` long) of every id in a split.

    masks: ``"gt"`` reads SegmentationClass (evaluation), ``"aug"`` prefers SegmentationClassAug and
    falls back to SegmentationClass, ``None`` reads no mask (test images).
    """

    def __init__(self, root: str | Path, split: str, masks: str | None = "gt", ids: list[str] | None = None):
        self.root = Path(root)
        self.split = split
        self.masks = masks
        self.ids = list(ids) if ids is not None else read_split(root, split)
        self.space = read_label_space(root)
        self._labels: dict[str, list[int]] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def image_path(self, image_id: str) -> Path:
        return self.root / "JPEGImages" / f"{image_id}.jpg"

    def mask_path(self, image_id: str, kind: str | None = None) -> Path | None:
        kind = kind or self.masks
        gt = self.root / "SegmentationClass" / f"{image_id}.png"
        if kind == "gt":
            return gt
        if kind == "aug":
            aug = self.root / "SegmentationClassAug" / f"{image_id}.png"
            return aug if aug.exists() else gt
        return None

    def load_image(self, image_id: str) -> np.ndarray:
        return load_image(self.image_path(image_id))

    def load_mask(self, image_id: str, image_hw: tuple[int, int] | None = None, kind: str | None = None) -> np.ndarray:
        path = self.mask_path(image_id, kind)
        if path is None or not path.exists():
            raise DataError(f"{path or self.root}: mask for '{image_id}' not found")
        try:
            mask = load_label_png(path)
        except ValueError as e:
            raise DataError(str(e)) from None
        check_mask(path, mask, image_hw, self.space.n)
        return mask

    # image-level labels -------------------------------------------------------------------
    @property
    def labels(self) -> dict[str, list[int]]:
        if self._labels is None:
            path = self.root / LABELS_FILE
            if not path.exists():  # written by prepare_data; a reader never writes into its input
                raise DataError(f"{path}: image-level labels not found (run the prepare_data stage)")
            self._labels = json.loads(path.read_text())
        return self._labels

    def label(self, image_id: str) -> np.ndarray:
        """Multi-hot float32 vector over the foreground classes (index c-1 for class c)."""
        if image_id not in self.labels:
            raise DataError(f"{self.root / LABELS_FILE}: no image-level label for '{image_id}'")
        y = np.zeros(self.space.n_fg, dtype=np.float32)
        for c in self.labels[image_id]:
            y[c - 1] = 1.0
        return y

    def __getitem__(self, i: int) -> dict:
        image_id = self.ids[i]
        image = self.load_image(image_id)
        item = {"id": image_id, "image": image}
        if self.masks is not None:
            item["mask"] = self.load_mask(image_id, image.shape[:2])
            item["label"] = self.label(image_id)
        return item


def build_label_file(root: str | Path) -> dict[str, list[int]]:
    """Derive image-level labels from the masks (VOC ground truth first, then SBD) and cache them."""
    root = Path(root)
    n = read_label_space(root).n
    labels = {}
    for folder in ("SegmentationClassAug", "SegmentationClass"):  # later wins: VOC GT preferred
        d = root / folder
        if not d.is_dir():
            continue
        for png in sorted(d.glob("*.png")):
            try:
                labels[png.stem] = classes_in(load_label_png(png), n)
            except ValueError as e:
                raise DataError(str(e)) from None
    write_json(root / LABELS_FILE, dict(sorted(labels.items())))
    return labels
