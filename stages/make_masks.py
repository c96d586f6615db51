"""Stage make_masks@<source>: dense-CRF refinement of seeds into the final pseudo-label masks.

    python stages/make_masks.py {bao,transcam}

``bao``: the threshold-free seeds of make_seeds. ``transcam``: TransCAM's CAMs at their best
background threshold (metrics/transcam_seed.json), for Table 1's TransCAM row. Unary from the hard
labels (crf_inference_label, reference transcam.md §5) or from the seed scores (``masks.crf.unary``).
Images run in parallel over ``masks.workers`` processes. Outputs ``masks/<source>/<id>.png`` and
``metrics/mask.json`` (bao) or ``metrics/transcam_mask.json`` with the mIoU on VOC train.
"""
import json
import sys
from functools import partial
from pathlib import Path

import numpy as np

from bao.config import ParamsError, section_dict
from bao.crf import crf_labels, crf_probs
from bao.data import VOCDataset
from bao.eval_labels import cam_to_label, load_cam, score_labels
from bao.infer import run_split
from bao.io import atomic_dir, load_label_png, load_npz, params_hash, save_label_png, write_json
from bao.stage import main

METRICS = {"bao": "metrics/mask.json", "transcam": "metrics/transcam_mask.json"}


def transcam_threshold() -> float:
    return json.loads(Path("metrics/transcam_seed.json").read_text())["best_threshold"]


def make_work(params, source, out_dir):
    ds = VOCDataset(params.data.root, "train_aug", masks=None)
    crf = params.masks.crf
    t = transcam_threshold() if source == "transcam" else None

    def seed(image_id):
        """(hard seed, (keys, scores) or None)"""
        if source == "bao":
            lab = load_label_png(Path("seeds/bao") / f"{image_id}.png")
            if crf.unary == "labels":
                return lab, None
            z = load_npz(Path("seeds/bao") / f"{image_id}.npz")
            return lab, (z["keys"].astype(np.int64), z["scores"].astype(np.float32))
        keys, cams = load_cam(Path("cams/transcam") / f"{image_id}.npz")
        lab = cam_to_label(keys, cams, t)
        scores = np.concatenate([np.full((1,) + cams.shape[1:], t, np.float32), cams])
        return lab, (np.r_[0, keys], scores)

    def work(image_id):
        image = ds.load_image(image_id)
        lab, scored = seed(image_id)
        if crf.unary == "labels":
            mask = crf_labels(image, lab, crf)
        else:
            mask = crf_probs(image, scored[1], scored[0], crf)
        save_label_png(out_dir / f"{image_id}.png", mask)

    return work


def run(params, source):
    if source not in METRICS:
        raise ParamsError(f"make_masks: unknown seed source {source!r}; known: {sorted(METRICS)}")
    ids = VOCDataset(params.data.root, "train_aug", masks=None).ids
    key = params_hash(source, section_dict(params.masks.crf))
    out = Path("masks") / source
    with atomic_dir(out, resume_key=key) as tmp:
        run_split(partial(make_work, params, source, tmp), ids, tmp, ".png", workers=params.masks.workers,
                  desc=f"make_masks@{source}")
    res = score_labels(out, params.data.root, "train")
    write_json(METRICS[source], {"source": source, **res})
    print(f"{source} mask mIoU on train: {100 * res['miou']:.2f}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python stages/make_masks.py {bao,transcam}")
    main(lambda p: run(p, sys.argv[1]))
