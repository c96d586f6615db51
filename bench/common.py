"""Helpers for the benchmarks: each variant runs in a fresh subprocess so its peak memory
(max RSS on CPU, max allocated on CUDA) is its own."""

from __future__ import annotations

import json
import subprocess
import sys


def run_variant(script: str, args: list[str]) -> dict:
    out = subprocess.run([sys.executable, script, "--child", *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def peak_memory_mb(device) -> float:
    """Peak since the last ``reset_peak``: CUDA max allocated, or on CPU the growth of the process's
    max RSS (the kernel keeps only a running maximum, so this counts only what goes above it)."""
    import resource

    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - _BASE["rss"]


_BASE = {"rss": 0.0}


def reset_peak(device) -> None:
    import resource

    import torch

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        _BASE["rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn, repeats: int, device) -> float:
    """Seconds per call of ``fn`` after one warm-up call (CUDA synchronised)."""
    import time

    import torch

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    fn()
    sync()
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync()
    return (time.perf_counter() - t) / repeats


def print_table(rows: list[dict], title: str) -> None:
    cols = list(rows[0])
    width = {c: max(len(c), *(len(f"{r[c]}") for r in rows)) for c in cols}
    print(f"\n{title}")
    print("  ".join(c.ljust(width[c]) for c in cols))
    for r in rows:
        print("  ".join(f"{r[c]}".ljust(width[c]) for c in cols))


def stacked_attention(model, x):
    """TransCAM's eq. 3-4 the way its code computes it (network/conformer.py l.456-475): every block's
    per-head attention kept, stacked to (L, B, H, N, N), mean over heads, sum over blocks, class token
    dropped. Forward hooks recompute each block's per-head softmax(QK^T/sqrt(d)) from its input, so
    the model itself stays block-by-block; returns (model output, A*)."""
    import torch

    from bao.models.conformer import Attention

    kept = []

    def hook(mod, args, _out):
        t = args[0]
        b, n, c = t.shape
        q, k, _ = mod.qkv(t).reshape(b, n, 3, mod.num_heads, c // mod.num_heads).permute(2, 0, 3, 1, 4)
        kept.append(((q * mod.scale) @ k.transpose(-2, -1)).float().softmax(dim=-1))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, Attention)]
    try:
        out = model(x)
    finally:
        for h in handles:
            h.remove()
    return out, torch.stack(kept).mean(dim=2).sum(0)[:, 1:, 1:]
