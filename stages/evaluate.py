"""Stage evaluate@<source>: a DeepLab model on VOC val (and, for bao, the test export for the server).

    python stages/evaluate.py {bao,transcam}

Multi-scale (``evaluate.scales``) + flip: logits upsampled to the image and averaged, softmax, then
a dense CRF from the probabilities (``evaluate.crf``, 1 iteration as the DeepLab test's dense_crf)
and argmax; each step switchable. Outputs ``predictions/<source>/<split>/<id>.png`` and the metrics
(mIoU, pixel accuracy, per-class IoU): ``metrics/segmentation.json`` (bao) or
``metrics/transcam_segmentation.json``. For bao also ``metrics/segmentation_iou.csv``,
``plots/confusion.png`` and, when the split list ``test`` has images,
``results/VOC2012/Segmentation/comp6_test_cls/<id>.png`` and ``results/voc2012_test.tar``, the layout
the VOC server expects.
"""
import sys
import tarfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402

from bao.cam import to_tensor  # noqa: E402
from bao.config import ParamsError  # noqa: E402
from bao.crf import crf_probs  # noqa: E402
from bao.data import CLASSES, VOCDataset  # noqa: E402
from bao.data.voc import split_path  # noqa: E402
from bao.io import atomic_dir, atomic_file, save_label_png, write_json, write_text  # noqa: E402
from bao.metrics import ConfusionMatrix  # noqa: E402
from bao.models.deeplab import DeepLab  # noqa: E402
from bao.models.weights import safe_load  # noqa: E402
from bao.runtime import amp_context, select_device  # noqa: E402
from bao.stage import main  # noqa: E402

KEYS = np.arange(len(CLASSES))
METRICS = {"bao": "metrics/segmentation.json", "transcam": "metrics/transcam_segmentation.json"}


@torch.no_grad()
def predict(model, image: np.ndarray, cfg, device, amp) -> np.ndarray:
    h, w = image.shape[:2]
    pil = Image.fromarray(image)
    total = 0
    for s in cfg.scales:
        size = (max(16, round(w * s)), max(16, round(h * s)))
        x = to_tensor(np.asarray(pil.resize(size, Image.BILINEAR)))[None]
        if cfg.flip:
            x = torch.cat([x, x.flip(-1)])
        with amp():
            logits = model(x.to(device)).float()
        logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
        if cfg.flip:
            logits = logits[:1] + logits[1:].flip(-1)
        total = total + logits[0].cpu()
    prob = (total / (len(cfg.scales) * (2 if cfg.flip else 1))).softmax(0).numpy()
    if cfg.use_crf:
        return crf_probs(image, prob, KEYS, cfg.crf)
    return prob.argmax(0).astype(np.uint8)


def confusion_png(cm: ConfusionMatrix, path: str) -> None:
    norm = cm.hist / np.maximum(cm.hist.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(8, 7))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(CLASSES)), CLASSES, rotation=90, fontsize=7)
    ax.set_yticks(range(len(CLASSES)), CLASSES, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    ax.set_title("Segmentation confusion (row-normalised)")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    with atomic_file(path) as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)


def run(params, source):
    if source not in METRICS:
        raise ParamsError(f"evaluate: unknown source {source!r}; known: {sorted(METRICS)}")
    cfg, d = params.evaluate, params.deeplab
    device = select_device(params.base.device)
    amp = amp_context(device, params.base.amp)
    model = DeepLab(d.arch, d.backbone, 21, d.output_stride, pretrained=False)
    model.load_state_dict(safe_load(f"models/deeplab/{source}/model.pt"))
    model.to(device).eval()
    ds = VOCDataset(params.data.root, cfg.split, masks="gt")
    cm = ConfusionMatrix(len(CLASSES))
    with atomic_dir(f"predictions/{source}") as tmp:
        for image_id in ds.ids:
            image = ds.load_image(image_id)
            pred = predict(model, image, cfg, device, amp)
            save_label_png(tmp / cfg.split / f"{image_id}.png", pred)
            cm.update(pred, ds.load_mask(image_id, image.shape[:2]))
    res = {"masks": source, "split": cfg.split, "images": len(ds), **cm.summary(CLASSES)}
    write_json(METRICS[source], res)
    print(f"DeepLab ({source} masks) mIoU on {cfg.split}: {100 * res['miou']:.2f}")
    if source != "bao":
        return
    write_text("metrics/segmentation_iou.csv",
               pd.DataFrame({"class": CLASSES, "iou": [res["iou"][c] for c in CLASSES]}).to_csv(index=False))
    Path("plots").mkdir(exist_ok=True)
    confusion_png(cm, "plots/confusion.png")
    export_test(params, model, device, amp)


def _stable(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Same predictions, same tar bytes: no mtimes or owners (DVC then sees an unchanged output)."""
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    return info


def export_test(params, model, device, amp) -> None:
    """Test predictions in the server's layout (results/VOC2012/Segmentation/comp6_test_cls) + a tar."""
    with atomic_dir("results") as tmp:
        if not split_path(params.data.root, "test").exists():
            return
        ds = VOCDataset(params.data.root, "test", masks=None)
        out = tmp / "VOC2012" / "Segmentation" / "comp6_test_cls"
        for image_id in ds.ids:
            save_label_png(out / f"{image_id}.png", predict(model, ds.load_image(image_id), params.evaluate, device, amp))
        with atomic_file(tmp / "voc2012_test.tar") as f, tarfile.open(fileobj=f, mode="w") as tar:
            tar.add(tmp / "VOC2012", arcname="results/VOC2012", filter=_stable)
        print(f"test predictions for {len(ds)} images: results/voc2012_test.tar (upload to the VOC server)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python stages/evaluate.py {bao,transcam}")
    main(lambda p: run(p, sys.argv[1]))
