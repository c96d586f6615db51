"""Device, mixed precision, seeding, distributed data parallel and resumable checkpoints."""

from __future__ import annotations

import contextlib
import os
import random
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from bao.core.errors import CheckpointError, ParamsError
from bao.core.io import atomic_file, safe_load, write_json


def select_device(name: str) -> torch.device:
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("base.device: cuda requested but no CUDA device is available")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def amp_context(device: torch.device, enabled: bool):
    """bf16 autocast on CUDA; a no-op elsewhere. Callers compute losses/normalisation in fp32."""
    if enabled and device.type == "cuda":
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


RANK_WAIT = timedelta(hours=2)


@dataclass
class Dist:
    """Process group facts; world 1 when not launched by torchrun."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def init(cls, device: torch.device) -> "Dist":
        world = int(os.environ.get("WORLD_SIZE", 1))
        if world == 1:
            return cls()
        if not dist.is_initialized():
            if device.type == "cuda":
                torch.cuda.set_device(device)
            # rank 0 scores an epoch alone (Loop.end_epoch) while the others wait at the next
            # step's all-reduce: minutes on the paper's sets, past NCCL's 10-minute default
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=RANK_WAIT)
        return cls(dist.get_rank(), world)

    def barrier(self):
        if self.world > 1:
            dist.barrier()


def batch_indices(n: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1) -> list[list[int]]:
    """Shuffled global batches (drop_last), each split into equal per-rank slices: the union over
    ranks of a step's samples is the same global batch whatever the world size."""
    if batch_size % world:
        raise ParamsError(
            f"base.gpus: {world} processes cannot split a batch_size of {batch_size} into equal slices"
            " (set base.gpus to a divisor of every training stage's batch_size)"
        )
    if n < batch_size:
        # check_params catches it from the params; here after base.bad_input: skip dropped images
        raise ParamsError(
            f"the training split has {n} images, fewer than a batch of {batch_size}: set the stage's batch_size to at most {n}"
        )
    order = np.random.default_rng((seed, epoch, 7)).permutation(n)
    per = batch_size // world
    return [
        order[b * batch_size + rank * per : b * batch_size + (rank + 1) * per].tolist() for b in range(n // batch_size)
    ]


def make_loader(dataset, batches: list[list[int]], num_workers: int):
    # its own generator: creating the iterator must not draw from the global RNG, or a resumed run's
    # dropout/drop-path masks would differ from an uninterrupted run's
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(0),
        persistent_workers=False,
        pin_memory=torch.cuda.is_available(),
    )


class Checkpointer:
    """Resume checkpoints in a DVC-persisted folder.

    ``key`` hashes the stage's params and inputs: a checkpoint written under another key is stale
    (a params change starts fresh) and is deleted. ``finish`` removes the checkpoint, so a finished
    stage leaves nothing a new run could mistake for its own, and the same ``status.json`` whatever
    its params: the folder (a DVC output) hashes alike after every finished run, so going back to an
    earlier commit leaves ``dvc status`` clean.
    """

    def __init__(self, folder: str | Path, key: str, enabled: bool = True):
        self.folder = Path(folder)
        self.key = key
        self.enabled = enabled
        self.path = self.folder / "last.pt"

    def load(self):
        """The checkpoint, or None; every rank reads it, the writing one (``enabled``) deletes a stale one."""
        if not self.path.exists():
            return None
        try:
            state = safe_load(self.path)
        except CheckpointError:
            if self.path.exists():
                raise
            return None  # a stale one the main rank has just deleted
        if state.get("key") != self.key:
            if self.enabled:
                print(f"[resume] {self.path}: written for other params/inputs; starting fresh")
                self.path.unlink(missing_ok=True)
            return None
        if self.enabled:
            print(f"[resume] continuing from {self.path} (step {state['step']})")
        return state

    def save(self, state: dict) -> None:
        if not self.enabled:
            return
        with atomic_file(self.path) as f:
            torch.save({**state, "key": self.key}, f)

    def finish(self) -> None:
        if not self.enabled:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self.path.unlink()
        write_json(self.folder / "status.json", {"finished": True})


def rng_state() -> dict:
    """Only torch's RNG matters (drop path); augmentation draws from per-sample seeded generators."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model
