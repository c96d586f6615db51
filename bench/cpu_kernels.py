"""Which CPU kernels make results machine-specific, and what the portable kernels cost.

    python -m bench.cpu_kernels [--repeats 3] [--settings default,portable] [--json out.json]

PyTorch on x86 picks kernels by what the CPU offers when it starts: oneDNN's convolutions by
instruction set and cache size (``ONEDNN_MAX_CPU_ISA``), MKL's matrix products by instruction set and
vendor (``MKL_CBWR``), ATen's vectorised kernels by instruction set (``ATEN_CPU_CAPABILITY``), NNPACK's
convolutions, and every parallel reduction by the number of threads. Each setting below runs in its own
process on the same inputs, and prints an md5 prefix of every kind of operation the pipeline runs, so
that two machines' tables can be compared line by line. The last rows time what the pipeline spends
its CPU time on: a training step of the mini Conformer (TransCAM, BAO) and of ``resnet10t`` (the mini
DeepLab's backbone).

Settings: ``default`` (what torch picks here), ``AVX2 pins`` (the three instruction-set variables
only), ``portable`` (the pipeline's ``base.cpu_kernels: portable`` with ``base.cpu_threads: 2``,
``bao/core/kernels.py``), and
``portable on SSE4.1`` (the portable kernels with oneDNN, MKL and ATen told that this CPU has at
most SSE4.1: a stand-in for a machine with another instruction set; a portable kernel gives the same
bytes under it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.common import print_table

ISA_VARS = (
    "ONEDNN_MAX_CPU_ISA",
    "MKL_CBWR",
    "ATEN_CPU_CAPABILITY",
    "MKL_ENABLE_INSTRUCTIONS",
    "NPY_DISABLE_CPU_FEATURES",
)
SETTINGS = {  # name -> (kernels mode, environment added to the process)
    "default": ("native", {}),
    "AVX2 pins": ("native", {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}),
    "native on SSE4.1": (
        "native",
        {"ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ATEN_CPU_CAPABILITY": "default"},
    ),
    "portable": ("portable", {}),
    "portable on SSE4.1": ("portable", {"ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}),
}


def _md5(x) -> str:
    import numpy as np
    import torch

    if isinstance(x, torch.Tensor):
        x = x.detach().contiguous().numpy()
    return hashlib.md5(np.ascontiguousarray(x).tobytes()).hexdigest()[:8]


def probe(repeats: int) -> dict:
    """md5 of each kind of operation the pipeline runs, on fixed inputs; then step times."""
    import numpy as np
    import timm
    import torch
    import torch.nn.functional as F

    out = {}
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 64, 41, 41, generator=g, requires_grad=True)
    out["randn"] = _md5(torch.randn(4096, generator=torch.Generator().manual_seed(1)))

    def grads(name, module, inp):
        y = module(inp)
        y.square().sum().backward()
        out[name] = _md5(y)
        out[name + " grad in"] = _md5(inp.grad)
        params = [p.grad for p in getattr(module, "parameters", list)() if p.grad is not None]
        if params:
            out[name + " grad w"] = _md5(params[0])
        inp.grad = None

    torch.manual_seed(0)
    grads("conv", torch.nn.Conv2d(64, 64, 3, padding=1), x)
    grads("dilated conv", torch.nn.Conv2d(64, 64, 3, padding=2, dilation=2), x)
    grads("strided conv", torch.nn.Conv2d(64, 32, 3, stride=2, padding=1), x)
    grads("1x1 conv", torch.nn.Conv2d(64, 32, 1), x)
    grads("grouped conv", torch.nn.Conv2d(64, 64, 3, padding=1, groups=64), x)
    grads("batch norm", torch.nn.BatchNorm2d(64).train(), x)
    tokens = torch.randn(2, 50, 64, generator=g, requires_grad=True)
    grads("linear", torch.nn.Linear(64, 96), tokens)
    grads("layer norm", torch.nn.LayerNorm(64), tokens)
    grads("attention", timm.layers.Attention(64, num_heads=4), tokens)
    grads("gelu", torch.nn.GELU(), tokens)
    grads("bilinear", lambda t: F.interpolate(t, size=(96, 80), mode="bilinear", align_corners=False), x)
    grads("max pool", torch.nn.MaxPool2d(3, 2, 1), x)
    grads("avg pool", torch.nn.AdaptiveAvgPool2d(1), x)
    logits = torch.randn(4, 21, 33, 33, generator=g, requires_grad=True)
    target = torch.randint(0, 21, (4, 33, 33), generator=g)
    grads("cross entropy", lambda t: F.cross_entropy(t, target, ignore_index=255).reshape(1), logits)
    grads(
        "multilabel soft margin",
        lambda t: F.multilabel_soft_margin_loss(t.mean((2, 3)), (target[:, 0, :21] > 10).float()).reshape(1),
        logits,
    )
    out["softmax"] = _md5(torch.softmax(x.detach().flatten(), 0))
    out["sum"] = _md5(x.detach().sum((2, 3)))
    out["full sum"] = _md5(x.detach().sum())

    for name, make in {
        "SGD step": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=5e-4),
        "AdamW step": lambda p: torch.optim.AdamW(p, lr=1e-3, weight_decay=0.05),
    }.items():
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.LayerNorm(64), torch.nn.Linear(64, 21))
        opt = make(net.parameters())
        for _ in range(3):
            net(tokens.detach()).square().mean().backward()
            opt.step()
            opt.zero_grad()
        out[name] = _md5(torch.cat([p.detach().flatten() for p in net.parameters()]))

    import pydensecrf.densecrf as dcrf
    from pydensecrf.utils import unary_from_softmax

    rng = np.random.default_rng(0)
    img = np.ascontiguousarray(rng.integers(0, 256, (48, 56, 3), dtype=np.uint8))
    prob = rng.random((3, 48, 56), dtype=np.float32)
    prob /= prob.sum(0, keepdims=True)
    crf = dcrf.DenseCRF2D(56, 48, 3)
    crf.setUnaryEnergy(unary_from_softmax(prob))
    crf.addPairwiseGaussian(sxy=3, compat=3)
    crf.addPairwiseBilateral(sxy=50, srgb=13, rgbim=img, compat=10)
    out["CRF"] = _md5(np.array(crf.inference(5), dtype=np.float32))
    out["numpy exp/log"] = _md5(np.log1p(np.exp(-rng.random(4096, dtype=np.float32))))

    def step_ms(net, batch):
        times = []
        for _ in range(repeats + 1):
            t = time.perf_counter()
            o = net(batch)
            o = (
                o
                if isinstance(o, torch.Tensor)
                else next(v for v in (o.values() if isinstance(o, dict) else o) if isinstance(v, torch.Tensor))
            )
            o.float().square().mean().backward()
            times.append(time.perf_counter() - t)
        return round(1000 * min(times[1:]), 1)

    from bao.models.factory import create_model

    out["conformer_mini step ms"] = step_ms(create_model("conformer_mini", num_classes=20), torch.randn(8, 3, 96, 96))
    out["resnet10t step ms"] = step_ms(timm.create_model("resnet10t", num_classes=21), torch.randn(8, 3, 96, 96))
    out["ATen"] = torch.backends.cpu.get_cpu_capability()
    out["threads"] = torch.get_num_threads()
    return out


def child(mode: str, repeats: int) -> None:
    from bao.core import kernels

    kernels.pin(mode, 2 if mode == "portable" else "auto")
    import torch  # noqa: F401  (after pin)

    kernels.configure_torch()
    print(json.dumps(probe(repeats)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated names of SETTINGS")
    ap.add_argument("--json")
    ap.add_argument("--child", nargs=2, metavar=("MODE", "REPEATS"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a.child[0], int(a.child[1]))
    results = {}
    for name in a.settings.split(","):
        mode, extra = SETTINGS[name]
        env = {k: v for k, v in os.environ.items() if k not in ISA_VARS}
        r = subprocess.run(
            [sys.executable, "-m", "bench.cpu_kernels", "--child", mode, str(a.repeats)],
            env={**env, **extra},
            capture_output=True,
            text=True,
        )
        if r.returncode:
            raise SystemExit(f"setting {name!r} failed:\n{r.stderr[-3000:]}")
        results[name] = json.loads(r.stdout.strip().splitlines()[-1])
    names = list(results)
    ops = [k for k in results[names[0]] if not k.endswith(" ms") and k not in ("ATen", "threads")]
    rows = [{"operation": op, **{n: results[n][op] for n in names}} for op in ops]
    rows += [{"operation": k, **{n: results[n][k] for n in names}} for k in ("ATen", "threads")]
    times = [k for k in results[names[0]] if k.endswith(" ms")]
    rows += [{"operation": k, **{n: results[n][k] for n in names}} for k in times]
    print_table(rows, "md5 prefix of each result per setting (compare columns across machines), then step times")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
