"""Stage prepare_data: the VOC2012 folder (mini-VOC generated, VOC 2012 + SBD downloaded, or an
existing VOC-format dataset, ``data.folder``, linked or copied in).

Output ``<paths.data>`` (VOC layout + train_aug list + cls_labels.json, and ``classes.txt`` when the label
space is not VOC's: ``data.classes``) and ``metrics/data.json``.
"""

from pathlib import Path

from bao.config.data import Data
from bao.core.classes import VOC, write_label_space
from bao.core.errors import DataError
from bao.core.io import atomic_dir, write_json
from bao.core.pipeline import paths
from bao.core.stage import main
from bao.data import minivoc
from bao.data.coco import COCO, download_coco, prepare_coco
from bao.data.prepare import label_space_of, prepare_folder, prepare_voc, validate
from bao.data.voc import VOCDataset, read_split


def check_every_class_shows(root: Path, space, where: Path) -> list[str]:
    """The classes no training image (train_aug) shows, said on the console. A class of a label space
    the user named (``data.classes``, a ``classes.txt``) that no labelled image shows at all cannot be
    learnt or scored: that fails now, naming it, before any training stage runs. VOC's and COCO's own
    label spaces only warn (a few of their images are a test bed)."""
    labels = VOCDataset(root, "train_aug", masks=None).labels
    shown = {s: {c for i in read_split(root, s) for c in labels.get(i, ())} for s in ("train_aug", "val")}
    untrained = [f"{space.names[c]} ({c})" for c in range(1, space.n) if c not in shown["train_aug"]]
    nowhere = [f"{space.names[c]} ({c})" for c in range(1, space.n) if c not in shown["train_aug"] | shown["val"]]
    if nowhere and space not in (VOC, COCO):
        raise DataError(
            f"{where}: no image shows {', '.join(nowhere)}; remove them from the label space (data.classes, "
            "or the folder's classes.txt) or add images that show them"
        )
    if untrained:
        print(f"warning: no training image (train_aug) shows {', '.join(untrained)}: they cannot be learnt")
    return untrained


def run(params):
    d = params.data
    P = paths()
    info = {}
    space = label_space_of(d)
    with atomic_dir(P.data) as tmp:
        tmp.rmdir()
        if d.source == "folder":
            tmp.mkdir()
            info = prepare_folder(Path(d.folder), tmp, space)
        elif d.source == "mini":
            m = d.mini
            minivoc.generate(
                tmp,
                m.num_train,
                m.num_val,
                m.num_test,
                m.num_aug,
                m.min_side,
                m.max_side,
                seed=params.base.seed,
                space=space,
            )
        elif d.source == "coco":
            tmp.mkdir()
            if d.folder:
                info = prepare_coco(Path(d.folder), tmp)
            else:
                info = download_coco(tmp, Path(d.download_dir), d.coco)
        else:
            prepare_voc(tmp, Path(d.download_dir), d.voc_urls, d.voc_md5, d.sbd_urls, d.sbd_md5)
        if space != VOC:  # read by every stage from here (bao.core.classes); VOC's is the default
            write_label_space(tmp, space)
        # a bad file is named in the user's folder (data.folder), not in the copy being built
        source = Path(info["folder"]) if d.source == "folder" else None
        # COCO's image-level labels come from its annotations (bao.data.coco), the others' from the masks
        report = validate(
            tmp,
            ["train_aug", "train", "val", "test"],
            params.base.bad_input,
            source,
            labels_from_masks=d.source != "coco",
        )
        untrained = check_every_class_shows(tmp, space, source or tmp)
    write_json(
        P.metrics.data,
        {
            "source": d.source,
            **({"classes": list(space.names)} if space != VOC else {}),
            **info,
            **report["counts"],
            "skipped": len(report["skipped"]),
            "skipped_files": report["skipped"],
            **({"classes_without_training_image": untrained} if untrained else {}),
        },
    )


if __name__ == "__main__":
    main(run, "prepare_data", [Data])
