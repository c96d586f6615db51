"""Stage make_seco_labels: SeCo's seed and mask on VOC train, its recipe (zwyang6/SeCo tools/infer_cam.py;
docs/method.md §8.1), scored by the project's evaluator like the other rows.

Seed: the CAM at ``seco.seed_scales`` (x flip) of the image resized to ``seco.crop_size`` square,
bilinear back, background where no present class scores above ``seco.bkg_thre`` (infer_cam.py's
cam_seeds). Mask: the same at ``seco.mask_scales`` (infer_cam.py --refine_with_multiscale), then the
label CRF of SeCo's utils/dcrf.py ``crf_inference_label`` (gt_prob 0.7, Gaussian 3/3, bilateral
50/5/10, 10 iterations, all K + 1 labels: the ``masks.crf`` kernels). Outputs ``<paths.seeds_seco>/<id>.png``
(the seed) and ``<id>.ms.png`` (the multi-scale labels), ``<paths.masks>/seco/<id>.png``, and
``metrics/seco_seed.json``, ``metrics/seco_mask.json``.
"""

from functools import partial
from pathlib import Path

import torch

from bao.config.masks import Masks
from bao.config.seco import Seco
from bao.core.image import to_tensor
from bao.core.io import load_label_png, save_label_png
from bao.core.pipeline import paths
from bao.core.stage import main
from bao.core.workers import map_split
from bao.data.voc import VOCDataset
from bao.method.crf import crf_labels
from bao.method.seco.cams import cam_seed
from bao.method.seco.infer import infer_cams, load_seco
from bao.scoring.labels import score_labels
from bao.scoring.metrics import write_scores

STAGE = "make_seco_labels"
MULTISCALE = ".ms.png"  # the multi-scale labels beside each seed, the mask's input


def make_seed_work(params, out_dir):
    P = paths()
    cfg = params.seco
    ds = VOCDataset(P.data, "train", masks=None)
    net, device, amp = load_seco(params, P.seco, ds.space.n)

    @torch.no_grad()
    def work(image_id):
        x = to_tensor(ds.load_image(image_id))[None].to(device)
        label = torch.from_numpy(ds.label(image_id))[None].to(device)
        for scales, suffix in ((cfg.seed_scales, ".png"), (cfg.mask_scales, MULTISCALE)):
            with amp():
                cam = infer_cams(net, x, cfg.crop_size, scales)
            save_label_png(out_dir / f"{image_id}{suffix}", cam_seed(cam.float(), label, cfg.bkg_thre)[0].cpu().numpy())

    return work


def make_mask_work(params, out_dir):
    P = paths()
    ds = VOCDataset(P.data, "train", masks=None)

    def work(image_id):
        labels = load_label_png(Path(P.seeds_seco) / f"{image_id}{MULTISCALE}")
        save_label_png(
            out_dir / f"{image_id}.png",
            crf_labels(ds.load_image(image_id), labels, params.masks.crf, n_labels=ds.space.n),
        )

    return work


def run(params):
    P = paths()
    ids = VOCDataset(P.data, "train", masks=None).ids
    # the multi-scale labels are written after each seed: an image is done when they exist
    map_split(
        STAGE, P.seeds_seco, ids, partial(make_seed_work, params), MULTISCALE, params.base.infer_workers, gpu=True
    )
    map_split(STAGE, Path(P.masks) / "seco", ids, partial(make_mask_work, params), ".png", params.base.crf_workers)
    for kind, folder in (("seed", P.seeds_seco), ("mask", Path(P.masks) / "seco")):
        res = score_labels(folder, P.data, "train")
        write_scores(getattr(P.metrics.seco, kind), {"method": f"SeCo {kind}", **res})
        print(f"SeCo {kind} mIoU on train: {100 * res['miou']:.2f}")


if __name__ == "__main__":
    main(run, STAGE, [Seco, Masks])
