"""Stages make_aff_labels and make_amn_labels: one label map with an ignore band per train_aug image,
from TransCAM's CAMs at two background thresholds, each refined by the label CRF
(``bao.method.cam_labels``): foreground from the high-threshold map (its foreground is confident),
background where both say background, the band between ignored (255).

* ``aff`` (make_aff_labels, docs/method.md §4.2): AffinityNet's training labels, as TransCAM's
  infer_TransCAM.py and VOC12AffDataset make them: ``psa.fg_thres`` (0.60) and ``psa.bg_thres`` (0.25),
  the CRF over all K + 1 labels or the present ones (``psa.crf_labels``). Output ``<paths.aff_labels>``.
* ``amn`` (make_amn_labels): the fixed pseudo-labels of Figure 4's TransCAM+AMN baseline, as AMN makes
  them (docs/method.md §4; IRN/AMN cam_to_ir_label.py): ``bao.amn_fg_thres`` and ``bao.amn_bg_thres``,
  the CRF over the present labels. Output ``<paths.amn_labels>``.

Both use the ``masks.crf`` kernels; outputs ``<out>/<id>.png``.

    python -m stages.make_confident_labels {aff,amn}
"""

from functools import partial
from pathlib import Path

from bao.config.bao import Bao
from bao.config.masks import Masks
from bao.config.psa import Psa
from bao.core.classes import read_label_space
from bao.core.io import save_label_png
from bao.core.pipeline import paths
from bao.core.stage import main_with_item
from bao.core.workers import map_split
from bao.data.voc import VOCDataset
from bao.method.cam_labels import cam_to_label, confident_labels, load_cam
from bao.method.crf import crf_labels

STAGES = {"aff": "make_aff_labels", "amn": "make_amn_labels"}


def recipe(params, which: str):
    """(output folder, foreground and background thresholds, the CRF's label count)."""
    if which == "aff":
        p = params.psa
        n = read_label_space(paths().data).n
        return paths().aff_labels, p.fg_thres, p.bg_thres, n if p.crf_labels == "all" else None
    b = params.bao
    return paths().amn_labels, b.amn_fg_thres, b.amn_bg_thres, None


def make_work(params, which, out_dir):
    ds = VOCDataset(paths().data, "train_aug", masks=None)
    _, fg_thres, bg_thres, n_labels = recipe(params, which)
    crf = params.masks.crf
    cams_dir = Path(paths().cams)

    def work(image_id):
        image = ds.load_image(image_id)
        keys, cams = load_cam(cams_dir / f"{image_id}.npz")
        fg_conf = crf_labels(image, cam_to_label(keys, cams, fg_thres), crf, n_labels)
        bg_conf = crf_labels(image, cam_to_label(keys, cams, bg_thres), crf, n_labels)
        save_label_png(out_dir / f"{image_id}.png", confident_labels(fg_conf, bg_conf))

    return work


def run(params, which):
    ids = VOCDataset(paths().data, "train_aug", masks=None).ids
    out = recipe(params, which)[0]
    map_split(STAGES[which], out, ids, partial(make_work, params, which), ".png", params.base.crf_workers)


if __name__ == "__main__":
    main_with_item(run, "make_confident_labels", tuple(STAGES), [Psa, Bao, Masks], stage=STAGES.get)
