"""A stage imports the ``bao`` of the checkout it belongs to, whatever is installed: a second clone,
a copied workspace, DVC's temporary and queued experiment workspaces each run their own code."""

import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT


@pytest.mark.parametrize("stage", ["prepare_data", "train_bao"])
def test_a_copy_runs_its_own_bao(tmp_path, stage):
    copy = tmp_path / "copy"
    for d in ("bao", "stages"):
        shutil.copytree(ROOT / d, copy / d, ignore=shutil.ignore_patterns("__pycache__"))
    init = copy / "bao" / "__init__.py"
    init.write_text(init.read_text() + "\nraise SystemExit('bao imported from ' + __file__)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # as DVC runs a stage: `python -m stages.<name>` from the checkout's root; the installed package
    # (an editable install of another clone) must not decide
    r = subprocess.run(
        [sys.executable, "-m", f"stages.{stage}"], cwd=copy, env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode != 0
    assert f"bao imported from {init}" in r.stderr, r.stderr[-2000:]
