"""MS COCO 2014 -> the VOC layout: masks as coco2voc renders them, labels from the annotations, the
archives downloaded and extracted from a local HTTP server, a generated tree through prepare_data."""

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT
from test_prepare import md5, server  # noqa: F401  (the fixture)

from bao.core.errors import DataError
from bao.core.io import load_label_png
from bao.data.coco import CATEGORIES, COCO, prepare_coco
from bao.data.prepare import safe_extract, validate
from bao.data.voc import VOCDataset, read_split
from scripts.other_coco import uncompressed_rle


def categories():
    return [{"id": cat, "name": name} for cat, name in CATEGORIES]


def write_tree(root: Path, anns_by_split: dict, size=(40, 60)) -> Path:
    """A COCO tree with one annotated image per split (and an unannotated one)."""
    from PIL import Image

    h, w = size
    for split, anns in anns_by_split.items():
        year = f"{split}2014"
        (root / year).mkdir(parents=True)
        images = []
        for image_id in (1, 2):
            name = f"COCO_{year}_{image_id:012d}.jpg"
            Image.fromarray(np.full((h, w, 3), 100 + image_id, np.uint8)).save(root / year / name)
            images.append({"id": image_id, "file_name": name, "height": h, "width": w})
        doc = {"images": images, "annotations": [{**a, "image_id": 1} for a in anns], "categories": categories()}
        (root / "annotations").mkdir(exist_ok=True)
        (root / "annotations" / f"instances_{year}.json").write_text(json.dumps(doc))
    return root


def box(x0, y0, x1, y1):
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def test_masks_as_coco2voc_and_labels_from_annotations(tmp_path):
    """Smallest area first, a pixel keeps its first class; crowd regions are their class; category ids
    -> contiguous classes; a hidden annotation stays in the label and is counted."""
    h, w = 40, 60
    crowd = np.zeros((h, w), np.uint8)
    crowd[30:40, 0:10] = 1
    counts = uncompressed_rle(crowd)["counts"]
    anns = [
        {"id": 1, "category_id": 1, "segmentation": box(0, 0, 40, 30), "area": 1200.0, "iscrowd": 0},  # person
        {"id": 2, "category_id": 90, "segmentation": box(10, 10, 20, 20), "area": 100.0, "iscrowd": 0},  # toothbrush
        {"id": 3, "category_id": 27, "segmentation": box(12, 12, 18, 18), "area": 36.0, "iscrowd": 0},  # backpack
        {"id": 4, "category_id": 3, "segmentation": box(30, 0, 40, 10), "area": 100.0, "iscrowd": 0},  # car
        {"id": 5, "category_id": 5, "segmentation": {"counts": counts, "size": [h, w]}, "area": 100.0, "iscrowd": 1},
        # a bicycle entirely under the smaller backpack (its area is the file's word, as COCO's)
        {"id": 6, "category_id": 2, "segmentation": box(12, 12, 18, 18), "area": 40.0, "iscrowd": 0},
    ]
    write_tree(tmp_path / "coco", {"train": anns, "val": anns[:2]})
    root = tmp_path / "VOC2012"
    report = prepare_coco(tmp_path / "coco", root)
    mask = load_label_png(root / "SegmentationClass" / "COCO_train2014_000000000001.png")
    cls = {cat: k + 1 for k, (cat, _) in enumerate(CATEGORIES)}
    assert cls[90] == 80 and cls[27] == 25 and COCO.names[80] == "toothbrush"
    assert (mask[12:18, 12:18] == cls[27]).all()  # the smallest wins where three overlap
    assert mask[10, 10] == cls[90] and mask[19, 19] == cls[90]  # the toothbrush over the person
    assert mask[0, 0] == cls[1] and mask[29, 39] == cls[1]
    assert (mask[30:40, 0:10] == cls[5]).all()  # the crowd region is its class
    assert mask[0, 35] == cls[3] and mask[0, 45] == 0 and mask[35, 50] == 0
    assert cls[2] not in mask  # hidden under smaller ones ...
    labels = json.loads((root / "cls_labels.json").read_text())
    assert labels["COCO_train2014_000000000001"] == sorted(cls[c] for c in (1, 90, 27, 3, 5, 2))  # ... labelled
    assert report["labels_not_in_mask"] == 1 and report["images_without_annotations"] == {"train": 1, "val": 1}
    assert read_split(root, "train") == read_split(root, "train_aug") == ["COCO_train2014_000000000001"]
    # validate keeps the annotations' labels and checks masks against the 81 classes
    from bao.core.classes import write_label_space

    write_label_space(root, COCO)
    validate(root, ["train_aug", "train", "val"], "error", labels_from_masks=False)
    y = VOCDataset(root, "train").label("COCO_train2014_000000000001")
    assert y.shape == (80,) and y[cls[2] - 1] == 1


def test_categories_other_than_cocos_named(tmp_path):
    write_tree(tmp_path / "coco", {"train": [], "val": []})
    path = tmp_path / "coco" / "annotations" / "instances_train2014.json"
    doc = json.loads(path.read_text())
    doc["categories"][0]["name"] = "human"
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError, match=r"instances_train2014.json: categories are not COCO's 80"):
        prepare_coco(tmp_path / "coco", tmp_path / "out")
    (tmp_path / "coco" / "annotations" / "instances_val2014.json").unlink()
    path.write_text("{")
    with pytest.raises(DataError, match="instances_train2014.json: not a COCO instances file"):
        prepare_coco(tmp_path / "coco", tmp_path / "out2")


def generated_tree(tree: Path, train: int, val: int) -> Path:
    """A COCO tree drawn by scripts/other_coco.py (as a user runs it)."""
    cmd = [sys.executable, "-m", "scripts.other_coco", str(tree), "--train", str(train), "--val", str(val)]
    subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True)
    return tree


def zip_of(folder: Path, members: list[Path]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in members:
            zf.write(p, p.relative_to(folder).as_posix())
    return buf.getvalue()


def test_download_extract_convert(server, tmp_path):  # noqa: F811
    """The three archives in COCO's layout, from a local server (the first mirror missing), md5-checked."""
    from types import SimpleNamespace

    from bao.data.coco import download_coco

    url, handler = server
    tree = generated_tree(tmp_path / "tree", 3, 2)
    handler.files = {
        "train2014.zip": zip_of(tree, sorted((tree / "train2014").iterdir())),
        "val2014.zip": zip_of(tree, sorted((tree / "val2014").iterdir())),
        "annotations_trainval2014.zip": zip_of(tree, sorted((tree / "annotations").iterdir())),
    }
    coco = SimpleNamespace(
        **{
            f"{k}_urls": [f"{url}/missing.zip", f"{url}/{name}"]
            for k, name in (
                ("train", "train2014.zip"),
                ("val", "val2014.zip"),
                ("annotation", "annotations_trainval2014.zip"),
            )
        },
        train_md5=md5(handler.files["train2014.zip"]),
        val_md5=md5(handler.files["val2014.zip"]),
        annotation_md5=md5(handler.files["annotations_trainval2014.zip"]),
    )
    root = tmp_path / "VOC2012"
    root.mkdir()
    report = download_coco(root, tmp_path / "dl", coco)
    assert len(read_split(root, "train")) == 3 and len(read_split(root, "val")) == 2
    assert report["folder"] == str(tmp_path / "dl") and not (tmp_path / "VOC2012.extract").exists()
    name = read_split(root, "val")[0]
    assert (root / "JPEGImages" / f"{name}.jpg").read_bytes() == (tree / "val2014" / f"{name}.jpg").read_bytes()


@pytest.mark.parametrize("member", ["../evil.txt", "/abs/evil.txt", "a/../../evil.txt"])
def test_zip_traversal_refused(tmp_path, member):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.txt", b"ok")
        zf.writestr(zipfile.ZipInfo(member), b"evil")
    with pytest.raises(DataError, match="unsafe member"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.txt").exists()


def test_prepare_data_on_a_generated_coco_tree(tmp_path):
    """The stage: data.source coco on data.folder, the grey image read, COCO's label space written."""
    import os
    import shutil

    import yaml

    from bao.core.classes import read_label_space

    tree = generated_tree(tmp_path / "tree", 4, 2)
    project = tmp_path / "project"
    project.mkdir()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(source="coco", folder=str(tree))
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    shutil.copy(ROOT / "dvc.yaml", project / "dvc.yaml")
    subprocess.run(
        [sys.executable, "-m", "stages.prepare_data"],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
        capture_output=True,
    )
    data = json.loads((project / "metrics" / "data.json").read_text())
    assert data["source"] == "coco" and data["classes"] == list(COCO.names)
    assert (data["train"], data["val"], data["skipped"]) == (4, 2, 0)
    root = project / "data" / "VOC2012"
    assert read_label_space(root) == COCO
    grey = read_split(root, "train")[1]  # other_coco writes the second train image grey
    assert VOCDataset(root, "train").load_image(grey).shape[2] == 3


def test_offline_files_lists_cocos_archives(tmp_path):
    from scripts.offline_files import paper_params, rows

    names = [r["file"] for r in rows(paper_params("coco"), tmp_path)]
    assert names[:3] == ["train2014.zip", "val2014.zip", "annotations_trainval2014.zip"]
    assert not any("res38_cls" in n for n in names)  # the COCO segmentation starts from ImageNet
