"""BAO vs TransCAM over several values of ``base.seed``: mean ± sd of the headline comparisons, from
the DVC experiments that ran them (README "Variance over seeds").

    dvc exp run --queue -S 'base.seed=range(1,5)' evaluate evaluate_transcam   # seeds 1-4 (0: the commit)
    dvc queue start -j 1                              # then wait: dvc queue status
    python -m scripts.seed_variance                   # -> metrics/seed_variance.{json,md}

The newest of the last ``--commits`` commits that has experiments is used (experiments belong to the
commit they were queued on; later commits that only touch docs have none), with every experiment
of it whose params differ from the commit's only in ``base.seed`` (one per seed; the newest when a
seed ran twice); the commit itself is one more seed. On mini-VOC ``base.seed`` also
draws the dataset, so the spread covers data and training. The lead of BAO over TransCAM is given per
seed, as mean ± sd, and is said to exceed the spread (in BAO's favour or TransCAM's) when its mean is
more than two standard errors of the per-seed differences (a paired comparison).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

from bao.core.io import write_json, write_text

ROOT = Path(__file__).resolve().parents[1]

# (row, TransCAM metric file, BAO metric file): seed at TransCAM's best threshold vs BAO's
# threshold-free seed; TransCAM's PSA + CRF mask vs BAO's CRF mask; both DeepLab models on val
ROWS = (
    ("seed", "metrics/transcam_seed.json", "metrics/seed.json"),
    ("mask", "metrics/transcam_mask.json", "metrics/mask.json"),
    ("val", "metrics/transcam_segmentation.json", "metrics/segmentation.json"),
)


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in (d or {}).items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def runs(show: list) -> list[dict]:
    """(params, metrics, timestamp) of the newest commit with experiments and of each of them, from
    ``dvc exp show --json``."""

    def record(r):
        data = r.get("data") or {}
        params = flatten(((data.get("params") or {}).get("params.yaml") or {}).get("data"))
        metrics = {f: (m or {}).get("data") for f, m in (data.get("metrics") or {}).items()}
        return {
            "name": r.get("name") or r.get("rev", "")[:7],
            "params": params,
            "metrics": metrics,
            "timestamp": data.get("timestamp") or "",
        }

    for commit in show:
        if commit.get("rev") == "workspace" or not commit.get("experiments"):
            continue
        out = [record(commit)]
        for exp in commit["experiments"]:
            for r in exp.get("revs") or []:
                # a running experiment shows its live workspace (the commit's metrics until overwritten)
                if not r.get("error") and (r.get("data") or {}).get("rev") != "workspace":
                    out.append(record(r))
        return out
    return []


def per_seed(records: list[dict]) -> dict[int, dict]:
    """One record per base.seed among those that differ from the first (the commit) only in base.seed."""
    if not records:
        raise SystemExit("no experiments found: run the commands in this script's docstring first")
    ref = {k: v for k, v in records[0]["params"].items() if k != "base.seed"}
    chosen: dict[int, dict] = {}
    for r in sorted(records, key=lambda r: r["timestamp"]):
        p = r["params"]
        if {k: v for k, v in p.items() if k != "base.seed"} != ref:
            continue
        if all((r["metrics"].get(f) or {}).get("miou") is not None for _, a, b in ROWS for f in (a, b)):
            chosen[int(p["base.seed"])] = r
    return dict(sorted(chosen.items()))


def mean_sd(xs: list[float]) -> tuple[float, float]:
    m = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else float("nan")
    return m, sd


def summarise(chosen: dict[int, dict]) -> dict:
    out = {"seeds": list(chosen), "experiments": [r["name"] for r in chosen.values()], "rows": {}}
    for name, transcam_file, bao_file in ROWS:
        t = [100 * r["metrics"][transcam_file]["miou"] for r in chosen.values()]
        b = [100 * r["metrics"][bao_file]["miou"] for r in chosen.values()]
        d = [y - x for x, y in zip(t, b)]
        (tm, ts), (bm, bs), (dm, ds) = mean_sd(t), mean_sd(b), mean_sd(d)
        se = ds / math.sqrt(len(d)) if len(d) > 1 else float("nan")
        out["rows"][name] = {
            "transcam": t,
            "bao": b,
            "lead": d,
            "transcam_mean": tm,
            "transcam_sd": ts,
            "bao_mean": bm,
            "bao_sd": bs,
            "lead_mean": dm,
            "lead_sd": ds,
            # BAO ahead (lead) or behind (deficit) by more than two standard errors
            "lead_exceeds_spread": bool(len(d) > 1 and dm > 2 * se),
            "deficit_exceeds_spread": bool(len(d) > 1 and -dm > 2 * se),
            "bao_ahead_in": sum(x > 0 for x in d),
        }
    return out


def verdict(r: dict) -> str:
    return "BAO ahead" if r["lead_exceeds_spread"] else "TransCAM ahead" if r["deficit_exceeds_spread"] else "no"


def table(s: dict) -> str:
    n = len(s["seeds"])
    lines = [
        f"mIoU % over base.seed = {', '.join(map(str, s['seeds']))} (n = {n}; mean ± sd):",
        "",
        "| | TransCAM | BAO | BAO − TransCAM | BAO ahead | beyond the spread |",
        "|---|---|---|---|---|---|",
    ]
    names = {
        "seed": "Seed (TransCAM at its best threshold; BAO threshold-free)",
        "mask": "Mask (TransCAM: PSA + CRF; BAO: CRF)",
        "val": "DeepLab val",
    }
    for k, r in s["rows"].items():
        lines.append(
            f"| {names[k]} | {r['transcam_mean']:.1f} ± {r['transcam_sd']:.1f} | {r['bao_mean']:.1f} ± "
            f"{r['bao_sd']:.1f} | {r['lead_mean']:+.1f} ± {r['lead_sd']:.1f} | {r['bao_ahead_in']}/{n} | "
            f"{verdict(r)} |"
        )
    lines += [
        "",
        "Per seed (TransCAM / BAO): "
        + "; ".join(
            f"{seed}: " + ", ".join(f"{k} {r['transcam'][i]:.1f}/{r['bao'][i]:.1f}" for k, r in s["rows"].items())
            for i, seed in enumerate(s["seeds"])
        ),
        "",
        "'beyond the spread': whether the mean paired difference exceeds two standard errors of the "
        "differences, and for whom ('BAO ahead', 'TransCAM ahead') or 'no'.",
    ]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", default="metrics/seed_variance.json")
    ap.add_argument("--md", default="metrics/seed_variance.md")
    ap.add_argument("--show", help="a saved `dvc exp show --json` (default: run it)")
    ap.add_argument("--commits", type=int, default=10, help="how many recent commits to look through")
    a = ap.parse_args()
    if a.show:
        show = json.loads(Path(a.show).read_text())
    else:
        show = json.loads(
            subprocess.run(
                [sys.executable, "-m", "dvc", "exp", "show", "--json", "-n", str(a.commits)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
    s = summarise(per_seed(runs(show)))
    write_json(ROOT / a.json, s)
    write_text(ROOT / a.md, table(s))
    print(table(s))


if __name__ == "__main__":
    main()
