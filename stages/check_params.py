"""Stage check_params: every parameter checked before any stage runs (and before DVC deletes any
stage's outputs): keys known (``+``-added ones included), values in range, and with ``data.source:
folder`` the folder there in the VOC layout. It tracks all of params.yaml, so it re-runs on every
change; every other stage depends on its output, whose text never changes, so a valid change re-runs
only the stages that read the changed keys. A bad value fails here in seconds with a one-line error.

Output ``<paths.params_checked>``.
"""

from pathlib import Path

from bao.config.schema import load_params
from bao.core.errors import ParamsError
from bao.core.io import write_text
from bao.core.pipeline import paths
from bao.core.stage import main
from bao.data.prepare import check_folder

# the checkpoints the get_*_weights stages fetch: a path, an https URL or gdrive://<id>
WEIGHTS = ("model.pretrained", "transcam.released", "psa.pretrained", "deeplab.pretrained", "seco.pretrained")


def check_local_weights(params) -> None:
    """A local checkpoint must exist now, not when its stage runs hours later; the pipeline's own
    pretraining outputs (the mini defaults) are made by their stages."""
    P = paths()
    made = {Path(P.pretrain).resolve(), Path(P.pretrain_vit).resolve()}
    for key in WEIGHTS:
        section, name = key.split(".")
        source = getattr(getattr(params, section), name)
        if not source or source.startswith(("http://", "https://", "gdrive://")):
            continue
        path = Path(source)
        if not path.exists() and path.resolve().parent not in made:
            raise ParamsError(
                f"{key}: {source}: no such file (give an existing checkpoint, an https URL or gdrive://<id>)"
            )


def run(params):
    params = load_params()  # every section: unknown keys and bad values are errors
    if params.data.source == "folder":
        check_folder(Path(params.data.folder))
    check_local_weights(params)
    write_text(paths().params_checked, "params.yaml: checked\n")


if __name__ == "__main__":
    main(run, "check_params")
