"""Estimated hours of every stage of the paper run, for a machine where it has not been measured:
GPU stages from their counted FLOPs (torch's FlopCounterMode on meta tensors, at the paper's sizes) at
an assumed sustained bf16 throughput, CRF stages from their seconds per image measured on this CPU on
photographs (the sample photographs matplotlib ships), divided by the cores of the target machine.
`bash bench/gpu.sh` measures instead, on a GPU.

    python -m bench.paper_hours [--experiment coco] [--tflops 250 100] [--cores 16] [--json out]

``--experiment coco``: MS COCO 2014's run (experiment=coco: 81 classes, its image counts, 640 x 480
images in place of VOC's 500 x 375).
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from bench.common import print_table
from bench.rehearse import compose, counts, paper_units


def flops(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops()


def gpu_flops(p: dict) -> dict:
    """FLOPs of one unit (training step or image) of each GPU stage, on meta tensors."""
    from types import SimpleNamespace

    from bao.method.bao import BAONet, pseudo_labels
    from bao.method.transcam import cls_loss
    from bao.models.deeplab import build_deeplab
    from bao.models.factory import create_model
    from bao.models.resnet38 import create_affinitynet
    from bao.models.seco_net import build_seco

    arch, crop, b = p["model"]["arch"], p["bao"]["augment"]["crop_size"], p["bao"]["batch_size"]
    k, (ih, iw) = classes(p), image_size(p)
    with torch.device("meta"):
        conformer = create_model(arch, num_classes=k)
        bao = BAONet(create_model(arch, num_classes=k), head=p["bao"]["head"])
        d = p["deeplab"]
        deeplab = build_deeplab(SimpleNamespace(**d), k)  # resnet38_seg or DeepLab
        affinity = create_affinitynet(p["psa"]["arch"])
        y = torch.zeros(b, k - 1)

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
                    model(x, torch.zeros(2, k - 1)) if label else model(x, need_attn=True)

        return run

    def train_deeplab():
        with torch.device("meta"):
            x = torch.randn(d["batch_size"], 3, d["crop_size"], d["crop_size"])
        deeplab(x).float().mean().backward()

    def evaluate():
        with torch.no_grad(), torch.device("meta"):
            for s in p["evaluate"]["scales"]:  # a VOC (COCO) image and its flip
                deeplab(torch.randn(2 if p["evaluate"]["flip"] else 1, 3, round(ih * s), round(iw * s)))

    def train_affinity():
        with torch.device("meta"):
            x = torch.randn(p["psa"]["batch_size"], 3, p["psa"]["crop_size"], p["psa"]["crop_size"])
        affinity(x).float().mean().backward()  # the pair affinities and their loss: a few FLOPs per pair

    def random_walk():
        # a 500x375 VOC image padded to 504x376: a 63x47 grid (COCO's 640x480: 80x60); the features,
        # then logt squarings of the dense (N, N) transition matrix and the (K, N) scores times it
        ph, pw = -(-ih // 8) * 8, -(-iw // 8) * 8
        with torch.no_grad(), torch.device("meta"):
            affinity(torch.randn(1, 3, ph, pw))
        n = (ph // 8) * (pw // 8)
        return 2 * n**3 * p["psa"]["logt"] + 2 * k * n * n

    s = p["seco"]
    with torch.device("meta"):
        seco = build_seco(SimpleNamespace(**s), k)
    sb, sc, sl, n_l = s["batch_size"], s["crop_size"], s["local_crop_size"], s["ncrops"] - 2

    def seco_cams(scales, n):
        with torch.no_grad(), torch.device("meta"):
            for z in [1.0] + [x for x in scales if x != 1.0]:  # the image and its flip at each scale
                seco.cams(torch.randn(2 * n, 3, int(z * sc), int(z * sc)))

    def train_seco():
        seco_cams(s["cam_scales"], sb)
        with torch.device("meta"):
            x, xl = torch.randn(sb, 3, sc, sc), torch.randn(n_l * sb, 3, sl, sl)
        cls, seg, fmap, cls_aux = seco(x)
        g, q = seco.encoder(torch.cat([x, x]))[0], seco.encoder(xl)[0]  # the two global views, the query crops
        out_q = seco.proj_head(torch.cat([g, q]))
        with torch.no_grad():  # the key crops through the momentum encoder, and the teacher head
            seco.proj_head_t(torch.cat([g, seco.encoder_k(xl)[0]]))
        # the reservoir's enqueue, PAR and the losses: a few FLOPs per element, left out; the dense
        # energy: its exact kernel is counted below (seco_energy), rloss's lattice runs on the CPU (crf_seconds)
        (cls.float().mean() + cls_aux.float().mean() + seg.float().mean() + out_q.float().mean()).backward()

    def seco_seg():
        with torch.no_grad(), torch.device("meta"):
            for z in s["seg_scales"]:  # crop_size square (VOC) or the image's own size (seg_size: image)
                h, w = (sc, sc) if s["seg_size"] == "crop" else (ih, iw)
                seco(torch.randn(2, 3, int(z * h), int(z * w)))

    # the exact dense energy (bao.seco.bilateral_apply) per image: cdist (3 FLOPs x 5 features), exp,
    # and the (N, N) x (N, K) product, N pixels at the energy's scale
    n_px = int(sc * s["energy"]["scale"]) ** 2
    seco_energy = sb * n_px**2 * (3 * 5 + 1 + 2 * k) if s["energy"]["kernel"] == "exact" else 0

    cams = p["cams"]["scales"]
    quick = p["bao"]["epoch_eval_scales"] or cams
    return {
        "train_transcam": flops(train_transcam),
        "train_bao": flops(train_bao(True)),
        "train_bao_amn": flops(train_bao(False)),
        "make_cams": flops(passes(conformer, cams)),
        "make_seeds": flops(passes(bao, cams, True)),
        "eval_quick": flops(passes(bao, quick, True)),
        "eval_full": flops(passes(bao, cams, True)),
        "train_deeplab": flops(train_deeplab),
        "evaluate": flops(evaluate),
        "train_affinity": flops(train_affinity),
        "random_walk": flops(random_walk) + random_walk(),
        "train_seco": flops(train_seco) + seco_energy,
        "seco_seed": flops(lambda: seco_cams(s["seed_scales"], 1)),
        "seco_mask": flops(lambda: seco_cams(s["mask_scales"], 1)),
        "evaluate_seco": flops(seco_seg),
    }


def classes(p: dict) -> int:
    """The label space's size, background included: COCO's 81 or VOC's 21."""
    from bao.core.classes import VOC
    from bao.data.coco import COCO

    return (COCO if p["data"]["source"] == "coco" else VOC).n


def image_size(p: dict) -> tuple[int, int]:
    """A typical image (h, w): COCO's 480 x 640, VOC's 375 x 500."""
    return (480, 640) if p["data"]["source"] == "coco" else (375, 500)


PHOTOS = ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png")  # photographs in matplotlib's sample data


def photographs(long_side: int = 500) -> list[tuple[str, np.ndarray]]:
    """Natural photographs that ship with an installed package (matplotlib's sample data), RGB, resized
    so that the long side is ``long_side`` as most VOC images (500 x 375 or 375 x 500)."""
    import matplotlib
    from PIL import Image

    out = []
    for name in PHOTOS:
        img = Image.open(Path(matplotlib.get_data_path()) / "sample_data" / name).convert("RGB")
        r = long_side / max(img.size)
        img = img.resize((round(img.width * r), round(img.height * r)), Image.BICUBIC)
        out.append((name, np.asarray(img)))
    return out


def seed_on(img: np.ndarray) -> np.ndarray:
    """A three-label seed (background and two classes) that follows the photograph's content: the
    brightest and the darkest third of the centre region, the rest background."""
    h, w = img.shape[:2]
    grey = img.astype(np.float32).mean(2)
    lab = np.zeros((h, w), np.uint8)
    centre = np.zeros((h, w), bool)
    centre[h // 6 : 5 * h // 6, w // 6 : 5 * w // 6] = True
    lo, hi = np.quantile(grey[centre], [1 / 3, 2 / 3])
    lab[centre & (grey >= hi)] = 15
    lab[centre & (grey <= lo)] = 9
    return lab


def crf_seconds(p: dict) -> tuple[dict, list[dict]]:
    """Seconds per image of the label CRF (masks.crf: over the seed's labels, over the K labels of the
    label space, over masks.crf.n_labels) and of the test CRF (evaluate.crf, K labels from
    probabilities) on one core, averaged over the photographs; and a row per photograph."""
    from types import SimpleNamespace

    from bao.method.crf import crf_labels, crf_probs

    torch.set_num_threads(1)
    label_cfg = SimpleNamespace(**p["masks"]["crf"])
    test_cfg = SimpleNamespace(**p["evaluate"]["crf"])
    seco_cfg = SimpleNamespace(**p["seco"]["crf"])
    n_mask = p["masks"]["crf"]["n_labels"]
    k = classes(p)

    def timed(fn, n=3):
        fn()
        t = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t) / n

    rows = []
    for name, img in photographs():
        lab = seed_on(img)
        onehot = (lab[None] == np.arange(k)[:, None, None]).astype(np.float32)
        probs = 0.7 * onehot + 0.3 / k
        row = {
            "photograph": name,
            "size": f"{img.shape[0]}x{img.shape[1]}",
            "label (3)": timed(lambda: crf_labels(img, lab, label_cfg)),
            f"label ({k})": timed(lambda: crf_labels(img, lab, label_cfg, n_labels=k)),
            f"test ({k})": timed(lambda: crf_probs(img, probs, np.arange(k), test_cfg)),
            f"SeCo test ({k})": timed(lambda: crf_probs(img, probs, np.arange(k), seco_cfg)),
        }
        if n_mask:
            row[f"label ({n_mask})"] = timed(lambda: crf_labels(img, lab, label_cfg, n_labels=n_mask))
        if p["seco"]["energy"]["kernel"] == "lattice":  # rloss's lattice on one crop at the energy's scale, K maps
            from bao.method.seco.energy import lattice_apply

            side = int(p["seco"]["crop_size"] * p["seco"]["energy"]["scale"])
            crop = torch.from_numpy(img[:side, :side].transpose(2, 0, 1).astype(np.float32))[None]
            probs_s = torch.rand(1, k, *crop.shape[2:]).softmax(1)
            e = p["seco"]["energy"]
            row["SeCo energy (lattice)"] = timed(
                lambda: lattice_apply(crop, probs_s, e["sigma_rgb"], e["sigma_xy"] * e["scale"])
            )
        rows.append(row)
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k not in ("photograph", "size")}
    crf = {
        "label": mean["label (3)"],
        "labelK": mean[f"label ({k})"],
        "test": mean[f"test ({k})"],
        "seco_test": mean[f"SeCo test ({k})"],
        "seco_energy": mean.get("SeCo energy (lattice)", 0.0),
        "mask": mean[f"label ({n_mask})"] if n_mask else mean["label (3)"],
        "mask_labels": n_mask or "present",
    }
    return crf, [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()} for r in rows]


# what would cut each family of stages, beside what the project already does (bf16, merged label CRFs,
# CRFs on every core beside the GPU, SeCo's lattice over the batch's crops side by side)
CUTS = {
    "train_deeplab": "more GPUs: base.gpus splits each step's batch (the two rows train one after the "
    "other, as DVC runs stages); deeplab.arch: deeplabv2 trains fewer FLOPs (a documented departure)",
    "train_seco": "more GPUs (base.gpus; the lattice then runs on each process's share of the cores); "
    "seco.energy.kernel: exact runs the energy on the GPU in seconds (about twice rloss's value: a departure)",
    "train_bao": "more GPUs (base.gpus); bao.epoch_eval_every > 1 scores Figure 4 at fewer epochs "
    "(the curve, not the result, changes)",
    "train_affinity": "more GPUs (base.gpus)",
    "train_transcam": "transcam.released: TransCAM's published classifier instead of training it",
    # on COCO the test CRFs over 81 labels lead: a dense CRF's cost grows with its labels
    "evaluate": "more cores for the test CRFs (base.crf_workers: one CRF per core, beside the GPU)",
    "evaluate_seco": "more cores for the test CRFs (base.crf_workers: one CRF per core, beside the GPU)",
}


def next_costs(rows: list[dict], key: str, n: int = 3) -> list[dict]:
    """The ``n`` stage families with the most hours (``key``), each with what would cut it."""
    families: dict[str, float] = {}
    for r in rows:
        name = r["stage"].split("@")[0].split(" ")[0]
        name = "train_bao" if name.startswith("train_bao") else name
        families[name] = families.get(name, 0.0) + r[key]
    top = sorted(families.items(), key=lambda kv: -kv[1])[:n]
    return [{"stages": f, "hours": round(h, 2), "what would cut it": CUTS.get(f, "-")} for f, h in top]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--tflops",
        type=float,
        nargs="+",
        default=[100.0, 30.0],
        help="assumed sustained bf16 TFLOP/s (H100 SXM dense peak: 989)",
    )
    ap.add_argument("--cores", type=int, default=16)
    ap.add_argument("--experiment", default="paper", choices=["paper", "coco"], help="conf/experiment/<name>.yaml")
    ap.add_argument("--json")
    a = ap.parse_args()
    p = compose(None, a.experiment)
    PAPER = counts(p)  # noqa: N806 (the run's image counts: VOC's or COCO's)
    k = classes(p)
    f = gpu_flops(p)
    crf, photo_rows = crf_seconds(p)
    print_table(
        photo_rows,
        f"Dense CRF, seconds per image on one core here (masks.crf and evaluate.crf of the "
        f"paper setting: {p['masks']['crf']['iterations']} and {p['evaluate']['crf']['iterations']} "
        f"iterations)",
    )
    n_aug, n_train = PAPER["train_aug"], PAPER["train"]
    epochs = p["bao"]["epochs"]
    eval_flops = n_train * (epochs * f["eval_quick"] + f["eval_full"])  # Figure 4's scoring per variant
    rows = []

    def gpu(stage, total_flops, note):
        rows.append(
            {
                "stage": stage,
                "kind": "GPU",
                "work": note,
                "PFLOP": round(total_flops / 1e15, 1),
                **{f"h @ {t:g} TFLOP/s": round(total_flops / (t * 1e12) / 3600, 2) for t in a.tflops},
            }
        )

    def cpu(stage, seconds, note):
        h = round(seconds / a.cores / 3600, 2)
        rows.append(
            {
                "stage": stage,
                "kind": f"CPU x{a.cores}",
                "work": note,
                "PFLOP": "-",
                **{f"h @ {t:g} TFLOP/s": h for t in a.tflops},
            }
        )

    steps = paper_units("train_transcam", p)[1]
    gpu("train_transcam", steps * f["train_transcam"], f"{steps} steps")
    cpu("make_amn_labels", 2 * n_aug * crf["label"], f"{2 * n_aug} label CRFs")
    bao_steps = paper_units("train_bao_share", p)[1]
    gpu("make_cams", n_aug * f["make_cams"], f"{n_aug} images x 6 passes")
    gpu("train_bao_amn", bao_steps * f["train_bao_amn"] + eval_flops, f"{bao_steps} steps + Figure 4 scoring")
    for v in ("share", "ema", "share_ema"):
        gpu(f"train_bao_{v}", bao_steps * f["train_bao"] + eval_flops, f"{bao_steps} steps + Figure 4 scoring")
    gpu("make_seeds", n_aug * f["make_seeds"], f"{n_aug} images x 6 passes")
    m = crf["mask_labels"]
    cpu("make_masks_bao", n_aug * crf["mask"], f"{n_aug} label CRFs ({m} labels)")
    cpu("make_masks_transcam_crf", n_aug * crf["mask"], f"{n_aug} label CRFs ({m} labels)")
    cpu("make_aff_labels", 2 * n_aug * crf["labelK"], f"{2 * n_aug} label CRFs ({k} labels)")
    aff_steps = paper_units("train_affinity", p)[1]
    gpu("train_affinity", aff_steps * f["train_affinity"], f"{aff_steps} steps")
    gpu("random_walk", n_aug * f["random_walk"], f"{n_aug} images: features + T^{2 ** p['psa']['logt']}")
    cpu("random_walk (CRF)", n_aug * crf["labelK"], f"{n_aug} label CRFs ({k} labels)")
    for src in ("bao", "transcam"):
        gpu(
            f"train_deeplab@{src}",
            p["deeplab"]["iterations"] * f["train_deeplab"],
            f"{p['deeplab']['iterations']} steps",
        )
    for stage, n in (("evaluate", PAPER["val"] + PAPER["test"]), ("evaluate_transcam", PAPER["val"])):
        passes = len(p["evaluate"]["scales"]) * (2 if p["evaluate"]["flip"] else 1)
        gpu(stage, n * f["evaluate"], f"{n} images x {passes} passes")
        cpu(f"{stage} (CRF)", n * crf["test"], f"{n} test CRFs")
    seco_steps = paper_units("train_seco", p)[1]
    n_passes = -(-seco_steps // (n_aug // p["seco"]["batch_size"]))  # the seed scored after each pass
    gpu(
        "train_seco",
        seco_steps * f["train_seco"] + n_passes * n_train * f["seco_seed"],
        f"{seco_steps} steps + the seed per pass",
    )
    if crf["seco_energy"]:  # rloss's lattice: on the CPU inside the training step, the batch's crops side by side
        b = p["seco"]["batch_size"]
        side = min(b, a.cores)  # bao.method.seco.energy.lattice_processes on the target machine, one GPU
        h = round(seco_steps * b * crf["seco_energy"] / side / 3600, 2)
        rows.append(
            {
                "stage": "train_seco (energy)",
                "kind": f"CPU x{side}",
                "work": f"{seco_steps} steps x {b} crops, rloss's lattice, {side} at a time",
                "PFLOP": "-",
                **{f"h @ {t:g} TFLOP/s": h for t in a.tflops},
            }
        )
    gpu(
        "make_seco_labels",
        n_train * (f["seco_seed"] + f["seco_mask"]),
        f"{n_train} images x {2 * (len(p['seco']['seed_scales']) + len(p['seco']['mask_scales']))} passes",
    )
    cpu("make_seco_labels (CRF)", n_train * crf["labelK"], f"{n_train} label CRFs ({k} labels)")
    gpu(
        "evaluate_seco",
        PAPER["val"] * f["evaluate_seco"],
        f"{PAPER['val']} images x {2 * len(p['seco']['seg_scales'])} passes",
    )
    cpu("evaluate_seco (CRF)", PAPER["val"] * crf["seco_test"], f"{PAPER['val']} test CRFs")
    total = {k: round(sum(r[k] for r in rows), 2) for k in rows[0] if k.startswith("h @")}
    costs = next_costs(rows, next(iter(total)))
    rows.append({"stage": "total", "kind": "", "work": "", "PFLOP": "", **total})
    print_table(
        rows,
        f"{a.experiment} run, estimated hours (GPU: counted FLOPs at an assumed sustained throughput; "
        f"CRF on photographs: {crf['label']:.2f} s per label CRF over the seed's labels, "
        f"{crf['labelK']:.2f} over {k}, {crf['mask']:.2f} over {crf['mask_labels']} (masks), "
        f"{crf['test']:.2f} s per test CRF on one core here, "
        f"/ {a.cores} cores)",
    )
    print_table(costs, f"The largest costs ({next(iter(total))}) and what would cut them")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
