"""Estimated hours of every stage of the paper run, for a machine where it has not been measured:
GPU stages from their counted FLOPs (torch's FlopCounterMode on meta tensors, at the paper's sizes) at
an assumed sustained bf16 throughput, CRF stages from their seconds per image measured on this CPU,
divided by the cores of the target machine. `bash bench/gpu.sh` measures instead, on a GPU.

    python bench/paper_hours.py [--tflops 250 100] [--cores 16] [--json out]
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import print_table  # noqa: E402
from rehearse import PAPER, compose, paper_units  # noqa: E402


def flops(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops()


def gpu_flops(p: dict) -> dict:
    """FLOPs of one unit (training step or image) of each GPU stage, on meta tensors."""
    from bao.method import BAONet, cls_loss, pseudo_labels
    from bao.models import create_model
    from bao.models.deeplab import DeepLab
    from bao.models.resnet38 import create_affinitynet

    arch, crop, b = p["model"]["arch"], p["bao"]["augment"]["crop_size"], p["bao"]["batch_size"]
    with torch.device("meta"):
        conformer = create_model(arch, num_classes=21)
        bao = BAONet(create_model(arch, num_classes=21))
        d = p["deeplab"]
        deeplab = DeepLab(d["arch"], d["backbone"], 21, d["output_stride"])
        affinity = create_affinitynet(p["psa"]["arch"])
        y = torch.zeros(b, 20)

    def train_transcam():
        with torch.device("meta"):
            x = torch.randn(p["transcam"]["batch_size"], 3, crop, crop)
        cls_loss(conformer(x), y[: x.shape[0]]).backward()

    def train_bao(target: bool):
        def step():
            with torch.device("meta"):
                x = torch.randn(b, 3, crop, crop)
            with torch.no_grad():
                t = bao(x, y) if target else None
                if target:
                    pseudo_labels(t["cam_refined"], y)
            out = bao(x, y)
            # L_pcl's own FLOPs are a few per pixel (and data-dependent, which meta tensors cannot run):
            # a mean over the AM stands in for it, the backward through the network is the same
            (cls_loss(out, y) + out["am"].float().mean()).backward()
        return step

    def passes(model, scales, label=False):
        def run():
            with torch.no_grad(), torch.device("meta"):
                for s in scales:
                    x = torch.randn(2, 3, s, s)  # the image and its flip
                    model(x, torch.zeros(2, 20)) if label else model(x, need_attn=True)
        return run

    def train_deeplab():
        with torch.device("meta"):
            x = torch.randn(d["batch_size"], 3, d["crop_size"], d["crop_size"])
        deeplab(x).float().mean().backward()

    def evaluate():
        with torch.no_grad(), torch.device("meta"):
            for s in p["evaluate"]["scales"]:  # a 500x375 VOC image and its flip
                deeplab(torch.randn(2, 3, round(375 * s), round(500 * s)))

    def train_affinity():
        with torch.device("meta"):
            x = torch.randn(p["psa"]["batch_size"], 3, p["psa"]["crop_size"], p["psa"]["crop_size"])
        affinity(x).float().mean().backward()  # the pair affinities and their loss: a few FLOPs per pair

    def random_walk():
        # a 500x375 VOC image padded to 504x376: a 63x47 grid; the features, then logt squarings of
        # the dense (N, N) transition matrix and the (21, N) scores times it
        with torch.no_grad(), torch.device("meta"):
            affinity(torch.randn(1, 3, 376, 504))
        n = 63 * 47
        return 2 * n ** 3 * p["psa"]["logt"] + 2 * 21 * n * n

    cams = p["cams"]["scales"]
    quick = p["bao"]["epoch_eval_scales"] or cams
    return {"train_transcam": flops(train_transcam), "train_bao": flops(train_bao(True)),
            "train_bao_amn": flops(train_bao(False)), "make_cams": flops(passes(conformer, cams)),
            "make_seeds": flops(passes(bao, cams, True)), "eval_quick": flops(passes(bao, quick, True)),
            "eval_full": flops(passes(bao, cams, True)), "train_deeplab": flops(train_deeplab),
            "evaluate": flops(evaluate), "train_affinity": flops(train_affinity),
            "random_walk": flops(random_walk) + random_walk()}


def crf_seconds(p: dict) -> dict:
    """Seconds per image of the label CRF (masks.crf) and the test CRF (evaluate.crf) on one core, on a
    375x500 image with three labels."""
    from types import SimpleNamespace

    from bao.crf import crf_labels, crf_probs

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (375, 500, 3), dtype=np.uint8)
    lab = np.zeros((375, 500), np.uint8)
    lab[100:300, 100:250], lab[50:200, 300:450] = 3, 12
    label_cfg = SimpleNamespace(**p["masks"]["crf"])
    test_cfg = SimpleNamespace(**p["evaluate"]["crf"])
    probs = rng.random((21, 375, 500)).astype(np.float32)

    def timed(fn, n=3):
        fn()
        t = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t) / n

    return {"label": timed(lambda: crf_labels(img, lab, label_cfg)),
            "label21": timed(lambda: crf_labels(img, lab, label_cfg, n_labels=21)),  # PSA's, over all labels
            "test": timed(lambda: crf_probs(img, probs, np.arange(21), test_cfg))}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tflops", type=float, nargs="+", default=[100.0, 30.0],
                    help="assumed sustained bf16 TFLOP/s (H100 SXM dense peak: 989)")
    ap.add_argument("--cores", type=int, default=16)
    ap.add_argument("--json")
    a = ap.parse_args()
    p = compose(None)
    f = gpu_flops(p)
    crf = crf_seconds(p)
    n_aug, n_train = PAPER["train_aug"], PAPER["train"]
    epochs = p["bao"]["epochs"]
    eval_flops = n_train * (epochs * f["eval_quick"] + f["eval_full"])  # Figure 4's scoring per variant
    rows = []

    def gpu(stage, total_flops, note):
        rows.append({"stage": stage, "kind": "GPU", "work": note, "PFLOP": round(total_flops / 1e15, 1),
                     **{f"h @ {t:g} TFLOP/s": round(total_flops / (t * 1e12) / 3600, 2) for t in a.tflops}})

    def cpu(stage, seconds, note):
        h = round(seconds / a.cores / 3600, 2)
        rows.append({"stage": stage, "kind": f"CPU x{a.cores}", "work": note, "PFLOP": "-",
                     **{f"h @ {t:g} TFLOP/s": h for t in a.tflops}})

    steps = paper_units("train_transcam", p)[1]
    gpu("train_transcam", steps * f["train_transcam"], f"{steps} steps")
    cpu("make_amn_labels", 2 * n_aug * crf["label"], f"{2 * n_aug} label CRFs")
    bao_steps = paper_units("train_bao_share", p)[1]
    gpu("make_cams", n_aug * f["make_cams"], f"{n_aug} images x 6 passes")
    gpu("train_bao_amn", bao_steps * f["train_bao_amn"] + eval_flops, f"{bao_steps} steps + Figure 4 scoring")
    for v in ("share", "ema", "share_ema"):
        gpu(f"train_bao_{v}", bao_steps * f["train_bao"] + eval_flops, f"{bao_steps} steps + Figure 4 scoring")
    gpu("make_seeds", n_aug * f["make_seeds"], f"{n_aug} images x 6 passes")
    cpu("make_masks_bao", n_aug * crf["label"], f"{n_aug} label CRFs")
    cpu("make_masks_transcam_crf", n_aug * crf["label"], f"{n_aug} label CRFs")
    cpu("make_aff_labels", 2 * n_aug * crf["label21"], f"{2 * n_aug} label CRFs (21 labels)")
    aff_steps = paper_units("train_affinity", p)[1]
    gpu("train_affinity", aff_steps * f["train_affinity"], f"{aff_steps} steps")
    gpu("random_walk", n_aug * f["random_walk"], f"{n_aug} images: features + T^128 (N = 2961)")
    cpu("random_walk (CRF)", n_aug * crf["label21"], f"{n_aug} label CRFs (21 labels)")
    for src in ("bao", "transcam"):
        gpu(f"train_deeplab@{src}", p["deeplab"]["iterations"] * f["train_deeplab"], f"{p['deeplab']['iterations']} steps")
    for stage, n in (("evaluate", PAPER["val"] + PAPER["test"]), ("evaluate_transcam", PAPER["val"])):
        gpu(stage, n * f["evaluate"], f"{n} images x {2 * len(p['evaluate']['scales'])} passes")
        cpu(f"{stage} (CRF)", n * crf["test"], f"{n} test CRFs")
    total = {k: round(sum(r[k] for r in rows), 2) for k in rows[0] if k.startswith("h @")}
    rows.append({"stage": "total", "kind": "", "work": "", "PFLOP": "", **total})
    print_table(rows, f"Paper run, estimated hours (GPU: counted FLOPs at an assumed sustained throughput; "
                      f"CRF: {crf['label']:.2f} s per label CRF ({crf['label21']:.2f} over 21 labels), {crf['test']:.2f} s "
                      f"per test CRF on one core here, "
                      f"/ {a.cores} cores)")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
