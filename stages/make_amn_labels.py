"""Stage make_amn_labels: fixed pseudo-labels for the TransCAM+AMN baseline of Figure 4.

As AMN makes them from CAMs (reference amn.md A2, IRN cam_to_ir_label): argmax over [t, CAMs] at a
high (``bao.amn_fg_thres``) and a low (``bao.amn_bg_thres``) background threshold, each refined by
the label CRF; foreground from the high-threshold map, background where both say background, the
band between ignored (255). Output ``cams/amn_labels/<id>.png`` for train_aug.
"""
from functools import partial
from pathlib import Path

import numpy as np

from bao.config import section_dict
from bao.crf import crf_labels
from bao.data import VOCDataset
from bao.eval_labels import cam_to_label, load_cam
from bao.infer import run_split
from bao.io import atomic_dir, params_hash, save_label_png
from bao.stage import main

CAMS = Path("cams/transcam")
OUT = Path("cams/amn_labels")


def make_work(params, out_dir):
    ds = VOCDataset(params.data.root, "train_aug", masks=None)
    b, crf = params.bao, params.masks.crf

    def work(image_id):
        image = ds.load_image(image_id)
        keys, cams = load_cam(CAMS / f"{image_id}.npz")
        fg_conf = crf_labels(image, cam_to_label(keys, cams, b.amn_fg_thres), crf)
        bg_conf = crf_labels(image, cam_to_label(keys, cams, b.amn_bg_thres), crf)
        conf = fg_conf.copy()
        conf[fg_conf == 0] = 255
        conf[(bg_conf.astype(np.int32) + fg_conf) == 0] = 0
        save_label_png(out_dir / f"{image_id}.png", conf)

    return work


def run(params):
    ids = VOCDataset(params.data.root, "train_aug", masks=None).ids
    key = params_hash(params.bao.amn_fg_thres, params.bao.amn_bg_thres, section_dict(params.masks.crf))
    with atomic_dir(OUT, resume_key=key) as tmp:
        run_split(partial(make_work, params, tmp), ids, tmp, ".png", workers=params.masks.workers,
                  desc="make_amn_labels")


if __name__ == "__main__":
    main(run)
