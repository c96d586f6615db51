"""Which CPU kernels make results machine-specific, and what pinning them costs.

    python -m bench.cpu_kernels [--repeats 5] [--json out.json]

PyTorch on x86 picks kernels by instruction set at run time: oneDNN convolutions (``ONEDNN_MAX_CPU_ISA``),
MKL matrix products (``MKL_CBWR``) and ATen's vectorised reductions and softmax (``ATEN_CPU_CAPABILITY``).
An AVX-512 machine and an AVX2-only one (an older AMD EPYC, say) therefore compute slightly different
floats, and training amplifies them. Each setting runs in its own process on the same inputs: a dilated
and a plain 3x3 convolution with the weight gradient, a linear layer, a softmax and a sum (the
operations of the pipeline's networks), with an md5 of each result and the time of one forward and
backward pass of ``resnet10t`` (the mini DeepLab's backbone) at batch 8, crop 96.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from bench.common import print_table

PIN_AVX2 = {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
SETTINGS = {  # name -> environment added to the process
    "default": {},
    "oneDNN AVX2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "MKL AVX2": {"MKL_CBWR": "AVX2"},
    "ATen AVX2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "all three AVX2": PIN_AVX2,
}

PROBE = r"""
import hashlib, json, sys, time
import timm, torch
torch.manual_seed(0)
h = lambda t: hashlib.md5(t.detach().contiguous().numpy().tobytes()).hexdigest()[:8]
x = torch.randn(2, 64, 41, 41)
dil, conv, lin = torch.nn.Conv2d(64, 64, 3, padding=2, dilation=2), torch.nn.Conv2d(64, 64, 3, padding=1), torch.nn.Linear(64, 64)
y = dil(x); y.square().sum().backward()
out = {"dilated conv": h(y), "conv weight grad": h(dil.weight.grad), "conv": h(conv(x)),
       "linear": h(lin(x.permute(0, 2, 3, 1))), "softmax": h(torch.softmax(x.flatten(), 0)), "sum": h(x.sum((2, 3)))}
net = timm.create_model("resnet10t", num_classes=21)
batch = torch.randn(8, 3, 96, 96)
times = []
for _ in range(int(sys.argv[1]) + 1):
    t = time.perf_counter(); net(batch).square().mean().backward(); times.append(time.perf_counter() - t)
out["resnet10t step ms"] = round(1000 * min(times[1:]), 1)
out["capability"] = torch.backends.cpu.get_cpu_capability()
print(json.dumps(out))
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json")
    a = ap.parse_args()
    rows, base = [], None
    for name, extra in SETTINGS.items():
        env = {k: v for k, v in os.environ.items() if k not in PIN_AVX2}
        r = subprocess.run(
            [sys.executable, "-c", PROBE, str(a.repeats)],
            env={**env, **extra},
            capture_output=True,
            text=True,
            check=True,
        )
        out = json.loads(r.stdout.strip().splitlines()[-1])
        base = base or out
        row = {"setting": name, "ATen": out.pop("capability")}
        ms = out.pop("resnet10t step ms")
        row.update({k: ("same" if v == base[k] else "differs") if name != "default" else v for k, v in out.items()})
        row["resnet10t fwd+bwd ms"] = ms
        rows.append(row)
    print_table(rows, "results vs the default kernels of this machine (md5 of each output; 'differs': other floats)")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
