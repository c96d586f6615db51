"""Entry-point glue of ``stages/*.py``: load and check the params the stage reads, turn known errors
into a one-line message naming the file or parameter, and exit non-zero."""

from __future__ import annotations

import importlib
import os
import sys
import time

from bao.core import kernels
from bao.core.errors import KNOWN
from bao.core.params import load


def hook():
    """The module named by ``BAO_STAGE_HOOK`` (``install(stage)``, ``flush()``), or None: test
    instrumentation (tests/trace_hook.py records what a stage opens and reads) stays out of the
    product; a stage and each of its worker processes call it."""
    name = os.environ.get("BAO_STAGE_HOOK")
    return importlib.import_module(name) if name else None


LAUNCHED = "BAO_LAUNCHED"  # "1" in the processes bao.core.launch starts: their launcher reports for them


def main(run, stage: str, sections=(), params_path: str = "params.yaml", launcher=None) -> None:
    """Run ``run(params)`` as the dvc.yaml stage ``stage`` (``train_bao_share``, ``train_deeplab@bao``);
    ``params`` holds ``base`` and ``sections`` (``bao.config`` Section classes): what the stage reads.
    ``launcher(base) -> n``: a training stage's ``bao.core.launch.launcher``, which runs the stage in n > 1
    processes itself, or returns 1 to run it here."""
    t0 = time.time()
    h = hook()
    world = 1
    try:
        params = load(params_path, sections)
        kernels.pin(params.base.cpu_kernels, params.base.cpu_threads)
        if launcher is not None:
            world = launcher(params.base)
        if world == 1:
            kernels.configure_torch()
            if h:
                h.install(stage)
            run(params)
    except KNOWN as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    finally:
        if h:
            h.flush()
    if os.environ.get(LAUNCHED) != "1":
        print(f"[{stage}] done in {time.time() - t0:.1f}s" + (f" ({world} processes)" if world > 1 else ""))


def main_with_item(
    run, script: str, items, sections=(), stage=None, params_path: str = "params.yaml", launcher=None
) -> None:
    """``python -m stages.<script> ITEM``: run ``run(params, item)`` as the stage ``stage(item)``
    (default ``<script>@ITEM``, a foreach item of dvc.yaml)."""
    if len(sys.argv) != 2 or sys.argv[1] not in items:
        sys.exit(f"usage: python -m stages.{script} {{{','.join(items)}}}")
    item = sys.argv[1]
    main(lambda p: run(p, item), stage(item) if stage else f"{script}@{item}", sections, params_path, launcher)
