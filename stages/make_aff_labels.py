"""Stage make_aff_labels: AffinityNet's training labels from TransCAM's CAMs (docs/method.md §4.2).

As TransCAM's infer_TransCAM.py and VOC12AffDataset make them: argmax over [t, CAMs] at
``psa.fg_thres`` (0.60: its foreground is confident) and at ``psa.bg_thres`` (0.25: its background is
confident), each refined by the label CRF (``masks.crf`` kernels, over all 21 labels or the present
ones: ``psa.crf_labels``); foreground from the first, background where both say background, the rest
ignored (255). Output ``<paths.aff_labels>/<id>.png`` for train_aug.
"""
import sys
from functools import partial
from pathlib import Path

# this checkout's bao, whatever is installed (DVC's temporary and queued workspaces, second clones)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bao.classes import NUM_CLASSES
from bao.crf import crf_labels
from bao.data import VOCDataset
from bao.eval_labels import cam_to_label, confident_labels, load_cam
from bao.io import save_label_png
from bao.pipeline import paths
from bao.stage import main
from bao.workers import map_split

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
    main(run, STAGE)
