import json
import shutil

import numpy as np
import pytest
from PIL import Image

from bao.core.classes import VOC_CLASSES as CLASSES
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
    rgb = Image.open(p).convert("RGBA")
    rgb.save(p, format="PNG")  # an RGBA file behind a .jpg name
    with pytest.raises(DataError, match="mode is RGBA"):
        VOCDataset(broken, "train")[0]


def test_grey_photograph_reads_as_rgb(broken):
    """COCO 2014 has grey JPEGs: each is read with its value in the three channels."""
    i = first(broken)
    p = broken / "JPEGImages" / f"{i}.jpg"
    Image.open(p).convert("L").save(p)
    grey = np.asarray(Image.open(p))
    image = VOCDataset(broken, "train")[0]["image"]
    assert image.shape == (*grey.shape, 3) and all((image[..., k] == grey).all() for k in range(3))


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


def test_another_label_space_is_data(tmp_path):
    """A generated dataset with 4 classes of its own names: classes.txt in the folder, the dataset's
    image-level labels as long as its foreground, and a mask value outside it named as bad input."""
    import pytest

    from bao.core.classes import VOC, LabelSpace, check_names, read_label_space
    from bao.core.errors import DataError
    from bao.core.io import save_label_png
    from bao.data import minivoc
    from bao.data.voc import VOCDataset, build_label_file

    space = LabelSpace(("background", "nucleus", "membrane", "vesicle", "debris"))
    root = tmp_path / "VOC2012"
    minivoc.generate(root, num_train=6, num_val=2, num_test=0, num_aug=4, min_side=64, max_side=80, seed=1, space=space)
    assert (root / "classes.txt").read_text().splitlines() == list(space.names)
    assert read_label_space(root) == space and read_label_space(tmp_path) == VOC  # no file: VOC's
    build_label_file(root)
    ds = VOCDataset(root, "train")
    assert ds.space.n == 5 and ds.label(ds.ids[0]).shape == (4,)
    assert all(0 < c < 5 for i in ds.ids for c in ds.labels[i])
    mask = ds.load_mask(ds.ids[0])
    mask[0, 0] = 7
    save_label_png(ds.mask_path(ds.ids[0]), mask)
    with pytest.raises(DataError, match=r"label values \[7\] outside 0-4 and 255 .*data.classes"):
        ds.load_mask(ds.ids[0])
    for bad in (["background"], ["background", "a", "a"], ["background", ""]):
        with pytest.raises(ValueError, match="data.classes"):
            check_names(bad, "data.classes")


def test_figures_take_the_masks_palette(tmp_path):
    """The class colours of the figures are the dataset's mask palette, VOC's colour map without one."""
    from PIL import Image

    from bao.core.io import voc_palette
    from bao.data.voc import mask_palette

    voc = np.array(voc_palette(), np.uint8).reshape(256, 3)
    assert (mask_palette(tmp_path) == voc).all()
    (tmp_path / "SegmentationClass").mkdir()
    img = Image.fromarray(np.zeros((4, 4), np.uint8), mode="P")
    own = [(7 * i) % 256 for i in range(768)]
    img.putpalette(own)
    img.save(tmp_path / "SegmentationClass" / "a.png")
    assert (mask_palette(tmp_path) == np.array(own, np.uint8).reshape(256, 3)).all()
