"""Stage prepare_data: the VOC2012 folder (mini-VOC generated, VOC 2012 + SBD downloaded, or an
existing VOC-format dataset, ``data.folder``, linked or copied in).

Output ``<paths.data>`` (VOC layout + train_aug list + cls_labels.json) and ``metrics/data.json``.
"""

from pathlib import Path

from bao.config.data import Data
from bao.core.io import atomic_dir, write_json
from bao.core.pipeline import paths
from bao.core.stage import main
from bao.data import minivoc
from bao.data.prepare import prepare_folder, prepare_voc, validate


def run(params):
    d = params.data
    P = paths()
    info = {}
    with atomic_dir(P.data) as tmp:
        tmp.rmdir()
        if d.source == "folder":
            tmp.mkdir()
            info = prepare_folder(Path(d.folder), tmp)
        elif d.source == "mini":
            m = d.mini
            minivoc.generate(
                tmp, m.num_train, m.num_val, m.num_test, m.num_aug, m.min_side, m.max_side, seed=params.base.seed
            )
        else:
            prepare_voc(tmp, Path(d.download_dir), d.voc_urls, d.voc_md5, d.sbd_urls, d.sbd_md5)
        # a bad file is named in the user's folder (data.folder), not in the copy being built
        source = Path(info["folder"]) if d.source == "folder" else None
        report = validate(tmp, ["train_aug", "train", "val", "test"], params.base.bad_input, source)
    write_json(
        P.metrics.data,
        {
            "source": d.source,
            **info,
            **report["counts"],
            "skipped": len(report["skipped"]),
            "skipped_files": report["skipped"],
        },
    )


if __name__ == "__main__":
    main(run, "prepare_data", [Data])
