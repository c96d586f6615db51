"""Stage make_cams: TransCAM CAMs for train_aug and their seed score over the background threshold.

Inference as TransCAM's infer_TransCAM.py (docs/method.md §6): fixed squares (``cams.scales``) x
horizontal flip, the conv CAM refined by the attention (eq. 5), restricted to the image's classes,
upsampled to the image size, summed over passes, ReLU and per-class min-max. Output
``<paths.cams>/<id>.npz`` (``keys``: present classes, ``cams``: (K,H,W) float16). Seeds on VOC train
are scored for every background threshold (TransCAM evaluation.py): ``metrics/transcam_seed.json``
(best threshold) and the curve ``metrics/transcam_threshold.csv``.
"""

from functools import partial

import numpy as np
import pandas as pd
import torch

from bao.config.transcam import Cams, Model
from bao.core.io import save_npz, write_text
from bao.core.pipeline import paths
from bao.core.runtime import amp_context, select_device
from bao.core.stage import main
from bao.core.workers import map_split
from bao.data.voc import VOCDataset
from bao.method.transcam import multi_scale, present_cams, transcam_fn
from bao.models.factory import create_model
from bao.models.weights import load_trained
from bao.scoring.labels import score_cams, threshold_range
from bao.scoring.metrics import write_scores

STAGE = "make_cams"


def make_work(params, out_dir):
    device = select_device(params.base.device)
    ds = VOCDataset(paths().data, "train_aug", masks=None)
    model = load_trained(create_model(params.model.arch, num_classes=ds.space.n), paths().transcam, device)
    c = params.cams
    amp = amp_context(device, params.base.amp)

    def work(image_id):
        image = ds.load_image(image_id)
        label = torch.from_numpy(ds.label(image_id))
        cams = multi_scale(
            transcam_fn(model, label, amp, c.attn_identity), image, c.scales, c.flip, c.keep_aspect, device
        )
        keys, norm = present_cams(cams, label.numpy())
        save_npz(out_dir / f"{image_id}.npz", keys=keys.astype(np.uint8), cams=norm.numpy().astype(np.float16))

    return work


def run(params):
    P = paths()
    ids = VOCDataset(P.data, "train_aug", masks=None).ids
    map_split(STAGE, P.cams, ids, partial(make_work, params), ".npz", params.base.infer_workers, gpu=True)
    res = score_cams(P.cams, P.data, "train", threshold_range(*params.cams.thresholds))
    write_text(P.metrics.transcam_threshold, pd.DataFrame(res.pop("curve")).to_csv(index=False))
    best = res.pop("best")
    write_scores(
        P.metrics.transcam_seed,
        {**res, "pixel_acc": best["pixel_acc"], "iou": best["iou"]},
        headline=("miou", "best_threshold"),
    )
    print(f"TransCAM seed mIoU on train: {100 * res['miou']:.2f} at background threshold {res['best_threshold']:.2f}")


if __name__ == "__main__":
    main(run, STAGE, [Model, Cams])
