"""Stage make_masks_<source>: dense-CRF refinement of seeds into the final pseudo-label masks.

    python -m stages.make_masks {bao,transcam_crf}

``bao``: the threshold-free seeds of make_seeds. ``transcam_crf``: TransCAM's CAMs at their best
background threshold (``metrics/transcam_seed.json``): the CRF-only ablation of TransCAM's mask, whose
Table 1 mask comes from PSA (stage random_walk). Unary from the
hard labels (crf_inference_label, docs/method.md §6) or from the seed scores (``masks.crf.unary``).
Images run in parallel over ``base.crf_workers`` processes. Outputs ``<paths.masks>/<source>/<id>.png``
and ``metrics/mask.json`` (bao) or ``metrics/transcam_mask_crf.json`` with the mIoU on VOC train.
"""

import json
from functools import partial
from pathlib import Path

import numpy as np

from bao.config.masks import Masks
from bao.core.io import load_label_png, load_npz, save_label_png
from bao.core.pipeline import paths
from bao.core.stage import main_with_item
from bao.core.workers import map_split
from bao.data.voc import VOCDataset
from bao.method.cam_labels import cam_to_label, load_cam
from bao.method.crf import crf_labels, crf_probs
from bao.scoring.labels import score_labels
from bao.scoring.metrics import write_scores

SOURCES = ("bao", "transcam_crf")


def make_work(params, source, out_dir):
    P = paths()
    ds = VOCDataset(P.data, "train_aug", masks=None)
    crf = params.masks.crf
    if source == "transcam_crf":
        t = json.loads(Path(P.metrics.transcam_seed).read_text())["best_threshold"]

    def seed(image_id):
        """(hard seed, (keys, scores))"""
        if source == "bao":
            lab = load_label_png(Path(P.seeds) / f"{image_id}.png")
            if crf.unary == "labels":
                return lab, None
            z = load_npz(Path(P.seeds) / f"{image_id}.npz")
            return lab, (z["keys"].astype(np.int64), z["scores"].astype(np.float32))
        keys, cams = load_cam(Path(P.cams) / f"{image_id}.npz")
        scores = np.concatenate([np.full((1,) + cams.shape[1:], t, np.float32), cams])
        return cam_to_label(keys, cams, t), (np.r_[0, keys], scores)

    def work(image_id):
        image = ds.load_image(image_id)
        lab, scored = seed(image_id)
        if crf.unary == "labels":  # the release: crf_inference_label(img, seed) with n_labels 91 (infer_bao.py l.108)
            mask = crf_labels(image, lab, crf, n_labels=crf.n_labels)
        else:
            mask = crf_probs(image, scored[1], scored[0], crf)
        save_label_png(out_dir / f"{image_id}.png", mask)

    return work


def run(params, source):
    P = paths()
    ids = VOCDataset(P.data, "train_aug", masks=None).ids
    out = Path(P.masks) / source
    map_split(f"make_masks_{source}", out, ids, partial(make_work, params, source), ".png", params.base.crf_workers)
    res = score_labels(out, P.data, "train")
    write_scores(getattr(P.metrics.mask, source), {"source": source, **res})
    print(f"{source} mask mIoU on train: {100 * res['miou']:.2f}")


if __name__ == "__main__":
    main_with_item(run, "make_masks", SOURCES, [Masks], stage=lambda s: f"make_masks_{s}")
