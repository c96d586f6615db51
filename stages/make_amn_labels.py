"""Stage make_amn_labels: fixed pseudo-labels for the TransCAM+AMN baseline of Figure 4.

As AMN makes them from CAMs (docs/method.md §4; IRN/AMN cam_to_ir_label.py): argmax over [t, CAMs]
at a high (``bao.amn_fg_thres``) and a low (``bao.amn_bg_thres``) background threshold, each refined
by the label CRF; foreground from the high-threshold map, background where both say background, the
band between ignored. Output ``<paths.amn_labels>/<id>.png`` for train_aug.
"""
from functools import partial
from pathlib import Path

from bao.config.bao import Bao
from bao.config.masks import Masks
from bao.core.io import save_label_png
from bao.core.pipeline import paths
from bao.core.stage import main
from bao.core.workers import map_split
from bao.data.voc import VOCDataset
from bao.method.cam_labels import cam_to_label, confident_labels, load_cam
from bao.method.crf import crf_labels

STAGE = "make_amn_labels"


def make_work(params, out_dir):
    ds = VOCDataset(paths().data, "train_aug", masks=None)
    b, crf = params.bao, params.masks.crf
    cams_dir = Path(paths().cams)

    def work(image_id):
        image = ds.load_image(image_id)
        keys, cams = load_cam(cams_dir / f"{image_id}.npz")
        fg_conf = crf_labels(image, cam_to_label(keys, cams, b.amn_fg_thres), crf)
        bg_conf = crf_labels(image, cam_to_label(keys, cams, b.amn_bg_thres), crf)
        save_label_png(out_dir / f"{image_id}.png", confident_labels(fg_conf, bg_conf))

    return work


def run(params):
    ids = VOCDataset(paths().data, "train_aug", masks=None).ids
    map_split(STAGE, paths().amn_labels, ids, partial(make_work, params), ".png", params.masks.workers)


if __name__ == "__main__":
    main(run, STAGE, [Bao, Masks])
