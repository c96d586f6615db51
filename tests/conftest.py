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
