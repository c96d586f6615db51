"""Stage make_cams: TransCAM CAMs for train_aug and their seed score over the background threshold.

Inference as TransCAM's infer_TransCAM.py (reference transcam.md §2): fixed squares (``cams.scales``)
x horizontal flip, the conv CAM refined by the attention (eq. 5), restricted to the image's classes,
upsampled to the image size, summed over passes, ReLU and per-class min-max. Output ``cams/transcam/
<id>.npz`` (``keys``: present classes, ``cams``: (K,H,W) float16). Seeds on VOC train are scored for
every background threshold (TransCAM evaluation.py): ``metrics/transcam_seed.json`` (best threshold)
and the curve ``metrics/transcam_threshold.csv``.
"""
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bao.cam import minmax_norm, multi_scale, transcam_fn
from bao.config import section_dict
from bao.data import VOCDataset
from bao.eval_labels import score_cams, threshold_range
from bao.infer import run_split
from bao.io import atomic_dir, params_hash, save_npz, write_json, write_text
from bao.models import create_model
from bao.models.weights import safe_load
from bao.runtime import amp_context, select_device
from bao.stage import main

OUT = Path("cams/transcam")


def load_transcam(params, device):
    model = create_model(params.model.arch, num_classes=21)
    model.load_state_dict(safe_load("models/transcam/model.pt"))
    return model.to(device).eval()


def make_work(params, out_dir):
    device = select_device(params.base.device)
    model = load_transcam(params, device)
    ds = VOCDataset(params.data.root, "train_aug", masks=None)
    c = params.cams
    amp = amp_context(device, params.base.amp)

    def work(image_id):
        image = ds.load_image(image_id)
        label = torch.from_numpy(ds.label(image_id))
        fn = transcam_fn(model, label, amp, c.attn_identity)
        cams = multi_scale(fn, image, c.scales, c.flip, c.keep_aspect, device)
        keys = np.flatnonzero(label.numpy()) + 1
        norm = minmax_norm(cams[keys - 1]) if len(keys) else cams[:0]
        save_npz(out_dir / f"{image_id}.npz", keys=keys.astype(np.uint8), cams=norm.numpy().astype(np.float16))

    return work


def run(params):
    ids = VOCDataset(params.data.root, "train_aug", masks=None).ids
    key = params_hash(section_dict(params.cams), section_dict(params.model))
    with atomic_dir(OUT, resume_key=key) as tmp:
        run_split(partial(make_work, params, tmp), ids, tmp, ".npz", workers=params.base.infer_workers,
                  desc="make_cams")
    res = score_cams(OUT, params.data.root, "train", threshold_range(*params.cams.thresholds))
    write_text("metrics/transcam_threshold.csv", pd.DataFrame(res.pop("curve")).to_csv(index=False))
    best = res.pop("best")
    write_json("metrics/transcam_seed.json", {**res, "pixel_acc": best["pixel_acc"], "iou": best["iou"]})
    print(f"TransCAM seed mIoU on train: {100 * res['miou']:.2f} at background threshold {res['best_threshold']:.2f}")


if __name__ == "__main__":
    main(run)
