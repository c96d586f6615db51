"""Run the authors' released code (i2mond/BAO) on the fixed inputs of tests/release_inputs.py and store its
outputs in tests/data/release_numbers.npz, which tests/test_release_parity.py compares with the project.

    python tests/release/make_release_numbers.py /path/to/a/checkout/of/i2mond/BAO

The released code is not part of this project and is not copied into it: this script imports its
network module and executes the lines named below from the checkout given on the command line, in a
namespace that holds the fixed inputs. The only edits to those lines are ``.cuda()`` -> CPU and, for
the EMA schedule, the release's 1322 (its epoch length on VOC train_aug at batch 8) replaced by the
short run's epoch length. Needs torch and timm (the release imports ``timm.models.layers``) and
pydensecrf; cv2, which the release's CRF imports for grey images only, is stubbed.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import release_inputs as RI  # noqa: E402

OUT = HERE.parent / "data" / "release_numbers.npz"
COMMIT = "8756746766f9dd1375c4a4b94c9ccb9552ca04e4"  # the release's commit these numbers come from

# (file, first line, last line, text the first line starts with): the release's lines this script runs
PSEUDO_AND_LOSS = ("train_bao.py", 148, 175, "loss  = F.multilabel_soft_margin_loss")
BALANCED_CE = ("train_bao.py", 20, 47, "def balanced_cross_entropy")
MOMENTUM = ("train_bao.py", 113, 115, "momentum_schedule = pyutils.cosine_scheduler")
UPDATE = ("train_bao.py", 181, 192, "if ep == 0:")
COSINE = ("tool/pyutils.py", 249, 260, "def cosine_scheduler")
SEED = ("infer_bao.py", 63, 90, "bg_score = torch.ones((1))")
SEED_ARGMAX = ("infer_bao.py", 102, 102, "pred = np.argmax(norm_cam, 0)")
CRF = ("tool/imutils.py", 274, 296, "def crf_inference_label(img, labels, t=10, n_labels=91, gt_prob=0.7)")


def lines(root: Path, spec, replace: dict | None = None) -> str:
    path, a, b, head = spec
    text = (root / path).read_text().splitlines()[a - 1 : b]
    if not text[0].strip().startswith(head):
        raise SystemExit(f"{path}:{a}: expected {head!r}, found {text[0].strip()!r} (another commit?)")
    code = textwrap.dedent("\n".join(text)).replace(".cuda()", "")
    for k, v in (replace or {}).items():
        code = code.replace(k, v)
    return code


def run(code: str, ns: dict) -> dict:
    exec(compile(code, "<release>", "exec"), ns)
    return ns


def release_net(root: Path):
    sys.path.insert(0, str(root))
    import network.conformer as rc  # the release's module

    return rc.Net(patch_size=16, num_classes=21, **RI.TINY_CONFORMER)


def project_state() -> dict:
    from bao.method.bao import BAONet
    from bao.models.factory import create_model

    ours = BAONet(create_model("conformer_s", num_classes=21, **RI.TINY_CONFORMER))
    filled = RI.fill_state(ours.state_dict())
    return {RI.to_release_key(k): v for k, v in filled.items()}


def main(root: Path) -> None:
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    if head and head != COMMIT:
        print(f"warning: {root} is at {head}, the numbers were made at {COMMIT}")
    out = {}
    torch.set_grad_enabled(True)

    # 1. Net.forward('bao', x, label) (network/conformer.py l.423-496), eval and train mode
    net = release_net(root)
    state = project_state()
    net.load_state_dict(state, strict=True)  # every key and shape of the project's model, renamed
    x, y = RI.images(2), RI.labels(2)
    for mode in ("eval", "train"):
        net.train(mode == "train")
        with torch.no_grad():
            conv, trans, am, cams, camsfg_ambg = net("bao", x, y)
        for k, v in dict(conv_logits=conv, trans_logits=trans, am=am, cams=cams, camsfg_ambg=camsfg_ambg).items():
            out[f"net_{mode}_{k}"] = v.numpy()

    # 2-3. pseudo-labels and loss (train_bao.py l.148-175, balanced_cross_entropy l.20-47), batch 8
    ns = run(lines(root, BALANCED_CE), {"F": F, "torch": torch, "np": np})
    tcams = RI.refined_cams(8, 4, 4)
    label_cls = RI.labels(8, seed=6)
    rs = np.random.RandomState(7)
    am_s = torch.from_numpy(rs.standard_normal((8, 21, 4, 4)).astype(np.float32))
    conv_s = torch.from_numpy(rs.standard_normal((8, 21)).astype(np.float32))
    trans_s = torch.from_numpy(rs.standard_normal((8, 21)).astype(np.float32))
    out["loss_inputs_am"], out["loss_inputs_conv"], out["loss_inputs_trans"] = (
        am_s.numpy(),
        conv_s.numpy(),
        trans_s.numpy(),
    )
    out["pseudo_cams"], out["pseudo_label_cls"] = tcams.numpy(), label_cls.numpy()
    for ep in (0, 1):
        env = {
            "F": F,
            "torch": torch,
            "np": np,
            "ep": ep,
            "balanced_cross_entropy": ns["balanced_cross_entropy"],
            "args": types.SimpleNamespace(eps=0.4, l_pcl=1.0, w_pcl=0.5),
            "tcams_t": tcams,
            "label_cls": label_cls,
            "logits_conv_s": conv_s,
            "logits_trans_s": trans_s,
            "am_s": am_s,
        }
        run(lines(root, PSEUDO_AND_LOSS), env)
        out["pseudo_labels"] = env["label_cam"].numpy()
        out[f"loss_ep{ep}"] = np.float32(env["loss"].item())
        out[f"loss_pcl_ep{ep}"] = np.float32(env["losspcl"].item())

    # 4. Share in epoch 0, EMA of parameters from epoch 1 with the per-epoch cosine (l.113-115, l.181-192)
    steps = 5
    cos = run(lines(root, COSINE), {"np": np})["cosine_scheduler"]
    env = run(
        lines(root, MOMENTUM, {"1322": str(steps)}),
        {
            "np": np,
            "args": types.SimpleNamespace(momentum=0.9995),
            "pyutils": types.SimpleNamespace(cosine_scheduler=cos),
        },
    )
    schedule = env["momentum_schedule"]
    student, teacher = tiny_pair()
    model_s, model_t = nn.DataParallel(student), nn.DataParallel(teacher)
    for p in model_t.parameters():
        p.requires_grad = False
    update = lines(root, UPDATE)
    taus = []
    meter = types.SimpleNamespace(add=lambda d: None)
    for ep in range(3):
        for iteration in range(steps):
            simulated_step(student, teacher, ep * steps + iteration)
            env = {
                "torch": torch,
                "ep": ep,
                "iteration": iteration,
                "momentum_schedule": schedule,
                "model_s": model_s,
                "model_t": model_t,
                "avg_meter": meter,
                "loss": torch.zeros(()),
                "share_model_weights": lambda m: m.state_dict(),
                "apply_shared_weights": lambda m, sd: m.load_state_dict(sd),
            }
            run(update, env)
            taus.append(float(env["m"]) if "m" in env else np.nan)
        for k, v in teacher.state_dict().items():
            out[f"ema_ep{ep}_{k}"] = v.numpy().copy()
    out["ema_taus"] = np.array(taus)
    out["ema_steps_per_epoch"] = np.int64(steps)

    # 5. the seed from six passes (infer_bao.py l.63-90 and l.102), 20 x 28 image
    passes = RI.seed_passes(20, 28)
    label = RI.labels(1, seed=12)[0]  # three classes
    it = iter(passes)
    env = {
        "torch": torch,
        "np": np,
        "F": F,
        "label": label,
        "label_cls": label[None],
        "orig_img_size": (20, 28),
        "img_list": [torch.zeros(1)] * 6,
        "args": types.SimpleNamespace(method="bao"),
        "model": lambda method, img, lab: (None, None, None, None, torch.from_numpy(next(it))),
    }
    run(lines(root, SEED), env)
    run(lines(root, SEED_ARGMAX), env)
    out["seed_label"] = label.numpy()
    out["seed_norm_cam"], out["seed"] = env["norm_cam"], env["pred"]

    # 6. the mask CRF call crf_inference_label(img, seed) with its default n_labels 91 (imutils.py l.274-296)
    sys.modules.setdefault("cv2", types.ModuleType("cv2"))
    crf = run(lines(root, CRF), {"np": np})["crf_inference_label"]
    img, seed_map = RI.crf_image()
    out["crf_mask_91"] = crf(img, seed_map)
    out["crf_mask_21"] = crf(img, seed_map, n_labels=21)

    out["commit"] = np.array(COMMIT)
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT} ({len(out)} arrays)")


def tiny_pair() -> tuple[nn.Module, nn.Module]:
    """Student and teacher: a linear layer and a BatchNorm (parameters and buffers), equal at the start."""

    def make():
        m = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
        m.load_state_dict(RI.fill_state(m.state_dict(), seed=9))
        return m.train()

    return make(), make()


@torch.no_grad()
def simulated_step(student: nn.Module, teacher: nn.Module, k: int) -> None:
    """One training step as seen by the update: both forward in train mode (BN statistics move), then the
    student's parameters change (a fixed stand-in for the optimiser step)."""
    rs = np.random.RandomState(100 + k)
    teacher(torch.from_numpy(rs.standard_normal((6, 3)).astype(np.float32)))
    student(torch.from_numpy(rs.standard_normal((6, 3)).astype(np.float32)))
    for p in student.parameters():
        p.add_(torch.from_numpy((0.05 * rs.standard_normal(tuple(p.shape))).astype(np.float32)))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]).resolve())
