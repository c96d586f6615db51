"""Data loading: TransCAM training crops per second with 0, 1, 2 ... loader workers, to check that
the configured ``base.num_workers`` keeps up with the GPU.

    python -m bench.data_loading [--root data/VOC2012] [--crop 512] [--workers 0 1 2] [--batches 20]
"""

import argparse
import json
import time
from pathlib import Path

from bench.common import print_table


def main():
    from bao.core.runtime import batch_indices, make_loader
    from bao.data.transforms import TrainCrops
    from bao.data.voc import VOCDataset

    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default="data/VOC2012")
    ap.add_argument("--crop", type=int, default=512)
    ap.add_argument("--resize-long", type=int, nargs=2, default=[320, 640])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--json")
    a = ap.parse_args()
    ds = VOCDataset(a.root, "train_aug", masks=None)
    crops = TrainCrops(ds, a.resize_long, a.crop, [0.3, 0.3, 0.3, 0.1], 0)
    rows = []
    for w in a.workers:
        batches = batch_indices(len(ds), a.batch, 0, 0)[: a.batches]
        t = time.perf_counter()
        for _ in make_loader(crops, batches, w):
            pass
        dt = time.perf_counter() - t
        rows.append({"workers": w, "images/s": round(len(batches) * a.batch / dt, 1)})
    print_table(rows, f"Training crops ({a.crop}, resize-long {a.resize_long}) from {a.root}")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
