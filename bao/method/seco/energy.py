"""The dense energy loss (rloss's DenseEnergyLoss) in PyTorch, as SeCo uses it.

References are to zwyang6/SeCo's files (``model/losses.py``, ``model/PAR.py``, ``utils/camutils.py``,
``scripts/train_voc.py``); where the release departs from a textbook form, the release is implemented.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F

from bao.core.classes import IGNORE

# --- dense energy (rloss's DenseEnergyLoss), in PyTorch ------------------------------------------


def _lattice_one(rgb: np.ndarray, values: np.ndarray, sigma_rgb: float, sigma_xy: float) -> np.ndarray:
    """One image's lattice filter: ``rgb`` (3, H, W), ``values`` (K, H, W), float32 numpy; (K, H*W)."""
    import pydensecrf.densecrf as dcrf
    from pydensecrf import eigen

    k, h, w = values.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    feats = np.concatenate(
        [xs[None] / np.float32(sigma_xy), ys[None] / np.float32(sigma_xy), rgb / np.float32(sigma_rgb)]
    ).reshape(5, -1)
    crf = dcrf.DenseCRF(h * w, k)
    crf.setUnaryEnergy(np.zeros((k, h * w), np.float32))
    crf.addPairwiseEnergy(
        np.ascontiguousarray(feats, np.float32),
        compat=1.0,
        kernel=dcrf.DIAG_KERNEL,
        normalization=dcrf.NO_NORMALIZATION,
    )
    q = eigen.matrixXf(np.ascontiguousarray(values.reshape(k, -1)))
    # tmp1/tmp2 sized up front: stepInference resizes them in place, the wrappers keep their shapes
    tmp1, tmp2 = (eigen.matrixXf(np.zeros((k, h * w), np.float32)) for _ in range(2))
    crf.stepInference(q, tmp1, tmp2)  # tmp1 = -unary - (-1 x lattice(q)) = lattice(q)
    return np.asarray(tmp1)


_POOL: tuple[int, ProcessPoolExecutor] | None = None


def lattice_processes(batch: int) -> int:
    """Processes that filter a batch's images side by side, as rloss's OpenMP loop over the batch does
    (pydensecrf holds the GIL, so threads would not): one per image, at most this process's share of
    the cores (``LOCAL_WORLD_SIZE`` training processes share them). Each image is filtered alone:
    the numbers do not depend on it."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(batch, cores // int(os.environ.get("LOCAL_WORLD_SIZE", 1))))


def lattice_apply(image: torch.Tensor, values: torch.Tensor, sigma_rgb: float, sigma_xy: float) -> torch.Tensor:
    """``bilateral_apply`` as rloss computes it (``bilateralfilter.cpp``): a permutohedral lattice over the
    features (x / sigma_xy, y / sigma_xy, r, g, b / sigma_rgb), in float32 on the CPU. rloss's lattice is
    Krähenbühl's, which pydensecrf builds: one mean-field step with a zero unary and an unnormalised
    Potts kernel of weight 1 leaves ``tmp1 = lattice(values)``, equal to rloss's output bit for bit
    (tests/test_prior_parity.py). With SeCo's sigmas it returns 0.35-0.5x the exact sum. A batch's
    images are filtered in ``lattice_processes`` processes (a pool kept for the stage's life)."""
    global _POOL
    b, k, h, w = values.shape
    rgb = image.detach().float().cpu().numpy()
    vals = values.detach().float().cpu().numpy()
    args = [(rgb[n], vals[n], sigma_rgb, sigma_xy) for n in range(b)]
    n = lattice_processes(b)
    if n == 1:
        out = [_lattice_one(*a) for a in args]
    else:
        if _POOL is None or _POOL[0] != n:
            if _POOL is not None:
                _POOL[1].shutdown()
            _POOL = (n, ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn")))
        out = list(_POOL[1].map(_lattice_one, *zip(*args)))  # a dead worker: BrokenProcessPool
    return torch.from_numpy(np.stack(out)).view(b, k, h, w).to(values.device)


def bilateral_apply(
    image: torch.Tensor, values: torch.Tensor, sigma_rgb: float, sigma_xy: float, chunk: int = 4096
) -> torch.Tensor:
    """``out[b, k, i] = sum_j W_ij values[b, k, j]`` with the dense Gaussian bilateral kernel
    W_ij = exp(-|p_i - p_j|^2 / 2 sigma_xy^2 - |I_i - I_j|^2 / 2 sigma_rgb^2) (self pair included),
    computed exactly, ``chunk`` rows of W at a time (``seco.energy.kernel: exact``)."""
    b, k, h, w = values.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, device=image.device, dtype=image.dtype),
        torch.arange(w, device=image.device, dtype=image.dtype),
        indexing="ij",
    )
    pos = torch.stack([ys, xs]).flatten(1) / sigma_xy  # (2, N)
    out = torch.empty_like(values.flatten(2))
    for n in range(b):
        feats = torch.cat([pos, image[n].flatten(1) / sigma_rgb]).T  # (N, 5)
        vals = values[n].flatten(1).T  # (N, K)
        for s in range(0, feats.shape[0], chunk):
            w_rows = torch.exp(-0.5 * torch.cdist(feats[s : s + chunk], feats).square())
            out[n, :, s : s + chunk] = (w_rows @ vals).T
    return out.view(b, k, h, w)


def dense_energy_loss(
    image: torch.Tensor,
    probs: torch.Tensor,
    roi: torch.Tensor,
    label: torch.Tensor,
    weight: float = 1e-7,
    sigma_rgb: float = 15.0,
    sigma_xy: float = 100.0,
    scale: float = 0.5,
    ignore_index: int = IGNORE,
    kernel: str = "lattice",
) -> torch.Tensor:
    """The dense-CRF energy regulariser (losses.py ``DenseEnergyLoss``, l.224-288; from meng-tang/rloss).

    ``image``: (B, 3, H, W) in 0-255; ``probs``: (B, K, H, W) softmax of the segmentation logits;
    ``roi``: (B, H, W) 1 inside the image (not the crop's padding); ``label``: (B, H, W) the pseudo
    label (255 unlabelled). Everything is scaled by ``scale`` (image, ROI, label nearest; probs
    bilinear) and ``sigma_xy`` with it. With S = probs x ROI and the gate
    G = max(ROI - max_k S, 0), set to 1 where the label is 255, the loss is
    ``-weight / B * sum S * (G * W S)``, and its gradient is rloss's ``-2 weight / B * G * W S``
    (times the ROI) with the gate held fixed. ``kernel``: W S by rloss's permutohedral lattice (the
    release, ``lattice_apply``) or summed exactly (``bilateral_apply``; about twice the lattice's value).
    """
    image = F.interpolate(image, scale_factor=scale, recompute_scale_factor=True)
    probs = F.interpolate(probs, scale_factor=scale, mode="bilinear", align_corners=False, recompute_scale_factor=True)
    roi = F.interpolate(roi[:, None].float(), scale_factor=scale, recompute_scale_factor=True)[:, 0]
    label = F.interpolate(label[:, None].float(), scale_factor=scale, mode="nearest", recompute_scale_factor=True)[:, 0]
    gate = (roi - probs.detach().amax(1)).masked_fill(label.long() == ignore_index, 1.0).clamp(min=0)
    s = probs * roi[:, None]
    dtype = torch.float64 if s.dtype == torch.float64 else torch.float32  # fp32 at least (under autocast)
    with torch.no_grad():
        apply = lattice_apply if kernel == "lattice" else bilateral_apply
        ws = gate[:, None] * apply(image.to(dtype), s.detach().to(dtype), sigma_rgb, sigma_xy * scale).to(s)
    b = probs.shape[0]
    energy = (s.detach() * ws).sum()
    # value -sum(S . WS) / B; gradient -2 WS / B (rloss's backward): 2 S.WS - S.WS with S.WS held
    return -weight * (2 * (s * ws).sum() - energy) / b
