"""README's way back to the last commit (``python -m scripts.restore``) restores what DVC's cache holds
and empties nothing it cannot restore; ``dvc checkout`` alone deletes such an output."""

import os
import subprocess
import sys

import pytest
from conftest import ROOT

STAGE = """import json, os, yaml
x = yaml.safe_load(open("params.yaml"))["x"]
os.makedirs("out", exist_ok=True)
open("out/a", "w").write(str(x))
json.dump({"v": x}, open("m.json", "w"))
"""
DVC_YAML = """stages:
  make:
    cmd: python make.py
    deps: [make.py]
    params: [x]
    outs: [out]
    metrics: [{m.json: {cache: false}}]
"""


def sh(cmd, cwd):
    env = {**os.environ, "DVC_NO_ANALYTICS": "true", "PYTHONPATH": str(ROOT)}
    r = subprocess.run(cmd, cwd=cwd, shell=True, capture_output=True, text=True, env=env)
    assert r.returncode == 0, f"{cmd}:\n{r.stdout}\n{r.stderr}"
    return r.stdout


@pytest.fixture
def repo(tmp_path):
    (tmp_path / "make.py").write_text(STAGE)
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    (tmp_path / "params.yaml").write_text("x: 1\n")
    (tmp_path / "notes.py").write_text("my edit\n")
    sh("git init -q && dvc init -q && dvc repro -q && git add -A && git commit -qm base", tmp_path)
    (tmp_path / "notes.py").write_text("my uncommitted edit\n")
    (tmp_path / "params.yaml").write_text("x: 2\n")
    sh(f"{sys.executable} -m dvc repro -q", tmp_path)  # another result, lock and metric
    return tmp_path


def restore(repo):
    return sh(f"{sys.executable} -m scripts.restore", repo)


def test_restores_the_commit_from_the_cache(repo):
    restore(repo)
    assert (repo / "out" / "a").read_text() == "1" and (repo / "params.yaml").read_text() == "x: 1\n"
    assert (repo / "m.json").read_text() == '{"v": 1}'
    assert (repo / "notes.py").read_text() == "my uncommitted edit\n"  # code and other files: untouched
    assert "up to date" in sh(f"{sys.executable} -m dvc status", repo)


def test_keeps_an_output_the_cache_cannot_restore(repo):
    locked = sh("git show HEAD:dvc.lock", repo)
    # HEAD's out/a ("1") leaves the cache, as on a machine that never ran HEAD's pipeline
    (repo / ".dvc/cache/files/md5/c4/ca4238a0b923820dcc509a6f75849b").unlink()
    assert "9af2f0a3c94f6c2d21d168c08de4d98c.dir" in locked  # the tree object above lists that file
    out = restore(repo)
    assert (repo / "out" / "a").read_text() == "2", "emptied an output it could not restore"
    assert "kept as they were" in out and "out" in out.splitlines()[1]
    assert (repo / "params.yaml").read_text() == "x: 1\n"
    assert "not in cache" in sh(f"{sys.executable} -m dvc status", repo)
    # what the recipe this replaces did: dvc checkout deletes it
    subprocess.run(f"{sys.executable} -m dvc checkout", cwd=repo, shell=True, capture_output=True)
    assert not (repo / "out").exists()
