"""The CPU kernels and threads a stage computes with: ``base.cpu_kernels`` and ``base.cpu_threads``.

torch on x86 picks kernels by what the CPU offers: oneDNN's convolutions by instruction set and cache
sizes, MKL's matrix products by instruction set and vendor, ATen's vectorised kernels by instruction
set, NNPACK's convolutions; numpy its loops; and a parallel reduction's order follows the number of
threads. Training turns those last-bit differences into points of mIoU, so ``native`` results are
exact per machine only. ``portable`` takes, on every x86-64 CPU with AVX2 (Intel or AMD, with AVX-512
or without), the same code path:

- convolutions through ATen (im2col + MKL's matrix product) instead of oneDNN and NNPACK;
- MKL's ``COMPATIBLE`` branch, the one its conditional-reproducibility mode documents as giving the
  same results on Intel and compatible processors (``STRICT``: whatever the alignment);
- ATen's AVX2 kernels, numpy without its AVX-512 loops;
- a fixed number of threads (``base.cpu_threads``), which every result depends on.

Bench and table: ``python -m bench.cpu_kernels``; docs/benchmarks.md. The instruction-set variables are
read once, at a library's first use, so ``pin`` runs before torch is imported: ``stages/__init__.py``
calls ``pin_from_params`` before a stage module's imports, and ``bao.core.stage.main`` checks it.
"""

from __future__ import annotations

import os
import sys

from bao.core.errors import ParamsError

CPU_KERNELS = ("portable", "native")
PORTABLE_ENV = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "COMPATIBLE,STRICT",
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # what still reaches oneDNN with it disabled for convolutions
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
}
_KERNELS, _THREADS = "BAO_CPU_KERNELS", "BAO_CPU_THREADS"  # inherited by worker processes


def pin(kernels: str, threads: int | str) -> None:
    """Choose this process's (and its children's) kernels; ``portable`` must precede torch's import."""
    if kernels not in CPU_KERNELS:
        raise ParamsError(f"base.cpu_kernels: must be one of {list(CPU_KERNELS)}, got {kernels!r}")
    pinned = os.environ.get(_KERNELS) == kernels and all(os.environ.get(k) == v for k, v in PORTABLE_ENV.items())
    if kernels == "portable" and "torch" in sys.modules and not pinned:
        raise ParamsError(
            "base.cpu_kernels: portable must be chosen before torch is imported (run stages as python -m stages.<name>)"
        )
    os.environ[_KERNELS], os.environ[_THREADS] = kernels, str(threads)
    if kernels == "portable":
        os.environ.update(PORTABLE_ENV)


def pin_from_params(path: str = "params.yaml") -> None:
    """``pin`` from params.yaml's ``base`` section, when it is readable and valid; otherwise nothing:
    the stage's params check then names the problem."""
    import yaml

    try:
        with open(path) as f:
            base = (yaml.safe_load(f) or {}).get("base") or {}
        pin(base["cpu_kernels"], base["cpu_threads"])
    except (OSError, yaml.YAMLError, AttributeError, KeyError, TypeError, ValueError):
        pass


def pinned_threads() -> int | None:
    """``base.cpu_threads`` as pinned, or None for ``auto`` (torch's default: one per core)."""
    value = os.environ.get(_THREADS, "auto")
    return None if value == "auto" else int(value)


def configure_torch(threads: int | None = None) -> None:
    """After torch is imported (a stage's start, each worker process): the pinned kernels' switches
    and thread count (``threads`` for a worker when no count is pinned)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return
    if os.environ.get(_KERNELS) == "portable":
        torch.backends.mkldnn.enabled = False
        torch.backends.nnpack.set_flags(False)
        capability = torch.backends.cpu.get_cpu_capability()
        if capability != "AVX2":
            raise ParamsError(
                f"base.cpu_kernels: portable runs ATen's AVX2 kernels, but this process runs {capability} "
                "(a CPU without AVX2, or torch imported before the kernels were pinned); set base.cpu_kernels: native"
            )
    threads = pinned_threads() or threads
    if threads:
        torch.set_num_threads(threads)
