import json
import shutil

import numpy as np
import pytest
from PIL import Image

from bao.core.classes import CLASSES
from bao.core.errors import DataError
from bao.core.io import load_label_png, save_label_png
from bao.data.prepare import validate, write_split
from bao.data.voc import VOCDataset, read_split, split_path


def test_layout_and_items(mini_root):
    for split in ("train", "val", "trainval", "test", "train_aug"):
        assert read_split(mini_root, split)
    ds = VOCDataset(mini_root, "train", masks="gt")
    item = ds[0]
    h, w = item["image"].shape[:2]
    assert item["mask"].shape == (h, w)
    assert item["label"].shape == (20,)
    present = {c for c in np.unique(item["mask"]) if 0 < c < 21}
    assert set(np.flatnonzero(item["label"]) + 1) == present
    assert 255 in np.unique(item["mask"])  # VOC-style boundary band
    sizes = {
        VOCDataset(mini_root, "train_aug", masks=None).load_image(i).shape[:2]
        for i in read_split(mini_root, "train_aug")
    }
    assert any(a != b for a, b in sizes)  # non-square images


def test_labels_file_cached(mini_root):
    labels = json.loads((mini_root / "cls_labels.json").read_text())
    assert set(read_split(mini_root, "train_aug")) <= set(labels)
    assert all(1 <= c <= 20 for cs in labels.values() for c in cs)


def test_train_aug_excludes_val(mini_root):
    assert not set(read_split(mini_root, "train_aug")) & set(read_split(mini_root, "val"))
    assert set(read_split(mini_root, "train")) <= set(read_split(mini_root, "train_aug"))


def test_generator_is_deterministic(tmp_path):
    from bao.data import minivoc

    for d in ("a", "b"):
        minivoc.generate(tmp_path / d, 2, 1, 0, 1, 64, 80, seed=5)
    for f in (tmp_path / "a" / "JPEGImages").iterdir():
        assert f.read_bytes() == (tmp_path / "b" / "JPEGImages" / f.name).read_bytes()


@pytest.fixture
def broken(mini_root, tmp_path):
    root = tmp_path / "VOC2012"
    shutil.copytree(mini_root, root)
    return root


def first(root, split="train"):
    return read_split(root, split)[0]


def test_corrupt_jpeg_named(broken):
    i = first(broken)
    p = broken / "JPEGImages" / f"{i}.jpg"
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(DataError, match=str(p)):
        VOCDataset(broken, "train")[0]


def test_label_values_out_of_range_named(broken):
    i = first(broken)
    p = broken / "SegmentationClass" / f"{i}.png"
    m = load_label_png(p)
    m[0, 0] = 42
    save_label_png(p, m)
    with pytest.raises(DataError, match=r"label values \[42\]"):
        VOCDataset(broken, "train")[0]


def test_size_mismatch_named(broken):
    i = first(broken)
    p = broken / "SegmentationClass" / f"{i}.png"
    save_label_png(p, load_label_png(p)[:-3])
    with pytest.raises(DataError, match="mask size"):
        VOCDataset(broken, "train")[0]


def test_missing_file_and_empty_split(broken):
    write_split(split_path(broken, "train"), ["no_such_id"])
    with pytest.raises(DataError, match="no_such_id.jpg"):
        VOCDataset(broken, "train")[0]
    split_path(broken, "val").write_text("")
    with pytest.raises(DataError, match="empty"):
        VOCDataset(broken, "val")


def test_non_rgb_named(broken):
    i = first(broken)
    p = broken / "JPEGImages" / f"{i}.jpg"
    Image.open(p).convert("L").save(p)
    with pytest.raises(DataError, match="mode is L"):
        VOCDataset(broken, "train")[0]


def test_validate_policy(broken):
    i = first(broken, "train_aug")
    mask = broken / "SegmentationClassAug" / f"{i}.png"
    if not mask.exists():
        mask = broken / "SegmentationClass" / f"{i}.png"
    save_label_png(mask, np.zeros_like(load_label_png(mask)))  # no foreground class
    with pytest.raises(DataError, match="no foreground class"):
        validate(broken, ["train_aug"], "error")
    report = validate(broken, ["train_aug"], "skip")
    assert i in report["skipped"] and i not in read_split(broken, "train_aug")


def test_classes():
    assert len(CLASSES) == 21 and CLASSES[0] == "background"
