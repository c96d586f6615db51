"""The ``data`` section: mini-VOC, VOC 2012 + SBD, a folder in the VOC layout, or MS COCO 2014."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

from bao.config.choices import DATA_SOURCES
from bao.core.errors import ParamsError
from bao.core.params import Section, choice, positive


@dataclass
class MiniVOC(Section):
    num_train: int
    num_val: int
    num_test: int
    num_aug: int
    min_side: int
    max_side: int

    def check(self, p):
        for k in ("num_train", "num_val", "min_side", "max_side"):
            positive(f"{p}.{k}", getattr(self, k))
        for k in ("num_test", "num_aug"):
            positive(f"{p}.{k}", getattr(self, k), allow_zero=True)
        if self.min_side > self.max_side:
            raise ParamsError(f"{p}.min_side: {self.min_side} > max_side {self.max_side}")
        if self.min_side < 64:
            raise ParamsError(f"{p}.min_side: must be >= 64, got {self.min_side}")


def check_md5(key: str, v: str) -> None:
    if len(v) != 32 or any(c not in "0123456789abcdef" for c in v.lower()):
        raise ParamsError(f"{key}: not an md5 hex digest: {v!r}")


@dataclass
class CocoArchives(Section):
    """MS COCO 2014's three archives: mirrors tried in order, and each one's md5."""

    train_urls: list[str]
    train_md5: str
    val_urls: list[str]
    val_md5: str
    annotation_urls: list[str]
    annotation_md5: str

    def check(self, p):
        for k in ("train", "val", "annotation"):
            if not getattr(self, f"{k}_urls"):
                raise ParamsError(f"{p}.{k}_urls: needs at least one URL")
            check_md5(f"{p}.{k}_md5", getattr(self, f"{k}_md5"))


@dataclass
class Data(Section):
    KEY: ClassVar[str] = "data"
    source: choice(DATA_SOURCES)
    folder: Optional[str]
    download_dir: str
    voc_urls: list[str]
    voc_md5: str
    sbd_urls: list[str]
    sbd_md5: str
    mini: MiniVOC
    coco: CocoArchives
    classes: Optional[list[str]]

    def check(self, p):
        if self.classes is not None:
            from bao.core.classes import VOC, check_names

            try:
                names = check_names(self.classes, f"{p}.classes")
            except ValueError as e:
                raise ParamsError(str(e)) from None
            if self.source == "voc" and names != VOC.names:
                raise ParamsError(
                    f"{p}.classes: VOC 2012 has its own 20 classes; another label space needs "
                    "data.source: folder or mini"
                )
            if self.source == "coco":
                raise ParamsError(f"{p}.classes: COCO 2014 has its own 80 classes; set data.classes: null")
        if self.source == "folder" and not self.folder:
            raise ParamsError(f"{p}.folder: data.source is 'folder', so name the VOC-layout dataset folder")
        for k in ("voc_urls", "sbd_urls"):
            if not getattr(self, k):
                raise ParamsError(f"{p}.{k}: needs at least one URL")
        for k in ("voc_md5", "sbd_md5"):
            check_md5(f"{p}.{k}", getattr(self, k))
