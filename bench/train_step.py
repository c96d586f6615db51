"""Training step: images/s and peak memory of a TransCAM step and a BAO step (online + target),
fused attention (SDPA) vs explicit attention where no weights are needed, fp32 vs bf16 autocast and
channels_last on CUDA. BAO's extra cost over TransCAM is the target forward (no_grad: no activations
kept) and the explicit attention both networks need for eq. 5.

    python -m bench.train_step [--arch conformer_s] [--crop 512] [--batch 8] [--device auto] [--json out]
"""

import argparse
import contextlib
import json
from pathlib import Path

import torch

from bench.common import peak_memory_mb, print_table, reset_peak, run_variant, timed


def child(arch, crop, batch, mode, device, amp, channels_last, repeats):
    import copy

    from bao.method.bao import BAONet, pcl_loss, pseudo_labels
    from bao.method.transcam import cls_loss
    from bao.models.factory import create_model

    dev = torch.device(
        "cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device)
    )
    torch.manual_seed(0)
    x = torch.randn(batch, 3, crop, crop, device=dev)
    y = (torch.rand(batch, 20, device=dev) < 0.1).float()
    y[:, 0] = 1
    ctx = (
        (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if amp and dev.type == "cuda" else contextlib.nullcontext
    )
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if mode.startswith("transcam"):
        model = create_model(arch, num_classes=21).to(dev, memory_format=fmt).train()
        need = mode == "transcam-explicit"
        params = model.parameters()
    else:
        model = BAONet(create_model(arch, num_classes=21)).to(dev, memory_format=fmt).train()
        target = copy.deepcopy(model).eval().requires_grad_(False)
        params = model.parameters()
    opt = torch.optim.AdamW(params, lr=1e-5)
    x = x.to(memory_format=fmt)

    def step():
        with ctx():
            if mode.startswith("transcam"):
                out = model(x, need_attn=need)
                loss = cls_loss(out, y)
            else:
                with torch.no_grad():
                    t = target(x, y)
                p = pseudo_labels(t["cam_refined"], y)
                out = model(x, y)
                loss = cls_loss(out, y) + pcl_loss(out["am"], p, 0.4)  # eq. 8, as train_bao's step
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    if dev.type == "cuda":
        torch.cuda.synchronize()
    reset_peak(dev)
    dt = timed(step, repeats, dev)
    print(
        json.dumps({"images_per_s": round(batch / dt, 2), "peak_mb": round(peak_memory_mb(dev), 1), "device": dev.type})
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="conformer_s")
    ap.add_argument("--crop", type=int, default=512)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json")
    ap.add_argument("--child", action="store_true")
    ap.add_argument("--mode")
    ap.add_argument("--amp", action="store_true")
    ap.add_argument("--channels-last", action="store_true")
    a = ap.parse_args()
    if a.child:
        return child(a.arch, a.crop, a.batch, a.mode, a.device, a.amp, a.channels_last, a.repeats)
    cuda = torch.cuda.is_available() and a.device != "cpu"
    variants = [("transcam-sdpa", False, False), ("transcam-explicit", False, False), ("bao", False, False)]
    if cuda:
        variants += [
            ("transcam-sdpa", True, False),
            ("bao", True, False),
            ("transcam-sdpa", True, True),
            ("bao", True, True),
        ]
    rows, ref = [], {}
    for mode, amp, cl in variants:
        args = (
            [
                "--arch",
                a.arch,
                "--crop",
                str(a.crop),
                "--batch",
                str(a.batch),
                "--mode",
                mode,
                "--device",
                a.device,
                "--repeats",
                str(a.repeats),
            ]
            + (["--amp"] if amp else [])
            + (["--channels-last"] if cl else [])
        )
        r = run_variant(__file__, args)
        key = (amp, cl)
        if mode == "transcam-sdpa":
            ref[key] = r
        base = ref.get(key, r)
        rows.append(
            {
                "step": mode,
                "precision": "bf16" if amp else "fp32",
                "channels_last": cl,
                "device": r["device"],
                "images/s": r["images_per_s"],
                "peak MB": r["peak_mb"],
                "time vs transcam-sdpa": round(base["images_per_s"] / r["images_per_s"], 2),
            }
        )
    print_table(rows, f"Training step, {a.arch}, batch {a.batch}, crop {a.crop}")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
