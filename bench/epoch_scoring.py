"""Per-epoch scoring (the convergence curves of train_transcam and train_bao): seconds per pass over
mini-VOC's train split, one image at a time vs images batched per pass size (``bao.cam.multi_scale_many``),
and whether both give the same mIoUs. Also TransCAM's threshold sweep, one ``bincount`` per threshold
vs one histogram for all (``bao.eval_labels.add_threshold_sweep``), ms per image and whether they agree.

    python -m bench.epoch_scoring [--root data/VOC2012] [--scale 128] [--threads 2] [--repeats 2]

Random-initialised mini networks (the time does not depend on the weights); without ``--root`` a
mini-VOC of the default size is generated in a temporary folder.
"""

import argparse
import contextlib
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

import bao.method.transcam
from bao.config.schema import load_params
from bao.core.classes import IGNORE, VOC
from bao.method.bao import build_bao
from bao.method.readouts import READOUTS
from bao.method.seeds import seed_mious
from bao.method.transcam import transcam_oracle
from bao.scoring.labels import add_threshold_sweep, threshold_range
from bao.scoring.metrics import ConfusionMatrix
from bench.common import print_table

ROOT = Path(__file__).resolve().parents[1]


def per_threshold_sweep(cms, thresholds, keys, cams, gt):
    """The sweep as one bincount per threshold (``cam_to_label`` at each threshold)."""
    keep = gt != IGNORE
    g = gt[keep].astype(np.int64)
    mx = cams.max(0)[keep]
    cls = keys[cams.argmax(0)[keep]]
    for t, cm in zip(thresholds, cms):
        p = np.where(mx > t, cls, 0)
        n = VOC.n
        cm.hist += np.bincount(n * g + p, minlength=n**2).reshape(n, n)


def timed(fn, repeats):
    out = fn()
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t) / repeats, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", type=Path, help="a VOC2012 folder (default: generate mini-VOC)")
    ap.add_argument("--scale", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    params = load_params(ROOT / "params.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        root = a.root
        if root is None:
            from bao.data import minivoc
            from bao.data.voc import build_label_file

            m = params.data.mini
            root = Path(tmp) / "VOC2012"
            minivoc.generate(
                root,
                num_train=m.num_train,
                num_val=m.num_val,
                num_test=m.num_test,
                num_aug=m.num_aug,
                min_side=m.min_side,
                max_side=m.max_side,
                seed=params.base.seed,
            )
            build_label_file(root)
        torch.manual_seed(0)
        model = build_bao(params, VOC.n).eval()
        quick = SimpleNamespace(scales=[a.scale], flip=True, keep_aspect=False)
        thresholds = threshold_range(*params.cams.thresholds)
        scorers = {
            "BAO: every readout (train_bao)": lambda: seed_mious(
                model, root, "train", quick, READOUTS, "cpu", contextlib.nullcontext
            ),
            "TransCAM: oracle seed (train_transcam)": lambda: transcam_oracle(
                model.backbone, root, "train", quick, thresholds, "cpu", contextlib.nullcontext
            ),
        }
        rows = []
        default = bao.method.transcam.BATCH_PIXELS
        for name, fn in scorers.items():
            res = {}
            for way, pixels in (("one image at a time", 1), ("batched per pass size", default)):
                bao.method.transcam.BATCH_PIXELS = (
                    pixels  # 1 pixel: one image (and its flip) per forward, as multi_scale
                )
                sec, res[way] = timed(fn, a.repeats)
                rows.append({"scorer": name, "way": way, "s / pass": round(sec, 2)})
            bao.method.transcam.BATCH_PIXELS = default
            a_, b_ = res.values()
            same = (
                {k: v["miou"] for k, v in a_.items()} == {k: v["miou"] for k, v in b_.items()}
                if "miou" not in a_
                else a_ == b_
            )
            rows[-1]["same mIoUs"] = rows[-2]["same mIoUs"] = same
        print_table(rows, f"per-epoch scoring on train at {a.scale} px x flip, {a.threads} thread(s), random weights")

    rng = np.random.default_rng(0)
    keys = np.array([3, 7])
    cams = rng.random((2, 176, 176)).astype(np.float32)
    gt = rng.integers(0, VOC.n, (176, 176))
    sweep_rows, hists = [], []
    for way, fn in (("one bincount per threshold", per_threshold_sweep), ("one histogram", add_threshold_sweep)):
        cms = [ConfusionMatrix(VOC.n) for _ in thresholds]
        sec, _ = timed(lambda: fn(cms, [float(t) for t in thresholds], keys, cams, gt), 20)
        hists.append(np.stack([cm.hist for cm in cms]))
        sweep_rows.append({"way": way, "ms / image": round(sec * 1000, 2), "thresholds": len(thresholds)})
    for r in sweep_rows:
        r["same counts"] = bool((hists[0] == hists[1]).all())
    print_table(sweep_rows, "TransCAM's threshold sweep, one 176x176 image with two classes")


if __name__ == "__main__":
    main()
