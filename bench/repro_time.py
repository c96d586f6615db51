"""Wall time of each stage of the pipeline (forced, in DAG order): `dvc repro -f -s <stage>`.

    python -m bench.repro_time [--json out] [--skip pretrain ...]

`--skip` leaves a stage out (e.g. `pretrain`, whose output a clone finds current).
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from bench.common import print_table


def stage_order() -> list[str]:
    import networkx as nx
    from dvc.repo import Repo

    g = Repo(".").index.graph  # edges point from a stage to the stages it depends on
    return [s.addressing for s in reversed(list(nx.topological_sort(g)))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    ap.add_argument("--skip", nargs="*", default=[], help="stages not to time")
    a = ap.parse_args()
    rows, total = [], 0.0
    for name in stage_order():
        if name in a.skip:
            continue
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "dvc", "repro", "-f", "-s", name], capture_output=True, text=True)
        dt = time.perf_counter() - t
        if r.returncode:
            sys.exit(f"{name} failed after {dt:.1f}s:\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
        print(f"{name}: {dt:.1f}s", flush=True)
        total += dt
        rows.append({"stage": name, "seconds": round(dt, 1)})
    rows.append({"stage": "total", "seconds": round(total, 1)})
    print_table(rows, "dvc repro wall time per stage")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
