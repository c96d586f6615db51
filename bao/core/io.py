"""Atomic outputs, label-PNG I/O and safe checkpoint loading.

Every stage writes through these helpers, so a failed, killed or disk-full stage leaves either the
previous complete output or nothing, never a half-written file that DVC would record.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image


def voc_palette() -> list[int]:
    """The PASCAL VOC colour map (bit-interleaved class index), 256 RGB entries."""
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


_PALETTE = voc_palette()


@contextlib.contextmanager
def atomic_file(path: str | Path, mode: str = "wb"):
    """Open a temporary file beside ``path``; it replaces ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: str | Path, obj) -> None:
    with atomic_file(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False)
        f.write("\n")


def write_text(path: str | Path, text: str) -> None:
    with atomic_file(path, "w") as f:
        f.write(text)


def md5sum(path: str | Path, chunk: int = 1 << 22, h=None) -> str:
    """md5 of a file (or fed into ``h``), read in chunks."""
    h = h or hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def atomic_dir(path: str | Path, resume_key: str | None = None):
    """Build a directory in ``<path>.partial`` and swap it in only when the block succeeds.

    With ``resume_key``, a ``.partial`` left by an interrupted run with the same key is reused, so
    per-item work already written there can be skipped; any other leftover is discarded.
    """
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    stamp = partial / ".resume_key"
    if partial.exists():
        same = resume_key is not None and stamp.exists() and stamp.read_text() == resume_key
        if not same:
            shutil.rmtree(partial)
    partial.mkdir(parents=True, exist_ok=True)
    if resume_key is not None:
        stamp.write_text(resume_key)
    try:
        yield partial
    except BaseException:
        # a failure leaves nothing half-written behind; work that a re-run can resume (same
        # resume_key) stays, and is discarded by any run under another key
        if resume_key is None:
            shutil.rmtree(partial, ignore_errors=True)
        raise
    with contextlib.suppress(FileNotFoundError):
        stamp.unlink()
    if path.exists():
        old = path.with_name(path.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
        os.replace(partial, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(partial, path)


def save_label_png(path: str | Path, label: np.ndarray) -> None:
    """Save a class-index map as a VOC palette PNG (255 = ignore), atomically."""
    img = Image.fromarray(np.asarray(label, dtype=np.uint8), mode="P")
    img.putpalette(_PALETTE)
    with atomic_file(path) as f:
        img.save(f, format="PNG")


def load_label_png(path: str | Path) -> np.ndarray:
    """Read a label PNG as class indices (palette PNGs keep indices; 'L' PNGs are read as-is)."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            if img.mode not in ("P", "L"):
                raise ValueError(f"{path}: label PNG must be palette or greyscale, got mode {img.mode}")
            return np.array(img, dtype=np.uint8)
    except FileNotFoundError:
        raise
    except ValueError:
        raise
    except Exception as e:  # truncated or not a PNG
        raise ValueError(f"{path}: cannot read label PNG: {e}") from None


def save_npz(path: str | Path, **arrays) -> None:
    """Like ``np.savez`` (readable by ``np.load``), but byte-identical for identical arrays: the zip
    entries carry a fixed timestamp, so DVC sees an unchanged output when a re-run gives the same maps."""
    with atomic_file(path) as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with z.open(info, "w", force_zip64=True) as entry:
                np.lib.format.write_array(entry, np.asanyarray(arr), allow_pickle=False)


def load_npz(path: str | Path) -> dict:
    """Load arrays saved by ``save_npz``; pickled objects are refused (untrusted files)."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def safe_load(path: str | Path, map_location="cpu"):
    """``torch.load(weights_only=True)``: a checkpoint carrying pickled objects is refused."""
    import pickle

    import torch

    from bao.core.errors import CheckpointError

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path}: refused: it holds objects other than tensors and plain "
            f"containers (weights_only=True): {str(e).splitlines()[0]}"
        ) from None
    except (RuntimeError, EOFError, OSError) as e:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({e})") from None
