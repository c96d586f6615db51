"""Table 1 and the figures, from the metric files (and, for the qualitative figures, the outputs)."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bao.io import atomic_file, voc_palette, write_text  # noqa: E402

# the paper's Table 1 (mIoU %; docs/method.md §7), quoted, never computed here
PAPER = {
    "TransCAM": {"post": "PSA + CRF", "seed": 64.9, "mask": 70.2, "val": 69.3, "test": 69.6},
    "SeCo (CVPR 2024)": {"post": "CRF", "seed": 74.8, "mask": 76.5, "val": 74.0, "test": 73.8},
    "BAO": {"post": "CRF", "seed": 75.5, "mask": 77.4, "val": 74.1, "test": 74.6},
}
VARIANT_NAMES = {"amn": "TransCAM+AMN", "share": "TransCAM+BAO (Share)", "ema": "TransCAM+BAO (EMA)",
                 "share+ema": "TransCAM+BAO (Share+EMA)"}
_PAL = np.array(voc_palette(), dtype=np.uint8).reshape(256, 3)


def _read(path: str | Path) -> dict | None:
    p = Path(path)
    return json.loads(p.read_text()) if p.exists() else None


def _pct(m: dict | None, key: str = "miou") -> float | None:
    return None if m is None else round(100 * m[key], 1)


def table1(m, test_miou: float | None = None) -> pd.DataFrame:
    """Reproduced numbers beside the paper's. Reproduced cells come from metric files only
    (``m``: the ``paths.metrics`` namespace of dvc.yaml)."""
    rows = [
        ("TransCAM", "PSA + CRF", _pct(_read(m.transcam_seed)), _pct(_read(m.mask.transcam)),
         _pct(_read(m.segmentation.transcam)), None),
        ("SeCo (CVPR 2024)", "CRF", None, None, None, None),
        ("BAO", "CRF", _pct(_read(m.seed)), _pct(_read(m.mask.bao)), _pct(_read(m.segmentation.bao)), test_miou),
    ]
    out = []
    for name, post, seed, mask, val, test in rows:
        p = PAPER[name]
        out.append({"method": name, "post-processing": post, "seed": seed, "mask": mask, "val": val, "test": test,
                    "paper post-processing": p["post"], "paper seed": p["seed"], "paper mask": p["mask"],
                    "paper val": p["val"], "paper test": p["test"]})
    return pd.DataFrame(out)


def table1_markdown(df: pd.DataFrame, note: str) -> str:
    cols = ["seed", "mask", "val", "test"]

    def cell(v):
        return "–" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.1f}"

    lines = ["| Method | Post-processing | Seed | Mask | val | test | paper: Seed | Mask | val | test |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in df.iterrows():
        repro = " | ".join(cell(r[c]) for c in cols)
        paper = " | ".join(cell(r[f"paper {c}"]) for c in cols)
        lines.append(f"| {r['method']} | {r['post-processing']} | {repro} | {paper} |")
    return "\n".join(lines) + "\n\n" + note + "\n"


def colorize(label: np.ndarray) -> np.ndarray:
    return _PAL[label]


def save_fig(fig, path: str | Path) -> None:
    with atomic_file(path) as f:
        fig.savefig(f, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def figure4(curves: dict[str, str | Path], transcam_best: float | None, path: str | Path,
            chosen: str, secondary: str = "") -> None:
    """Seed mIoU per epoch of each variant's CSV (solid: the ``chosen`` readout; dotted: the
    ``secondary`` one). Epoch 0 is eq. 6 on the TransCAM CAM (``miou_cam``) on every curve: the AM
    head is untrained then, so no other readout is scored."""
    dotted = secondary if secondary != chosen else ""
    fig, ax = plt.subplots(figsize=(6, 4))
    protocols = set()
    for v, p in curves.items():
        df = pd.read_csv(p)
        protocols |= set(df["scales"].astype(str)) if "scales" in df else set()
        y = df[f"miou_{chosen}"].where(df["epoch"] > 0, df["miou_cam"])
        line, = ax.plot(df["epoch"], 100 * y, marker="o", label=VARIANT_NAMES.get(v, v))
        if dotted and len(df) > 1:
            ax.plot(df["epoch"][1:], 100 * df[f"miou_{dotted}"][1:], ls=":", color=line.get_color())
    if transcam_best is not None:
        ax.axhline(100 * transcam_best, color="grey", ls="--", lw=1, label="TransCAM (best threshold)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("seed mIoU on train (%)")
    title = "Figure 4: target-model seed mIoU per epoch"
    if chosen and dotted:
        title += f"\n(solid: {chosen}; dotted: {dotted})"
    if len(protocols) > 1:  # bao.epoch_eval_scales: a cheaper per-epoch score, the full one last
        title += f"\nCAM scales per epoch / last: {' / '.join(sorted(protocols, key=len))}"
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save_fig(fig, path)


def threshold_figure(curve_csv: str | Path, bao_seed: float | None, path: str | Path) -> None:
    df = pd.read_csv(curve_csv)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(df["threshold"], 100 * df["miou"], label="TransCAM seed vs background threshold")
    best = df["miou"].idxmax()
    ax.scatter([df["threshold"][best]], [100 * df["miou"][best]], color="C0", zorder=3)
    if bao_seed is not None:
        ax.axhline(100 * bao_seed, color="C3", ls="--", label="BAO seed (no threshold)")
    ax.set_xlabel("background threshold t")
    ax.set_ylabel("seed mIoU on train (%)")
    ax.set_title("A threshold must be tuned on ground truth; BAO needs none")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save_fig(fig, path)


def grid_figure(rows: list[list[np.ndarray]], titles: list[str], path: str | Path, suptitle: str) -> None:
    n, k = len(rows), len(titles)
    fig, axes = plt.subplots(n, k, figsize=(2.2 * k, 2.0 * n), squeeze=False)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            ax = axes[i][j]
            ax.imshow(img, cmap="jet" if img.ndim == 2 else None, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(titles[j], fontsize=9)
    fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    save_fig(fig, path)


COMBINE_NAMES = {"camsfg_ambg": "the release: [AM background logit, refined CAM foreground], min-max",
                 "am": "activation map alone", "cam": "eq. 6 on the refined CAM",
                 "mean": "mean of normalised fg channels, bg from AM",
                 "am_bg": "[AM background softmax, refined CAM foreground]"}


def seed_ablation_markdown(path: str | Path, chosen: str) -> str:
    """The seed mIoU of every ``seeds.combine`` rule (docs/method.md §3.5), from make_seeds' metric file."""
    m = _read(path)
    if m is None:
        return ""
    lines = [f"Seed ablation, {m['method']}, {m['split']} (`seeds.combine`; no threshold in any row):", "",
             "| seeds.combine | combination | Seed |", "|---|---|---|"]
    for c, v in m["miou"].items():
        mark = " (used)" if c == chosen else ""
        lines.append(f"| `{c}`{mark} | {COMBINE_NAMES.get(c, c)} | {100 * v:.1f} |")
    return "\n".join(lines) + "\n"


def transcam_mask_markdown(m) -> str:
    """TransCAM's mask on train by refinement: PSA + CRF (Table 1's row) beside the label CRF alone on
    its best-threshold seed (``m``: the ``paths.metrics`` namespace)."""
    psa, crf = _read(m.mask.transcam), _read(m.mask.transcam_crf)
    if psa is None and crf is None:
        return ""
    lines = ["TransCAM mask, refinement ablation (train):", "", "| refinement | Mask |", "|---|---|",
             f"| best-threshold seed + CRF | {_cell(_pct(crf))} |",
             f"| PSA random walk + CRF (used) | {_cell(_pct(psa))} |"]
    return "\n".join(lines) + "\n"


def _cell(v) -> str:
    return "–" if v is None else f"{v:.1f}"


def write_table(df: pd.DataFrame, md_path: str, csv_path: str, note: str, extra: str = "") -> None:
    write_text(md_path, table1_markdown(df, note) + ("\n" + extra if extra else ""))
    write_text(csv_path, df.to_csv(index=False))


def confusion_figure(hist: np.ndarray, classes: list[str], path: str | Path) -> None:
    """Row-normalised confusion matrix (ground truth x prediction) as a PNG."""
    norm = hist / np.maximum(hist.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(8, 7))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=90, fontsize=7)
    ax.set_yticks(range(len(classes)), classes, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    ax.set_title("Segmentation confusion (row-normalised)")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    save_fig(fig, path)
