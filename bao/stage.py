"""Entry-point glue shared by ``stages/*.py``: load and validate params, turn known errors into a
one-line message naming the file or parameter, and exit non-zero."""
from __future__ import annotations

import sys
import time

from bao import trace
from bao.config import load_params
from bao.errors import KNOWN


def main(run, stage: str, params_path: str = "params.yaml") -> None:
    """Run ``run(params)`` as the dvc.yaml stage ``stage`` (``train_bao_share``, ``train_deeplab@bao``)."""
    t0 = time.time()
    try:
        params = load_params(params_path)
        trace.install(stage)
        run(params)
    except KNOWN as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    finally:
        trace.flush()
    print(f"[{stage}] done in {time.time() - t0:.1f}s")


def main_with_item(run, script: str, items, stage=None, params_path: str = "params.yaml") -> None:
    """``python stages/<script>.py ITEM``: run ``run(params, item)`` as the stage ``stage(item)``
    (default ``<script>@ITEM``, a foreach item of dvc.yaml)."""
    if len(sys.argv) != 2 or sys.argv[1] not in items:
        sys.exit(f"usage: python stages/{script}.py {{{','.join(items)}}}")
    item = sys.argv[1]
    main(lambda p: run(p, item), stage(item) if stage else f"{script}@{item}", params_path)
