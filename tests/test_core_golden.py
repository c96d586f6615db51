"""The core's golden run: a few epochs of the training loop (seeded batches, a resumed value, scoring
every 2nd epoch and the last, the trainer's tail), killed mid-run and resumed, compared with the
checksums stored in tests/data/core_golden.json. A change to the core that changes what a training
stage computes (batch order, resume, history, checkpoint layout) fails here in seconds, before a
30-minute ``dvc repro`` would show it.

The toy runs in float64 on one thread and its weights are rounded to 1e-9 before hashing, so that
the checksums do not depend on the CPU's instruction set. To renew them after an intended change:
``python tests/test_core_golden.py`` (and say why in the commit)."""

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from bao.core.loop import Carried, Loop, Runtime
from bao.core.runtime import Checkpointer, Dist, batch_indices

GOLDEN = Path(__file__).parent / "data" / "core_golden.json"


class Toy(torch.utils.data.Dataset):
    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(20, 3, generator=g, dtype=torch.float64)
        self.y = (self.x.sum(1) > 0).double()

    def __len__(self):
        return 20

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i]}


def run(folder: Path, crash_at: int | None = None):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rt = Runtime(torch.device("cpu"), Dist(), lambda: torch.autocast("cpu", enabled=False), 0, 0)
    model = nn.Sequential(nn.Linear(3, 6), nn.Dropout(0.3), nn.Linear(6, 1)).double()
    opt = torch.optim.AdamW(model.parameters(), lr=0.05)
    seen = Carried([])  # the ids of every batch, resumed with the run
    calls = {"n": 0}

    def step(batch):
        calls["n"] += 1
        if crash_at is not None and calls["n"] == crash_at:
            raise KeyboardInterrupt("killed")
        seen.value.append(round(float(batch["x"].sum()), 6))
        loss = nn.functional.binary_cross_entropy_with_logits(model(batch["x"])[:, 0], batch["y"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": round(loss.item(), 9)}

    def end_epoch(epoch):
        return {"scored": epoch}

    loop = Loop(
        rt,
        model,
        opt,
        Toy(),
        4,
        5,
        Checkpointer(folder, "golden"),
        3,
        step,
        "golden",
        end_epoch=end_epoch,
        eval_every=2,
        extra_state={"seen": seen},
    )
    history = loop.run()
    loop.finish(history, folder / "history.csv")
    return {
        "history": hashlib.md5(json.dumps(history, sort_keys=True).encode()).hexdigest(),
        "history_csv": hashlib.md5((folder / "history.csv").read_bytes()).hexdigest(),
        "batches": hashlib.md5(json.dumps(seen.value).encode()).hexdigest(),
        "weights": hashlib.md5(
            b"".join(np.round(v.numpy(), 9).tobytes() for v in model.state_dict().values())
        ).hexdigest(),
        "order": hashlib.md5(json.dumps(batch_indices(20, 4, 0, 3)).encode()).hexdigest(),
        "scored": [row.get("scored") for row in history],
        "status": json.loads((folder / "status.json").read_text()),
        "checkpoint_left": (folder / "last.pt").exists(),
    }


def test_golden_run_killed_and_resumed(tmp_path):
    expected = json.loads(GOLDEN.read_text())
    assert run(tmp_path / "whole") == expected
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "killed", crash_at=13)  # mid epoch 3, after the checkpoints at steps 3 to 12
    assert (tmp_path / "killed" / "last.pt").exists()
    assert run(tmp_path / "killed") == expected


if __name__ == "__main__":  # renew the stored checksums (an intended change of the core's behaviour)
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        GOLDEN.write_text(json.dumps(run(Path(d)), indent=1) + "\n")
    print(f"{GOLDEN}: written")
    sys.exit(0)
