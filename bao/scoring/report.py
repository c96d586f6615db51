"""Table 1 and the figures, from the metric files (and, for the qualitative figures, the outputs)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bao.core.io import write_text  # noqa: E402
from bao.method.readouts import READOUTS, describe

# the paper's Table 1 (mIoU %; docs/method.md §7), quoted, never computed here
PAPER = {
    "TransCAM": {"post": "PSA + CRF", "seed": 64.9, "mask": 70.2, "val": 69.3, "test": 69.6},
    "SeCo (CVPR 2024)": {"post": "CRF", "seed": 74.8, "mask": 76.5, "val": 74.0, "test": 73.8},
    "BAO": {"post": "CRF", "seed": 75.5, "mask": 77.4, "val": 74.1, "test": 74.6},
}


# COCO 2014 val mIoU % as published (the paper reports VOC only): SeCo's README, "Main Results" (ViT-B);
# seed and mask on COCO train are published by none of the three, TransCAM's and BAO's COCO val by none
# the project can cite
PAPER_COCO = {
    "TransCAM": {"post": "PSA + CRF", "seed": None, "mask": None, "val": None, "test": None},
    "SeCo (CVPR 2024)": {"post": "CRF", "seed": None, "mask": None, "val": 46.7, "test": None},
    "BAO": {"post": "CRF", "seed": None, "mask": None, "val": None, "test": None},
}


def _read(path: str | Path) -> dict | None:
    p = Path(path)
    return json.loads(p.read_text()) if p.exists() else None


def _pct(m: dict | None, key: str = "miou") -> float | None:
    return None if m is None else round(100 * m[key], 1)


def table1(m, test_miou: float | None = None, coco: bool = False) -> pd.DataFrame:
    """Reproduced numbers beside the published ones (the paper's VOC columns; with ``coco``, COCO 2014's).
    Reproduced cells come from metric files only (``m``: the ``paths.metrics`` namespace of dvc.yaml)."""
    published = PAPER_COCO if coco else PAPER
    rows = [
        (
            "TransCAM",
            "PSA + CRF",
            _pct(_read(m.transcam_seed)),
            _pct(_read(m.mask.transcam)),
            _pct(_read(m.segmentation.transcam)),
            None,
        ),
        (
            "SeCo (CVPR 2024)",
            "CRF",
            _pct(_read(m.seco.seed)),
            _pct(_read(m.seco.mask)),
            _pct(_read(m.seco.segmentation)),
            None,
        ),
        ("BAO", "CRF", _pct(_read(m.seed)), _pct(_read(m.mask.bao)), _pct(_read(m.segmentation.bao)), test_miou),
    ]
    out = []
    for name, post, seed, mask, val, test in rows:
        p = published[name]
        out.append(
            {
                "method": name,
                "post-processing": post,
                "seed": seed,
                "mask": mask,
                "val": val,
                "test": test,
                "paper post-processing": p["post"],
                "paper seed": p["seed"],
                "paper mask": p["mask"],
                "paper val": p["val"],
                "paper test": p["test"],
            }
        )
    return pd.DataFrame(out)


def table1_markdown(df: pd.DataFrame, note: str, coco: bool = False) -> str:
    """VOC's columns (seed, mask, val, test), or with ``coco`` COCO 2014's (seed, mask, val: no test)."""
    cols = ["seed", "mask", "val"] if coco else ["seed", "mask", "val", "test"]

    def cell(v):
        return "–" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.1f}"

    if coco:
        header = "| Method | Post-processing | Seed | Mask | COCO val | published: Seed | Mask | COCO val |"
    else:
        header = "| Method | Post-processing | Seed | Mask | val | test | paper: Seed | Mask | val | test |"
    lines = [header, "|" + "---|" * (2 + 2 * len(cols))]
    for _, r in df.iterrows():
        repro = " | ".join(cell(r[c]) for c in cols)
        paper = " | ".join(cell(r[f"paper {c}"]) for c in cols)
        lines.append(f"| {r['method']} | {r['post-processing']} | {repro} | {paper} |")
    return "\n".join(lines) + "\n\n" + note + "\n"


def seed_ablation_markdown(path: str | Path, chosen: str) -> str:
    """The seed mIoU of every ``seeds.combine`` rule (docs/method.md §3.5), from make_seeds' metric file."""
    m = _read(path)
    if m is None:
        return ""
    lines = [
        f"Seed ablation, {m['method']}, {m['split']} (`seeds.combine`; no threshold in any row):",
        "",
        "| seeds.combine | combination | Seed |",
        "|---|---|---|",
    ]
    for c, v in m["miou"].items():
        mark = " (used)" if c == chosen else ""
        lines.append(f"| `{c}`{mark} | {(describe(c) if c in READOUTS else c)} | {100 * v:.1f} |")
    return "\n".join(lines) + "\n"


def transcam_mask_markdown(m) -> str:
    """TransCAM's mask on train by refinement: PSA + CRF (Table 1's row) beside the label CRF alone on
    its best-threshold seed (``m``: the ``paths.metrics`` namespace)."""
    psa, crf = _read(m.mask.transcam), _read(m.mask.transcam_crf)
    if psa is None and crf is None:
        return ""
    lines = [
        "TransCAM mask, refinement ablation (train):",
        "",
        "| refinement | Mask |",
        "|---|---|",
        f"| best-threshold seed + CRF | {_cell(_pct(crf))} |",
        f"| PSA random walk + CRF (used) | {_cell(_pct(psa))} |",
    ]
    return "\n".join(lines) + "\n"


def _cell(v) -> str:
    return "–" if v is None else f"{v:.1f}"


def write_table(df: pd.DataFrame, md_path: str, csv_path: str, note: str, extra: str = "", coco: bool = False) -> None:
    write_text(md_path, table1_markdown(df, note, coco) + ("\n" + extra if extra else ""))
    write_text(csv_path, df.to_csv(index=False))
