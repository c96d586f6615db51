"""Wall time of each stage of the pipeline (forced, in DAG order): `dvc repro -f -s <stage>`.

    python bench/repro_time.py [--json out]
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import print_table  # noqa: E402


def stage_order() -> list[str]:
    import networkx as nx
    from dvc.repo import Repo

    g = Repo(".").index.graph  # edges point from a stage to the stages it depends on
    return [s.addressing for s in reversed(list(nx.topological_sort(g)))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    a = ap.parse_args()
    rows, total = [], 0.0
    for name in stage_order():
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "dvc", "repro", "-f", "-s", name], check=True, capture_output=True)
        dt = time.perf_counter() - t
        total += dt
        rows.append({"stage": name, "seconds": round(dt, 1)})
    rows.append({"stage": "total", "seconds": round(total, 1)})
    print_table(rows, "dvc repro wall time per stage")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
