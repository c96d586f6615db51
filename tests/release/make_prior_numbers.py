"""Run the released code of Table 1's other rows on fixed inputs and store its outputs in
tests/data/prior_release_numbers.npz, which tests/test_prior_parity.py compares with the project.

    python tests/release/make_prior_numbers.py SECO MCTFORMER TRANSCAM RLOSS

SECO, MCTFORMER, TRANSCAM and RLOSS are checkouts of zwyang6/SeCo, xulianuwa/MCTformer,
liruiwen/TransCAM and meng-tang/rloss at the commits below. The released code is not part of this
project and is not copied into it: this script imports the releases' modules from the checkouts
(``importlib`` by file, so no package ``__init__`` runs) or executes their lines named below; the
one edit is ``.cuda()``, made a no-op. rloss's
bilateral filter (``pytorch/wrapper/bilateralfilter``) is compiled with g++ into a shared library and
called through ctypes in place of its SWIG module, which SeCo's ``model/losses.py`` imports. The
OpenCV numbers need ``cv2`` (``pip install opencv-python-headless``; not a dependency of the project).
CPU, one thread.
"""

from __future__ import annotations

import ctypes
import importlib.util
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import prior_inputs as PI  # noqa: E402
import release_inputs as RI  # noqa: E402
from make_release_numbers import lines  # noqa: E402  (tests/release is the script's own folder)

OUT = HERE.parent / "data" / "prior_release_numbers.npz"
COMMITS = {
    "seco": "202357f1f97b349bcd8d7d54664eca2978619608",
    "mctformer": "0acc27ada87a5582053efb14648442d8644168aa",
    "transcam": "4ffe69382e4cfd87e82d76f9f5f36f703597d56d",
    "rloss": "1caa759e568db2c7209ab73e73ac039ea3d7101c",
}
# (file, first line, last line, text the first line starts with): the releases' lines this script runs
MCT_INFER = ("seg/infer_seg.py", 87, 98, "probs = torch.zeros((N, args.num_classes, H, W))")
SECO_CAM = ("tools/infer_cam.py", 68, 78, "inputs  = F.interpolate(inputs, size=[448, 448]")
SECO_SEG = ("tools/infer_seg_voc.py", 66, 82, "seg_list = []")
MCT_CRITERION = ("seg/train_seg.py", 49, 49, "criterion = torch.nn.CrossEntropyLoss")
MCT_LOSS = ("seg/train_seg.py", 92, 93, "pred = F.interpolate(pred, size=(w, h)")
PSA_LOSS = ("train_aff.py", 101, 109, "bg_count = torch.sum(bg_label) + 1e-5")
PSA_WALK = ("infer_aff.py", 108, 121, "aff_mat = torch.pow(model.forward(img.cuda(), True), args.beta)")
PSA_CRF = ("infer_aff.py", 123, 137, "if args.crf:")

WRAPPER = """#include "bilateralfilter.hpp"
extern "C" void batch(float* im, float* in, float* out, int N, int K, int H, int W, float srgb, float sxy) {
  bilateralfilter_batch(im, N*3*H*W, in, N*K*H*W, out, N*K*H*W, N, K, H, W, srgb, sxy);
}
"""


def load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def rloss_module(root: Path) -> types.ModuleType:
    """rloss's bilateralfilter_batch, built from its C++ sources, with the SWIG module's signature."""
    src = root / "pytorch" / "wrapper" / "bilateralfilter"
    build = Path(tempfile.mkdtemp())
    (build / "wrap.cpp").write_text(WRAPPER)
    lib = build / "librloss.so"
    subprocess.run(
        [
            "g++",
            "-O2",
            "-fopenmp",
            "-fPIC",
            "-shared",
            f"-I{src}",
            "-o",
            str(lib),
            str(build / "wrap.cpp"),
            str(src / "bilateralfilter.cpp"),
            str(src / "permutohedral.cpp"),
        ],
        check=True,
    )
    c = ctypes.CDLL(str(lib))
    ptr = ctypes.POINTER(ctypes.c_float)

    def bilateralfilter_batch(images, ins, outs, n, k, h, w, srgb, sxy):
        images, ins = np.ascontiguousarray(images, np.float32), np.ascontiguousarray(ins, np.float32)
        c.batch(
            images.ctypes.data_as(ptr),
            ins.ctypes.data_as(ptr),
            outs.ctypes.data_as(ptr),
            n,
            k,
            h,
            w,
            ctypes.c_float(srgb),
            ctypes.c_float(sxy),
        )

    mod = types.ModuleType("bilateralfilter")
    mod.bilateralfilter_batch = bilateralfilter_batch
    mod.bilateralfilter = None
    return mod


def seco_numbers(root: Path, rloss: Path, out: dict) -> None:
    sys.modules["bilateralfilter"] = rloss_module(rloss)
    losses = load(root / "model" / "losses.py", "seco_losses")
    cu = load(root / "utils" / "camutils.py", "seco_camutils")
    par_mod = load(root / "model" / "PAR.py", "seco_par")
    imutils_src = (root / "utils" / "imutils.py").read_text()
    imutils = types.ModuleType("seco_imutils")
    sys.modules.setdefault("matplotlib.pyplot", types.ModuleType("matplotlib.pyplot"))
    exec(compile(imutils_src, "seco/utils/imutils.py", "exec"), imutils.__dict__)
    optim = load(root / "utils" / "optimizer.py", "seco_optimizer")

    # the balanced segmentation CE and the patch-token contrast, with gradients
    logits, label = PI.seg_inputs()
    logits.requires_grad_(True)
    loss = losses.get_seg_loss(logits, label, ignore_index=255)
    loss.backward()
    out["seco_seg_loss"], out["seco_seg_grad"] = loss.detach().numpy(), logits.grad.numpy()
    fmap, small = PI.ptc_inputs()
    fmap.requires_grad_(True)
    loss = losses.get_masked_ptc_loss(fmap, cu.label_to_aff_mask(small))
    loss.backward()
    out["seco_ptc_loss"], out["seco_ptc_grad"] = loss.detach().numpy(), fmap.grad.numpy()

    # LIL with the queue, LIG with the prototypes (the revised flags from LIL), with gradients
    q, queue_all, flags, queue_flags, protos = PI.contrast_inputs()
    q.requires_grad_(True)
    lil, revised = losses.LIL_Loss(0.08, 0.08)(q, queue_all, flags.clone(), queue_flags, 5000)
    lig = losses.LIG_Loss(0.1, 0.1)(q, protos, revised)
    (lil + lig).sum().backward()
    out["seco_lil"], out["seco_lig"] = lil.detach().numpy(), lig.detach().numpy()
    out["seco_revised"], out["seco_contrast_grad"] = revised.numpy(), q.grad.numpy()

    # the dense energy through rloss's lattice (DenseEnergyLoss as train_voc.py l.167 builds it)
    for size in PI.ENERGY_SIZES:
        img, seg_logits, roi, plabel = PI.energy_inputs(size)
        seg_logits.requires_grad_(True)
        layer = losses.DenseEnergyLoss(weight=1e-7, sigma_rgb=15, sigma_xy=100, scale_factor=0.5)
        loss = layer(img, seg_logits.softmax(1), roi, plabel.type(torch.uint8).unsqueeze(1))
        loss.sum().backward()
        out[f"seco_energy_{size}"], out[f"seco_energy_grad_{size}"] = loss.detach().numpy(), seg_logits.grad.numpy()

    # cam_to_label, PAR's pseudo label (denormalize_img2's uint8 image), crop tags
    x, cams, cls_label, box = PI.label_inputs()
    valid_cam, label = cu.cam_to_label(
        cams,
        cls_label=cls_label,
        img_box=box,
        ignore_mid=True,
        bkg_thre=0.45,
        high_thre=0.65,
        low_thre=0.25,
        ignore_index=255,
    )
    out["seco_valid_cam"], out["seco_cam_label"] = valid_cam.numpy(), label.numpy()
    par = par_mod.PAR(num_iter=10, dilations=[1, 2, 4, 8, 12, 24])
    refined = cu.refine_cams_with_bkg_v2(
        par,
        imutils.denormalize_img2(x.clone()),
        cams=valid_cam,
        cls_labels=cls_label,
        high_thre=0.65,
        low_thre=0.25,
        ignore_index=255,
        img_box=box,
    )
    out["seco_par_label"] = refined.numpy()
    roi = cu.cam_to_roi_mask(
        cams,
        cls_label=cls_label,
        img_box=box,
        ignore_mid=True,
        bkg_thre=0.45,
        low_thre=0.25,
        high_thre=0.65,
        ignore_index=255,
    )
    crops, tags = cu.assign_csc_tags(images=x, roi_mask=roi, crop_num=4, crop_size=16, threshold=0.2)
    out["seco_roi"], out["seco_crops"], out["seco_tags"] = roi.numpy(), torch.stack(crops).numpy(), tags.numpy()

    # the learning rate of PolyWarmupAdamW over its steps (warm-up 3, max_iter 10, ratio 1e-6, power 0.9)
    w = torch.nn.Parameter(torch.zeros(1))
    opt = optim.PolyWarmupAdamW(
        [{"params": [w], "lr": 6e-5}],
        lr=6e-5,
        weight_decay=0.01,
        betas=(0.9, 0.999),
        warmup_iter=3,
        max_iter=10,
        warmup_ratio=1e-6,
        power=0.9,
    )
    lrs = []
    for _ in range(12):
        w.grad = torch.ones(1)
        opt.step()
        lrs.append(opt.param_groups[0]["lr"])
    out["seco_lrs"] = np.array(lrs)

    # the inference protocols on a fixed stand-in network, at 64 instead of the release's 448:
    # the seed (scale 1) and mask (the seven scales) CAMs of tools/infer_cam.py, the segmentation of
    # tools/infer_seg_voc.py (448 x (1, 1.25, 1.5), logits + flipped logits, max over scales)
    model, x = PI.SeCoStub(), PI.seco_infer_image()
    size = str(PI.SECO_INFER_SIZE)
    common = {"F": F, "torch": torch, "inputs": x, "labels": torch.zeros(1, *x.shape[2:]), "model": model}
    for multi in (False, True):
        env = {
            **common,
            "cls_label": torch.ones(1, 3),
            "multi_scale_cam2": cu.multi_scale_cam2,
            "args": types.SimpleNamespace(refine_with_multiscale=multi),
        }
        exec(compile(lines(root, SECO_CAM, {"448": size}), "<release>", "exec"), env)
        tag = "mask" if multi else "seed"
        out[f"seco_infer_cam_{tag}"], out[f"seco_infer_aux_{tag}"] = env["resized_cam"], env["resized_cam_aux"]
    env = {**common, "args": types.SimpleNamespace(scales=[1.0, 1.25, 1.5])}
    exec(compile(lines(root, SECO_SEG, {"448": size}), "<release>", "exec"), env)
    out["seco_infer_seg"] = env["seg"]


def mctformer_numbers(root: Path, out: dict) -> None:
    sys.path.insert(0, str(root / "seg"))
    import network.resnet38_seg as rs  # the release's module

    net = rs.Net(num_classes=21)
    net.eval()  # its train() override returns None
    state = net.state_dict()
    out["mct_keys"] = np.array(sorted(state))
    net.load_state_dict(RI.fill_state(state, seed=5))
    x = PI.seg_image_tensor()
    with torch.no_grad():
        out["mct_logits"] = net(x).numpy()
    # the test protocol (infer_seg.py l.88-98) at scale 1.0: the logits upsampled once to the image
    env = {
        "torch": torch,
        "F": F,
        "input": x,
        "N": x.shape[0],
        "C": 3,
        "H": x.shape[2],
        "W": x.shape[3],
        "args": types.SimpleNamespace(num_classes=21, scales=[1.0]),
        "model": net,
    }
    with torch.no_grad():
        exec(compile(lines(root, MCT_INFER), "<release>", "exec"), env)
    out["mct_probs"] = env["probs"].numpy()
    # the frozen set after train() (resnet38d.py l.191-212: conv1a and every BatchNorm's affine, BatchNorm in eval)
    net.train()
    out["mct_frozen"] = np.array(sorted(k for k, p in net.named_parameters() if not p.requires_grad))
    out["mct_bn_eval"] = np.array(
        sorted(k for k, m in net.named_modules() if isinstance(m, torch.nn.BatchNorm2d) and not m.training)
    )
    # the loss on stride-8 logits (train_seg.py l.49, l.92-93; 'elementwise_mean' is the old name of 'mean')
    logits, target = PI.mct_loss_inputs()
    logits.requires_grad_(True)
    env = {"torch": torch, "F": F, "pred": logits, "seg_labels": target, "w": target.shape[1], "h": target.shape[2]}
    exec(compile(lines(root, MCT_CRITERION, {"elementwise_mean": "mean"}), "<release>", "exec"), env)
    exec(compile(lines(root, MCT_LOSS), "<release>", "exec"), env)
    env["loss"].backward()
    out["mct_loss"], out["mct_loss_grad"] = env["loss"].detach().numpy(), logits.grad.numpy()
    # PolyOptimizer_cls (seg/tool/torchutils.py l.34-59) as train_seg.py l.66-69 builds it: lr 7e-4, the fc8
    # layers x10, --wt_dec 1e-5 in its third (SGD's momentum) slot, max_step 10
    tu = load(root / "seg" / "tool" / "torchutils.py", "mct_torchutils")
    w1, w2 = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = tu.PolyOptimizer_cls(
        [{"params": [w1], "lr": 7e-4}, {"params": [w2], "lr": 7e-3}], lr=7e-4, weight_decay=1e-5, max_step=10
    )
    lrs = []
    for _ in range(10):
        w1.grad, w2.grad = torch.ones(1), torch.ones(1)
        opt.step()
        lrs.append([g["lr"] for g in opt.param_groups])
    out["mct_lrs"] = np.array(lrs)
    out["mct_sgd"] = np.array([opt.param_groups[0]["momentum"], opt.param_groups[0]["weight_decay"]])
    # OpenCV's nearest grid for the label maps (seg/tool/exutils.py l.33-35)
    import cv2

    for k, (lab, size) in enumerate(PI.label_resizes()):
        out[f"cv2_nearest_{k}"] = cv2.resize(lab, size, interpolation=cv2.INTER_NEAREST)


def transcam_numbers(root: Path, out: dict) -> None:
    sys.modules.setdefault("cv2", types.ModuleType("cv2"))
    imutils = load(root / "tool" / "imutils.py", "transcam_imutils")
    data_src = (root / "voc12" / "data.py").read_text()
    start = data_src.index("class ExtractAffinityLabelInRadius")
    end = data_src.index("class VOC12AffDataset")
    env = {"np": np, "torch": torch}
    exec(compile(data_src[start:end], "voc12/data.py", "exec"), env)
    aff_label = env["ExtractAffinityLabelInRadius"](cropsize=PI.AFF_LABEL_SIZE // 8, radius=5)
    bg, fg, neg = aff_label(PI.affinity_label_map())
    out["psa_bg"], out["psa_fg"], out["psa_neg"] = bg.numpy(), fg.numpy(), neg.numpy()

    # the affinity loss (train_aff.py l.101-109) on these labels and fixed affinities, with its gradient
    aff = PI.affinities(bg.shape).requires_grad_(True)
    env = {"torch": torch, "aff": aff, "bg_label": bg[None], "fg_label": fg[None], "neg_label": neg[None]}
    exec(compile(lines(root, PSA_LOSS), "<release>", "exec"), env)
    env["loss"].backward()
    out["psa_loss"], out["psa_loss_grad"] = env["loss"].detach().numpy(), aff.grad.numpy()

    # the random walk (infer_aff.py l.107-121) on a fixed affinity matrix and CAM
    aff, cam_full_arr, (dh, dw) = PI.walk_inputs()
    img = torch.zeros(1, 3, dh * 8, dw * 8)
    env = {
        "torch": torch,
        "F": F,
        "img": img,
        "dheight": dh,
        "dwidth": dw,
        "cam_full_arr": cam_full_arr.copy(),
        "args": types.SimpleNamespace(beta=14, logt=7),
        "model": types.SimpleNamespace(forward=lambda x, to_dense: aff),
    }
    with torch.no_grad():
        exec(compile(lines(root, PSA_WALK), "<release>", "exec"), env)
    out["psa_walk"] = env["cam_rw"].numpy()

    # the final CRF (l.123-134): the image rebuilt from the padded normalised tensor, crf_inference_label
    image, h, w = PI.psa_crf_inputs()
    norm = imutils.Normalize()(image)
    padded = np.zeros((1, 3, -(-h // 8) * 8, -(-w // 8) * 8), np.float32)
    padded[0, :, :h, :w] = norm.transpose(2, 0, 1)
    saved = {}
    env = {
        "np": np,
        "img": torch.from_numpy(padded),
        "args": types.SimpleNamespace(crf=True, out_rw=""),
        "cam_rw": torch.from_numpy(PI.psa_crf_scores(*padded.shape[2:]))[None],
        "orig_shape": (1, 3, h, w),
        "crf_inference_label": imutils.crf_inference_label,
        "name": "x",
        "os": types.SimpleNamespace(path=types.SimpleNamespace(join=lambda *a: "x")),
        "Image": types.SimpleNamespace(
            fromarray=lambda a: types.SimpleNamespace(save=lambda p: saved.setdefault("m", a))
        ),
    }
    exec(compile(lines(root, PSA_CRF), "<release>", "exec"), env)
    out["psa_crf_image"], out["psa_crf_mask"] = env["img_ori"], saved["m"]


def main(seco: Path, mct: Path, transcam: Path, rloss: Path) -> None:
    torch.set_num_threads(1)
    # the releases' modules call .cuda() on tensors and modules: the one edit, everything stays on the CPU
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.nn.Module.cuda = lambda self, *a, **k: self
    for name, root in (("seco", seco), ("mctformer", mct), ("transcam", transcam), ("rloss", rloss)):
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        if head and head != COMMITS[name]:
            print(f"warning: {root} is at {head}, the numbers were made at {COMMITS[name]}")
    out: dict = {}
    seco_numbers(seco, rloss, out)
    mctformer_numbers(mct, out)
    transcam_numbers(transcam, out)
    out["commits"] = np.array([f"{k} {v}" for k, v in COMMITS.items()])
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT} ({len(out)} arrays)")


if __name__ == "__main__":
    if len(sys.argv) != 5:
        raise SystemExit(__doc__)
    main(*(Path(a).resolve() for a in sys.argv[1:]))
