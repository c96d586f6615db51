"""Stage evaluate@<source>: a DeepLab model on VOC val (and, for bao, the test export for the server).

    python -m stages.evaluate {bao,transcam}

Multi-scale (``evaluate.scales``) and optionally flipped passes, each upsampled to the image, combined
as ``evaluate.combine``: ``max_softmax``, the element-wise max of each pass's softmax (MCTformer's
seg/infer_seg.py l.91-98, the release's), or ``mean_logits``, the softmax of the averaged logits (the
DeepLab test); then a dense CRF from the probabilities (``evaluate.crf``; MCTformer's crf_inference_inf:
10 iterations, Gaussian 4/3, bilateral 83/5/3) and argmax; each step switchable. Outputs ``predictions/<source>/<split>/<id>.png`` and the metrics
(mIoU, pixel accuracy, per-class IoU): ``metrics/segmentation.json`` (bao) or
``metrics/transcam_segmentation.json``. For bao also ``metrics/segmentation_iou.csv``,
``plots/confusion.png`` and, when the split list ``test`` has images,
``results/VOC2012/Segmentation/comp6_test_cls/<id>.png`` and ``results/voc2012_test.tar``, the layout
the VOC server expects.
"""

import tarfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image

from bao.config.deeplab import DeepLab, Evaluate
from bao.core.image import host, to_tensor
from bao.core.io import atomic_dir, atomic_file, save_label_png, write_text
from bao.core.pipeline import paths
from bao.core.runtime import amp_context, select_device
from bao.core.stage import main_with_item
from bao.core.workers import hand_off, handing_off, resolve_workers
from bao.data.voc import VOCDataset, split_path
from bao.method.crf import crf_probs
from bao.models.deeplab import build_deeplab
from bao.models.weights import load_trained
from bao.scoring.figures import confusion_figure
from bao.scoring.metrics import ConfusionMatrix, write_scores

STAGES = {"bao": "evaluate", "transcam": "evaluate_transcam"}


@torch.no_grad()
def probabilities(model, image: np.ndarray, cfg, device, amp) -> np.ndarray:
    """(K, H, W) class probabilities over ``cfg.scales`` (x flip), combined by ``cfg.combine``."""
    h, w = image.shape[:2]
    pil = Image.fromarray(image)
    total = None
    for s in cfg.scales:
        size = (max(16, round(w * s)), max(16, round(h * s)))
        x = to_tensor(np.asarray(pil.resize(size, Image.BILINEAR)))[None]
        if cfg.flip:
            x = torch.cat([x, x.flip(-1)])
        with amp():
            logits = model(x.to(device)).float()
        logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
        if cfg.flip:
            logits = torch.cat([logits[:1], logits[1:].flip(-1)])
        for z in host(logits):
            if cfg.combine == "max_softmax":
                z = z.softmax(0)
                total = z if total is None else torch.maximum(total, z)
            else:
                total = z if total is None else total + z
    n = len(cfg.scales) * (2 if cfg.flip else 1)
    return total.numpy() if cfg.combine == "max_softmax" else (total / n).softmax(0).numpy()


def label_of(image: np.ndarray, prob: np.ndarray, cfg) -> np.ndarray:
    """The prediction: the dense CRF from the probabilities (``cfg.use_crf``), or their argmax."""
    if cfg.use_crf:
        return crf_probs(image, prob, np.arange(len(prob)), cfg.crf)
    return prob.argmax(0).astype(np.uint8)


def predict(model, image: np.ndarray, cfg, device, amp) -> np.ndarray:
    return label_of(image, probabilities(model, image, cfg, device, amp), cfg)


def predict_all(model, ds, cfg, device, amp, crf_workers, keep) -> None:
    """``keep(image_id, prediction)`` for every image of ``ds``; the CRFs run on ``crf_workers`` CPU
    processes while the GPU predicts the next images (``keep`` runs here, in any order)."""
    with handing_off(resolve_workers(crf_workers)):
        for image_id in ds.ids:
            image = ds.load_image(image_id)
            prob = probabilities(model, image, cfg, device, amp)
            if cfg.use_crf:  # only the CRF goes to a CPU process; an argmax is done here
                hand_off(label_of, image, prob, cfg, then=partial(keep, image_id))
            else:
                keep(image_id, label_of(image, prob, cfg))


def run(params, source):
    P = paths()
    cfg = params.evaluate
    device = select_device(params.base.device)
    amp = amp_context(device, params.base.amp)
    ds = VOCDataset(P.data, cfg.split, masks="gt")
    names = ds.space.names
    model = load_trained(build_deeplab(params.deeplab, ds.space.n), Path(P.deeplab) / source, device)
    cm = ConfusionMatrix(ds.space.n)
    t0 = time.perf_counter()
    with atomic_dir(Path(P.predictions) / source) as tmp:

        def keep(image_id, pred):
            save_label_png(tmp / cfg.split / f"{image_id}.png", pred)
            cm.update(pred, ds.load_mask(image_id, pred.shape))

        predict_all(model, ds, cfg, device, amp, params.base.crf_workers, keep)
    print(f"[timing] {STAGES[source]}: images={len(ds)} seconds={time.perf_counter() - t0:.3f}")
    res = {"masks": source, "split": cfg.split, "images": len(ds), **cm.summary(names)}
    write_scores(getattr(P.metrics.segmentation, source), res)
    print(f"DeepLab ({source} masks) mIoU on {cfg.split}: {100 * res['miou']:.2f}")
    if source != "bao":
        return
    write_text(
        P.metrics.segmentation_iou,
        pd.DataFrame({"class": names, "iou": [res["iou"][c] for c in names]}).to_csv(index=False),
    )
    confusion_figure(
        cm.hist,
        names,
        P.figures.confusion,
        f"{params.deeplab.arch} ({params.deeplab.backbone}) trained on the BAO masks, {cfg.split}",
    )
    export_test(params, model, device, amp)


def _stable(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Same predictions, same tar bytes: no mtimes or owners (DVC then sees an unchanged output)."""
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    return info


def export_test(params, model, device, amp) -> None:
    """Test predictions in the server's layout (results/VOC2012/Segmentation/comp6_test_cls) + a tar."""
    P = paths()
    with atomic_dir(P.results) as tmp:
        if not split_path(P.data, "test").exists():
            return
        ds = VOCDataset(P.data, "test", masks=None)
        out = tmp / "VOC2012" / "Segmentation" / "comp6_test_cls"
        predict_all(
            model,
            ds,
            params.evaluate,
            device,
            amp,
            params.base.crf_workers,
            lambda image_id, pred: save_label_png(out / f"{image_id}.png", pred),
        )
        with atomic_file(tmp / "voc2012_test.tar") as f, tarfile.open(fileobj=f, mode="w") as tar:
            tar.add(tmp / "VOC2012", arcname="results/VOC2012", filter=_stable)
        print(f"test predictions for {len(ds)} images: results/voc2012_test.tar (upload to the VOC server)")


if __name__ == "__main__":
    main_with_item(run, "evaluate", tuple(STAGES), [DeepLab, Evaluate], stage=STAGES.get)
