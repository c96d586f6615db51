"""Records what a stage really uses, for the test that checks dvc.yaml against it.

With ``BAO_TRACE_DIR`` set, a stage process (and each of its worker processes) records the project
files it opens (an audit hook on ``open``) and the params keys it reads (``bao.config``), and writes
them to ``$BAO_TRACE_DIR/<stage>.<pid>.json``. Unset, nothing is installed.
"""
from __future__ import annotations

import json
import os
import sys

from bao import config

_opens: dict[str, str] = {}  # project-relative path -> "r" | "w"
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _hook(event, args):
    if event != "open" or not args or not isinstance(args[0], (str, bytes, os.PathLike)):
        return
    path, mode, flags = (list(args) + [None, None])[:3]
    from bao.pipeline import in_repo

    rel = in_repo(os.fsdecode(path))
    if rel is None or rel.endswith((".py", ".pyc")) or "__pycache__" in rel or rel.startswith((".git/", ".dvc/")):
        return
    write = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & _WRITE_FLAGS)
    # the hook runs before the open: a read of what is not a file (an import probing a sys.path entry
    # such as an editable install's path hook, a missing optional file) fails or is caught, so it is no dep
    if not write and not os.path.isfile(path):
        return
    if write or rel not in _opens:
        _opens[rel] = "w" if write else _opens.get(rel, "r")


def install(stage: str | None = None) -> None:
    """Start recording if ``BAO_TRACE_DIR`` is set; ``stage`` names the stage (workers inherit it)."""
    if not os.environ.get("BAO_TRACE_DIR"):
        return
    if stage:
        os.environ["BAO_STAGE"] = stage
    config.record_reads()
    sys.addaudithook(_hook)


def flush() -> None:
    """Write this process's record (called at the end of a stage and of each worker)."""
    folder = os.environ.get("BAO_TRACE_DIR")
    if not folder:
        return
    os.makedirs(folder, exist_ok=True)
    name = f"{os.environ.get('BAO_STAGE', 'unknown')}.{os.getpid()}.json"
    with open(os.path.join(folder, name), "w") as f:
        json.dump({"stage": os.environ.get("BAO_STAGE"), "params": sorted(config.reads()),
                   "opens": _opens}, f, indent=1)
