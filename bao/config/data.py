"""The ``data`` section: mini-VOC, VOC 2012 + SBD, or a folder in the VOC layout."""

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

    def check(self, p):
        if self.source == "folder" and not self.folder:
            raise ParamsError(f"{p}.folder: data.source is 'folder', so name the VOC-layout dataset folder")
        for k in ("voc_urls", "sbd_urls"):
            if not getattr(self, k):
                raise ParamsError(f"{p}.{k}: needs at least one URL")
        for k in ("voc_md5", "sbd_md5"):
            v = getattr(self, k)
            if len(v) != 32 or any(c not in "0123456789abcdef" for c in v.lower()):
                raise ParamsError(f"{p}.{k}: not an md5 hex digest: {v!r}")
