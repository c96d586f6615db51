"""Stage make_seeds: threshold-free seeds for train_aug from the trained BAO target (BAO.md §3.5).

The target's activation map and its refined foreground CAM, multi-scale and flip as the CAM
inference, combined as ``seeds.combine`` and arg-maxed: no background threshold. Output palette PNGs
``seeds/bao/<id>.png`` (and, for ``masks.crf.unary: scores``, the seed scores ``<id>.npz``), and
``metrics/seed.json`` with the mIoU on VOC train, and ``metrics/seed_ablation.json``: the train mIoU of
every ``seeds.combine`` rule from the same target (BAO.md §3.5 asks for all of them).
"""
from functools import partial
from pathlib import Path

import numpy as np
import torch

from bao.config import section_dict
from bao.data import VOCDataset
from bao.eval_labels import score_labels
from bao.infer import run_split
from bao.io import atomic_dir, params_hash, save_label_png, save_npz, write_json
from bao.runtime import amp_context, select_device
from bao.method import COMBINES
from bao.seeds import load_target, seed_mious, seed_scores
from bao.stage import main

OUT = Path("seeds/bao")


def make_work(params, out_dir):
    device = select_device(params.base.device)
    model = load_target(params, Path("models/bao") / params.bao.update / "target.pt", device)
    amp = amp_context(device, params.base.amp)
    ds = VOCDataset(params.data.root, "train_aug", masks=None)
    keep_scores = params.masks.crf.unary == "scores"

    @torch.no_grad()
    def work(image_id):
        image = ds.load_image(image_id)
        label = ds.label(image_id)
        scores = seed_scores(model, image, label, params.cams, params.seeds.combine, device, amp)
        if keep_scores:
            keys = np.r_[0, np.flatnonzero(label) + 1]
            save_npz(out_dir / f"{image_id}.npz", keys=keys.astype(np.uint8),
                     scores=scores[keys].clamp(min=0).numpy().astype(np.float16))
        save_label_png(out_dir / f"{image_id}.png", scores.argmax(0).numpy().astype(np.uint8))

    return work


def run(params):
    ids = VOCDataset(params.data.root, "train_aug", masks=None).ids
    key = params_hash(params.bao.update, params.seeds.combine, section_dict(params.cams), params.masks.crf.unary)
    with atomic_dir(OUT, resume_key=key) as tmp:
        run_split(partial(make_work, params, tmp), ids, tmp, ".png", workers=params.base.infer_workers,
                  desc="make_seeds")
    res = score_labels(OUT, params.data.root, "train")
    write_json("metrics/seed.json", {"method": f"BAO ({params.bao.update}, combine={params.seeds.combine})", **res})
    print(f"BAO seed mIoU on train (no threshold): {100 * res['miou']:.2f}")
    device = select_device(params.base.device)
    model = load_target(params, Path("models/bao") / params.bao.update / "target.pt", device)
    ablation = seed_mious(model, params.data.root, "train", params.cams, COMBINES, device,
                          amp_context(device, params.base.amp))
    write_json("metrics/seed_ablation.json", {"method": f"BAO ({params.bao.update})", "split": "train",
                                              "miou": {c: r["miou"] for c, r in ablation.items()}})


if __name__ == "__main__":
    main(run)
