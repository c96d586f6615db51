"""A training stage on several processes, launched from inside the stage DVC runs (``base.gpus``).

``python -m stages.train_x`` reads its params; when ``base.gpus`` asks for n > 1 processes it starts n
copies of itself through PyTorch's own launcher (``torch.distributed.run``'s elastic agent, as
``torchrun --standalone --nproc_per_node n`` does) and waits for them. Each copy sees ``WORLD_SIZE``,
joins the process group (``bao.core.runtime.Dist``) and trains its slice of every global batch; rank 0
alone writes the outputs and the resume checkpoints, every rank resumes from them. DVC sees one
command that finishes or fails.
"""

from __future__ import annotations

import os
import sys
import uuid

from bao.core.errors import ParamsError
from bao.core.stage import LAUNCHED


class RankFailed(RuntimeError):
    """A launched process failed; its own message is above, on the console."""


def launcher(base) -> int:
    """``bao.core.stage.main``'s launcher of a training stage: in a process group already, 1 (train
    here); else the processes ``base.gpus`` asks for, and when more than one, run them and wait. A failed
    rank exits this process with 1, naming it."""
    if launched():
        return 1
    n = processes(base.gpus, base.device)
    if n > 1:
        try:
            run_ranks(n, sys.modules["__main__"].__spec__.name, sys.argv[1:])
        except RankFailed as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(1)
    return n


def launched() -> bool:
    """Inside a process group already: launched by this module, or by hand with ``torchrun``."""
    return os.environ.get(LAUNCHED) == "1" or "WORLD_SIZE" in os.environ


def processes(gpus: int | str, device: str) -> int:
    """How many processes ``base.gpus`` asks for: ``auto`` = every visible GPU (1 without CUDA or with
    ``base.device: cpu``); an integer n = n processes (on CPU: n gloo processes, for tests)."""
    import torch

    cuda = device != "cpu" and torch.cuda.is_available()
    if gpus == "auto":
        return torch.cuda.device_count() if cuda else 1
    if cuda and gpus > torch.cuda.device_count():
        raise ParamsError(f"base.gpus: {gpus} processes asked for, but {torch.cuda.device_count()} GPUs are visible")
    return gpus


def run_ranks(n: int, module: str, args: list[str]) -> None:
    """``python -m module *args`` in ``n`` local processes through the elastic agent; returns when all
    have finished, raises ``RankFailed`` naming the first failed rank when one fails (the agent then
    stops the others: no restarts, a failure is the stage's)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=n,
        run_id=str(uuid.uuid4()),
        rdzv_backend="c10d",  # --standalone: a rendezvous on a free local port
        rdzv_endpoint="localhost:0",
        max_restarts=0,
        monitor_interval=1,
    )
    os.environ[LAUNCHED] = "1"
    try:
        elastic_launch(config, sys.executable)("-m", module, *args)
    except ChildFailedError as e:
        rank, failure = e.get_first_failure()
        raise RankFailed(f"{module}: rank {rank} of {n} failed with exit code {failure.exitcode}") from None
    finally:
        os.environ.pop(LAUNCHED, None)
