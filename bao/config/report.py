"""The ``report`` section: Table 1's and the figures' choices."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

from bao.core.params import Section


@dataclass
class Report(Section):
    KEY: ClassVar[str] = "report"
    figure2_ids: list[str]
    figure3_ids: list[str]
    test_miou: Optional[float]
