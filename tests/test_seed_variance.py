"""scripts/seed_variance.py on a hand-made `dvc exp show --json`."""

import json
import subprocess
import sys

from conftest import ROOT


def record(name, seed, t, b, ts, other=0.9):
    files = {
        "metrics/transcam_seed.json": t[0],
        "metrics/seed.json": b[0],
        "metrics/transcam_mask.json": t[1],
        "metrics/mask.json": b[1],
        "metrics/transcam_segmentation.json": t[2],
        "metrics/segmentation.json": b[2],
    }
    return {
        "rev": name,
        "name": name,
        "data": {
            "timestamp": ts,
            "params": {"params.yaml": {"data": {"base": {"seed": seed}, "ema": {"tau": other}}}},
            "metrics": {f: {"data": {"miou": v}} for f, v in files.items()},
        },
    }


def test_mean_sd_and_paired_lead(tmp_path):
    base = record("abc1234", 0, (0.40, 0.50, 0.30), (0.43, 0.52, 0.31), "2026-01-01T00:00:00")
    exps = [
        record(
            f"e{s}",
            s,
            (0.40 + s / 100, 0.5, 0.3),
            (0.43 + s / 100, 0.5 + (s % 2) / 50, 0.29),
            f"2026-01-0{s + 1}T00:00:00",
        )
        for s in range(1, 5)
    ]
    exps.append(record("other", 7, (0.1, 0.1, 0.1), (0.9, 0.9, 0.9), "2026-01-09T00:00:00", other=0.5))  # tau differs
    running = record("run", 5, (0.1, 0.1, 0.1), (0.9, 0.9, 0.9), None)  # still running: its live workspace
    running["data"]["rev"] = "workspace"
    exps.append(running)
    newer = {**record("def5678", 0, (0.1, 0.1, 0.1), (0.1, 0.1, 0.1), "2026-02-01T00:00:00"), "experiments": None}
    show = [
        {"rev": "workspace", "data": {}},
        newer,  # a later docs commit: no experiments of its own
        {**base, "experiments": [{"revs": [e]} for e in exps]},
    ]
    (tmp_path / "show.json").write_text(json.dumps(show))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "scripts.seed_variance",
            "--show",
            str(tmp_path / "show.json"),
            "--json",
            str(tmp_path / "v.json"),
            "--md",
            str(tmp_path / "v.md"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "v.json").read_text())
    assert s["seeds"] == [0, 1, 2, 3, 4]  # the tau experiment is not a seed of this setting, the running one not yet
    seed = s["rows"]["seed"]
    assert abs(seed["lead_mean"] - 3.0) < 1e-9 and seed["lead_sd"] < 1e-9 and seed["lead_exceeds_spread"]
    assert not seed["deficit_exceeds_spread"]
    assert abs(seed["transcam_mean"] - 42.0) < 1e-9 and abs(seed["transcam_sd"] - 1.5811388) < 1e-6
    mask = s["rows"]["mask"]  # leads 2, 0, 2, 0, 2 (seed 0: 0.52 - 0.50)
    assert abs(mask["lead_mean"] - 1.2) < 1e-9 and mask["bao_ahead_in"] == 3
    val = s["rows"]["val"]  # behind at every seed (0.31 vs 0.30 at seed 0 only)
    assert val["bao_ahead_in"] == 1 and abs(val["lead_mean"] - (1 - 4) / 5) < 1e-9
    assert not val["lead_exceeds_spread"]  # a mean deficit is no lead, whatever its size
    assert "| Seed" in (tmp_path / "v.md").read_text()


def test_a_consistent_deficit_is_beyond_the_spread_but_no_lead():
    import importlib.util

    spec = importlib.util.spec_from_file_location("seed_variance", ROOT / "scripts" / "seed_variance.py")
    sv = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sv)

    def run(s):  # BAO 9-10 points behind at every seed
        t, b = 0.40 + s / 100, 0.30 + s / 100 + (s % 2) / 100
        return {
            "name": f"e{s}",
            "metrics": {
                f: {"miou": b if i % 2 else t} for i, f in enumerate(f for _, tf, bf in sv.ROWS for f in (tf, bf))
            },
        }

    chosen = {s: run(s) for s in range(5)}
    s = sv.summarise(chosen)
    seed = s["rows"]["seed"]
    assert seed["lead_mean"] < 0 and seed["deficit_exceeds_spread"] and not seed["lead_exceeds_spread"]
    assert "| TransCAM ahead |" in sv.table(s)
