"""Score a folder of predictions against a split's ground truth (as TransCAM's evaluation.py).

    python -m bao.scoring.labels PRED_DIR --root VOC_ROOT --split train [--json OUT]

* label PNGs (``<id>.png``, class indices, 255 ignored in the ground truth): mIoU and per-class IoU;
* CAM files (``<id>.npz`` with ``keys`` (foreground class indices) and ``cams`` (K,H,W), or ``<id>.npy``
  with a dense (20,H,W) foreground array): a background-threshold sweep, each pixel's label being
  argmax over [t, CAMs] (TransCAM evaluation.py l.32), reporting the best threshold.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from bao.core.classes import IGNORE
from bao.core.errors import DataError
from bao.core.io import load_label_png, write_json
from bao.data.voc import VOCDataset
from bao.method.cam_labels import load_cam
from bao.scoring.metrics import ConfusionMatrix


def score_labels(pred_dir: str | Path, root: str | Path, split: str, ids: list[str] | None = None) -> dict:
    pred_dir = Path(pred_dir)
    ds = VOCDataset(root, split, masks="gt", ids=ids)
    cm = ConfusionMatrix(ds.space.n)
    for image_id in ds.ids:
        path = pred_dir / f"{image_id}.png"
        if not path.exists():
            raise DataError(f"{path}: prediction for '{image_id}' (split {split}) not found")
        pred = load_label_png(path)
        gt = ds.load_mask(image_id)
        if pred.shape != gt.shape:
            raise DataError(f"{path}: prediction size {pred.shape[::-1]} != ground truth {gt.shape[::-1]}")
        if pred[pred != IGNORE].max(initial=0) >= ds.space.n:
            raise DataError(f"{path}: prediction has class indices above {ds.space.n - 1}")
        cm.update(np.where(pred == IGNORE, 0, pred), gt)  # an ignored prediction counts as background
    return {"split": split, "images": len(ds), **cm.summary(ds.space.names)}


def score_cams(cam_dir: str | Path, root: str | Path, split: str, thresholds, ids: list[str] | None = None) -> dict:
    """mIoU for each background threshold; returns the curve and the best point."""
    cam_dir = Path(cam_dir)
    ds = VOCDataset(root, split, masks="gt", ids=ids)
    thresholds = [round(float(t), 6) for t in thresholds]
    cms = [ConfusionMatrix(ds.space.n) for _ in thresholds]
    for image_id in ds.ids:
        path = next((p for p in (cam_dir / f"{image_id}.npz", cam_dir / f"{image_id}.npy") if p.exists()), None)
        if path is None:
            raise DataError(f"{cam_dir / image_id}.npz: CAM for '{image_id}' (split {split}) not found")
        keys, cams = load_cam(path)
        gt = ds.load_mask(image_id)
        if cams.shape[1:] != gt.shape:
            raise DataError(f"{path}: CAM size {cams.shape[1:][::-1]} != ground truth {gt.shape[::-1]}")
        add_threshold_sweep(cms, thresholds, keys, cams, gt)
    return sweep_result(cms, thresholds, split, len(ds), ds.space.names)


def add_threshold_sweep(
    cms: list[ConfusionMatrix], thresholds, keys: np.ndarray, cams: np.ndarray, gt: np.ndarray
) -> None:
    """Add one image to each threshold's confusion matrix: argmax over [t, CAMs] (``cam_to_label``).
    One histogram for all thresholds: a pixel is foreground at the thresholds below its CAM maximum,
    so it is binned by how many thresholds that is and the per-threshold counts are suffix sums; the
    comparison runs in the CAMs' dtype, as ``mx > t`` does. The same counts as one ``bincount`` per
    threshold, at a fraction of the cost (tests: test_threshold_sweep_equals_per_threshold)."""
    keep = gt != IGNORE
    g = gt[keep].astype(np.int64)
    n = cms[0].num_classes
    if not len(keys):  # every pixel is background at every threshold
        hist = np.bincount(n * g, minlength=n * n).reshape(n, n)
        for cm in cms:
            cm.hist += hist
        return
    mx = cams.max(0)[keep]
    cls = keys[cams.argmax(0)[keep]].astype(np.int64)
    ts = np.asarray(thresholds, dtype=mx.dtype)
    order = np.argsort(ts, kind="stable")
    # how many (sorted) thresholds lie strictly below each pixel's maximum; NaN is foreground nowhere
    below = np.where(np.isnan(mx), 0, np.searchsorted(ts[order], mx, side="left"))
    counts = np.bincount((below * n + g) * n + cls, minlength=(len(ts) + 1) * n * n).reshape(-1, n, n)
    fg = np.cumsum(counts[::-1], axis=0)[::-1]  # fg[j]: pixels foreground at sorted thresholds < j
    per_gt = np.bincount(g, minlength=n)
    for j, i in enumerate(order):
        hist = fg[j + 1].copy()
        hist[:, 0] += per_gt - hist.sum(1)
        cms[i].hist += hist


def sweep_result(cms: list[ConfusionMatrix], thresholds, split: str, images: int, names) -> dict:
    """The curve and its best point (the oracle threshold, tuned on the ground truth)."""
    curve = [{"threshold": t, "miou": cm.summary()["miou"]} for t, cm in zip(thresholds, cms)]
    best = max(range(len(curve)), key=lambda i: curve[i]["miou"])
    return {
        "split": split,
        "images": images,
        "best_threshold": curve[best]["threshold"],
        "miou": curve[best]["miou"],
        "best": cms[best].summary(names),
        "curve": curve,
    }


def threshold_range(start: float, stop: float, step: float) -> list[float]:
    return [round(v, 6) for v in np.arange(start, stop - 1e-9, step)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bao.scoring.labels", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("pred_dir")
    ap.add_argument("--root", required=True, help="VOC2012 folder (with SegmentationClass, ImageSets)")
    ap.add_argument("--split", default="train")
    ap.add_argument(
        "--thresholds",
        nargs=3,
        type=float,
        default=[0.0, 0.6, 0.01],
        metavar=("START", "STOP", "STEP"),
        help="background-threshold sweep for CAM files (default 0.00-0.59 step 0.01)",
    )
    ap.add_argument("--json", help="write the result here")
    args = ap.parse_args(argv)
    pred_dir = Path(args.pred_dir)
    try:
        if not pred_dir.is_dir():
            raise DataError(f"{pred_dir}: not a folder")
        if any(pred_dir.glob("*.png")):
            res = score_labels(pred_dir, args.root, args.split)
            iou = res["iou"]
        else:
            res = score_cams(pred_dir, args.root, args.split, threshold_range(*args.thresholds))
            iou = res["best"]["iou"]
            print(f"best background threshold: {res['best_threshold']:.2f}")
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for name, v in iou.items():
        print(f"{name:>12s}: {'  n/a' if v is None else f'{100 * v:5.1f}'}")
    print(f"{'mIoU':>12s}: {100 * res['miou']:5.2f}  ({res['images']} images, split {args.split})")
    if args.json:
        write_json(args.json, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
