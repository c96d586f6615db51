"""Stage check_params: every parameter checked before any stage runs (and before DVC deletes any
stage's outputs): keys known (``+``-added ones included), values in range, and with ``data.source:
folder`` the folder there in the VOC layout. It tracks all of params.yaml, so it re-runs on every
change; every other stage depends on its output, whose text never changes, so a valid change re-runs
only the stages that read the changed keys. A bad value fails here in seconds with a one-line error.

Output ``<paths.params_checked>``.
"""

from pathlib import Path

from bao.config.schema import load_params
from bao.core.io import write_text
from bao.core.pipeline import paths
from bao.core.stage import main
from bao.data.prepare import check_folder


def run(params):
    params = load_params()  # every section: unknown keys and bad values are errors
    if params.data.source == "folder":
        check_folder(Path(params.data.folder))
    write_text(paths().params_checked, "params.yaml: checked\n")


if __name__ == "__main__":
    main(run, "check_params")
