"""Back to a commit's pipeline state, emptying nothing it cannot restore.

    python -m scripts.restore [REV]        # REV: a commit (default HEAD); an experiment: dvc exp apply NAME

1. ``params.yaml``, ``dvc.lock`` and the outputs kept in git (``metrics/``, ``plots/``, ...) are taken
   from REV; code and every other file stay as they are.
2. Each output kept in DVC's cache is checked out when REV's version of it is in the cache. One that
   is not (a result of another machine that was never pulled, or a cache cleared since) keeps the
   files it has, and is named: ``dvc pull`` (from a remote that holds it) or ``dvc repro`` brings it
   back. ``dvc checkout`` alone would delete it.

Afterwards ``dvc status`` lists exactly those outputs (nothing, when the cache held everything).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

DVC = [sys.executable, "-m", "dvc"]


def git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout


def outputs() -> tuple[list[str], list[str]]:
    """The outputs of dvc.yaml's stages: (kept in DVC's cache, kept in git). dvc.lock alone would not
    do: it keeps the entries of stages since removed from dvc.yaml."""
    from dvc.repo import Repo

    with Repo(".") as repo:
        outs = [o for stage in repo.index.stages for o in stage.outs]
    return sorted({str(o.def_path) for o in outs if o.use_cache}), sorted(
        {str(o.def_path) for o in outs if not o.use_cache}
    )


def not_in_cache() -> set[str]:
    """Outputs whose locked version DVC's cache does not hold (``dvc status``'s "not in cache")."""
    r = subprocess.run([*DVC, "status", "--json"], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"dvc status failed:\n{r.stderr}")
    missing = set()
    for entries in json.loads(r.stdout or "{}").values():
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict):
                missing |= {p for p, s in entry.get("changed outs", {}).items() if s == "not in cache"}
    return missing


def restore(rev: str = "HEAD") -> list[str]:
    """Restore REV's state; returns the cached outputs left as they were (not in the cache)."""
    rev = git("rev-parse", "--verify", f"{rev}^{{commit}}").strip() if rev else "HEAD"
    cached, uncached = outputs()
    in_git = [p for p in uncached if git("ls-tree", "-r", "--name-only", rev, "--", p).strip()]
    paths = ["params.yaml", "dvc.lock", *in_git]
    # drop their index entries first: after a failed `dvc exp run` the index can hold the commit's
    # blob with the stat of the changed file, and checkout would then skip writing it
    git("rm", "-r", "-q", "--cached", "--ignore-unmatch", "--", *paths)
    git("checkout", rev, "--", *paths)
    missing = not_in_cache()
    restorable = [p for p in cached if p not in missing]
    if restorable:
        subprocess.run([*DVC, "checkout", "--quiet", *restorable], check=True)
    return sorted(missing)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rev", nargs="?", default="HEAD", help="a commit (default HEAD)")
    rev = ap.parse_args().rev
    kept = restore(rev)
    print(
        f"params.yaml, dvc.lock, the outputs in git and {'every' if not kept else 'the other'} cached output: as in {rev}"
    )
    if kept:
        print(f"kept as they were ({rev}'s version is not in DVC's cache): " + ", ".join(kept))
        print("  `dvc pull` (from a remote that holds them) or `dvc repro` brings them back")


if __name__ == "__main__":
    main()
