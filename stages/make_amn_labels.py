"""Stage make_amn_labels: fixed pseudo-labels for the TransCAM+AMN baseline of Figure 4.

As AMN makes them from CAMs (docs/method.md §4; IRN/AMN cam_to_ir_label.py): argmax over [t, CAMs]
at a high (``bao.amn_fg_thres``) and a low (``bao.amn_bg_thres``) background threshold, each refined
by the label CRF; foreground from the high-threshold map, background where both say background, the
band between ignored. Output ``<paths.amn_labels>/<id>.png`` for train_aug.
"""
import sys
from functools import partial
from pathlib import Path

# this checkout's bao, whatever is installed (DVC's temporary and queued workspaces, second clones)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bao.crf import crf_labels
from bao.data import VOCDataset
from bao.eval_labels import cam_to_label, confident_labels, load_cam
from bao.io import save_label_png
from bao.pipeline import paths
from bao.stage import main
from bao.workers import map_split

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
    main(run, STAGE)
