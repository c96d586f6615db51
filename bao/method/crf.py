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


def _infer(image: np.ndarray, unary: np.ndarray, n: int, k: dict, scale: np.ndarray | None = None) -> np.ndarray:
    """Mean field with Potts kernels; ``scale`` (n,) multiplies each label's Potts weight (a diagonal
    compatibility: pydensecrf's Potts is ``-w Q``, its diagonal ``diag(v) Q``)."""
    h, w = image.shape[:2]
    d = dcrf.DenseCRF2D(w, h, n)
    d.setUnaryEnergy(np.ascontiguousarray(unary, dtype=np.float32))

    def compat(weight):
        return weight if scale is None else np.ascontiguousarray(-weight * scale, dtype=np.float32)

    d.addPairwiseGaussian(sxy=k["gauss"][0], compat=compat(k["gauss"][1]))
    sxy, srgb, weight = k["bilateral"]
    d.addPairwiseBilateral(sxy=sxy, srgb=srgb, rgbim=np.array(image, dtype=np.uint8, order="C"), compat=compat(weight))
    return np.array(d.inference(k["iterations"])).reshape(n, h, w)


def _merged_labels(
    image: np.ndarray, labels: np.ndarray, present: np.ndarray, n_labels: int, gt_prob: float, k: dict
) -> np.ndarray:
    """``crf_inference_label`` over 0..n_labels-1 computed over the labels present plus one label that
    stands for the m absent ones (docs/method.md §6). The absent labels share one unary,
    -log((1 - gt_prob) / (n_labels - 1)), at every pixel, and under Potts kernels mean field keeps their
    Q equal; their sum Q_A follows the same updates as one label with the unary lowered by log m and
    the Potts weight divided by m. Q_A / m is one absent label's probability; it stands at the smallest
    absent index, so that the argmax breaks ties as the literal call does."""
    absent = np.setdiff1d(np.arange(n_labels), present)
    m = len(absent)
    keys = np.union1d(present, absent[:1])  # sorted: the absent representative at its own index
    at = np.searchsorted(keys, absent[0])
    p_other = np.float32((1 - gt_prob) / (n_labels - 1))  # unary_from_labels' float32 probabilities
    unary = np.full((len(keys), labels.size), -np.log(p_other), np.float32)
    flat = np.searchsorted(keys, labels.reshape(-1))
    unary[flat, np.arange(labels.size)] = -np.log(np.float32(gt_prob))
    unary[at] = -np.log(p_other) - np.float32(np.log(m))
    scale = np.ones(len(keys), np.float32)
    scale[at] = 1.0 / m
    q = _infer(image, unary, len(keys), k, scale)
    q[at] /= m
    return keys[q.argmax(0)].astype(np.uint8)


def crf_labels(image: np.ndarray, labels: np.ndarray, cfg, n_labels: int | None = None) -> np.ndarray:
    """Refine a hard label map (class indices). Only the classes present take part, as IRN does, or,
    with ``n_labels``, all of 0..n_labels-1, as TransCAM's crf_inference_label (n_labels=21): with
    ``cfg.absent: merged`` the absent labels as one (the same function, a fraction of the time), with
    ``literal`` each its own (the release's call, bytes included)."""
    k, gt_prob, absent = _kernels(cfg), cfg.gt_prob, cfg.absent
    present = np.unique(labels)
    if n_labels is not None and absent == "merged" and n_labels - len(present) > 1:
        return _merged_labels(image, labels, present, n_labels, gt_prob, k)
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
