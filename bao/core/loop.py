"""The epoch loop shared by the training stages: distributed batches, mixed precision, progress bar,
resume checkpoints every N steps, per-epoch history scored every n-th epoch, and the trainer's tail."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from bao.core.io import write_text
from bao.core.pipeline import paths, resume_key
from bao.core.runtime import (
    Checkpointer,
    Dist,
    amp_context,
    batch_indices,
    make_loader,
    rng_state,
    seed_everything,
    select_device,
    set_rng_state,
    unwrap,
)


@dataclass
class Runtime:
    device: torch.device
    dist: Dist
    amp: Callable
    num_workers: int
    seed: int

    @classmethod
    def from_params(cls, base, seed: int | None = None, num_workers: int | None = None) -> "Runtime":
        """From the ``base`` section; ``seed`` and ``num_workers`` replace base's (not read then)."""
        seed = base.seed if seed is None else seed
        num_workers = base.num_workers if num_workers is None else num_workers
        device = select_device(base.device)
        d = Dist.init(device)
        seed_everything(seed)
        return cls(device, d, amp_context(device, base.amp), num_workers, seed)

    def checkpointer(self, stage: str, folder: str | Path | None = None) -> Checkpointer:
        """The stage's resume checkpoints (``<paths.checkpoints>/<stage>`` unless ``folder``), under its
        resume key; written by the main process only."""
        folder = Path(paths().checkpoints) / stage if folder is None else folder
        return Checkpointer(folder, resume_key(stage), enabled=self.dist.main)

    def wrap(self, model: torch.nn.Module, unused_parameters: bool = False) -> torch.nn.Module:
        """``model`` on the device, in DistributedDataParallel when there are several processes;
        ``unused_parameters``: some trainable parameters get no gradient (DDP then looks for them each
        step; globally unused ones keep grad None, as in one process)."""
        model = model.to(self.device)
        if self.dist.world > 1:
            if self.device.type == "cuda":
                model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
            model = DistributedDataParallel(
                model,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=unused_parameters,
            )
        return model


@dataclass
class Loop:
    """Runs ``epochs`` over ``dataset``; ``step(batch) -> dict of float losses`` does forward,
    backward and optimiser step. Hooks: ``after_step(step, epoch)``; ``after_epoch(epoch)`` after
    every epoch; ``end_epoch(epoch) -> dict`` (scores added to the epoch's history row) after every
    ``eval_every``-th epoch and the last (``epoch`` counts the finished ones)."""

    rt: Runtime
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    dataset: torch.utils.data.Dataset
    batch_size: int
    epochs: int
    ckpt: Checkpointer
    checkpoint_every: int
    step: Callable[[dict], dict]
    desc: str
    after_step: Callable | None = None
    end_epoch: Callable | None = None
    eval_every: int = 1
    after_epoch: Callable | None = None
    extra_state: dict = field(default_factory=dict)  # name -> module/object with state_dict()

    def scored(self, epoch: int) -> bool:
        """Whether ``end_epoch`` scores after ``epoch`` finished epochs: every ``eval_every``-th and the last."""
        return epoch % self.eval_every == 0 or epoch == self.epochs

    def finish(self, history: list[dict], history_csv: str | Path, save: Callable[[], None] | None = None) -> None:
        """The trainer's tail, on the main process: ``save()`` the trained outputs, write the history
        (one row per epoch, or per logged step), then drop the resume checkpoint."""
        if not self.rt.dist.main:
            return
        if save is not None:
            save()
        write_text(history_csv, pd.DataFrame(history).to_csv(index=False))
        self.ckpt.finish()

    def state(self, epoch: int, step: int, batch_in_epoch: int, history: list, sums: dict) -> dict:
        return {
            "model": unwrap(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "extra": {k: v.state_dict() for k, v in self.extra_state.items()},
            "epoch": epoch,
            "step": step,
            "batch": batch_in_epoch,
            "history": history,
            "sums": sums,
            "rng": rng_state(),
        }

    def run(self, start_hook: Callable | None = None) -> list[dict]:
        rt = self.rt
        history: list[dict] = []
        epoch, step, skip = 0, 0, 0
        sums: dict[str, float] = {}
        state = self.ckpt.load()
        if state is not None:
            unwrap(self.model).load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            for k, v in self.extra_state.items():
                v.load_state_dict(state["extra"][k])
            epoch, step, skip, history = state["epoch"], state["step"], state["batch"], state["history"]
            sums = state["sums"]
            set_rng_state(state["rng"])
        elif start_hook is not None:
            row = start_hook()
            if row is not None:
                history.append(row)
        timed_steps, step_seconds, eval_seconds = 0, 0.0, []
        while epoch < self.epochs:
            if hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(epoch)
            batches = batch_indices(len(self.dataset), self.batch_size, rt.seed, epoch, rt.dist.rank, rt.dist.world)
            loader = make_loader(self.dataset, batches[skip:], rt.num_workers)
            self.model.train()
            bar = tqdm(
                loader,
                total=len(batches) - skip,
                desc=f"{self.desc} {epoch + 1}/{self.epochs}",
                disable=not rt.dist.main,
                leave=False,
            )
            tick = time.perf_counter()
            for b, batch in enumerate(bar, start=skip):
                losses = self.step(batch)
                for k, v in losses.items():
                    if not math.isfinite(v):
                        raise FloatingPointError(f"{self.desc}: loss {k} is {v} at step {step}")
                    sums[k] = sums.get(k, 0.0) + v
                step += 1
                if self.after_step is not None:
                    self.after_step(step, epoch)
                bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()})
                if step % self.checkpoint_every == 0 and rt.dist.main:
                    self.ckpt.save(self.state(epoch, step, b + 1, history, sums))
                tock = time.perf_counter()
                if b > skip:  # the first step of each pass warms up (loader start, kernels)
                    timed_steps, step_seconds = timed_steps + 1, step_seconds + tock - tick
                tick = tock
            row = {"epoch": epoch + 1, "step": step, **{k: v / len(batches) for k, v in sums.items()}}
            skip, sums = 0, {}
            epoch += 1
            if self.after_epoch is not None:
                self.after_epoch(epoch)
            if self.end_epoch is not None and self.scored(epoch):
                t0 = time.perf_counter()
                row.update(self.end_epoch(epoch) or {})
                eval_seconds.append(time.perf_counter() - t0)
            history.append(row)
            if rt.dist.main:
                print(
                    f"[{self.desc}] "
                    + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())
                )
                self.ckpt.save(self.state(epoch, step, 0, history, sums))
        if rt.dist.main and timed_steps:  # read by bench/rehearse.py to estimate the paper run's hours
            evals = " ".join(f"{s:.3f}" for s in eval_seconds)
            print(f"[timing] {self.desc}: steps={timed_steps} seconds={step_seconds:.3f} eval_seconds={evals or '-'}")
        return history


class Carried:
    """A value held across a run and its resume checkpoints (``Loop(extra_state=...)``): a step log, a
    snapshot of weights."""

    def __init__(self, value=None):
        self.value = value

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.value = state["value"]
