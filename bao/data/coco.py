"""MS COCO 2014 in the project's VOC layout (``data.source: coco``; docs/method.md §8).

``train2014`` becomes ``train`` (and ``train_aug``), ``val2014`` becomes ``val``; an image enters a
split when it has at least one instance annotation (82,081 and 40,137 images: the lists the COCO WSSS
works train and score on). Its mask is rendered from the instance annotations with pycocotools as
coco2voc (the converter SeCo's README gives for COCO's masks) renders it:

* annotations are drawn smallest area first and a pixel keeps the first class drawn on it, so a small
  object is never hidden under a larger one that overlaps it;
* a crowd region (``iscrowd: 1``, RLE) is its class like any other annotation; there is no ignore band;
* COCO's category ids (1..90, 80 used) become contiguous classes 1..80 in id order, background 0.

The image-level label is the set of classes of the image's annotations (crowd included). An annotation
whose every pixel lies under smaller ones stays in the label though the mask does not show it: counted
in ``metrics/data.json`` (``labels_not_in_mask``).
"""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bao.core.classes import LabelSpace
from bao.core.errors import DataError
from bao.core.io import save_label_png, write_json
from bao.data.prepare import download, link_or_copy, safe_extract, write_split
from bao.data.voc import LABELS_FILE, split_path

# (category id, name) of COCO's 80 classes, in id order: the class index is the position + 1
CATEGORIES = (
    (1, "person"), (2, "bicycle"), (3, "car"), (4, "motorcycle"), (5, "airplane"), (6, "bus"),
    (7, "train"), (8, "truck"), (9, "boat"), (10, "traffic light"), (11, "fire hydrant"),
    (13, "stop sign"), (14, "parking meter"), (15, "bench"), (16, "bird"), (17, "cat"), (18, "dog"),
    (19, "horse"), (20, "sheep"), (21, "cow"), (22, "elephant"), (23, "bear"), (24, "zebra"),
    (25, "giraffe"), (27, "backpack"), (28, "umbrella"), (31, "handbag"), (32, "tie"), (33, "suitcase"),
    (34, "frisbee"), (35, "skis"), (36, "snowboard"), (37, "sports ball"), (38, "kite"),
    (39, "baseball bat"), (40, "baseball glove"), (41, "skateboard"), (42, "surfboard"),
    (43, "tennis racket"), (44, "bottle"), (46, "wine glass"), (47, "cup"), (48, "fork"), (49, "knife"),
    (50, "spoon"), (51, "bowl"), (52, "banana"), (53, "apple"), (54, "sandwich"), (55, "orange"),
    (56, "broccoli"), (57, "carrot"), (58, "hot dog"), (59, "pizza"), (60, "donut"), (61, "cake"),
    (62, "chair"), (63, "couch"), (64, "potted plant"), (65, "bed"), (67, "dining table"), (70, "toilet"),
    (72, "tv"), (73, "laptop"), (74, "mouse"), (75, "remote"), (76, "keyboard"), (77, "cell phone"),
    (78, "microwave"), (79, "oven"), (80, "toaster"), (81, "sink"), (82, "refrigerator"), (84, "book"),
    (85, "clock"), (86, "vase"), (87, "scissors"), (88, "teddy bear"), (89, "hair drier"),
    (90, "toothbrush"),
)  # fmt: skip
COCO = LabelSpace(("background", *(name for _, name in CATEGORIES)))
SPLITS = {"train": "train2014", "val": "val2014"}  # the project's split -> COCO's image folder
ARCHIVES = {"train": "train2014.zip", "val": "val2014.zip", "annotation": "annotations_trainval2014.zip"}


def annotation_file(coco_dir: Path, year: str) -> Path:
    return coco_dir / "annotations" / f"instances_{year}.json"


def load_instances(path: Path):
    """pycocotools' index of an instances file; a missing or malformed file is a DataError naming it."""
    from pycocotools.coco import COCO as Index

    if not path.exists():
        raise DataError(f"{path}: COCO's instance annotations not found (data.folder: a COCO 2014 tree)")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
            return Index(str(path))
    except Exception as e:
        raise DataError(f"{path}: not a COCO instances file ({type(e).__name__}: {e})") from None


def class_of_category(index, path: Path) -> dict[int, int]:
    """COCO category id -> class 1..80; the file's categories must be COCO's 80 (id and name)."""
    found = tuple(sorted((c["id"], c["name"]) for c in index.loadCats(index.getCatIds())))
    if found != CATEGORIES:
        missing = sorted(set(CATEGORIES) - set(found))[:5]
        extra = sorted(set(found) - set(CATEGORIES))[:5]
        raise DataError(f"{path}: categories are not COCO's 80 (missing {missing}, unexpected {extra})")
    return {cat: k + 1 for k, (cat, _) in enumerate(CATEGORIES)}


def render_mask(index, anns: list[dict], classes: dict[int, int]) -> np.ndarray:
    """(H, W) uint8 classes of one image: smallest annotation first, a pixel keeps its first class."""
    info = index.imgs[anns[0]["image_id"]]
    mask = np.zeros((info["height"], info["width"]), np.uint8)
    for ann in sorted(anns, key=lambda a: a["area"]):  # stable: equal areas keep the file's order
        free = index.annToMask(ann).astype(bool) & (mask == 0)
        mask[free] = classes[ann["category_id"]]
    return mask


def prepare_coco(coco_dir: Path, root: Path) -> dict:
    """An extracted COCO 2014 tree (``train2014/``, ``val2014/``, ``annotations/instances_*2014.json``)
    -> ``root`` in the VOC layout: JPEGImages (hard links, or copies), SegmentationClass,
    ImageSets/Segmentation/{train,val,train_aug}.txt, cls_labels.json. Returns what data.json records."""
    if not coco_dir.is_dir():
        raise DataError(f"{coco_dir}: data.folder does not exist or is not a folder (a COCO 2014 tree)")
    labels, report = {}, {"folder": str(coco_dir), "images_without_annotations": {}, "labels_not_in_mask": 0}
    for split, year in SPLITS.items():
        path = annotation_file(coco_dir, year)
        index = load_instances(path)
        classes = class_of_category(index, path)
        ids, bare = [], 0
        for image_id in tqdm(sorted(index.getImgIds()), desc=f"COCO {year} masks", leave=False):
            anns = index.loadAnns(index.getAnnIds(imgIds=image_id))  # crowd regions included
            if not anns:
                bare += 1
                continue
            name = Path(index.imgs[image_id]["file_name"])
            jpg = coco_dir / year / name.name
            if jpg.exists():  # a missing image is validate's to report (or skip)
                link_or_copy(jpg, root / "JPEGImages" / f"{name.stem}.jpg")
            mask = render_mask(index, anns, classes)
            save_label_png(root / "SegmentationClass" / f"{name.stem}.png", mask)
            labels[name.stem] = sorted({classes[a["category_id"]] for a in anns})
            report["labels_not_in_mask"] += len(set(labels[name.stem]) - set(np.unique(mask).tolist()))
            ids.append(name.stem)
        if not ids:
            raise DataError(f"{path}: no image with an annotation")
        write_split(split_path(root, split), ids)
        if split == "train":
            write_split(split_path(root, "train_aug"), ids)
        report["images_without_annotations"][split] = bare
    write_json(root / LABELS_FILE, dict(sorted(labels.items())))
    return report


def download_coco(root: Path, download_dir: Path, coco) -> dict:
    """Download (resumable, checksummed: ``data.coco``), extract and convert COCO 2014 into ``root``."""
    archives = {
        key: download(getattr(coco, f"{key}_urls"), download_dir / name, getattr(coco, f"{key}_md5"))
        for key, name in ARCHIVES.items()
    }
    work = root.with_name(root.name + ".extract")
    shutil.rmtree(work, ignore_errors=True)
    try:
        for archive in archives.values():
            safe_extract(archive, work)
        report = prepare_coco(work, root)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the images are hard-linked into root (or copied)
    report["folder"] = str(download_dir)
    return report
