"""The whole of params.yaml: every section (check_params, scripts and tests). A stage loads only the
sections it reads (``bao.core.stage.main``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bao.config.bao import Bao, Ema, Seeds
from bao.config.data import Data
from bao.config.deeplab import DeepLab, Evaluate
from bao.config.masks import Masks
from bao.config.pretrain import Pretrain
from bao.config.psa import Psa
from bao.config.report import Report
from bao.config.seco import Seco
from bao.config.transcam import Cams, Model, TransCAM
from bao.core.params import Base, Section, build, read_yaml

SECTIONS = (Data, Pretrain, Model, TransCAM, Cams, Bao, Ema, Seeds, Masks, Psa, DeepLab, Evaluate, Seco, Report)


@dataclass
class Params(Section):
    base: Base
    data: Data
    pretrain: Pretrain
    model: Model
    transcam: TransCAM
    cams: Cams
    bao: Bao
    ema: Ema
    seeds: Seeds
    masks: Masks
    psa: Psa
    deeplab: DeepLab
    evaluate: Evaluate
    seco: Seco
    report: Report


def parse_params(raw: dict) -> Params:
    """Every section, and no unknown one."""
    return build(Params, raw, "")


def load_params(path: str | Path = "params.yaml") -> Params:
    return parse_params(read_yaml(path))
