"""The figures: Figure 4's curves, the threshold curve, image grids (Figures 2, 3) and the confusion
matrix; class colours from the dataset's mask palette (VOC's colour map by default)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bao.config.choices import UPDATES  # noqa: E402
from bao.core.io import atomic_file, voc_palette  # noqa: E402

_PAL = np.array(voc_palette(), dtype=np.uint8).reshape(256, 3)


def colorize(label: np.ndarray, palette: np.ndarray = _PAL) -> np.ndarray:
    """Class indices -> RGB in ``palette`` ((256, 3) uint8: ``bao.data.voc.mask_palette``)."""
    return palette[label]


def save_fig(fig, path: str | Path) -> None:
    with atomic_file(path) as f:
        fig.savefig(f, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def figure4(
    curves: dict[str, str | Path], transcam_curve: str | Path | None, path: str | Path, chosen: str, secondary: str = ""
) -> None:
    """The target's seed mIoU per epoch of each variant's CSV (solid: the ``chosen`` readout; dotted: the
    ``secondary`` one), all scored with one protocol (``bao.epoch_eval_scales``). Epoch 0 has no
    trained AM: its point is eq. 6 on the TransCAM CAM (``miou_cam``), drawn hollow. The dashed line is
    TransCAM's oracle-threshold seed after its last epoch, scored with the same protocol
    (``metrics/train_transcam.csv``), when that file has it."""
    dotted = secondary if secondary != chosen else ""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    protocols = set()
    for v, p in curves.items():
        df = pd.read_csv(p, dtype={"scales": str})  # "128", not 128.0 beside the unscored epochs' blanks
        protocols |= set(df["scales"].dropna()) if "scales" in df else set()
        later = df[(df["epoch"] > 0) & df[f"miou_{chosen}"].notna()]  # epochs scored (bao.epoch_eval_every)
        (line,) = ax.plot(later["epoch"], 100 * later[f"miou_{chosen}"], marker="o", label=UPDATES.get(v, v))
        start = df[df["epoch"] == 0]
        if len(start):
            ax.plot(start["epoch"], 100 * start["miou_cam"], marker="o", mfc="none", color=line.get_color())
        if dotted and len(later):
            ax.plot(later["epoch"], 100 * later[f"miou_{dotted}"], ls=":", color=line.get_color())
    tc = pd.read_csv(transcam_curve) if transcam_curve is not None and Path(transcam_curve).exists() else None
    if tc is not None and "miou_oracle" in tc and tc["miou_oracle"].notna().any():
        ax.axhline(
            100 * tc["miou_oracle"].dropna().iloc[-1],
            color="grey",
            ls="--",
            lw=1,
            label="TransCAM, oracle threshold (same protocol)",
        )
    ax.plot([], [], marker="o", mfc="none", ls="none", color="grey", label="epoch 0: eq. 6 on the TransCAM CAM")
    ax.set_xlabel("epoch")
    ax.set_ylabel("seed mIoU on train (%)")
    title = "Figure 4: target-model seed mIoU per epoch"
    if chosen and dotted:
        title += f"\n(solid: {chosen}; dotted: {dotted})"
    if protocols:
        title += f"\neach scored epoch at CAM scales {' / '.join(sorted(protocols))} x flip"
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
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
    title = "TransCAM's seed over the background threshold (tuned on ground truth)"
    if bao_seed is not None:
        above = df["miou"] < bao_seed
        title += (
            f"\nBAO's threshold-free seed is above TransCAM's at {int(above.sum())} of {len(df)} thresholds"
            f" (best: TransCAM {100 * df['miou'].max():.1f}, BAO {100 * bao_seed:.1f})"
        )
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save_fig(fig, path)


def grid_figure(
    rows: list[list[np.ndarray]],
    titles: list[str],
    path: str | Path,
    suptitle: str,
    classes: list[int] | None = None,
    notes: dict | None = None,
    caption: str = "",
    names=(),
    palette: np.ndarray = _PAL,
) -> None:
    """Panels in rows (RGB images, colourised label maps, or [0, 1] heat maps in ``jet``). ``classes``:
    the class indices whose colours appear, drawn as a key under the grid with their ``names`` (the
    label space's); ``notes``: {(row, col): text} under a panel; ``caption``: a line under everything."""
    from matplotlib.patches import Patch

    n, k = len(rows), len(titles)
    fig, axes = plt.subplots(n, k, figsize=(2.2 * k, 2.0 * n + (0.5 if classes else 0)), squeeze=False)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            ax = axes[i][j]
            ax.imshow(img, cmap="jet" if img.ndim == 2 else None, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(titles[j], fontsize=9)
            if notes and (i, j) in notes:
                ax.set_xlabel(notes[i, j], fontsize=7, color="C3")
    fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    if classes:
        handles = [Patch(facecolor=palette[c] / 255, edgecolor="grey", label=names[c]) for c in sorted(set(classes))]
        handles.append(Patch(facecolor=palette[255] / 255, edgecolor="grey", label="ignored (boundary)"))
        fig.legend(
            handles=handles,
            loc="upper center",
            bbox_to_anchor=(0.5, 0.0),
            ncol=min(len(handles), 6),
            fontsize=7,
            frameon=False,
            title="class colours",
            title_fontsize=7,
        )
    if caption:
        fig.text(0.5, -0.11 if classes else 0.0, caption, ha="center", va="top", fontsize=7, wrap=True)
    save_fig(fig, path)


def confusion_figure(hist: np.ndarray, classes: list[str], path: str | Path, what: str = "") -> None:
    """Row-normalised confusion matrix (ground truth x prediction) as a PNG; ``what`` names the model
    and the split. Rows of classes absent from the split's ground truth are empty (all zero)."""
    norm = hist / np.maximum(hist.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(8, 7))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=90, fontsize=7)
    ax.set_yticks(range(len(classes)), classes, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    absent = [c for c, n in zip(classes, hist.sum(1)) if n == 0]
    title = "Segmentation confusion (row-normalised)" + (f": {what}" if what else "")
    if absent:
        title += f"\nempty rows: {len(absent)} classes absent from the ground truth"
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    save_fig(fig, path)
