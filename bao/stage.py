"""Entry-point glue shared by ``stages/*.py``: load and validate params, turn known errors into a
one-line message naming the file or parameter, and exit non-zero."""
from __future__ import annotations

import sys
import time

from bao.config import ParamsError, load_params


def main(run, params_path: str = "params.yaml") -> None:
    from bao.data.prepare import DownloadError
    from bao.data.voc import DataError
    from bao.models.weights import CheckpointError

    t0 = time.time()
    try:
        params = load_params(params_path)
        run(params)
    except (ParamsError, DataError, DownloadError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"[{run.__module__}] done in {time.time() - t0:.1f}s")
