"""Stage random_walk: PSA's random walk of TransCAM's CAMs over AffinityNet's affinities, then the
label CRF: the masks of Table 1's TransCAM row (TransCAM infer_aff.py; docs/method.md §4.2).

Per train_aug image: the image padded (bottom, right) to a multiple of 8; AffinityNet's features at
stride 8 and the affinities of every pair within ``psa.radius`` as a dense symmetric matrix with a unit
diagonal; the (K + 1)-channel score map (the image's normalised CAMs, background the constant
``psa.bg_score``) average-pooled by 8 and walked: scores @ T^(2^logt), T = A^beta with columns summing
to 1; bilinear upsampling, argmax, the label CRF over all K + 1 labels (``psa.crf``; VOC: 21), and the crop back.
Outputs ``<paths.masks>/transcam/<id>.png`` and ``metrics/transcam_mask.json`` (mIoU on VOC train).
"""

from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bao.config.masks import Masks
from bao.config.psa import Psa
from bao.core.image import MEAN, STD, to_tensor
from bao.core.io import save_label_png
from bao.core.pipeline import paths
from bao.core.runtime import amp_context, select_device
from bao.core.stage import main
from bao.core.workers import hand_off, map_split
from bao.data.voc import VOCDataset
from bao.method.cam_labels import load_cam
from bao.method.crf import crf_labels
from bao.method.psa import dense_affinity, inference_radius, pair_affinity, random_walk
from bao.models.resnet38 import AffinityNet, create_affinitynet
from bao.models.weights import load_trained
from bao.scoring.labels import score_labels
from bao.scoring.metrics import write_scores

STAGE = "random_walk"


def walk_scores(
    net, image: np.ndarray, keys: np.ndarray, cams: np.ndarray, p, device, amp, n_classes: int
) -> np.ndarray:
    """(n_classes, Hp, Wp) walked scores of the image padded to a multiple of the stride (Hp, Wp)."""
    s = AffinityNet.STRIDE
    h, w = image.shape[:2]
    hp, wp = -(-h // s) * s, -(-w // s) * s
    x = F.pad(to_tensor(image)[None], (0, wp - w, 0, hp - h)).to(device)  # zeros after normalisation
    with torch.no_grad(), amp():
        feat = net(x)
    feat = feat.float()
    gh, gw = feat.shape[2:]
    radius = inference_radius(gh, gw, p.radius)
    aff = dense_affinity(pair_affinity(feat, radius)[0], gh, gw, radius)
    scores = torch.zeros(n_classes, hp, wp)
    scores[0, :h, :w] = p.bg_score  # set, then padded with zeros (infer_aff.py)
    scores[torch.from_numpy(keys), :h, :w] = torch.from_numpy(cams)
    pooled = F.avg_pool2d(scores[None], s, s)[0].reshape(n_classes, -1).to(device)
    walked = random_walk(pooled, aff, p.beta, p.logt).reshape(1, n_classes, gh, gw)
    return F.interpolate(walked, (hp, wp), mode="bilinear", align_corners=False)[0].cpu().numpy()


def crf_image(image: np.ndarray, hp: int, wp: int) -> np.ndarray:
    """The CRF's image as infer_aff.py l.124-133 rebuilds it from the padded network input: the float32
    tensor de-normalised in float32, clipped to [0, 255] and cast to uint8, which truncates (about a
    third of the values come out one level lower); the padding becomes the mean colour."""
    x = np.zeros((hp, wp, 3), np.float32)
    x[: image.shape[0], : image.shape[1]] = to_tensor(image).numpy().transpose(1, 2, 0)
    for c in range(3):  # Python floats, as the release's tuples: the arithmetic stays float32
        x[..., c] = (x[..., c] * float(STD[c]) + float(MEAN[c])) * 255
    return np.clip(x, 0, 255).astype(np.uint8)


def make_work(params, out_dir):
    P = paths()
    device = select_device(params.base.device)
    net = load_trained(create_affinitynet(params.psa.arch), P.affinity, device)
    ds = VOCDataset(P.data, "train_aug", masks=None)
    p, crf = params.psa, params.masks.crf
    amp = amp_context(device, params.base.amp)

    def work(image_id):
        image = ds.load_image(image_id)
        keys, cams = load_cam(Path(P.cams) / f"{image_id}.npz")
        walked = walk_scores(net, image, keys, cams, p, device, amp, ds.space.n)
        label = walked.argmax(0).astype(np.uint8)
        path = out_dir / f"{image_id}.png"
        if p.crf:  # on a CPU process (base.crf_workers) while the GPU walks the next image
            hand_off(save_crf_label, path, crf_image(image, *label.shape), label, crf, ds.space.n, image.shape[:2])
        else:
            save_label_png(path, label[: image.shape[0], : image.shape[1]])

    return work


def save_crf_label(path: Path, image: np.ndarray, label: np.ndarray, crf, n_labels: int, size) -> None:
    """The label CRF over every class of the label space (PSA's 21) on the padded image, cropped back to
    the image's ``size``."""
    save_label_png(path, crf_labels(image, label, crf, n_labels)[: size[0], : size[1]])


def run(params):
    P = paths()
    ids = VOCDataset(P.data, "train_aug", masks=None).ids
    out = Path(P.masks) / "transcam"
    b = params.base  # the network on infer_workers (one per GPU), its CRFs on crf_workers CPU processes
    map_split(STAGE, out, ids, partial(make_work, params), ".png", b.infer_workers, gpu=True, cpu_workers=b.crf_workers)
    res = score_labels(out, P.data, "train")
    write_scores(P.metrics.mask.transcam, {"source": "transcam", "refinement": "psa+crf", **res})
    print(f"transcam (PSA + CRF) mask mIoU on train: {100 * res['miou']:.2f}")


if __name__ == "__main__":
    main(run, STAGE, [Psa, Masks])
