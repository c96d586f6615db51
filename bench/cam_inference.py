"""CAM inference: images/s and peak memory per scale, block-by-block attention accumulation vs
stacking every block's attention (TransCAM's way), and the flipped pair batched vs one at a time.

    python -m bench.cam_inference [--arch conformer_s] [--scales 256 512 768] [--device auto] [--json out]
"""

import argparse
import json
from pathlib import Path

import torch

from bench.common import peak_memory_mb, print_table, reset_peak, run_variant, stacked_attention, timed


def child(arch, scale, mode, device, repeats):
    from bao.method.transcam import refine
    from bao.models.factory import create_model

    dev = torch.device(
        "cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device)
    )
    model = create_model(arch, num_classes=21).to(dev).eval()
    x = torch.randn(2, 3, scale, scale, device=dev)  # an image and its flip
    reset_peak(dev)

    def once():
        with torch.no_grad():
            if mode == "one-at-a-time":
                for i in range(2):
                    o = model(x[i : i + 1], need_attn=True)
                    refine(o["cam"], o["attn"])
            elif mode == "stacked":
                o, attn = stacked_attention(model, x)
                refine(o["cam"], attn)
            else:
                o = model(x, need_attn=True)
                refine(o["cam"], o["attn"])

    dt = timed(once, repeats, dev)
    print(json.dumps({"images_per_s": round(1 / dt, 3), "peak_mb": round(peak_memory_mb(dev), 1), "device": dev.type}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="conformer_s")
    ap.add_argument("--scales", type=int, nargs="+", default=[256, 512, 768])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json")
    ap.add_argument("--child", action="store_true")
    ap.add_argument("--scale", type=int)
    ap.add_argument("--mode")
    a = ap.parse_args()
    if a.child:
        return child(a.arch, a.scale, a.mode, a.device, a.repeats)
    rows = []
    for s in a.scales:
        base = None
        for mode in ("block-by-block", "stacked", "one-at-a-time"):
            r = run_variant(
                __file__,
                [
                    "--arch",
                    a.arch,
                    "--scale",
                    str(s),
                    "--mode",
                    mode,
                    "--device",
                    a.device,
                    "--repeats",
                    str(a.repeats),
                ],
            )
            base = base or r
            rows.append(
                {
                    "scale": s,
                    "attention": mode,
                    "device": r["device"],
                    "images/s (pair)": r["images_per_s"],
                    "peak MB (inference)": r["peak_mb"],
                    "peak vs block-by-block": round(r["peak_mb"] / base["peak_mb"], 2),
                }
            )
    print_table(rows, f"CAM inference, {a.arch}, one image + its flip per pass")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
