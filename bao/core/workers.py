"""Per-image work over a split in a pool of processes, resumable and atomic.

``map_split`` is the body of every per-image stage: the ids, the stage's resume key
(``bao.pipeline.resume_key``), an output folder built in ``<out>.partial`` and swapped in at the end,
and ``work(image_id)`` run for every id whose output file is not there yet, so an interrupted stage
continues where it stopped and its result is identical to an uninterrupted run. With ``workers > 1``
the ids are sharded over processes, each with its own model copy; every file depends on its image
alone, so the output does not depend on the number of workers.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
from functools import partial
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from bao.core.io import atomic_dir
from bao.core.kernels import configure_torch, pinned_threads
from bao.core.pipeline import resume_key
from bao.core.stage import hook


def resolve_workers(workers: int | str, gpu: bool = False) -> int:
    """An int is taken as given. ``auto``: for network inference (``gpu``) one process per CUDA device,
    or 1 on a CPU (torch's threads already use every core); for CPU work one process per core."""
    if workers != "auto":
        return int(workers)
    if gpu:
        import torch

        return max(1, torch.cuda.device_count()) if torch.cuda.is_available() else 1
    return os.cpu_count() or 1


def _todo(ids, out_dir: Path, suffix: str):
    return [i for i in ids if not (out_dir / f"{i}{suffix}").exists()]


def _worker(args):
    make_work, ids, threads, index = args
    h = hook()  # a spawned process starts without the parent's instrumentation
    if h:
        h.install()
    if _gpu_count():  # one GPU per worker, round-robin (select_device reads LOCAL_RANK)
        os.environ["LOCAL_RANK"] = str(index % _gpu_count())
    work = make_work()  # imports what the work needs: CRF workers never load torch
    configure_torch(threads)
    results = {image_id: work(image_id) for image_id in ids}
    if h:
        h.flush()
    return {k: v for k, v in results.items() if v is not None}


def _gpu_count() -> int:
    if "torch" not in sys.modules:
        return 0
    torch = sys.modules["torch"]
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def run_split(
    make_work: Callable[[], Callable[[str], object]],
    ids: list[str],
    out_dir: Path,
    suffix: str,
    workers: int = 1,
    desc: str = "",
) -> dict:
    """``make_work()`` builds the per-image function (model loaded once per process). Returns what
    ``work`` returned (when not None) for the ids processed by this call, by id."""
    todo = _todo(ids, out_dir, suffix)
    results = {}
    if not todo:
        return results
    t0 = time.perf_counter()
    if workers <= 1 or len(todo) < 2:
        work = make_work()
        for image_id in tqdm(todo, desc=desc, leave=False):
            r = work(image_id)
            if r is not None:
                results[image_id] = r
    else:
        workers = min(workers, len(todo))
        threads = pinned_threads() or max(1, (os.cpu_count() or 1) // workers)
        shards = [todo[i::workers] for i in range(workers)]
        with mp.get_context("spawn").Pool(workers) as pool:
            for part in pool.imap_unordered(_worker, [(make_work, s, threads, i) for i, s in enumerate(shards)]):
                results.update(part)
    # read by bench/rehearse.py to estimate the paper run's hours
    print(f"[timing] {desc}: images={len(todo)} seconds={time.perf_counter() - t0:.3f}")
    return results


def map_split(
    stage: str,
    out: str | Path,
    ids: list[str],
    make_work: Callable[[Path], Callable[[str], object]],
    suffix: str,
    workers: int | str = 1,
    gpu: bool = False,
) -> dict:
    """Run ``make_work(out_dir)(image_id)`` for every id into ``out`` (atomic, resumable under the
    stage's resume key); returns the per-id results of ``run_split`` (ids done by an interrupted
    run that this one resumed are not in it)."""
    with atomic_dir(out, resume_key=resume_key(stage)) as tmp:
        return run_split(partial(make_work, tmp), ids, tmp, suffix, resolve_workers(workers, gpu), desc=stage)
