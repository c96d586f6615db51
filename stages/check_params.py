"""Stage check_params: every parameter checked before any stage runs (and before DVC deletes any
stage's outputs): keys known (``+``-added ones included), values in range, and with ``data.source:
folder`` the folder there in the VOC layout. It tracks all of params.yaml, so it re-runs on every
change; every other stage depends on its output, whose text never changes, so a valid change re-runs
only the stages that read the changed keys. A bad value fails here in seconds with a one-line error.

Output ``<paths.params_checked>``.
"""
import sys
from pathlib import Path

# this checkout's bao, whatever is installed (DVC's temporary and queued workspaces, second clones)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bao.data.prepare import check_folder
from bao.io import write_text
from bao.pipeline import paths
from bao.stage import main


def run(params):  # main() has parsed params.yaml: unknown keys and bad values are already errors
    if params.data.source == "folder":
        check_folder(Path(params.data.folder))
    write_text(paths().params_checked, "params.yaml: checked\n")


if __name__ == "__main__":
    main(run, "check_params")
