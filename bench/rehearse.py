"""The paper setting, rehearsed without DVC (for a machine that has no DVC, such as the GPU box of
bench/gpu.sh): compose conf/config.yaml + experiment/paper.yaml + rehearsal/<name>.yaml as Hydra does,
run every stage script of dvc.yaml in order in a work folder, and print, from the ``[timing]`` lines
the stages write (seconds per training step, per image), each stage's estimated hours at the paper's
counts and the total.

    python -m bench.rehearse --rehearsal gpu --folder /data/small/VOCdevkit --work /tmp/rehearsal [--json out]

The stage code is the same as under ``dvc exp run -S +experiment=paper -S +rehearsal=cpu`` (the CI
rehearsal); only the orchestration differs.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from bench.common import print_table

ROOT = Path(__file__).resolve().parents[1]

# the paper run's counts (docs/method.md §7): images, and the steps the recipes imply; COCO 2014's
# (experiment=coco, docs/method.md §8.2): the annotated images, train = train_aug, no test split
PAPER = {"train_aug": 10582, "train": 1464, "val": 1449, "test": 1456}
COCO = {"train_aug": 82081, "train": 82081, "val": 40137, "test": 0}


def counts(p: dict) -> dict:
    """The image counts of the dataset a composed setting runs on."""
    return COCO if p["data"]["source"] == "coco" else PAPER


def merge(base: dict, over: dict) -> dict:
    """Hydra's merge for these files: mappings merge key by key, anything else replaces."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _layers(group: str, name: str) -> list[dict]:
    """A config file of ``conf/<group>`` after the ones its ``defaults`` list names (in its group)."""
    doc = yaml.safe_load((ROOT / "conf" / group / f"{name}.yaml").read_text())
    below = [d for d in doc.pop("defaults", []) if d != "_self_"]
    return [layer for d in below for layer in _layers(group, d)] + [doc]


def compose(rehearsal: str | None, experiment: str = "paper") -> dict:
    """conf/config.yaml + experiment/<experiment>.yaml (+ rehearsal/<name>.yaml)."""
    p = yaml.safe_load((ROOT / "conf" / "config.yaml").read_text())
    for layer in _layers("experiment", experiment) + (_layers("rehearsal", rehearsal) if rehearsal else []):
        p = merge(p, layer)
    return p


def paper_units(stage: str, p: dict) -> tuple[str, float]:
    """(what one timed unit is, how many the paper run has)."""
    steps = lambda n, b: n // b  # noqa: E731 (drop_last)
    PAPER = counts(p)  # noqa: N806 (the counts of p's dataset)
    if stage == "train_transcam":
        return "step", p["transcam"]["epochs"] * steps(PAPER["train_aug"], p["transcam"]["batch_size"])
    if stage.startswith("train_bao_"):
        return "step", p["bao"]["epochs"] * steps(PAPER["train_aug"], p["bao"]["batch_size"])
    if stage.startswith("train_deeplab"):
        return "step", p["deeplab"]["iterations"]
    if stage == "train_affinity":
        return "step", p["psa"]["epochs"] * steps(PAPER["train_aug"], p["psa"]["batch_size"])
    if stage == "train_seco":
        return "step", p["seco"]["iterations"]
    if stage == "make_seco_labels":
        return "image", PAPER["train"]
    if stage == "evaluate_seco":
        return "image", PAPER["val"]
    if stage == "evaluate":
        return "image", PAPER["val"] + PAPER["test"]
    if stage == "evaluate_transcam":
        return "image", PAPER["val"]
    return "image", PAPER["train_aug"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rehearsal", default="gpu")
    ap.add_argument("--folder", required=True, help="a small VOC-format folder (scripts/other_voc.py)")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--json")
    a = ap.parse_args()
    from bao.core.pipeline import declared_params, paths, resolve, stage_names
    from bao.data.voc import read_split

    p = compose(a.rehearsal)
    p["data"]["folder"] = str(Path(a.folder).resolve())
    paper = compose(None)  # the counts to estimate for
    if a.work.exists():
        shutil.rmtree(a.work)
    a.work.mkdir(parents=True)
    shutil.copy(ROOT / "dvc.yaml", a.work / "dvc.yaml")
    for d in ("stages", "bao"):  # the project layout, as in a clone: resume keys hash the stage's code
        shutil.copytree(ROOT / d, a.work / d, ignore=shutil.ignore_patterns("__pycache__"))
    (a.work / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    env = {**os.environ, "PYTHONPATH": str(a.work), "PYTHONUNBUFFERED": "1"}
    os.chdir(a.work)
    rows, total = [], 0.0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    for stage in stage_names(p):
        cmd = resolve(stage, p)["cmd"].split()
        cmd = [sys.executable if c == "python" else c for c in cmd]
        t0 = time.perf_counter()
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if r.returncode:
            print(r.stdout[-3000:], r.stderr[-3000:])
            raise SystemExit(f"{stage} failed")
        timing = [line for line in r.stdout.splitlines() if line.startswith("[timing]")]
        unit, n = paper_units(stage, paper)
        hours, rates = None, []
        for line in timing:
            f = dict(re.findall(r"(\w+)=([\d.\s]+?)(?= \w+=|$)", line))
            per = float(f["seconds"]) / float(f.get("steps") or f.get("images"))
            if "images" in f:
                rates.append(f"{1 / per:.2f}")
            hours = (hours or 0) + per * n / 3600
            if "eval_seconds" in f and f["eval_seconds"].strip():
                evals = [float(x) for x in f["eval_seconds"].split()]
                n_train = len(read_split(paths().data, "train"))
                if stage == "train_seco":  # the seed scored on train after each pass over train_aug
                    s = paper["seco"]
                    n_passes = -(-s["iterations"] // (PAPER["train_aug"] // s["batch_size"]))
                    hours += sum(evals) / len(evals) / n_train * PAPER["train"] * n_passes / 3600
                else:  # Figure 4's scoring per train image: the quick protocol at epochs 0..n-1, the full one last
                    per_image = (evals[0] * paper["bao"]["epochs"] + evals[-1]) / n_train
                    hours += per_image * PAPER["train"] / 3600
        rows.append(
            {
                "stage": stage,
                "rehearsal s": round(wall, 1),
                "timed": "; ".join(t.split(": ", 1)[1] for t in timing),
                "paper units": f"{n} {unit}s" if timing else "-",
                "est. hours": round(hours, 2) if hours is not None else "-",
                # the dense CRFs run on base.crf_workers processes (auto: every core), beside the GPU work
                f"images/s ({cores} cores)": "/".join(rates) or "-",
                "CRF": "yes" if "base.crf_workers" in declared_params(stage, p) else "",
            }
        )
        total += hours or 0.0
    rows.append(
        {
            "stage": "total",
            "rehearsal s": round(sum(r["rehearsal s"] for r in rows), 1),
            "timed": "",
            "paper units": "",
            "est. hours": round(total, 2),
            f"images/s ({cores} cores)": "",
            "CRF": "",
        }
    )
    print_table(rows, f"Paper setting: rehearsal '{a.rehearsal}' and estimated hours at the paper's counts")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
