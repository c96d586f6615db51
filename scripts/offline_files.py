"""Every file a setting downloads (the VOC and SBD archives, each published checkpoint), with its name,
md5, where to put it on a machine with no network, and whether it is there already.

    python -m scripts.offline_files                    # the paper setting (conf/experiment/paper.yaml)
    python -m scripts.offline_files --experiment coco  # MS COCO 2014 (conf/experiment/coco.yaml)
    python -m scripts.offline_files --params params.yaml

Archives go into ``data.download_dir`` under their own names (prepare_data checks their md5 and
never overwrites one). A checkpoint can lie anywhere: name it with ``-S <param>=/path/file``;
``staged`` means its get_*_weights stage has already fetched it into ``models/pretrained/``. An md5
marked ``unpinned`` is recorded on the first fetch (``models/pretrained/<name>/source.json``); pin it
in ``<param>_md5``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# (param, the get_*_weights stage's folder under models/pretrained, what it is)
WEIGHTS = (
    ("model.pretrained", "conformer", "ImageNet Conformer-S (train_transcam)"),
    ("transcam.released", "transcam", "TransCAM's published classifier (optional)"),
    ("psa.pretrained", "resnet38", "ImageNet ResNet-38 (train_affinity)"),
    ("deeplab.pretrained", "deeplab", "the segmentation network's start (train_deeplab)"),
    ("seco.pretrained", "vit", "SeCo's ImageNet ViT-B/16 (train_seco)"),
)
# the published names of the paper setting's Google Drive files
GDRIVE_NAMES = {
    "1mpOlbLaVxOfEwV4-ha78j_1Ebqzj2B83": "Conformer_small_patch16.pth",
    "1xESB7017zlZHqxEWuh1Rb89UhjTGIKOA": "res38_cls.pth",
}


def paper_params(experiment: str = "paper") -> dict:
    from dvc.utils.hydra import compose_and_dump

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "params.yaml"
        compose_and_dump(out, str(ROOT / "conf"), None, "config", str(ROOT), [f"+experiment={experiment}"])
        return yaml.safe_load(out.read_text())


def get(p: dict, key: str):
    for k in key.split("."):
        p = p[k]
    return p


def file_name(source: str) -> str:
    if source.startswith("gdrive://"):
        return GDRIVE_NAMES.get(source.removeprefix("gdrive://"), "the Google Drive file")
    return source.split("?")[0].rstrip("/").rsplit("/", 1)[-1]


def staged_size(root: Path, folder: str, key: str, source: str) -> int | None:
    """The size of the checkpoint its stage fetched from this very source, if it did."""
    record = root / "models" / "pretrained" / folder / "source.json"
    weights = record.with_name("weights.pth")
    if record.exists() and weights.exists() and json.loads(record.read_text()).get(key) == source:
        return weights.stat().st_size
    return None


def rows(p: dict, root: Path = ROOT) -> list[dict]:
    d = p["data"]
    out = []
    archives = []
    if d["source"] == "voc":
        archives = [
            ("VOCtrainval_11-May-2012.tar", d["voc_md5"], d["voc_urls"]),
            ("benchmark.tgz", d["sbd_md5"], d["sbd_urls"]),
        ]
    elif d["source"] == "coco" and not d["folder"]:
        from bao.data.coco import ARCHIVES

        c = d["coco"]
        archives = [(name, c[f"{k}_md5"], c[f"{k}_urls"]) for k, name in ARCHIVES.items()]
    if archives:
        for name, md5, urls in archives:
            place = root / d["download_dir"] / name
            here = f"present, {place.stat().st_size:,} bytes" if place.exists() else "missing"
            out.append({"file": name, "md5": md5, "put it at": str(place), "from": urls[0], "here": here})
    for key, folder, what in WEIGHTS:
        source = get(p, key)
        if not source:
            continue
        remote = source.startswith(("http://", "https://", "gdrive://"))
        size = staged_size(root, folder, key, source)
        if size is not None:
            here = f"staged, {size:,} bytes"
        elif not remote:
            here = "present" if Path(source).exists() else "missing"
        else:
            here = "missing"
        name = file_name(source)
        out.append(
            {
                "file": f"{name}: {what}",
                "md5": get(p, key + "_md5") or "unpinned",
                "put it at": f"anywhere, then -S {key}=/path/{name}" if remote else source,
                "from": source,
                "here": here,
            }
        )
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--params", help="a params.yaml (default: the paper setting composed from conf/)")
    ap.add_argument("--experiment", default="paper", help="the setting composed from conf/ (paper, coco)")
    ap.add_argument("--json", help="also write the rows here")
    a = ap.parse_args(argv)
    p = yaml.safe_load(Path(a.params).read_text()) if a.params else paper_params(a.experiment)
    table = rows(p)
    for r in table:
        print(f"{r['here']:>28}  {r['file']}\n{'':>30}md5 {r['md5']}; {r['put it at']}\n{'':>30}from {r['from']}")
    missing = sum(r["here"] == "missing" for r in table)
    print(f"\n{len(table)} files, {missing} missing")
    if a.json:
        Path(a.json).write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
