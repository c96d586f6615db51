"""Stage check_params: every parameter checked before any stage runs (and before DVC deletes any
stage's outputs): keys known (``+``-added ones included), values in range, and with ``data.source:
folder`` the folder there in the VOC layout (``coco``: a COCO 2014 tree). It tracks all of params.yaml, so it re-runs on every
change; every other stage depends on its output, whose text never changes, so a valid change re-runs
only the stages that read the changed keys. A bad value fails here in seconds with a one-line error.

Output ``<paths.params_checked>``.
"""

from pathlib import Path

from bao.config.schema import load_params
from bao.core.classes import VOC
from bao.core.errors import DataError, ParamsError
from bao.core.io import write_text
from bao.core.launch import processes
from bao.core.pipeline import paths
from bao.core.stage import main
from bao.data.prepare import check_folder, folder_train_aug, label_space_of

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


# every training stage draws its global batches from train_aug, each split into base.gpus equal slices
# (bao.core.runtime.batch_indices)
BATCHES = ("transcam.batch_size", "bao.batch_size", "psa.batch_size", "deeplab.batch_size", "seco.batch_size")


def training_images(data, voc: Path | None) -> tuple[int, str] | None:
    """train_aug's size, known before any stage runs, and what sets it (``voc``: data.folder's VOC root);
    None for VOC (10,582)."""
    if data.source == "mini":
        return data.mini.num_train + data.mini.num_aug, "data.mini.num_train + data.mini.num_aug"
    if data.source == "folder":
        return len(folder_train_aug(voc)), f"train_aug of data.folder {data.folder}"
    return None


def check_batches(params, voc: Path | None) -> None:
    """Every training stage's batch fits the training split and splits over the processes ``base.gpus``
    gives on this machine: a bad size fails here, naming the parameter, not hours later in the stage
    after DVC deleted its outputs."""
    world = processes(params.base.gpus, params.base.device)
    known = training_images(params.data, voc)
    for key in BATCHES:
        section, name = key.split(".")
        size = getattr(getattr(params, section), name)
        if size % world:
            raise ParamsError(
                f"base.gpus: {world} processes cannot split {key} = {size} into equal slices "
                "(set base.gpus to a divisor of every training stage's batch size)"
            )
        if known is not None and size > known[0]:
            raise ParamsError(
                f"{key}: {size} is more than the {known[0]} training images ({known[1]}); set {key} to at most "
                f"{known[0]} or give more images"
            )


def check_coco_folder(coco_dir: Path) -> None:
    """data.folder with data.source: coco is an extracted COCO 2014 tree."""
    from bao.data.coco import SPLITS, annotation_file

    for year in SPLITS.values():
        for need in (coco_dir / year, annotation_file(coco_dir, year)):
            if not need.exists():
                raise DataError(f"{need}: required in a COCO 2014 tree (data.folder, data.source: coco) but missing")


def check_label_space(params) -> None:
    """What depends on the label space (``data.classes`` or the folder's ``classes.txt``) fits it."""
    space = label_space_of(params.data)
    n_labels = params.masks.crf.n_labels
    if n_labels is not None and n_labels < space.n:
        raise ParamsError(
            f"masks.crf.n_labels: {n_labels} labels cannot hold the {space.n} classes of the label space "
            f"(data.classes); set it to at least {space.n}, or null (the seed's own labels)"
        )
    if params.transcam.released and space != VOC:
        raise ParamsError(
            f"transcam.released: TransCAM's published classifier knows VOC's 20 classes, not the label space's "
            f"{space.n - 1} (data.classes); set transcam.released: null to train it"
        )


def run(params):
    params = load_params()  # every section: unknown keys and bad values are errors
    voc = check_folder(Path(params.data.folder)) if params.data.source == "folder" else None
    if params.data.source == "coco" and params.data.folder:
        check_coco_folder(Path(params.data.folder))
    check_local_weights(params)
    check_batches(params, voc)
    check_label_space(params)
    write_text(paths().params_checked, "params.yaml: checked\n")


if __name__ == "__main__":
    main(run, "check_params")
