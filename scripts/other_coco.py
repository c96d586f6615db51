"""A small MS COCO 2014 tree, generated, for running ``data.source: coco`` offline (README "MS COCO 2014").

    python -m scripts.other_coco /tmp/coco          # writes /tmp/coco/{train2014,val2014,annotations}
    dvc exp run -S +experiment=coco -S +rehearsal=coco_cpu -S data.folder=/tmp/coco

The layout and annotation formats are COCO's: ``train2014/COCO_train2014_<id:012d>.jpg``, the same
for val2014, and ``annotations/instances_{train,val}2014.json`` with COCO's 80 categories (their ids,
1..90 with gaps). Images are mini-VOC draws over COCO's classes; each class shown gets a polygon
annotation (its region's bounding box: two classes' boxes often overlap) or, one in five, a crowd
region (the region's uncompressed RLE, ``iscrowd: 1``), as COCO writes them. Every split has an image with no annotation (left out by prepare_data) and
train a grey one (COCO 2014 has some).
"""

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

# this checkout's bao, whatever is installed (as the stages)
from bao.data import minivoc
from bao.data.coco import CATEGORIES, COCO, SPLITS


def uncompressed_rle(region: np.ndarray) -> dict:
    """COCO's crowd format: run lengths over the column-major pixels, the first run of 0s."""
    flat = region.flatten(order="F")
    bounds = np.r_[0, np.flatnonzero(flat[1:] != flat[:-1]) + 1, flat.size]
    runs = np.diff(bounds).tolist()
    return {"counts": ([0] if flat[0] else []) + runs, "size": list(region.shape)}


def box_polygon(region: np.ndarray) -> list[list[float]]:
    ys, xs = np.nonzero(region)
    x0, y0, x1, y1 = float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def generate(out: Path, counts: dict[str, int], min_side: int, max_side: int, seed: int) -> None:
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(seed)
    colours = minivoc._class_colours(rng, COCO.n)
    categories = [{"id": cat, "name": name, "supercategory": "thing"} for cat, name in CATEGORIES]
    image_id = ann_id = 0
    for split, year in SPLITS.items():
        (out / year).mkdir(parents=True)
        images, anns = [], []
        for k in range(counts[split] + 1):  # + one image with no annotation
            image_id += 9
            h, w = (int(v) for v in rng.integers(min_side, max_side + 1, 2))
            name = f"COCO_{year}_{image_id:012d}.jpg"
            classes = sorted(
                int(c) for c in rng.choice(np.arange(1, COCO.n), 1 + int(rng.random() < 0.5), replace=False)
            )
            img, label = minivoc.render_image(rng, h, w, classes, colours)
            grey = split == "train" and k == 1
            Image.fromarray(img).convert("L" if grey else "RGB").save(out / year / name, quality=90)
            images.append({"id": image_id, "file_name": name, "height": h, "width": w})
            if k == counts[split]:
                continue  # no annotation
            for c in np.unique(label[label > 0]).tolist():
                region = label == c
                crowd = rng.random() < 0.2
                segm = uncompressed_rle(region) if crowd else box_polygon(region)
                rle = (
                    mask_utils.frPyObjects(segm, h, w)
                    if crowd
                    else mask_utils.merge(mask_utils.frPyObjects(segm, h, w))
                )
                ann_id += 1
                anns.append(
                    {
                        "id": ann_id,
                        "image_id": image_id,
                        "category_id": CATEGORIES[c - 1][0],
                        "segmentation": segm,
                        "area": float(mask_utils.area(rle)),
                        "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                        "iscrowd": int(crowd),
                    }
                )
        doc = {"info": {"description": "generated (scripts/other_coco.py)"}, "images": images,
               "annotations": anns, "categories": categories}  # fmt: skip
        (out / "annotations").mkdir(exist_ok=True)
        (out / "annotations" / f"instances_{year}.json").write_text(json.dumps(doc))


def main():
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    ap.add_argument(
        "out", type=Path, help="writes OUT/train2014, OUT/val2014, OUT/annotations (OUT must not hold them)"
    )
    ap.add_argument("--seed", type=int, default=5, help="the draw")
    ap.add_argument("--train", type=int, default=16, help="train2014 images with annotations")
    ap.add_argument("--val", type=int, default=8, help="val2014 images with annotations")
    ap.add_argument("--min-side", type=int, default=120, help="smallest image side in pixels")
    ap.add_argument("--max-side", type=int, default=184, help="largest image side in pixels")
    args = ap.parse_args()
    if any((args.out / d).exists() for d in ("train2014", "val2014", "annotations")):
        raise SystemExit(f"{args.out}: holds a COCO tree already; name an empty folder")
    generate(args.out, {"train": args.train, "val": args.val}, args.min_side, args.max_side, args.seed)
    print(f"{args.out}: {args.train} + 1 train2014 and {args.val} + 1 val2014 images, COCO's layout")


if __name__ == "__main__":
    main()
