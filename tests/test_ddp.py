"""Two CPU processes (gloo) with the same global batch end with the same weights as one process."""

import os
import socket

import torch
import torch.multiprocessing as mp
import torch.nn as nn
from test_resume import Toy

from bao.core.loop import Loop, Runtime
from bao.core.runtime import Checkpointer, Dist


def train(rank, world, port, out):
    os.environ.update(
        WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.manual_seed(0)
    device = torch.device("cpu")
    rt = Runtime(device, Dist.init(device), lambda: torch.autocast("cpu", enabled=False), 0, 0)
    model = rt.wrap(nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1)))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def step(batch):
        loss = nn.functional.binary_cross_entropy_with_logits(model(batch["x"])[:, 0], batch["y"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": loss.item()}

    Loop(
        rt, model, opt, Toy(), 8, 2, Checkpointer(out / f"ck{rank}", "k", enabled=rt.dist.main), 100, step, "ddp"
    ).run()
    if rt.dist.main:
        torch.save(getattr(model, "module", model).state_dict(), out / f"w{world}.pt")
    if world > 1:
        torch.distributed.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_equal_one(tmp_path):
    mp.spawn(train, args=(2, free_port(), tmp_path), nprocs=2, join=True)
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        os.environ.pop(k, None)
    train(0, 1, free_port(), tmp_path)
    two, one = torch.load(tmp_path / "w2.pt"), torch.load(tmp_path / "w1.pt")
    for k in one:
        assert torch.allclose(one[k], two[k], atol=1e-6), k
