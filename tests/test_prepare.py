"""The real-data path, against a local HTTP server on 127.0.0.1 serving archives in the real layouts."""

import hashlib
import http.server
import io
import os
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from bao.core.errors import DataError
from bao.core.io import load_label_png, save_label_png
from bao.data.prepare import DownloadError, download, prepare_voc, safe_extract
from bao.data.voc import read_split


class RangeHandler(http.server.BaseHTTPRequestHandler):
    files: dict = {}
    cut_after: dict = {}  # name -> bytes sent before the connection drops (once)

    def log_message(self, *a):
        pass

    def do_GET(self):
        name = self.path.lstrip("/")
        if name not in self.files:
            self.send_error(404)
            return
        data = self.files[name]
        start = 0
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = self.cut_after.pop(name, None)
        self.wfile.write(body[:cut] if cut is not None else body)


@pytest.fixture
def server():
    RangeHandler.files, RangeHandler.cut_after = {}, {}
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", RangeHandler
    httpd.shutdown()


def tar_bytes(entries: dict, mode="w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def build_archives(mini_root: Path):
    """VOCtrainval tar and SBD benchmark.tgz in their real layouts, from a mini-VOC tree."""
    train, val = read_split(mini_root, "train"), read_split(mini_root, "val")
    aug = [i for i in read_split(mini_root, "train_aug") if i not in train]
    voc = {}
    for i in train + val:
        voc[f"VOCdevkit/VOC2012/JPEGImages/{i}.jpg"] = (mini_root / "JPEGImages" / f"{i}.jpg").read_bytes()
        voc[f"VOCdevkit/VOC2012/SegmentationClass/{i}.png"] = (
            mini_root / "SegmentationClass" / f"{i}.png"
        ).read_bytes()
    for i in aug:
        voc[f"VOCdevkit/VOC2012/JPEGImages/{i}.jpg"] = (mini_root / "JPEGImages" / f"{i}.jpg").read_bytes()
    seg = "VOCdevkit/VOC2012/ImageSets/Segmentation"
    voc[f"{seg}/train.txt"] = "".join(f"{i}\n" for i in train).encode()
    voc[f"{seg}/val.txt"] = "".join(f"{i}\n" for i in val).encode()
    voc[f"{seg}/trainval.txt"] = "".join(f"{i}\n" for i in train + val).encode()
    sbd, masks = {}, {}
    sbd_ids = aug + train[:2] + val[:1]  # SBD overlaps VOC train and val, as the real one
    for i in sbd_ids:
        m = np.random.default_rng(len(i)).integers(0, 3, (20, 30)).astype(np.uint8)
        buf = io.BytesIO()
        savemat(buf, {"GTcls": {"Segmentation": m, "Boundaries": np.zeros(1)}})
        sbd[f"benchmark_RELEASE/dataset/cls/{i}.mat"] = buf.getvalue()
        sbd[f"benchmark_RELEASE/dataset/img/{i}.jpg"] = b"jpeg"
        masks[i] = m
    half = len(sbd_ids) // 2
    sbd["benchmark_RELEASE/dataset/train.txt"] = "".join(f"{i}\n" for i in sbd_ids[:half]).encode()
    sbd["benchmark_RELEASE/dataset/val.txt"] = "".join(f"{i}\n" for i in sbd_ids[half:]).encode()
    return tar_bytes(voc), tar_bytes(sbd, "w:gz"), masks, train, val, sbd_ids


def test_prepare_real_layout(server, mini_root, tmp_path):
    url, handler = server
    voc, sbd, masks, train, val, sbd_ids = build_archives(mini_root)
    handler.files = {"VOCtrainval_11-May-2012.tar": voc, "benchmark.tgz": sbd}
    root = tmp_path / "VOC2012"
    prepare_voc(
        root,
        tmp_path / "dl",
        [f"{url}/missing.tar", f"{url}/VOCtrainval_11-May-2012.tar"],
        md5(voc),
        [f"{url}/benchmark.tgz"],
        md5(sbd),
    )
    expected = sorted((set(sbd_ids) | set(train)) - set(val))
    assert read_split(root, "train_aug") == expected
    for i, m in masks.items():
        assert np.array_equal(load_label_png(root / "SegmentationClassAug" / f"{i}.png"), m)
    assert not (tmp_path / "VOC2012.extract").exists()


def test_resume_after_interrupted_download(server, tmp_path):
    url, handler = server
    data = np.random.default_rng(0).bytes(300_000)
    handler.files = {"f.bin": data}
    handler.cut_after = {"f.bin": 100_000}
    dest = tmp_path / "f.bin"
    with pytest.raises(DownloadError):  # the truncated transfer does not match the md5
        download([f"{url}/f.bin"], dest, md5(data))
    part = dest.with_name("f.bin.part")
    assert not dest.exists()
    # simulate a kill mid-download: a partial file is left, and the re-run continues it with Range
    part.write_bytes(data[:100_000])
    requests = []
    orig = RangeHandler.do_GET

    def spy(self):
        requests.append(self.headers.get("Range"))
        orig(self)

    RangeHandler.do_GET = spy
    try:
        assert download([f"{url}/f.bin"], dest, md5(data)).read_bytes() == data
    finally:
        RangeHandler.do_GET = orig
    assert requests == ["bytes=100000-"]


def test_wrong_checksum_leaves_nothing(server, tmp_path):
    url, handler = server
    handler.files = {"VOCtrainval_11-May-2012.tar": tar_bytes({"VOCdevkit/VOC2012/x.txt": b"x"})}
    root = tmp_path / "VOC2012"
    with pytest.raises(DownloadError, match="md5 mismatch"):
        prepare_voc(
            root, tmp_path / "dl", [f"{url}/VOCtrainval_11-May-2012.tar"], "0" * 32, [f"{url}/benchmark.tgz"], "0" * 32
        )
    assert not root.exists() and not list((tmp_path / "dl").iterdir())


def test_offline_staging_errors_name_the_place_and_both_checksums(server, tmp_path):
    """No URL answers: the error says where the file goes and its md5; a staged file with another md5
    is named with both checksums and kept; a staged file with the right md5 is used without a download."""
    url, handler = server
    data = b"published archive"
    handler.files = {}
    dest = tmp_path / "dl" / "benchmark.tgz"
    with pytest.raises(DownloadError, match=rf"Offline: put benchmark.tgz \(md5 {md5(data)}\) at {dest}"):
        download([f"{url}/missing.tgz"], dest, md5(data), timeout=5)
    dest.write_bytes(b"something else")
    with pytest.raises(DownloadError, match=rf"md5 is {md5(b'something else')}, expected {md5(data)}"):
        download([f"{url}/missing.tgz"], dest, md5(data), timeout=5)
    assert dest.read_bytes() == b"something else"
    dest.write_bytes(data)
    assert download([f"{url}/missing.tgz"], dest, md5(data)) == dest


@pytest.mark.parametrize("member", ["../evil.txt", "/abs/evil.txt", "a/../../evil.txt"])
def test_traversal_refused(tmp_path, member):
    archive = tmp_path / "bad.tar"
    archive.write_bytes(tar_bytes({"ok.txt": b"ok", member: b"evil"}))
    with pytest.raises(DataError, match="unsafe member"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.txt").exists()


def test_link_escape_refused(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("link")
        info.type = tarfile.SYMTYPE
        info.linkname = "../../etc/passwd"
        tar.addfile(info)
    archive = tmp_path / "link.tar"
    archive.write_bytes(buf.getvalue())
    with pytest.raises(DataError, match="points outside"):
        safe_extract(archive, tmp_path / "out")


def _voc_folder(mini_root: Path, dest: Path) -> Path:
    """A VOC-format dataset as others ship it: VOCdevkit/VOC2012, no train_aug list, no labels file."""
    import shutil

    voc = dest / "VOCdevkit" / "VOC2012"
    shutil.copytree(mini_root, voc)
    (voc / "ImageSets" / "Segmentation" / "train_aug.txt").unlink()
    (voc / "cls_labels.json").unlink(missing_ok=True)
    return voc


def test_prepare_folder_voc_format(mini_root, tmp_path):
    from PIL import Image

    from bao.core.io import voc_palette
    from bao.data.prepare import prepare_folder, validate

    voc = _voc_folder(mini_root, tmp_path / "src")
    train, val = read_split(voc, "train"), read_split(voc, "val")
    # one ground-truth mask saved as an RGB image in the VOC colour map
    png = voc / "SegmentationClass" / f"{train[0]}.png"
    index = load_label_png(png)
    pal = np.array(voc_palette(), np.uint8).reshape(256, 3)
    Image.fromarray(pal[index]).save(png)
    before = {p: p.read_bytes() for p in (voc / "ImageSets" / "Segmentation").glob("*.txt")}

    root = tmp_path / "VOC2012"
    root.mkdir()
    info = prepare_folder(tmp_path / "src", root)
    assert info["colour_masks_converted"] == 1
    np.testing.assert_array_equal(load_label_png(root / "SegmentationClass" / png.name), index)
    aug_ids = sorted(p.stem for p in (voc / "SegmentationClassAug").glob("*.png"))
    assert read_split(root, "train_aug") == sorted((set(aug_ids) | set(train)) - set(val))
    report = validate(root, ["train_aug", "train", "val", "test"], "error")
    assert report["counts"]["train"] == len(train) and (root / "cls_labels.json").exists()
    jpg = f"{train[1]}.jpg"
    assert (root / "JPEGImages" / jpg).read_bytes() == (voc / "JPEGImages" / jpg).read_bytes()
    # the source dataset is never written to
    assert {p: p.read_bytes() for p in before} == before and not (voc / "cls_labels.json").exists()


def test_prepare_folder_errors_name_the_file(mini_root, tmp_path):
    from PIL import Image

    from bao.data.prepare import prepare_folder

    with pytest.raises(DataError, match="nothing: data.folder does not exist"):
        prepare_folder(tmp_path / "nothing", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="JPEGImages"):
        prepare_folder(tmp_path / "empty", tmp_path / "out")
    voc = _voc_folder(mini_root, tmp_path / "src")
    png = voc / "SegmentationClass" / f"{read_split(voc, 'val')[0]}.png"
    Image.fromarray(np.full((8, 8, 3), 7, np.uint8)).save(png)
    with pytest.raises(DataError, match=rf"{png.name}: colour \[7, 7, 7\] is not the VOC colour map's colour of one"):
        prepare_folder(tmp_path / "src", tmp_path / "out")
    # in a label space of 3 classes, VOC's colour of class 3 (olive) is not a class colour
    from bao.core.classes import LabelSpace
    from bao.core.io import voc_palette

    olive = list(np.array(voc_palette(), np.uint8).reshape(256, 3)[3])
    Image.fromarray(np.tile(np.array(olive, np.uint8), (8, 8, 1))).save(png)
    with pytest.raises(
        DataError, match=rf"colour \[{olive[0]}, {olive[1]}, {olive[2]}\] is not .* one of the 3 classes"
    ):
        prepare_folder(tmp_path / "src", tmp_path / "out3", LabelSpace(("background", "cell", "wall")))
    prepare_folder(tmp_path / "src", tmp_path / "out1")  # VOC's 21: class 3
    assert (load_label_png(tmp_path / "out1" / "SegmentationClass" / png.name) == 3).all()
    (voc / "ImageSets" / "Segmentation" / "val.txt").unlink()
    with pytest.raises(DataError, match="val.txt: required"):
        prepare_folder(tmp_path / "src", tmp_path / "out2")


def test_bad_files_named_in_the_users_folder(mini_root, tmp_path):
    """prepare_data on data.folder with one truncated JPEG and one mask holding 37: the error names the
    file in the user's folder (not the copy being built) and the way out; nothing half-built stays;
    with base.bad_input=skip both are dropped and counted."""
    import json
    import subprocess
    import sys

    import yaml
    from conftest import ROOT

    voc = _voc_folder(mini_root, tmp_path / "src")
    train = read_split(voc, "train")
    jpg = voc / "JPEGImages" / f"{train[0]}.jpg"
    jpg.write_bytes(jpg.read_bytes()[:300])
    png = voc / "SegmentationClass" / f"{train[1]}.png"
    mask = load_label_png(png)
    mask[0, 0] = 37
    save_label_png(png, mask)
    work = tmp_path / "work"
    work.mkdir()
    (work / "dvc.yaml").write_text((ROOT / "dvc.yaml").read_text())
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(source="folder", folder=str(tmp_path / "src"))

    def prepare(policy):
        params["base"]["bad_input"] = policy
        (work / "params.yaml").write_text(yaml.safe_dump(params))
        return subprocess.run(
            [sys.executable, "-m", "stages.prepare_data"],
            cwd=work,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
        )

    def error(r):  # the last line (above it: progress bars)
        assert r.returncode == 2, r.stderr
        return r.stderr.strip().splitlines()[-1]

    err = error(prepare("error"))
    assert err.startswith(f"error: {jpg}: cannot decode image") and "base.bad_input=skip" in err
    assert not list((work / "data").glob("*")), "a failed prepare_data leaves nothing behind"
    jpg.unlink()  # the truncated JPEG re-exported (here: the image dropped): the mask is next
    (voc / "JPEGImages" / f"{train[0]}.jpg").write_bytes((mini_root / "JPEGImages" / f"{train[0]}.jpg").read_bytes())
    err = error(prepare("error"))
    assert err.startswith(f"error: {png}: label values [37] outside 0-20 and 255") and "re-export that file" in err
    jpg.write_bytes(jpg.read_bytes()[:300])
    r = prepare("skip")
    assert r.returncode == 0, r.stderr
    data = json.loads((work / "metrics" / "data.json").read_text())
    assert data["skipped"] == 2 and all(str(voc) in m for m in data["skipped_files"].values())
    shown = [line for line in r.stdout.splitlines() if line.startswith("skipped (")]  # on the console too
    assert {line.split("skip): ", 1)[1] for line in shown} == set(data["skipped_files"].values()), r.stdout  # per split
    assert train[0] not in read_split(work / "data" / "VOC2012", "train")


def test_offline_files_lists_every_download_of_the_paper_setting(tmp_path):
    """One command lists the archives and every checkpoint the paper setting fetches, where each goes
    and whether it is there: a staged checkpoint counts only when fetched from the same source."""
    import json

    from scripts.offline_files import paper_params, rows

    p = paper_params()
    table = rows(p, tmp_path)
    names = [r["file"].split(":")[0] for r in table]
    assert names == [
        "VOCtrainval_11-May-2012.tar",
        "benchmark.tgz",
        "Conformer_small_patch16.pth",
        "ilsvrc-cls_rna-a1_cls1000_ep-0001.params",
        "res38_cls.pth",
        "jx_vit_base_p16_224-80ecf9dd.pth",
    ]
    assert all(r["here"] == "missing" for r in table) and table[0]["md5"] == p["data"]["voc_md5"]
    (tmp_path / "data" / "downloads").mkdir(parents=True)
    (tmp_path / "data" / "downloads" / "benchmark.tgz").write_bytes(b"x")
    folder = tmp_path / "models" / "pretrained" / "deeplab"
    folder.mkdir(parents=True)
    (folder / "weights.pth").write_bytes(b"yy")
    (folder / "source.json").write_text(json.dumps({"deeplab.pretrained": "elsewhere.pth"}))
    here = {r["file"].split(":")[0]: r["here"] for r in rows(p, tmp_path)}
    assert here["benchmark.tgz"] == "present, 1 bytes" and here["res38_cls.pth"] == "missing"
    (folder / "source.json").write_text(json.dumps({"deeplab.pretrained": p["deeplab"]["pretrained"]}))
    assert {r["file"].split(":")[0]: r["here"] for r in rows(p, tmp_path)}["res38_cls.pth"] == "staged, 2 bytes"


def test_a_class_no_image_shows_fails_prepare_data(tmp_path):
    """data.classes naming more classes than the generated images show: prepare_data fails naming them
    (and the parameter), before any training stage runs."""
    import shutil
    import subprocess
    import sys

    import yaml
    from conftest import ROOT

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["mini"].update(num_train=2, num_val=2, num_test=0, num_aug=0, min_side=64, max_side=64)
    params["data"]["classes"] = ["background", *(f"c{i}" for i in range(1, 31))]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    r = subprocess.run(
        [sys.executable, "-m", "stages.prepare_data"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "no image shows" in r.stderr and "data.classes" in r.stderr
    assert r.stderr.count(" (") >= 22  # 4 images of 1-2 classes show at most 8 of the 30
