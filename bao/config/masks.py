"""The ``masks`` section: the dense CRF of the pseudo-labels (and the CRF kernels other sections reuse)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

from bao.config.choices import CRF_ABSENT, CRF_UNARIES
from bao.core.errors import ParamsError
from bao.core.params import Section, choice, positive


@dataclass
class Crf(Section):
    """Dense-CRF kernels (the DeepLab test's dense_crf starts from probabilities)."""

    gauss_sxy: float
    gauss_compat: float
    bilateral_sxy: float
    bilateral_srgb: float
    bilateral_compat: float
    iterations: int

    def check(self, p):
        positive(f"{p}.iterations", self.iterations)


@dataclass
class LabelCrf(Crf):
    """The pseudo-label CRF: unary from hard labels (gt_prob) or from the seed scores."""

    unary: choice(CRF_UNARIES)
    gt_prob: float
    n_labels: Optional[int]
    absent: choice(CRF_ABSENT)

    def check(self, p):
        super().check(p)
        if not 0 < self.gt_prob < 1:
            raise ParamsError(f"{p}.gt_prob: must be in (0, 1), got {self.gt_prob}")
        if self.n_labels is not None and self.n_labels < 2:  # >= the label space's size: check_params
            raise ParamsError(f"{p}.n_labels: must be null or >= 2, got {self.n_labels}")


@dataclass
class Masks(Section):
    KEY: ClassVar[str] = "masks"
    crf: LabelCrf
