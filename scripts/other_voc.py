"""A second VOC-format dataset for trying the pipeline on data it was not tuned on (README: "Your own data").

    python -m scripts.other_voc /tmp/other          # writes /tmp/other/VOCdevkit/VOC2012
    dvc exp run -S data.source=folder -S data.folder=/tmp/other/VOCdevkit

With counts and sizes, the small VOC-sized folder of the paper-setting rehearsal (README):

    python -m scripts.other_voc /tmp/rehearsal --train 2 --val 2 --test 1 --aug 2 --min-side 320 --max-side 500

A mini-VOC draw with another seed and sizes, shaped as others ship VOC-format data: VOCdevkit/VOC2012,
VOC-style ids the project's params do not name, no train_aug list or labels file, and every third
ground-truth mask saved as an RGB image in the VOC colour map.

``--body-tint``, ``--typical-p`` and ``--hue-shift`` change the generator itself (how much of a body is
its class's tint, how often a class sits on its typical background, and the class hues), for data the
recipes were not fitted to:

    python -m scripts.other_voc /tmp/shifted --seed 11 --body-tint 0.45 --typical-p 0.5 --hue-shift 0.025 \
        --min-side 128 --max-side 200

``--classes`` draws another label space, its names in the folder's ``classes.txt``:

    python -m scripts.other_voc /tmp/cells --classes nucleus,membrane,vesicle,debris,mitosis
"""

import argparse
import re
from pathlib import Path

import numpy as np
from PIL import Image

# this checkout's bao, whatever is installed (as the stages)
from bao.core.classes import VOC, LabelSpace, check_names
from bao.core.io import load_label_png, voc_palette
from bao.data import minivoc


def main():
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    ap.add_argument("out", type=Path, help="writes OUT/VOCdevkit/VOC2012 (OUT must not hold one yet)")
    ap.add_argument("--seed", type=int, default=7, help="the draw (images, classes, colours)")
    for name, default, what in (
        ("train", 64, "images in train.txt (with masks)"),
        ("val", 32, "images in val.txt (with masks)"),
        ("test", 0, "images in test.txt (no masks)"),
        ("aug", 96, "extra training images with SegmentationClassAug masks only (SBD's role)"),
        ("min-side", 120, "smallest image side in pixels"),
        ("max-side", 184, "largest image side in pixels"),
    ):
        ap.add_argument(f"--{name}", type=int, default=default, help=what)
    ap.add_argument(
        "--body-tint", type=float, default=minivoc.BODY_TINT, help="how much of an object's body is its class's tint"
    )
    ap.add_argument(
        "--typical-p", type=float, default=minivoc.TYPICAL_P, help="how often a class sits on its typical background"
    )
    ap.add_argument("--hue-shift", type=float, default=0.0, help="added to every class hue (fraction of the circle)")
    ap.add_argument(
        "--classes",
        help="another label space: the foreground class names, comma-separated (written to classes.txt, "
        "background first); default: VOC's 20 classes",
    )
    args = ap.parse_args()
    space = VOC
    if args.classes:
        try:
            space = LabelSpace(check_names(["background", *args.classes.split(",")], "--classes"))
        except ValueError as e:
            raise SystemExit(str(e)) from None
    minivoc.BODY_TINT, minivoc.TYPICAL_P = args.body_tint, args.typical_p
    if args.hue_shift:
        colours = minivoc._class_colours

        def shifted(rng, n):
            out = colours(rng, n)
            for c in range(1, n):
                out[c, 0] = 255 * minivoc._hsv(((c - 1) / (n - 1) + args.hue_shift) % 1.0, 0.95, 0.95)
            return out

        minivoc._class_colours = shifted
    root = args.out / "VOCdevkit" / "VOC2012"
    if root.exists():
        raise SystemExit(f"{root}: exists; choose another folder")
    minivoc.generate(
        root,
        num_train=args.train,
        num_val=args.val,
        num_test=args.test,
        num_aug=args.aug,
        min_side=args.min_side,
        max_side=args.max_side,
        seed=args.seed,
        space=space,
    )
    (root / "ImageSets" / "Segmentation" / "train_aug.txt").unlink()
    (root / "cls_labels.json").unlink(missing_ok=True)

    def rename(s):
        return re.sub(r"mini_(\d+)", lambda m: f"2031_{int(m.group(1)) * 7:06d}", s)

    for d in ("JPEGImages", "SegmentationClass", "SegmentationClassAug"):
        for p in (root / d).iterdir():
            p.rename(p.with_name(rename(p.name)))
    for p in (root / "ImageSets" / "Segmentation").glob("*.txt"):
        p.write_text(rename(p.read_text()))
    pal = np.array(voc_palette(), np.uint8).reshape(256, 3)
    for p in sorted((root / "SegmentationClass").glob("*.png"))[::3]:
        Image.fromarray(pal[load_label_png(p)]).save(p)
    print(f"{root}: {len(list((root / 'JPEGImages').glob('*.jpg')))} images")


if __name__ == "__main__":
    main()
