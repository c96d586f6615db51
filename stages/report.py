"""Stage report: Table 1 (Markdown + CSV) and Figures 2, 3, 4 and the threshold curve.

Numbers come from the metric files only; the paper's numbers are quoted beside them (docs/method.md §7).
Figure 3 runs the trained target on ``report.figure3_ids`` to show its activation map.
"""

import json
from pathlib import Path

import numpy as np
import torch

from bao.config.bao import Bao, Seeds
from bao.config.choices import UPDATES
from bao.config.deeplab import Evaluate
from bao.config.report import Report
from bao.config.transcam import Cams, Model
from bao.core.classes import read_label_space
from bao.core.io import load_label_png
from bao.core.pipeline import paths
from bao.core.runtime import amp_context, select_device
from bao.core.stage import main
from bao.data.voc import VOCDataset, mask_palette, read_split
from bao.method.cam_labels import load_cam
from bao.method.seeds import load_target, seed_scores
from bao.scoring.figures import colorize, figure4, grid_figure, threshold_figure
from bao.scoring.report import seed_ablation_markdown, table1, transcam_mask_markdown, write_table

NOTE = (
    "Reproduced columns come from this run's metric files (mIoU %, seed and mask on the train split, "
    "segmentation on val); the paper's columns are quoted from the paper and were not computed here. "
    "TransCAM's seed is at its best background threshold; its mask is PSA's random walk over its CAMs "
    "(AffinityNet trained on its CAMs' confident labels) followed by the label CRF, as in the paper; "
    "the CRF alone on its seed is the ablation below. SeCo's row is its own recipe: the seed is its "
    "CAM with background at seco.bkg_thre, the mask its multi-scale CAM labels + the label CRF, val its segmentation "
    "head (multi-scale, flip, CRF), all one-stage. "
    "'–': not produced by this pipeline (test needs the VOC evaluation server: report.test_miou). "
    "One run is one sample of base.seed: another seed moves these numbers by several points "
    "(mean ± sd over five seeds: metrics/seed_variance.md, python -m scripts.seed_variance)."
)


COCO_NOTE = (
    " COCO 2014: the paper reports VOC only; the published column is SeCo's own COCO val (its README, "
    "ViT-B), the others publish none the project can cite."
)


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
    P, r = paths(), params.report
    M, F = P.metrics, P.figures
    space, palette = read_label_space(P.data), mask_palette(P.data)
    data = json.loads(Path(M.data).read_text())
    coco = data["source"] == "coco"  # COCO 2014's columns: no test split, SeCo's published val
    df = table1(M, r.test_miou, coco)
    note = NOTE + f" Dataset: {data['source']} ({data.get('train_aug', '?')} train_aug images)."
    if coco:
        note += COCO_NOTE
    extra = "\n".join(
        x for x in (seed_ablation_markdown(M.seed_ablation, params.seeds.combine), transcam_mask_markdown(M)) if x
    )
    write_table(df, M.table1_md, M.table1_csv, note, extra, coco)
    bao_seed = json.loads(Path(M.seed).read_text())["miou"]
    # dotted: a second readout beside the configured one (eq. 6 on the CAM, or the release's camsfg_ambg)
    other = "cam" if params.seeds.combine != "cam" else "camsfg_ambg"
    figure4({v: Path(M.bao) / f"{v}.csv" for v in UPDATES}, M.train_transcam, F.figure4, params.seeds.combine, other)
    threshold_figure(M.transcam_threshold, bao_seed, F.threshold)

    # Figure 2: image / ground truth / DeepLab prediction on val
    split = params.evaluate.split
    val = VOCDataset(P.data, split, masks="gt", ids=figure_ids(P.data, split, r.figure2_ids, "report.figure2_ids"))
    rows, present, notes = [], set(), {}
    for r_, i in enumerate(val.ids):
        img = val.load_image(i)
        gt = val.load_mask(i, img.shape[:2])
        preds = [load_label_png(Path(P.predictions) / s / split / f"{i}.png") for s in ("transcam", "bao")]
        for c_, pred in enumerate(preds, start=2):
            if not (pred[pred != 255] > 0).any():
                notes[r_, c_] = "no foreground predicted"
        present |= {int(c) for lab in (gt, *preds) for c in np.unique(lab) if c != 255}
        rows.append([img, colorize(gt, palette)] + [colorize(p, palette) for p in preds])
    caption = (
        "Segmentation networks trained on each row's masks, on "
        + split
        + "."
        + (" A black panel is an all-background prediction: the network found no object there." if notes else "")
    )
    grid_figure(
        rows,
        ["image", "ground truth", "trained on TransCAM masks", "trained on BAO masks"],
        F.figure2,
        "Figure 2: segmentation examples",
        classes=sorted(present),
        names=space.names,
        palette=palette,
        notes=notes,
        caption=caption,
    )

    # Figure 3: image / TransCAM CAM / BAO activation map / seed / mask / ground truth on train
    device = select_device(params.base.device)
    target = load_target(params, Path(P.bao) / params.bao.update, device, space.n)
    amp = amp_context(device, params.base.amp)
    train = VOCDataset(
        P.data, "train", masks="gt", ids=figure_ids(P.data, "train", r.figure3_ids, "report.figure3_ids")
    )
    rows, present = [], set()
    with torch.no_grad():
        for i in train.ids:
            img = train.load_image(i)
            keys, cams = load_cam(Path(P.cams) / f"{i}.npz")
            cam = cams.max(0) if len(keys) else np.zeros(img.shape[:2])
            scores = seed_scores(target, img, train.label(i), params.cams, "am", device, amp)
            am = scores[1:].clamp(min=0).amax(0).numpy()  # foreground probability of the AM
            labels = [
                load_label_png(Path(P.seeds) / f"{i}.png"),
                load_label_png(Path(P.masks) / "bao" / f"{i}.png"),
                train.load_mask(i, img.shape[:2]),
            ]
            present |= {int(c) for lab in labels for c in np.unique(lab) if c != 255}
            rows.append([img, np.clip(cam, 0, 1), np.clip(am, 0, 1)] + [colorize(lab, palette) for lab in labels])
    grid_figure(
        rows,
        ["image", "TransCAM CAM", "BAO activation map", "BAO seed", "mask (CRF)", "ground truth"],
        F.figure3,
        "Figure 3: activation maps (max over the image's classes)",
        classes=sorted(present),
        names=space.names,
        palette=palette,
        caption="CAM and activation map: blue 0 to red 1 (jet). Seed, mask and ground truth: the class colours.",
    )
    print(Path(M.table1_md).read_text())


if __name__ == "__main__":
    main(run, "report", [Model, Cams, Bao, Seeds, Evaluate, Report])
