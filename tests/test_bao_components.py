"""scripts/bao_components.py: the table it writes from hand-made results, and its params edits."""

import json

import pytest
import yaml
from conftest import ROOT

from scripts import bao_components as bc


def readouts(camsfg, cam, am_bg, am):
    return {
        "camsfg_ambg": camsfg,
        "cam": cam,
        "am_bg": am_bg,
        "am": am,
        "mean": 0.0,
        "per_epoch": {"cam": [0.3, None], "camsfg_ambg": [None, 0.2]},
    }


def test_table_per_seed_and_mean(tmp_path):
    table = {
        s: {
            "rev": f"r{s}",
            "transcam_seed": 0.30 + s / 100,
            "release": readouts(0.20 + s / 100, 0.25, 0.21, 0.18),
            "head": readouts(0.22, 0.35 + s / 100, 0.30, 0.2),
            "no_pcl": readouts(0.1, 0.35 + s / 100, 0.1, 0.1),
        }
        for s in (0, 1)
    }
    text = bc.write_table(table, str(tmp_path / "c"), 1)
    rows = [line.split(" | ") for line in text.splitlines() if line.startswith("| ")]
    header, seed0, seed1, mean = rows[0], rows[1], rows[2], rows[3]
    assert header[:3] == ["| base.seed", "TransCAM", "release: camsfg_ambg"] and header[-1] == "no_pcl: cam |"
    assert len(header) == 2 + 4 + 4 + 1
    assert seed0[:3] == ["| 0", "30.0", "20.0"] and seed1[:3] == ["| 1", "31.0", "21.0"]
    assert mean[:3] == ["| mean", "30.5", "20.5"] and mean[-1] == "35.5 |"
    assert json.loads((tmp_path / "c.json").read_text())["1"]["head"]["cam"] == pytest.approx(0.36)


def test_set_params_names_an_unknown_key(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text((ROOT / "params.yaml").read_text())
    bc.set_params(p, {"bao.pcl_grad": "head", "base.seed": 3})
    got = yaml.safe_load(p.read_text())
    assert (got["bao"]["pcl_grad"], got["base"]["seed"]) == ("head", 3)
    with pytest.raises(SystemExit, match="bao.l_pcll"):
        bc.set_params(p, {"bao.l_pcll": 0})
    assert set(bc.CONFIGS["head"]) | set(bc.CONFIGS["no_pcl"]) <= set(
        f"bao.{k}" for k in yaml.safe_load((ROOT / "params.yaml").read_text())["bao"]
    )
