"""Records what a stage really uses, for the test that checks dvc.yaml against it (test instrumentation:
no product module imports it).

The end-to-end test runs the pipeline with ``BAO_STAGE_HOOK=trace_hook``, ``PYTHONPATH=tests`` and
``BAO_TRACE_DIR`` set; ``bao.core.stage.hook`` then imports this module in a stage process and in each
of its worker processes, which record the project files they open (an audit hook on ``open``) and the
params keys they read (``bao.core.params.reads``), and write them to ``$BAO_TRACE_DIR/<stage>.<pid>.json``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

_opens: dict[str, str] = {}  # project-relative path -> "r" | "w"
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def in_repo(path) -> str | None:
    """``path`` relative to the project root (the working directory), or None outside it."""
    try:
        return Path(os.path.abspath(path)).relative_to(Path.cwd()).as_posix()
    except ValueError:
        return None


def _hook(event, args):
    if event != "open" or not args or not isinstance(args[0], (str, bytes, os.PathLike)):
        return
    path, mode, flags = (list(args) + [None, None])[:3]
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
    sys.addaudithook(_hook)


def flush() -> None:
    """Write this process's record (called at the end of a stage and of each worker)."""
    folder = os.environ.get("BAO_TRACE_DIR")
    if not folder:
        return
    os.makedirs(folder, exist_ok=True)
    name = f"{os.environ.get('BAO_STAGE', 'unknown')}.{os.getpid()}.json"
    with open(os.path.join(folder, name), "w") as f:
        json.dump(
            {"stage": os.environ.get("BAO_STAGE"), "params": sorted(_param_reads()), "opens": _opens}, f, indent=1
        )


def _param_reads() -> set[str]:
    params = sys.modules.get("bao.core.params")  # the stage's own checkout's module, if it loaded params
    return params.reads() if params else set()
