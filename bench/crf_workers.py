"""Dense CRF (make_masks' label CRF, 10 iterations) images/s against the number of worker processes,
on VOC-sized synthetic images (the same process pool as the stage: bao.infer.run_split).

    python -m bench.crf_workers [--images 16] [--size 375 500] [--workers 1 2] [--json out]
"""

import argparse
import json
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

from bench.common import print_table

CFG = dict(
    gt_prob=0.7,
    gauss_sxy=3,
    gauss_compat=3,
    bilateral_sxy=50,
    bilateral_srgb=5,
    bilateral_compat=10,
    iterations=10,
    absent="literal",  # the release's call: the workload this benchmark has always timed
)


def make_work(out_dir, h, w):
    from types import SimpleNamespace

    from bao.core.io import save_label_png
    from bao.method.crf import crf_labels

    cfg = SimpleNamespace(**CFG)

    def work(image_id):
        rng = np.random.default_rng(int(image_id))
        img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        seed = np.zeros((h, w), np.uint8)
        seed[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = 1 + int(image_id) % 20
        save_label_png(Path(out_dir) / f"{image_id}.png", crf_labels(img, seed, cfg))

    return work


def main():
    from bao.infer import run_split

    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--size", type=int, nargs=2, default=[375, 500])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--json")
    a = ap.parse_args()
    ids = [f"{i:04d}" for i in range(a.images)]
    rows, base, outputs = [], None, []
    for w in a.workers:
        with tempfile.TemporaryDirectory() as d:
            t = time.perf_counter()
            run_split(partial(make_work, d, *a.size), ids, Path(d), ".png", workers=w)
            dt = time.perf_counter() - t
            outputs.append(sorted((p.name, p.read_bytes()) for p in Path(d).glob("*.png")))
        ips = a.images / dt
        base = base or ips
        rows.append({"workers": w, "images/s": round(ips, 2), "speed-up": round(ips / base, 2)})
    rows[-1]["identical to 1 worker"] = all(o == outputs[0] for o in outputs)
    for r in rows:
        r.setdefault("identical to 1 worker", "")
    print_table(rows, f"CRF, {a.images} images of {a.size[0]}x{a.size[1]}")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
