"""Per-image inference over a split, resumable and spread over processes.

``run_split`` calls ``work(image_id)`` for every id whose output file is not yet in the partial
output folder, so an interrupted stage continues where it stopped (same params) and its result is
identical to an uninterrupted run. With ``workers > 1`` the ids are sharded over processes, each
with its own model copy; every file depends on its image alone, so the output does not depend on
the number of workers.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import sys
from pathlib import Path
from typing import Callable

from tqdm import tqdm


def _todo(ids, out_dir: Path, suffix: str):
    return [i for i in ids if not (out_dir / f"{i}{suffix}").exists()]


def _worker(args):
    make_work, ids, threads, index = args
    if _gpu_count():  # one GPU per worker, round-robin (select_device reads LOCAL_RANK)
        os.environ["LOCAL_RANK"] = str(index % _gpu_count())
    work = make_work()  # imports what the work needs: CRF workers never load torch
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    for image_id in ids:
        work(image_id)
    return len(ids)


def _gpu_count() -> int:
    if "torch" not in sys.modules:
        return 0
    torch = sys.modules["torch"]
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def run_split(make_work: Callable[[], Callable[[str], None]], ids: list[str], out_dir: Path, suffix: str,
              workers: int = 1, desc: str = "") -> None:
    """``make_work()`` builds the per-image function (model loaded once per process)."""
    todo = _todo(ids, out_dir, suffix)
    if not todo:
        return
    if workers <= 1 or len(todo) < 2:
        work = make_work()
        for image_id in tqdm(todo, desc=desc, leave=False):
            work(image_id)
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    shards = [todo[i::workers] for i in range(workers)]
    with mp.get_context("spawn").Pool(workers) as pool:
        for _ in pool.imap_unordered(_worker, [(make_work, s, threads, i) for i, s in enumerate(shards)]):
            pass
