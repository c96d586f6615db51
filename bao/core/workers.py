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

A stage whose network runs on the GPU hands each image's dense CRF to CPU processes (``hand_off``,
``base.crf_workers`` of them, shared among the GPU workers) and goes on with the next image, so the
CRFs run side by side on every core while the GPU works, instead of one after the other in its loop.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import multiprocessing.util
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


_WORKER: dict = {}  # the per-image function, the instrumentation and the CPU hand-off of this process


class HandOff:
    """CPU work handed off by a loop that feeds a GPU: ``submit(fn, *args, then=f)`` runs ``fn(*args)``
    in ``workers`` processes while the loop goes on, and ``then(result)`` here when it is done; at most
    two per process wait, beyond that the loop waits (few images in flight, bounded memory). With
    ``workers`` <= 1 it runs at once, in this process. ``fn`` must be importable (a module's function)."""

    def __init__(self, workers: int):
        self.workers = workers
        self.pool = None
        if workers > 1:
            self.pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_start_cpu)
        self.pending: dict = {}

    def submit(self, fn, *args, then=None) -> None:
        if self.pool is None:
            r = fn(*args)
            if then is not None:
                then(r)
            return
        while len(self.pending) >= 2 * self.workers:
            self._collect(FIRST_COMPLETED)
        self.pending[self.pool.submit(_run_handed, fn, *args)] = then

    def _collect(self, when) -> None:
        done, _ = wait(self.pending, return_when=when)
        for f in done:
            then = self.pending.pop(f)
            r = f.result()  # a dead process: BrokenProcessPool; fn's own exception as it is
            if then is not None:
                then(r)

    def drain(self) -> None:
        """Wait for everything handed off so far."""
        while self.pending:
            self._collect(FIRST_COMPLETED)

    def close(self, finished: bool = True) -> None:
        if finished:
            self.drain()
        if self.pool is not None:
            self.pool.shutdown(wait=finished, cancel_futures=True)


def _start_cpu():
    h = hook()
    if h:
        h.install()
    _WORKER["hook"] = h


def _run_handed(fn, *args):
    r = fn(*args)
    h = _WORKER.get("hook")
    if h:
        h.flush()  # the record so far (what the CRF read): the process lives until the pool shuts down
    return r


@contextlib.contextmanager
def handing_off(workers: int):
    """This process's ``hand_off`` target for the block: ``workers`` CPU processes (<= 1: none)."""
    off = HandOff(workers)
    previous, _WORKER["hand_off"] = _WORKER.get("hand_off"), off
    finished = False
    try:
        yield off
        off.drain()
        finished = True
    finally:
        off.close(finished)
        _WORKER["hand_off"] = previous


def hand_off(fn, *args, then=None) -> None:
    """Run ``fn(*args)`` (then ``then(result)``) in this process's CPU processes (``handing_off``), or
    now when there are none."""
    (_WORKER.get("hand_off") or HandOff(1)).submit(fn, *args, then=then)


def _start_worker(make_work, threads, indices, cpu_workers):
    h = hook()  # a spawned process starts without the parent's instrumentation
    if h:
        h.install()
    index = indices.get()  # 0..workers-1, once each
    if _gpu_count():  # one GPU per worker, round-robin (select_device reads LOCAL_RANK)
        os.environ["LOCAL_RANK"] = str(index % _gpu_count())
    _WORKER["work"] = make_work()  # imports what the work needs: CRF workers never load torch
    _WORKER["hook"] = h
    _WORKER["hand_off"] = HandOff(cpu_workers)  # lives as long as this worker
    # closed before the worker's exit joins its children (which would wait for work forever) and before
    # its queues close (priority 10)
    mp.util.Finalize(None, _WORKER["hand_off"].close, exitpriority=100)
    configure_torch(threads)


def _run_chunk(ids):
    work, h = _WORKER["work"], _WORKER["hook"]
    results = {image_id: work(image_id) for image_id in ids}
    _WORKER["hand_off"].drain()  # a chunk is done when its files are written
    if h:
        h.flush()  # the record so far: a worker lives until the pool shuts down
    return {k: v for k, v in results.items() if v is not None}


def _died(desc, todo, out_dir, suffix) -> WorkerDied:
    left = [i for i in todo if not (out_dir / f"{i}{suffix}").exists()]
    shown = ", ".join(left[:10]) + (f" and {len(left) - 10} more" if len(left) > 10 else "")
    return WorkerDied(
        f"{desc}: a worker process died (killed, or out of memory?) with {len(left)} images not done: "
        f"{shown}. The {len(todo) - len(left)} done are kept in {out_dir}; run the stage again to resume."
    )


def _in_pool(make_work, todo, out_dir, suffix, workers, desc, cpu_workers=1) -> dict:
    ctx = mp.get_context("spawn")
    threads = pinned_threads() or max(1, (os.cpu_count() or 1) // workers)
    indices = ctx.Queue()
    for i in range(workers):
        indices.put(i)
    size = max(1, min(8, len(todo) // (4 * workers)))  # small chunks: a lost worker loses little
    chunks = [todo[i : i + size] for i in range(0, len(todo), size)]
    results, finished = {}, False
    pool = ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_start_worker, initargs=(make_work, threads, indices, cpu_workers)
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
    except BrokenProcessPool as e:  # a GPU worker, or one of its CPU processes
        raise _died(desc, todo, out_dir, suffix) from e
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
    cpu_workers: int = 1,
) -> dict:
    """``make_work()`` builds the per-image function (model loaded once per process). Returns what
    ``work`` returned (when not None) for the ids processed by this call, by id. ``cpu_workers``: the
    processes that run what ``work`` hands off (``hand_off``), shared among the workers."""
    todo = _todo(ids, out_dir, suffix)
    results = {}
    if not todo:
        return results
    t0 = time.perf_counter()
    if workers <= 1 or len(todo) < 2:
        work = make_work()
        try:
            with handing_off(min(cpu_workers, len(todo))):
                for image_id in tqdm(todo, desc=desc, leave=False):
                    r = work(image_id)
                    if r is not None:
                        results[image_id] = r
        except BrokenProcessPool as e:
            raise _died(desc, todo, out_dir, suffix) from e
    else:
        workers = min(workers, len(todo))
        results = _in_pool(make_work, todo, out_dir, suffix, workers, desc, max(1, cpu_workers // workers))
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
    cpu_workers: int | str = 1,
) -> dict:
    """Run ``make_work(out_dir)(image_id)`` for every id into ``out`` (atomic, resumable under the
    stage's resume key); returns the per-id results of ``run_split`` (ids done by an interrupted
    run that this one resumed are not in it). ``cpu_workers``: see ``run_split`` (``auto``: one per core)."""
    with atomic_dir(out, resume_key=resume_key(stage)) as tmp:
        return run_split(
            partial(make_work, tmp),
            ids,
            tmp,
            suffix,
            resolve_workers(workers, gpu),
            desc=stage,
            cpu_workers=resolve_workers(cpu_workers),
        )
