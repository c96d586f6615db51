"""Stage make_aff_labels: AffinityNet's training labels from TransCAM's CAMs (docs/method.md §4.2).

As TransCAM's infer_TransCAM.py and VOC12AffDataset make them: argmax over [t, CAMs] at
``psa.fg_thres`` (0.60: its foreground is confident) and at ``psa.bg_thres`` (0.25: its background is
confident), each refined by the label CRF (``masks.crf`` kernels, over all 21 labels or the present
ones: ``psa.crf_labels``); foreground from the first, background where both say background, the rest
ignored (255). Output ``<paths.aff_labels>/<id>.png`` for train_aug.
"""
from functools import partial
from pathlib import Path

from bao.config.masks import Masks
from bao.config.psa import Psa
from bao.core.classes import NUM_CLASSES
from bao.core.io import save_label_png
from bao.core.pipeline import paths
from bao.core.stage import main
from bao.core.workers import map_split
from bao.data.voc import VOCDataset
from bao.method.cam_labels import cam_to_label, confident_labels, load_cam
from bao.method.crf import crf_labels

STAGE = "make_aff_labels"


def make_work(params, out_dir):
    ds = VOCDataset(paths().data, "train_aug", masks=None)
    p, crf = params.psa, params.masks.crf
    n_labels = NUM_CLASSES if p.crf_labels == "all" else None
    cams_dir = Path(paths().cams)

    def work(image_id):
        image = ds.load_image(image_id)
        keys, cams = load_cam(cams_dir / f"{image_id}.npz")
        fg_conf = crf_labels(image, cam_to_label(keys, cams, p.fg_thres), crf, n_labels)
        bg_conf = crf_labels(image, cam_to_label(keys, cams, p.bg_thres), crf, n_labels)
        save_label_png(out_dir / f"{image_id}.png", confident_labels(fg_conf, bg_conf))

    return work


def run(params):
    ids = VOCDataset(paths().data, "train_aug", masks=None).ids
    map_split(STAGE, paths().aff_labels, ids, partial(make_work, params), ".png", params.masks.workers)


if __name__ == "__main__":
    main(run, STAGE, [Psa, Masks])
