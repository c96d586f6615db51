"""Which of BAO's components gain or lose seed points: the Share+EMA target trained three ways from the
same TransCAM start, for each given run (docs/results.md "Which component loses the points").

    python -m scripts.bao_components REV [REV ...]     # -> metrics/bao_components.{json,md}

Each REV is a commit or experiment (e.g. the five-seed experiments of scripts/seed_variance.py) whose
TransCAM checkpoint (``models/transcam``) is in DVC's cache. For each REV, in a temporary copy of this
working tree with the REV's ``base.seed`` (mini-VOC is drawn again from it), ``train_bao share+ema`` and
``make_seeds`` run three times:

* ``release``: eq. 8 as the release trains it (``bao.l_pcl`` 1, ``bao.pcl_grad: all``);
* ``head``: ``bao.pcl_grad: head``: L_pcl trains the AM branch only, the backbone learns from L_cls alone;
* ``no_pcl``: ``bao.l_pcl: 0``: no activation map is learnt (its readouts are meaningless; ``cam`` is
  eq. 6 on the target's CAM; the backbone is the same as with ``head``).

Every readout of the target is reported (``metrics/seed_ablation.json``: ``camsfg_ambg`` is BAO's seed),
beside the REV's TransCAM seed at its best threshold; the json also keeps the per-epoch ``cam`` and
``camsfg_ambg`` curves of each training. Two runs at a time, one thread each
(``--threads``): the numbers depend on the thread count like every CPU training here.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import yaml

from bao.core.io import write_json, write_text

ROOT = Path(__file__).resolve().parents[1]

CONFIGS = {"release": {}, "head": {"bao.pcl_grad": "head"}, "no_pcl": {"bao.l_pcl": 0.0}}
READOUTS = ("camsfg_ambg", "cam", "am_bg", "am")


def git_show(rev: str, path: str) -> str:
    return subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True, capture_output=True, text=True).stdout


def cached_dir(md5: str) -> list[tuple[str, Path]]:
    """(relpath, cache file) of a DVC directory output, from this repository's cache."""
    cache = ROOT / ".dvc" / "cache" / "files" / "md5"
    listing = cache / md5[:2] / md5[2:]
    if not listing.exists():
        raise SystemExit(f"DVC cache: {md5} (models/transcam) is not in {cache}; `dvc pull` or re-run it")
    return [(e["relpath"], cache / e["md5"][:2] / e["md5"][2:]) for e in json.loads(listing.read_text())]


def set_params(path: Path, changes: dict) -> None:
    p = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        node = p
        *parents, last = key.split(".")
        for q in parents:
            node = node[q]
        if last not in node:
            raise SystemExit(f"params.yaml: no key {key}")
        node[last] = value
    path.write_text(yaml.safe_dump(p, sort_keys=False))


def run_one(rev: str, seed: int, transcam: list, config: str, threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    with tempfile.TemporaryDirectory(prefix=f"bao_components_{config}_") as tmp:
        work = Path(tmp)
        files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
        for rel in filter(None, files.decode().split("\0")):
            if not (ROOT / rel).exists():  # an output a running stage has removed (not read here)
                continue
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, work / rel)
        set_params(work / "params.yaml", {"base.seed": seed, **CONFIGS[config]})
        out = work / "models" / "transcam"
        out.mkdir(parents=True, exist_ok=True)
        for rel, src in transcam:
            shutil.copyfile(src, out / rel)
        for cmd in (["check_params"], ["prepare_data"], ["train_bao", "share+ema"], ["make_seeds"]):
            # stages run as modules since the layered layout; a revision before it runs them as scripts
            name = ["-m", f"stages.{cmd[0]}"] if (work / "stages" / "__init__.py").exists() else [f"stages/{cmd[0]}.py"]
            cmd = [*name, *cmd[1:]]
            r = subprocess.run([sys.executable, *cmd], cwd=work, env=env, capture_output=True, text=True)
            if r.returncode:
                raise SystemExit(f"{rev} {config}: {' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
        miou = json.loads((work / "metrics" / "seed_ablation.json").read_text())["miou"]
        # the per-epoch curves of the training (at bao.epoch_eval_scales), as Figure 4 logs them
        curve = pd.read_csv(work / "metrics" / "bao" / "share+ema.csv")
        return {
            **miou,
            "per_epoch": {
                c: [None if pd.isna(v) else round(v, 4) for v in curve[f"miou_{c}"]] for c in ("cam", "camsfg_ambg")
            },
        }  # epoch 0: no AM yet (None)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("revs", nargs="+", help="commits or experiments with models/transcam in DVC's cache")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default="metrics/bao_components")
    a = ap.parse_args(argv)
    runs = []
    for rev in a.revs:
        seed = yaml.safe_load(git_show(rev, "params.yaml"))["base"]["seed"]
        lock = yaml.safe_load(git_show(rev, "dvc.lock"))["stages"]["train_transcam"]["outs"]
        md5 = next(o["md5"] for o in lock if o["path"] == "models/transcam")
        transcam_seed = json.loads(git_show(rev, "metrics/transcam_seed.json"))["miou"]
        runs.append((rev, seed, cached_dir(md5), transcam_seed))
    jobs = [(r, c) for r in runs for c in CONFIGS]
    with ThreadPoolExecutor(a.jobs) as pool:
        res = list(pool.map(lambda j: run_one(j[0][0], j[0][1], j[0][2], j[1], a.threads), jobs))
    table = {}
    for (run, config), miou in zip(jobs, res):
        table.setdefault(run[1], {"rev": run[0], "transcam_seed": run[3]})[config] = miou
    print(write_table(table, a.out, a.threads))


def write_table(table: dict, out: str, threads: int) -> str:
    """metrics/bao_components.{json,md}: per base.seed, TransCAM's seed and every readout of each config."""
    write_json(Path(out + ".json"), table)
    shown = [(c, r) for c in CONFIGS for r in READOUTS if not (c == "no_pcl" and r != "cam")]
    lines = [
        f"BAO's Share+EMA target trained three ways from each seed's TransCAM start (`python "
        f"scripts/bao_components.py`, {threads} thread(s) per run); seed mIoU % on train, full protocol. "
        "`camsfg_ambg` is BAO's seed; `cam` is eq. 6 on the target's CAM. TransCAM: its seed at the best "
        "threshold.",
        "",
        "| base.seed | TransCAM | " + " | ".join(f"{c}: {r}" for c, r in shown) + " |",
        "|---" * (2 + len(shown)) + "|",
    ]
    for seed in sorted(table):
        t = table[seed]
        lines.append(
            f"| {seed} | {t['transcam_seed'] * 100:.1f} | "
            + " | ".join(f"{t[c][r] * 100:.1f}" for c, r in shown)
            + " |"
        )
    n = len(table)
    mean = lambda f: sum(f(t) for t in table.values()) / n * 100  # noqa: E731
    lines.append(
        f"| mean | {mean(lambda t: t['transcam_seed']):.1f} | "
        + " | ".join(f"{mean(lambda t: t[c][r]):.1f}" for c, r in shown)
        + " |"
    )
    text = "\n".join(lines) + "\n"
    write_text(Path(out + ".md"), text)
    return text


if __name__ == "__main__":
    main()
