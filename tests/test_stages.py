"""Stage entry points fail before any work, with a message naming the parameter or file."""

import copy
import os
import pickle
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT


def run_stage(tmp_path, name, params, *args):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "dvc.yaml").write_text((ROOT / "dvc.yaml").read_text())  # the stages read their paths there
    # the project's stages and bao, run from a folder of their own (PYTHONPATH stands for the checkout)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", f"stages.{name}", *args], cwd=tmp_path, env=env, capture_output=True, text=True
    )


def base_params():
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_unknown_key_fails_before_work(tmp_path):
    p = base_params()
    p["data"]["mini"]["num_trian"] = 9
    r = run_stage(tmp_path, "prepare_data", p)
    assert r.returncode == 2 and "data.mini.num_trian: unknown parameter" in r.stderr
    assert not (tmp_path / "data").exists()


def test_check_params_checks_every_section(tmp_path):
    """A stage loads the sections it reads; check_params, which every stage depends on, checks all of
    params.yaml, unknown sections included."""
    p = base_params()
    p["ema"]["tua"] = 0.9
    assert run_stage(tmp_path, "prepare_data", p).returncode == 0  # prepare_data does not read ema
    r = run_stage(tmp_path, "check_params", p)
    assert r.returncode == 2 and "ema.tua: unknown parameter" in r.stderr
    p = base_params()
    p["emma"] = {"tau": 0.9}
    r = run_stage(tmp_path, "check_params", p)
    assert r.returncode == 2 and "emma: unknown parameter" in r.stderr


def test_a_section_a_stage_did_not_load_is_an_error():
    from bao.config.data import Data
    from bao.core.errors import ParamsError
    from bao.core.params import load

    params = load(ROOT / "params.yaml", [Data])
    assert params.data.mini.num_train > 0 and params.base.seed == 0
    with pytest.raises(ParamsError, match="params.ema: not loaded by this stage"):
        params.ema
    assert getattr(params, "ema", None) is None
    # the per-image stages send their params to worker processes: they pickle and copy
    again = pickle.loads(pickle.dumps(params))
    assert again.data.mini.num_train == params.data.mini.num_train and copy.deepcopy(params).base.seed == 0


def test_impossible_value_fails_before_work(tmp_path):
    p = base_params()
    p["data"]["mini"]["min_side"] = 300
    r = run_stage(tmp_path, "prepare_data", p)
    assert r.returncode == 2 and "data.mini.min_side" in r.stderr
    assert not (tmp_path / "data").exists()


def test_missing_input_is_named(tmp_path):
    r = run_stage(tmp_path, "make_cams", base_params())
    assert r.returncode == 2 and "data/VOC2012/ImageSets/Segmentation/train_aug.txt" in r.stderr


def test_unknown_variant_is_named(tmp_path):
    r = run_stage(tmp_path, "train_bao", base_params(), "both")
    assert r.returncode != 0 and "{amn,share,ema,share+ema}" in r.stderr


def test_missing_pretrained_checkpoint_is_an_error(tmp_path):
    """A set model.pretrained whose staged file is missing never starts from random weights."""
    from bao.data import minivoc
    from bao.data.prepare import validate

    root = tmp_path / "data" / "VOC2012"
    minivoc.generate(root, num_train=4, num_val=2, num_test=0, num_aug=4, min_side=64, max_side=96, seed=1)
    validate(root, ["train_aug", "train", "val"], "error")
    p = base_params()
    p["model"]["pretrained"] = "weights/conformer.pth"
    r = run_stage(tmp_path, "train_transcam", p)
    assert r.returncode == 2 and "models/pretrained/conformer/weights.pth" in r.stderr and "get_*_weights" in r.stderr
    assert not (tmp_path / "models" / "transcam").exists()


def test_check_params_names_unknown_keys_and_a_missing_folder(tmp_path):
    """The first stage (every other depends on it) checks all of params.yaml: a key added with
    Hydra's ``+`` and a data.folder that is not a VOC-layout folder fail in seconds, writing nothing."""
    p = base_params()
    p["bao"]["epoch"] = 3
    r = run_stage(tmp_path, "check_params", p)
    assert r.returncode == 2 and r.stderr.startswith("error: bao.epoch: unknown parameter")
    assert len(r.stderr.strip().splitlines()) == 1
    p = base_params()
    p["data"].update(source="folder", folder=str(tmp_path / "nowhere"))
    r = run_stage(tmp_path, "check_params", p)
    assert r.returncode == 2 and "nowhere: data.folder does not exist" in r.stderr
    (tmp_path / "voc" / "JPEGImages").mkdir(parents=True)
    p["data"]["folder"] = str(tmp_path / "voc")
    r = run_stage(tmp_path, "check_params", p)
    assert r.returncode == 2 and "ImageSets/Segmentation/train.txt: required" in r.stderr
    assert not (tmp_path / "checks").exists()
    r = run_stage(tmp_path, "check_params", base_params())
    assert r.returncode == 0 and (tmp_path / "checks" / "params.txt").read_text() == "params.yaml: checked\n"
    p = base_params()
    p["deeplab"]["pretrained"] = str(tmp_path / "no" / "res38_cls.pth")
    r = run_stage(tmp_path, "check_params", p)
    assert r.returncode == 2 and "deeplab.pretrained: " in r.stderr and "res38_cls.pth: no such file" in r.stderr
    p = base_params()
    p["base"]["gpus"] = 3  # the training batches must split into equal slices, one per process
    r = run_stage(tmp_path, "check_params", p)
    assert r.returncode == 2 and "base.gpus: 3 processes cannot split" in r.stderr and "batch_size" in r.stderr
    p = base_params()
    p["data"]["mini"].update(num_train=4, num_aug=3)  # 7 training images, batches of 8
    r = run_stage(tmp_path, "check_params", p)
    assert r.returncode == 2 and "transcam.batch_size: 8 is more than the 7 training images" in r.stderr
