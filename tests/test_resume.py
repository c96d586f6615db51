"""Resume: an interrupted-and-resumed run ends with the same weights and history as an uninterrupted one."""

import pytest
import torch
import torch.nn as nn

from bao.core.loop import Loop, Runtime
from bao.core.runtime import Checkpointer, Dist, batch_indices


class Toy(torch.utils.data.Dataset):
    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(24, 4, generator=g)
        self.y = (self.x.sum(1) > 0).float()

    def __len__(self):
        return 24

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i]}


def train(folder, key, crash_at=None):
    torch.manual_seed(0)
    rt = Runtime(torch.device("cpu"), Dist(), lambda: torch.autocast("cpu", enabled=False), 0, 0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.2), nn.Linear(8, 1))
    opt = torch.optim.AdamW(model.parameters(), lr=0.05)
    calls = {"n": 0}

    def step(batch):
        calls["n"] += 1
        if crash_at is not None and calls["n"] == crash_at:
            raise KeyboardInterrupt("killed")
        loss = nn.functional.binary_cross_entropy_with_logits(model(batch["x"])[:, 0], batch["y"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": loss.item()}

    loop = Loop(rt, model, opt, Toy(), 4, 3, Checkpointer(folder, key), 4, step, "toy")
    return loop.run(), model.state_dict()


def test_kill_and_resume_equals_uninterrupted(tmp_path):
    hist_a, sd_a = train(tmp_path / "a", "k")
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path / "b", "k", crash_at=11)  # mid epoch 2, after the checkpoint at step 8
    assert (tmp_path / "b" / "last.pt").exists()
    hist_b, sd_b = train(tmp_path / "b", "k")
    assert hist_a == hist_b
    for k in sd_a:
        assert torch.equal(sd_a[k], sd_b[k]), k


def test_params_change_starts_fresh(tmp_path, capsys):
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path, "old", crash_at=6)
    ck = Checkpointer(tmp_path, "new")
    assert ck.load() is None and not (tmp_path / "last.pt").exists()
    assert "starting fresh" in capsys.readouterr().out


def test_finish_leaves_no_checkpoint(tmp_path):
    ck = Checkpointer(tmp_path, "k")
    ck.save({"step": 1})
    ck.finish()
    assert not (tmp_path / "last.pt").exists() and (tmp_path / "status.json").exists()
    # a finished folder is the same under any key: DVC sees no change after going back to a commit
    other = tmp_path / "other"
    Checkpointer(other, "another key").finish()
    assert (other / "status.json").read_bytes() == (tmp_path / "status.json").read_bytes()


def test_batches_partition_over_ranks():
    one = batch_indices(20, 4, 0, 1)
    two = [batch_indices(20, 4, 0, 1, rank=r, world=2) for r in range(2)]
    assert [sorted(a + b) for a, b in zip(*two)] == [sorted(b) for b in one]


def test_same_seed_same_result(tmp_path):
    hist_a, sd_a = train(tmp_path / "a", "k")
    hist_b, sd_b = train(tmp_path / "b", "k")
    assert hist_a == hist_b and all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)
