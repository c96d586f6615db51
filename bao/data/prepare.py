"""Getting the real data: resumable download, md5 check, safe extraction, SBD conversion, splits.

VOC 2012 (``VOCtrainval_11-May-2012.tar``) and SBD (``benchmark.tgz``) become one VOC2012 folder
with ``SegmentationClassAug`` (from SBD ``dataset/cls/*.mat``, ``GTcls.Segmentation``) and the
``train_aug`` list = (SBD train ∪ SBD val ∪ VOC train) − VOC val: 10,582 ids on the real data
(docs/method.md §5).
"""
from __future__ import annotations

import http.client
import os
import shutil
import stat
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image
from tqdm import tqdm

from bao.core.classes import CLASSES_FILE, VOC, LabelSpace, check_names, read_label_space
from bao.core.errors import DataError, DownloadError, ParamsError
from bao.data.voc import VOCDataset, build_label_file, classes_in, read_split, split_path
from bao.core.io import md5sum, atomic_file, save_label_png, voc_palette


def _fetch(url: str, part: Path, timeout: float) -> None:
    """Append the rest of ``url`` to ``part``, resuming with an HTTP Range request."""
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # already complete
            return
        raise
    with resp:
        if have and resp.status != 206:  # server ignored the range: start over
            have = 0
        total = resp.headers.get("Content-Length")
        total = int(total) + have if total is not None else None
        with open(part, "ab" if have else "wb") as f, tqdm(
            total=total, initial=have, unit="B", unit_scale=True, desc=part.name[:-5], leave=False
        ) as bar:
            while True:
                block = resp.read(1 << 20)
                if not block:
                    break
                f.write(block)
                bar.update(len(block))


def download(urls: list[str], dest: Path, md5: str, timeout: float = 60.0) -> Path:
    """Download ``dest`` from the first URL that works; resume a ``.part`` file; verify md5.

    A wrong checksum deletes the download and raises, so nothing unverified is ever extracted. A file
    already at ``dest`` (staged by hand for an offline machine) is used when its md5 matches, and is
    an error naming both checksums when it does not (it is never overwritten).
    """
    dest = Path(dest)
    if dest.exists():
        got = md5sum(dest)
        if got == md5:
            return dest
        raise DownloadError(f"{dest}: this local file's md5 is {got}, expected {md5}: not the published "
                            f"{dest.name} (or a damaged copy). Replace it, or delete it to download again.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    errors = []
    for url in urls:
        try:
            _fetch(url, part, timeout)
            break
        except (urllib.error.URLError, http.client.HTTPException, OSError, TimeoutError) as e:
            errors.append(f"{url}: {e}")
    else:
        raise DownloadError(f"{dest.name}: every URL failed (a re-run resumes the partial file):\n  "
                            + "\n  ".join(errors)
                            + f"\nOffline: put {dest.name} (md5 {md5}) at {dest} and run again.")
    got = md5sum(part)
    if got != md5:
        part.unlink()
        raise DownloadError(f"{dest.name}: md5 mismatch (expected {md5}, got {got}); the download was "
                            f"deleted. Check data.voc_urls / data.sbd_urls and the md5 params.")
    part.replace(dest)
    return dest


def check_members(tar: tarfile.TarFile, archive: Path) -> None:
    """Refuse absolute paths, '..' components, links that leave the tree and special files."""
    for m in tar.getmembers():
        p = PurePosixPath(m.name)
        if p.is_absolute() or ".." in p.parts:
            raise DataError(f"{archive}: unsafe member path {m.name!r} refused")
        if m.issym() or m.islnk():
            target = PurePosixPath(m.linkname)
            resolved = target if m.islnk() else p.parent / target
            if target.is_absolute() or ".." in PurePosixPath(*_normalise(resolved.parts)).parts:
                raise DataError(f"{archive}: link {m.name!r} -> {m.linkname!r} points outside the archive; refused")
        elif not (m.isfile() or m.isdir()):
            raise DataError(f"{archive}: special file {m.name!r} refused")


def _normalise(parts):
    out = []
    for part in parts:
        if part == "..":
            if not out:
                return ("..",)
            out.pop()
        elif part not in (".", ""):
            out.append(part)
    return tuple(out) or (".",)


def check_zip_members(zf: zipfile.ZipFile, archive: Path) -> None:
    """A zip's members as ``check_members`` checks a tar's: no absolute paths, '..' or links."""
    for info in zf.infolist():
        p = PurePosixPath(info.filename)
        if p.is_absolute() or ".." in p.parts or ":" in info.filename.split("/")[0]:
            raise DataError(f"{archive}: unsafe member path {info.filename!r} refused")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise DataError(f"{archive}: link {info.filename!r} refused")


def safe_extract(archive: Path, dest: Path) -> Path:
    """Extract a tar or zip into ``dest`` after checking every member; a refused archive extracts
    nothing."""
    if zipfile.is_zipfile(archive):
        try:
            with zipfile.ZipFile(archive) as zf:
                check_zip_members(zf, archive)
                dest.mkdir(parents=True, exist_ok=True)
                zf.extractall(dest)
        except (zipfile.BadZipFile, OSError) as e:
            shutil.rmtree(dest, ignore_errors=True)
            raise DataError(f"{archive}: cannot extract: {e}") from None
        return dest
    try:
        with tarfile.open(archive) as tar:
            check_members(tar, archive)
            dest.mkdir(parents=True, exist_ok=True)
            tar.extractall(dest, filter="data")  # second line of defence (PEP 706)
    except tarfile.TarError as e:
        shutil.rmtree(dest, ignore_errors=True)
        raise DataError(f"{archive}: cannot extract: {e}") from None
    return dest


def read_list(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def write_split(path: Path, ids: list[str]) -> None:
    with atomic_file(path, "w") as f:
        f.write("".join(f"{i}\n" for i in ids))


def compute_train_aug(sbd_ids: list[str], voc_train: list[str], voc_val: list[str]) -> list[str]:
    """(SBD train ∪ SBD val ∪ VOC train) − VOC val, sorted: 10,582 ids on the real data."""
    val = set(voc_val)
    return sorted((set(sbd_ids) | set(voc_train)) - val)


def convert_sbd(sbd_dataset: Path, out_dir: Path) -> list[str]:
    """SBD ``cls/*.mat`` (``GTcls.Segmentation``) -> palette PNGs; returns the converted ids."""
    from scipy.io import loadmat

    ids = []
    mats = sorted((sbd_dataset / "cls").glob("*.mat"))
    if not mats:
        raise DataError(f"{sbd_dataset / 'cls'}: no SBD .mat files found")
    for mat in tqdm(mats, desc="SBD .mat -> png", leave=False):
        try:
            seg = loadmat(mat, squeeze_me=True, struct_as_record=False)["GTcls"].Segmentation
        except Exception as e:
            raise DataError(f"{mat}: not an SBD GTcls file ({e})") from None
        save_label_png(out_dir / f"{mat.stem}.png", np.asarray(seg, dtype=np.uint8))
        ids.append(mat.stem)
    return ids


def prepare_voc(root: Path, download_dir: Path, voc_urls, voc_md5, sbd_urls, sbd_md5) -> None:
    """Download, verify, extract and convert VOC 2012 + SBD into ``root`` (built elsewhere, then moved)."""
    voc_tar = download(voc_urls, download_dir / "VOCtrainval_11-May-2012.tar", voc_md5)
    sbd_tgz = download(sbd_urls, download_dir / "benchmark.tgz", sbd_md5)
    work = root.with_name(root.name + ".extract")
    shutil.rmtree(work, ignore_errors=True)
    try:
        safe_extract(voc_tar, work / "voc")
        safe_extract(sbd_tgz, work / "sbd")
        voc = work / "voc" / "VOCdevkit" / "VOC2012"
        sbd = work / "sbd" / "benchmark_RELEASE" / "dataset"
        for p in (voc / "JPEGImages", split_path(voc, "train"), sbd / "cls"):
            if not p.exists():
                raise DataError(f"{p}: expected by the VOC/SBD archive layout but missing")
        convert_sbd(sbd, voc / "SegmentationClassAug")
        sbd_ids = read_list(sbd / "train.txt") + read_list(sbd / "val.txt")
        train = read_list(split_path(voc, "train"))
        val = read_list(split_path(voc, "val"))
        write_split(split_path(voc, "train_aug"), compute_train_aug(sbd_ids, train, val))
        shutil.move(str(voc), str(root))
    finally:
        shutil.rmtree(work, ignore_errors=True)


MASK_DIRS = ("SegmentationClass", "SegmentationClassAug")


def find_voc_root(src: Path) -> Path:
    """The folder that holds ``JPEGImages``: ``src`` itself, ``src/VOC2012`` or ``src/VOCdevkit/VOC2012``."""
    for cand in (src, src / "VOC2012", src / "VOCdevkit" / "VOC2012"):
        if (cand / "JPEGImages").is_dir():
            return cand
    raise DataError(f"{src}: no JPEGImages/ here, in VOC2012/ or in VOCdevkit/VOC2012/ (data.folder)")


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard link when the file system allows (no copy of a large dataset), else copy. Only files
    the pipeline never rewrites are linked (images, masks), so the source folder is never modified."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _colour_to_index(path: Path, rgb: np.ndarray, n: int) -> np.ndarray:
    """An RGB mask drawn in the VOC colour map -> class indices 0..n-1 (n: the label space's size) or
    255; other colours raise DataError."""
    pal = np.array(voc_palette(), dtype=np.int64).reshape(256, 3)
    lut = {int(c): i for i, c in enumerate(pal[:, 0] << 16 | pal[:, 1] << 8 | pal[:, 2]) if i < n or i == 255}
    codes = rgb[..., 0].astype(np.int64) << 16 | rgb[..., 1].astype(np.int64) << 8 | rgb[..., 2]
    out = np.zeros(codes.shape, np.uint8)
    for code in np.unique(codes):
        if int(code) not in lut:
            colour = [(int(code) >> k) & 255 for k in (16, 8, 0)]
            raise DataError(
                f"{path}: colour {colour} is not the VOC colour map's colour of one of the {n} classes; {BAD_FILE_FIX}"
            )
        out[codes == code] = lut[int(code)]
    return out


def check_folder(src: Path) -> Path:
    """The VOC root of ``data.folder`` after checking its layout (a folder, JPEGImages/,
    SegmentationClass/, the train and val lists); a DataError names what is missing."""
    if not src.is_dir():
        raise DataError(f"{src}: data.folder does not exist or is not a folder")
    voc = find_voc_root(src)
    for need in (split_path(voc, "train"), split_path(voc, "val"), voc / "SegmentationClass"):
        if not need.exists():
            raise DataError(f"{need}: required in a VOC-format dataset (data.folder) but missing")
    return voc


def label_space_of(data) -> LabelSpace:
    """The label space the ``data`` params give: ``data.classes``, else data.folder's ``classes.txt``,
    else VOC's; both given and different is an error naming both."""
    if data.source == "coco":
        from bao.data.coco import COCO

        return COCO
    on_disk = None
    if data.source == "folder":
        voc = check_folder(Path(data.folder))
        if (voc / CLASSES_FILE).exists():
            on_disk = read_label_space(voc)
    if data.classes is None:
        return on_disk or VOC
    try:
        space = LabelSpace(check_names(data.classes, "data.classes"))
    except ValueError as e:
        raise ParamsError(str(e)) from None
    if on_disk is not None and on_disk != space:
        raise ParamsError(
            f"data.classes: {list(space.names)} differs from {voc / CLASSES_FILE} {list(on_disk.names)}; "
            "set data.classes: null to use the folder's"
        )
    return space


def folder_train_aug(voc: Path) -> list[str]:
    """The ids of a VOC-format folder's train_aug: its list, or (SegmentationClassAug ids ∪ train) − val,
    or train alone when there are no extra masks."""
    if split_path(voc, "train_aug").exists():
        return read_split(voc, "train_aug")
    aug_dir = voc / "SegmentationClassAug"
    extra = sorted(p.stem for p in aug_dir.glob("*.png")) if aug_dir.is_dir() else []
    return compute_train_aug(extra, read_split(voc, "train"), read_split(voc, "val"))


def prepare_folder(src: Path, root: Path, space: LabelSpace = VOC) -> dict:
    """An existing VOC-format dataset -> ``root`` (data.source: folder).

    Needs ``JPEGImages/<id>.jpg``, ``SegmentationClass/<id>.png`` and ``ImageSets/Segmentation/{train,val}.txt``;
    ``test``, ``trainval``, ``train_aug`` lists and ``SegmentationClassAug`` are used when present. Without a
    ``train_aug`` list it is (SegmentationClassAug ids ∪ train) − val, or train alone when there are no
    extra masks. Masks in the VOC colour map saved as RGB are converted to palette PNGs. Files listed
    but missing are left for ``validate`` to report (or skip, with ``base.bad_input: skip``).
    """
    voc = check_folder(src)
    splits = {s: read_split(voc, s) for s in ("train", "val", "trainval", "test", "train_aug")
              if split_path(voc, s).exists()}
    splits["train_aug"] = folder_train_aug(voc)
    ids = sorted({i for lst in splits.values() for i in lst})
    converted = 0
    for image_id in tqdm(ids, desc=f"copy {voc}", leave=False):
        jpg = voc / "JPEGImages" / f"{image_id}.jpg"
        if jpg.exists():
            link_or_copy(jpg, root / "JPEGImages" / jpg.name)
        for d in MASK_DIRS:
            png = voc / d / f"{image_id}.png"
            if not png.exists():
                continue
            try:
                with Image.open(png) as img:
                    mode = img.mode
                    rgb = np.asarray(img.convert("RGB")) if mode in ("RGB", "RGBA") else None
            except Exception as e:
                raise DataError(f"{png}: cannot read label PNG: {e}; {BAD_FILE_FIX}") from None
            if rgb is None:
                link_or_copy(png, root / d / png.name)
            else:
                save_label_png(root / d / png.name, _colour_to_index(png, rgb, space.n))
                converted += 1
    for s, lst in splits.items():
        write_split(split_path(root, s), lst)
    return {"folder": str(voc), "colour_masks_converted": converted}


BAD_FILE_FIX = "re-export that file, or run with -S base.bad_input=skip to drop and count such files"


def validate(
    root: Path, splits: list[str], policy: str, source: Path | None = None, labels_from_masks: bool = True
) -> dict:
    """Check every listed file; with policy 'skip', drop bad ids from the split lists and count them.

    Checks: image present and decodable RGB; mask values in the label space (0..n-1) or 255; mask size = image size;
    at least one foreground class in a training image. ``source``: the user's folder the files of
    ``root`` came from (data.folder's VOC root): errors name the file there, with the way out.
    ``labels_from_masks``: derive the image-level labels from the masks (else ``root`` has them).
    """
    report = {"skipped": {}, "counts": {}}
    for split in splits:
        if not split_path(root, split).exists():
            continue
        ds = VOCDataset(root, split, masks="aug" if split == "train_aug" else ("gt" if split != "test" else None))
        keep = []
        for image_id in tqdm(ds.ids, desc=f"check {split}", leave=False):
            try:
                img = ds.load_image(image_id)
                if ds.masks is not None:
                    mask = ds.load_mask(image_id, img.shape[:2])
                    if split == "train_aug" and not classes_in(mask, ds.space.n):
                        raise DataError(f"{ds.mask_path(image_id)}: no foreground class in a training image")
                keep.append(image_id)
            except DataError as e:
                msg = str(e) if source is None else str(e).replace(str(root), str(source))
                if policy == "error":
                    raise DataError(f"{msg}; {BAD_FILE_FIX}") from None
                report["skipped"][image_id] = msg
                tqdm.write(f"skipped ({split}, base.bad_input: skip): {msg}")
        if not keep:
            raise DataError(f"{split_path(root, split)}: no usable image in split '{split}'")
        if len(keep) != len(ds.ids):
            write_split(split_path(root, split), keep)
        report["counts"][split] = len(keep)
    if labels_from_masks:
        build_label_file(root)
    return report

