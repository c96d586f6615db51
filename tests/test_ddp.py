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


def test_two_processes_equal_one(tmp_path, monkeypatch):
    mp.spawn(train, args=(2, free_port(), tmp_path), nprocs=2, join=True)
    # train() sets the rank variables in this process: monkeypatch takes them away after the test
    # (a WORLD_SIZE left behind made later stages believe they ran under torchrun)
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.setenv(k, "")
        monkeypatch.delenv(k)
    train(0, 1, free_port(), tmp_path)
    two, one = torch.load(tmp_path / "w2.pt"), torch.load(tmp_path / "w1.pt")
    for k in one:
        assert torch.allclose(one[k], two[k], atol=1e-6), k


def test_processes_from_base_gpus():
    from bao.core.launch import processes

    assert processes("auto", "cpu") == 1  # auto: every visible GPU; none asked for on the CPU
    assert processes(3, "cpu") == 3  # n gloo processes on CPU


def test_a_failed_rank_fails_the_launch(tmp_path, monkeypatch):
    """The launcher returns when every rank finished and names the rank that failed."""
    import pytest

    from bao.core.launch import RankFailed, run_ranks

    (tmp_path / "ranked.py").write_text(
        "import os, sys\n"
        "rank = int(os.environ['RANK'])\n"
        "open(os.path.join(sys.argv[1], f'rank{rank}of{os.environ[\"WORLD_SIZE\"]}'), 'w').close()\n"
        "sys.exit(3 if sys.argv[2] == str(rank) else 0)\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    run_ranks(2, "ranked", [str(tmp_path), "none"])
    assert {p.name for p in tmp_path.glob("rank*of*")} == {"rank0of2", "rank1of2"}
    with pytest.raises(RankFailed, match="rank 1 of 2 failed with exit code 3"):
        run_ranks(2, "ranked", [str(tmp_path), "1"])
    assert "BAO_LAUNCHED" not in os.environ


def test_only_the_writing_rank_deletes_a_stale_checkpoint(tmp_path):
    Checkpointer(tmp_path, "old").save({"step": 1})
    assert Checkpointer(tmp_path, "new", enabled=False).load() is None  # another rank: starts fresh
    assert (tmp_path / "last.pt").exists()  # ... and leaves the file to rank 0
    assert Checkpointer(tmp_path, "new").load() is None
    assert not (tmp_path / "last.pt").exists()
