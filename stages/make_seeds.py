"""Stage make_seeds: threshold-free seeds for train_aug from the trained BAO target (docs/method.md §3.5).

The target's activation map and its refined foreground CAM, multi-scale and flip as the CAM
inference, combined as ``seeds.combine`` and arg-maxed: no background threshold. Output palette PNGs
``<paths.seeds>/<id>.png`` (and, for ``masks.crf.unary: scores``, the seed scores ``<id>.npz``),
``metrics/seed.json`` with the mIoU on VOC train, and ``metrics/seed_ablation.json``: the train mIoU
of every ``seeds.combine`` rule, scored from the same maps the seeds were made from.
"""

from functools import partial
from pathlib import Path

import numpy as np
import torch

from bao.config.bao import Bao, Seeds
from bao.config.masks import Masks
from bao.config.transcam import Cams, Model
from bao.core.classes import read_label_space
from bao.core.io import save_label_png, save_npz, write_json
from bao.core.pipeline import paths
from bao.core.runtime import amp_context, select_device
from bao.core.stage import main
from bao.core.workers import map_split
from bao.data.voc import VOCDataset, read_split
from bao.method.readouts import READOUTS, combine_seed_scores, seed_labels
from bao.method.seeds import load_target, passes, rule_confusions, seed_confusions, seed_maps
from bao.scoring.labels import score_labels
from bao.scoring.metrics import ConfusionMatrix, write_scores

STAGE = "make_seeds"


def make_work(params, out_dir):
    P = paths()
    device = select_device(params.base.device)
    ds = VOCDataset(P.data, "train_aug", masks=None)
    model = load_target(params, Path(P.bao) / params.bao.update, device, ds.space.n)
    amp = amp_context(device, params.base.amp)
    scored = VOCDataset(P.data, "train", masks="gt")
    scored_ids = set(scored.ids)
    keep_scores = params.masks.crf.unary == "scores"
    combine = params.seeds.combine
    n_passes = passes(params.cams)

    @torch.no_grad()
    def work(image_id):
        image = ds.load_image(image_id)
        label = ds.label(image_id)
        am, cam = seed_maps(model, image, label, params.cams, device, amp)
        scores = combine_seed_scores(am, cam, torch.from_numpy(label), combine, n_passes)
        if keep_scores:
            keys = np.r_[0, np.flatnonzero(label) + 1]
            save_npz(
                out_dir / f"{image_id}.npz",
                keys=keys.astype(np.uint8),
                scores=scores[keys].clamp(min=0).numpy().astype(np.float16),
            )
        save_label_png(out_dir / f"{image_id}.png", seed_labels(scores))
        if image_id in scored_ids:  # the ablation, from the maps already computed
            return rule_confusions(am, cam, label, scored.load_mask(image_id, image.shape[:2]), READOUTS, n_passes)
        return None

    return work


def run(params):
    P = paths()
    ids = VOCDataset(P.data, "train_aug", masks=None).ids
    per_image = map_split(STAGE, P.seeds, ids, partial(make_work, params), ".png", params.base.infer_workers, gpu=True)
    res = score_labels(P.seeds, P.data, "train")
    write_scores(P.metrics.seed, {"method": f"BAO ({params.bao.update}, combine={params.seeds.combine})", **res})
    print(f"BAO seed mIoU on train (no threshold): {100 * res['miou']:.2f}")

    parts = list(per_image.values())
    resumed = [i for i in read_split(P.data, "train") if i not in per_image]
    if resumed:  # seeds written by an interrupted run that this one resumed: score those images again
        device = select_device(params.base.device)
        model = load_target(params, Path(P.bao) / params.bao.update, device)
        parts.append(
            seed_confusions(
                model, P.data, "train", params.cams, READOUTS, device, amp_context(device, params.base.amp), ids=resumed
            )
        )
    space = read_label_space(P.data)
    total = {c: ConfusionMatrix(space.n) for c in READOUTS}
    for cms in parts:
        for c, cm in cms.items():
            total[c].merge(cm)
    write_json(
        P.metrics.seed_ablation,
        {
            "method": f"BAO ({params.bao.update})",
            "split": "train",
            "miou": {c: cm.summary(space.names)["miou"] for c, cm in total.items()},
        },
    )


if __name__ == "__main__":
    main(run, STAGE, [Model, Cams, Bao, Seeds, Masks])
