"""SeCo's schedule: the poly learning rate with warm-up and the loss weights by iteration.

References are to zwyang6/SeCo's files (``model/losses.py``, ``model/PAR.py``, ``utils/camutils.py``,
``scripts/train_voc.py``); where the release departs from a textbook form, the release is implemented.
"""

from __future__ import annotations

# --- the schedule (scripts/train_voc.py, utils/optimizer.py) ------------------------------------


def poly_warmup_lr(step: int, warmup: int, total: int, ratio: float, power: float) -> float:
    """The learning-rate multiplier of step ``step`` (``PolyWarmupAdamW.step``, l.58-70): linear from
    ``ratio`` to 1 over ``warmup`` steps, then (1 - step / total) ** power; constant after ``total``."""
    if step < warmup:
        return 1 - (1 - step / warmup) * (1 - ratio)
    return (1 - min(step, total) / total) ** power


def loss_weights(n_iter: int, cfg) -> dict[str, float]:
    """Each loss's weight at iteration ``n_iter`` (train_voc.py l.225-231): classification, auxiliary
    classification and patch-token contrast throughout; LIL and LIG after ``lil_lig_after``; the
    segmentation and energy losses after ``seg_after``."""
    w = {"cls": 1.0, "cls_aux": 1.0, "ptc": cfg.w_ptc, "lil": 0.0, "lig": 0.0, "seg": 0.0, "reg": 0.0}
    if n_iter > cfg.lil_lig_after:
        w.update(lil=cfg.w_lil, lig=cfg.w_lig)
    if n_iter > cfg.seg_after:
        w.update(seg=cfg.w_seg, reg=cfg.w_reg)
    return w
