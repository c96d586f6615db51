"""The label space: class names, background first, and 255 = ignore.

PASCAL VOC's 21 by default. Another comes from ``data.classes`` or a dataset's ``classes.txt`` (one
name a line, background first); ``prepare_data`` writes it into the prepared folder
(``<paths.data>/classes.txt``), where every stage reads it (``read_label_space``), so that a stage
that reads the data re-runs when the label space changes. A VOC-layout folder without the file holds
VOC's classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

VOC_CLASSES = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)
IGNORE = 255  # VOC's boundary band; also crop padding and AMN's uncertain band
CLASSES_FILE = "classes.txt"
MAX_CLASSES = IGNORE  # label values 0..254: 255 is the ignore value


@dataclass(frozen=True)
class LabelSpace:
    """Class names (index = label value; 0 = background)."""

    names: tuple[str, ...] = VOC_CLASSES

    @property
    def n(self) -> int:
        """Classes, background included (VOC: 21)."""
        return len(self.names)

    @property
    def n_fg(self) -> int:
        """Foreground classes (VOC: 20): the image-level label's length."""
        return len(self.names) - 1


VOC = LabelSpace()


def check_names(names, where: str) -> tuple[str, ...]:
    """Class names as a label space takes them; a ValueError names ``where`` (a file or parameter)."""
    names = tuple(str(n).strip() for n in names)
    if len(names) < 2:
        raise ValueError(f"{where}: a label space needs the background and at least one class, got {list(names)}")
    if len(names) > MAX_CLASSES:
        raise ValueError(f"{where}: {len(names)} classes; at most {MAX_CLASSES} (255 is the ignore value)")
    if any(not n for n in names) or len(set(names)) != len(names):
        raise ValueError(f"{where}: class names must be non-empty and distinct, got {list(names)}")
    return names


def read_label_space(root: str | Path) -> LabelSpace:
    """The label space of a VOC-layout folder: its ``classes.txt``, or VOC's when it has none."""
    path = Path(root) / CLASSES_FILE
    if not path.exists():
        return VOC
    from bao.core.errors import DataError

    try:
        return LabelSpace(check_names([ln for ln in path.read_text().splitlines() if ln.strip()], str(path)))
    except ValueError as e:
        raise DataError(str(e)) from None


def write_label_space(root: str | Path, space: LabelSpace) -> None:
    from bao.core.io import write_text

    write_text(Path(root) / CLASSES_FILE, "".join(f"{n}\n" for n in space.names))
