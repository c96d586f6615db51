"""Stage evaluate_seco: SeCo's own segmentation on ``evaluate.split`` (zwyang6/SeCo tools/infer_seg_voc.py;
docs/method.md §8.1): the segmentation head's logits at ``seco.seg_scales`` (x flip, summed) of the image
resized to ``seco.crop_size`` x scale square, bilinear to the image, the max over scales, softmax, then
the dense CRF of ``seco.crf`` (infer_seg_voc.py ``crf_proc``). Outputs ``<paths.predictions>/seco/<split>/<id>.png``
and ``metrics/seco_segmentation.json``.
"""

from functools import partial
from pathlib import Path

import numpy as np
import torch

from bao.config.deeplab import Evaluate
from bao.config.seco import Seco
from bao.core.image import to_tensor
from bao.core.io import save_label_png
from bao.core.pipeline import paths
from bao.core.stage import main
from bao.core.workers import hand_off, map_split
from bao.data.voc import VOCDataset
from bao.method.crf import crf_probs
from bao.method.seco.infer import infer_seg, load_seco
from bao.scoring.labels import score_labels
from bao.scoring.metrics import write_scores

STAGE = "evaluate_seco"


def make_work(params, out_dir):
    P = paths()
    cfg = params.seco
    ds = VOCDataset(P.data, params.evaluate.split, masks=None)
    net, device, amp = load_seco(params, P.seco, ds.space.n)
    keys = np.arange(ds.space.n)

    @torch.no_grad()
    def work(image_id):
        image = ds.load_image(image_id)
        with amp():
            size = cfg.crop_size if cfg.seg_size == "crop" else None
            logits = infer_seg(net, to_tensor(image)[None].to(device), size, cfg.seg_scales)
        probs = logits.float().softmax(1)[0].cpu().numpy()
        # on a CPU process (base.crf_workers) while the GPU segments the next image
        hand_off(save_crf_probs, out_dir / f"{image_id}.png", image, probs, keys, cfg.crf)

    return work


def save_crf_probs(path: Path, image: np.ndarray, probs: np.ndarray, keys: np.ndarray, crf) -> None:
    save_label_png(path, crf_probs(image, probs, keys, crf))


def run(params):
    P = paths()
    split = params.evaluate.split
    ids = VOCDataset(P.data, split, masks=None).ids
    out = Path(P.predictions) / "seco" / split
    b = params.base  # the network on infer_workers (one per GPU), its CRFs on crf_workers CPU processes
    map_split(STAGE, out, ids, partial(make_work, params), ".png", b.infer_workers, gpu=True, cpu_workers=b.crf_workers)
    res = score_labels(out, P.data, split)
    write_scores(P.metrics.seco.segmentation, {"method": "SeCo (multi-scale + CRF)", **res})
    print(f"SeCo segmentation mIoU on {split}: {100 * res['miou']:.2f}")


if __name__ == "__main__":
    main(run, STAGE, [Seco, Evaluate])
