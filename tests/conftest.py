import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("DVC_NO_ANALYTICS", "true")


@pytest.fixture(scope="session")
def mini_root(tmp_path_factory):
    """A tiny mini-VOC tree (generated once per session)."""
    from bao.data import minivoc
    from bao.data.prepare import validate

    root = tmp_path_factory.mktemp("voc") / "VOC2012"
    minivoc.generate(root, num_train=6, num_val=4, num_test=2, num_aug=6, min_side=64, max_side=96, seed=3)
    validate(root, ["train_aug", "train", "val", "test"], "error")
    return root


@pytest.fixture
def params():
    from bao.config.schema import load_params

    return load_params(ROOT / "params.yaml")


# A variable that says "this process is a rank of a process group", left behind by one test, makes
# every stage a later test starts skip its launcher (and read base.gpus no more): fail the test that
# leaves one.
RANK_VARIABLES = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "BAO_LAUNCHED")


@pytest.fixture(autouse=True)
def no_rank_variables_left_behind():
    before = {k: os.environ.get(k) for k in RANK_VARIABLES}
    yield
    left = [k for k in RANK_VARIABLES if os.environ.get(k) != before[k]]
    assert not left, f"the test left {left} in the environment: later stages would think they are ranks"
