"""Dense CRF (Krähenbühl & Koltun 2011) through pydensecrf.

``crf_labels`` is crf_inference_label of the TransCAM/IRN code family (docs/method.md §6:
unary_from_labels with gt_prob, Gaussian and bilateral kernels, argmax after t iterations);
``crf_probs`` starts from class probabilities (unary_from_softmax), as the DeepLab test's dense_crf.
"""

from __future__ import annotations

import numpy as np
import pydensecrf.densecrf as dcrf
from pydensecrf.utils import unary_from_labels, unary_from_softmax


def _kernels(cfg) -> dict:
    # read every setting before any early return: the output depends on all of them in general
    return dict(
        gauss=(cfg.gauss_sxy, cfg.gauss_compat),
        bilateral=(cfg.bilateral_sxy, cfg.bilateral_srgb, cfg.bilateral_compat),
        iterations=cfg.iterations,
    )


def _infer(image: np.ndarray, unary: np.ndarray, n: int, k: dict) -> np.ndarray:
    h, w = image.shape[:2]
    d = dcrf.DenseCRF2D(w, h, n)
    d.setUnaryEnergy(np.ascontiguousarray(unary, dtype=np.float32))
    d.addPairwiseGaussian(sxy=k["gauss"][0], compat=k["gauss"][1])
    sxy, srgb, compat = k["bilateral"]
    d.addPairwiseBilateral(sxy=sxy, srgb=srgb, rgbim=np.array(image, dtype=np.uint8, order="C"), compat=compat)
    return np.array(d.inference(k["iterations"])).reshape(n, h, w)


def crf_labels(image: np.ndarray, labels: np.ndarray, cfg, n_labels: int | None = None) -> np.ndarray:
    """Refine a hard label map (class indices). Only the classes present take part, as IRN does, or,
    with ``n_labels``, all of 0..n_labels-1, as TransCAM's crf_inference_label (n_labels=21)."""
    k, gt_prob = _kernels(cfg), cfg.gt_prob
    if n_labels is not None:
        q = _infer(image, unary_from_labels(labels, n_labels, gt_prob=gt_prob, zero_unsure=False), n_labels, k)
        return q.argmax(0).astype(np.uint8)
    keys, compact = np.unique(labels, return_inverse=True)
    if len(keys) == 1:
        return labels.copy()
    unary = unary_from_labels(compact.reshape(labels.shape), len(keys), gt_prob=gt_prob, zero_unsure=False)
    q = _infer(image, unary, len(keys), k)
    return keys[q.argmax(0)].astype(np.uint8)


def crf_probs(image: np.ndarray, probs: np.ndarray, keys: np.ndarray, cfg) -> np.ndarray:
    """Refine class probabilities ``probs`` (K,H,W) of classes ``keys``; returns class indices."""
    k = _kernels(cfg)
    if len(keys) == 1:
        return np.full(probs.shape[1:], keys[0], np.uint8)
    p = np.clip(probs.astype(np.float32), 1e-5, None)
    p /= p.sum(0, keepdims=True)
    q = _infer(image, unary_from_softmax(p), len(keys), k)
    return np.asarray(keys)[q.argmax(0)].astype(np.uint8)
