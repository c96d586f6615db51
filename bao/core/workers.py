"""Per-image work over a split in a pool of processes, resumable and atomic.

``map_split`` is the body of every per-image stage: the ids, the stage's resume key
(``bao.pipeline.resume_key``), an output folder built in ``<out>.partial`` and swapped in at the end,
and ``work(image_id)`` run for every id whose output file is not there yet, so an interrupted stage
continues where it stopped and its result is identical to an uninterrupted run. With ``workers > 1``
the ids go out in small chunks to a ``ProcessPoolExecutor`` of processes, each with its own model
copy, and one progress bar counts images across them; a worker that dies (killed, out of memory)
breaks the pool, which fails the stage at once, naming the images not done, and the ``.partial``
keeps what was written for the re-run. Every file depends on its image alone, so the output does not
depend on the number of workers.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
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


class WorkerDied(RuntimeError):
    """A worker process of a per-image stage died (killed, out of memory)."""


_WORKER: dict = {}  # the per-image function and the instrumentation of this worker process


def _start_worker(make_work, threads, indices):
    h = hook()  # a spawned process starts without the parent's instrumentation
    if h:
        h.install()
    index = indices.get()  # 0..workers-1, once each
    if _gpu_count():  # one GPU per worker, round-robin (select_device reads LOCAL_RANK)
        os.environ["LOCAL_RANK"] = str(index % _gpu_count())
    _WORKER["work"] = make_work()  # imports what the work needs: CRF workers never load torch
    _WORKER["hook"] = h
    configure_torch(threads)


def _run_chunk(ids):
    work, h = _WORKER["work"], _WORKER["hook"]
    results = {image_id: work(image_id) for image_id in ids}
    if h:
        h.flush()  # the record so far: a worker lives until the pool shuts down
    return {k: v for k, v in results.items() if v is not None}


def _in_pool(make_work, todo, out_dir, suffix, workers, desc) -> dict:
    ctx = mp.get_context("spawn")
    threads = pinned_threads() or max(1, (os.cpu_count() or 1) // workers)
    indices = ctx.Queue()
    for i in range(workers):
        indices.put(i)
    size = max(1, min(8, len(todo) // (4 * workers)))  # small chunks: a lost worker loses little
    chunks = [todo[i : i + size] for i in range(0, len(todo), size)]
    results, finished = {}, False
    pool = ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_start_worker, initargs=(make_work, threads, indices)
    )
    try:
        pending = {pool.submit(_run_chunk, c): c for c in chunks}
        with tqdm(total=len(todo), desc=desc, leave=False) as bar:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    results.update(f.result())  # a worker's own exception (bad input) propagates as it is
                    bar.update(len(pending.pop(f)))
        finished = True
    except BrokenProcessPool as e:
        left = [i for i in todo if not (out_dir / f"{i}{suffix}").exists()]
        shown = ", ".join(left[:10]) + (f" and {len(left) - 10} more" if len(left) > 10 else "")
        raise WorkerDied(
            f"{desc}: a worker process died (killed, or out of memory?) with {len(left)} images not done: "
            f"{shown}. The {len(todo) - len(left)} done are kept in {out_dir}; run the stage again to resume."
        ) from e
    finally:  # done: the workers exit before the stage goes on; failed: no waiting on the others
        pool.shutdown(wait=finished, cancel_futures=True)
    return results


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
        results = _in_pool(make_work, todo, out_dir, suffix, min(workers, len(todo)), desc)
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
