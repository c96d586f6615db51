"""Stage report: Table 1 (Markdown + CSV) and Figures 2, 3, 4 and the threshold curve.

Numbers come from the metric files only; the paper's numbers are quoted beside them (BAO.md §5).
Figure 3 runs the trained target on ``report.figure3_ids`` to show its activation map.
"""
import json
from pathlib import Path

import numpy as np
import torch

from bao.data import VOCDataset, read_split
from bao.eval_labels import load_cam
from bao.io import load_label_png
from bao.report import colorize, figure4, grid_figure, seed_ablation_markdown, table1, threshold_figure, write_table
from bao.runtime import amp_context, select_device
from bao.seeds import load_target, seed_scores
from bao.stage import main

NOTE = ("Reproduced columns come from this run's metric files (mIoU %, seed and mask on the train split, "
        "segmentation on val); the paper's columns are quoted from BAO.md §5 and were not computed here. "
        "TransCAM's seed is at its best background threshold and its mask is that seed refined by the "
        "same CRF (the paper's TransCAM mask uses PSA). SeCo is quoted only. "
        "'–': not produced by this pipeline (test needs the VOC evaluation server: report.test_miou).")


def figure_ids(root, split: str, wanted: list[str], key: str) -> list[str]:
    """``wanted`` ids that the split has; if none of them, its first four (another dataset than the
    one the ids were picked for), said on stdout."""
    ids = read_split(root, split)
    known = set(ids)
    have = [i for i in wanted if i in known]
    if not have:
        have = ids[:4]
        print(f"{key}: none of {wanted} is in {split}; using {have}")
    return have


def run(params):
    r = params.report
    df = table1("metrics", r.test_miou)
    data = json.loads(Path("metrics/data.json").read_text())
    note = NOTE + f" Dataset: {data['source']} ({data.get('train_aug', '?')} train_aug images)."
    write_table(df, "metrics/table1.md", "metrics/table1.csv", note,
                seed_ablation_markdown("metrics/seed_ablation.json", params.seeds.combine))
    Path("plots").mkdir(exist_ok=True)
    tc = json.loads(Path("metrics/transcam_seed.json").read_text())
    bao_seed = json.loads(Path("metrics/seed.json").read_text())["miou"]
    # dotted: a second readout beside the configured one (eq. 6 on the CAM, or the paper's am_bg)
    other = "cam" if params.seeds.combine == "am_bg" else "am_bg"
    figure4("metrics", params.bao.variants, tc["miou"], "plots/figure4.png", params.seeds.combine, other)
    threshold_figure("metrics/transcam_threshold.csv", bao_seed, "plots/threshold.png")

    root = params.data.root
    # Figure 2: image / ground truth / DeepLab prediction on val
    val = VOCDataset(root, params.evaluate.split, masks="gt",
                     ids=figure_ids(root, params.evaluate.split, r.figure2_ids, "report.figure2_ids"))
    rows = []
    for i in val.ids:
        img = val.load_image(i)
        rows.append([img, colorize(val.load_mask(i, img.shape[:2])),
                     colorize(load_label_png(Path("predictions/bao") / params.evaluate.split / f"{i}.png"))])
    grid_figure(rows, ["image", "ground truth", "DeepLab (BAO masks)"], "plots/figure2.png",
                "Figure 2: segmentation examples")

    # Figure 3: image / TransCAM CAM / BAO activation map / seed / mask / ground truth on train
    device = select_device(params.base.device)
    target = load_target(params, Path("models/bao") / params.bao.update / "target.pt", device)
    amp = amp_context(device, params.base.amp)
    train = VOCDataset(root, "train", masks="gt", ids=figure_ids(root, "train", r.figure3_ids, "report.figure3_ids"))
    rows = []
    with torch.no_grad():
        for i in train.ids:
            img = train.load_image(i)
            keys, cams = load_cam(Path("cams/transcam") / f"{i}.npz")
            cam = cams.max(0) if len(keys) else np.zeros(img.shape[:2])
            scores = seed_scores(target, img, train.label(i), params.cams, "am", device, amp)
            am = scores[1:].clamp(min=0).amax(0).numpy()  # foreground probability of the AM
            rows.append([img, np.clip(cam, 0, 1), np.clip(am, 0, 1),
                         colorize(load_label_png(Path("seeds/bao") / f"{i}.png")),
                         colorize(load_label_png(Path("masks/bao") / f"{i}.png")),
                         colorize(train.load_mask(i, img.shape[:2]))])
    grid_figure(rows, ["image", "TransCAM CAM", "BAO activation map", "BAO seed", "mask (CRF)", "ground truth"],
                "plots/figure3.png", "Figure 3: activation maps (max over the image's classes)")
    print(Path("metrics/table1.md").read_text())


if __name__ == "__main__":
    main(run)
