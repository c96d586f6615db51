"""``base.cpu_kernels``: the portable kernels give the same bytes whatever instruction set oneDNN, MKL and
ATen are told the CPU has (a stand-in for another machine), where the native ones change; and they must
be chosen before torch loads."""

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT

from bao.core import kernels
from bao.core.errors import ParamsError

# a CPU with SSE4.1 at most, as oneDNN, MKL and ATen see it
SSE41 = {"ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ATEN_CPU_CAPABILITY": "default"}
PROBE = """
import hashlib, json, sys
from bao.core import kernels
kernels.pin(sys.argv[1], 2)
import torch
kernels.configure_torch()
torch.manual_seed(0)
x = torch.randn(2, 16, 23, 23, requires_grad=True)
conv, lin = torch.nn.Conv2d(16, 16, 3, padding=2, dilation=2), torch.nn.Linear(16, 16)
y = torch.softmax(lin(conv(x).permute(0, 2, 3, 1)), -1)
y.square().sum().backward()
h = lambda t: hashlib.md5(t.detach().contiguous().numpy().tobytes()).hexdigest()
print(json.dumps({"out": h(y), "grad": h(conv.weight.grad), "threads": torch.get_num_threads(),
                  "mkldnn": torch.backends.mkldnn.enabled, "aten": torch.backends.cpu.get_cpu_capability()}))
"""


def probe(mode: str, **env) -> dict:
    base = {k: v for k, v in os.environ.items() if k not in (*SSE41, *kernels.PORTABLE_ENV)}
    r = subprocess.run(
        [sys.executable, "-c", PROBE, mode], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def has_avx2() -> bool:
    import torch

    return torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")


@pytest.mark.skipif(not has_avx2(), reason="the portable kernels need AVX2")
def test_portable_kernels_do_not_depend_on_the_instruction_set():
    portable, portable_sse = probe("portable"), probe("portable", **SSE41)
    assert portable == portable_sse
    assert portable["threads"] == 2 and not portable["mkldnn"] and portable["aten"] == "AVX2"
    native, native_sse = probe("native"), probe("native", **SSE41)
    assert native["out"] != native_sse["out"]  # the stand-in does change the native kernels' floats
    assert portable["out"] != native["out"]


def test_portable_must_precede_torch_and_values_are_checked():
    r = subprocess.run(
        [sys.executable, "-c", "import torch\nfrom bao.core import kernels\nkernels.pin('portable', 2)"],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "BAO_CPU_KERNELS"},
        capture_output=True,
        text=True,
    )
    assert r.returncode != 0 and "before torch is imported" in r.stderr
    with pytest.raises(ParamsError, match="base.cpu_kernels"):
        kernels.pin("fast", 2)
