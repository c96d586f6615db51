"""Seed readouts: how a BAO target's maps become seed scores (docs/method.md §3.5); the seed is their
argmax, with no threshold. ``seeds.combine`` names one; make_seeds and the per-epoch curves score all.

A readout is a function registered here with ``@readout("name")``; the first line of its docstring
is its row in the seed ablation table, and the order of definition is the order of the table and of
the curves' columns. Adding one is that function and its name in conf/config.yaml's ``seeds.combine``
comment: the params schema, make_seeds, train_bao and the report read ``READOUTS``. This module
imports torch only when a readout runs, so that the schema checks ``seeds.combine`` without it.
K: the label space's foreground classes (VOC: 20).
"""

from __future__ import annotations

from functools import cached_property
from typing import Callable

READOUTS: dict[str, Callable] = {}  # seeds.combine name -> readout(maps) -> (K + 1, H, W) scores


def readout(name: str):
    def register(fn):
        if name in READOUTS:
            raise ValueError(f"seed readout {name!r} registered twice")
        READOUTS[name] = fn
        return fn

    return register


def describe(name: str) -> str:
    """The readout's one-line description (its docstring's first line)."""
    return (READOUTS[name].__doc__ or name).strip().split("\n")[0]


class Maps:
    """What readouts read: the target's refined activation map (K + 1, H, W) and refined foreground CAM
    (K, H, W), each summed over ``passes`` inference passes, and the image label (K,); what several
    readouts share is computed once, on first use."""

    def __init__(self, am_sum, cam_sum, label, passes: int = 1):
        self.am_sum, self.cam_sum, self.label, self.passes = am_sum, cam_sum, label, passes

    @cached_property
    def present(self):
        """(K + 1, 1, 1) bool: background and the image's classes."""
        import torch

        return torch.cat([self.label.new_ones(1, dtype=torch.bool), self.label > 0])[:, None, None].to(
            self.am_sum.device
        )

    @cached_property
    def cam_norm(self):
        """The summed refined CAM, min-max normalised per class (TransCAM's normalisation)."""
        from bao.method.norms import minmax_norm

        return minmax_norm(self.cam_sum)

    @cached_property
    def prob(self):
        """The AM's logits averaged over the passes, softmax over background and the image's classes."""
        return (self.am_sum.float() / self.passes).masked_fill(~self.present, float("-inf")).softmax(0)

    def only_present(self, scores):
        """Absent classes at -inf: they never win the argmax."""
        return scores.masked_fill(~self.present, float("-inf"))


def release_norm(x):
    """The release's per-channel normalisation of summed maps (i2mond/BAO infer_bao.py l.86-90, TransCAM's
    infer_TransCAM.py): ReLU; values below the channel's min + 1e-5 set to 0 (min taken after the ReLU);
    then (x - min - 1e-5) / (max - min + 1e-5). The zeroed values become negative, and an all-zero
    channel (an absent class) becomes -1 everywhere: this is what the released code computes."""
    import torch
    import torch.nn.functional as F

    x = F.relu(x.float())
    mx = x.flatten(-2).amax(-1)[..., None, None]
    mn = x.flatten(-2).amin(-1)[..., None, None]
    x = torch.where(x < mn + 1e-5, torch.zeros_like(x), x)
    return (x - mn - 1e-5) / (mx - mn + 1e-5)


def camsfg_ambg_scores(maps_sum, label):
    """The release's seed scores (K + 1, H, W): ``camsfg_ambg`` = [the refined AM's raw background logit,
    the refined CAM's foreground] summed over the passes, times [1, label], then ``release_norm``; the
    seed is their argmax (infer_bao.py l.71-102). No softmax, no threshold."""
    import torch

    keep = torch.cat([maps_sum.new_ones(1), label.to(maps_sum)])[:, None, None]  # on the maps' device
    return release_norm(maps_sum * keep)


@readout("camsfg_ambg")
def _camsfg_ambg(m: Maps):
    """the release: [AM background logit, refined CAM foreground], min-max

    The default (``camsfg_ambg_scores``); it keeps the release's values for absent classes."""
    import torch

    return camsfg_ambg_scores(torch.cat([m.am_sum[:1].float(), m.cam_sum.float()]), m.label)


@readout("am")
def _am(m: Maps):
    """activation map alone

    Softmax of the AM over background and the image's classes."""
    return m.only_present(m.prob)


@readout("cam")
def _cam(m: Maps):
    """eq. 6 on the refined CAM

    Background = 1 - the max over the min-max normalised foreground."""
    import torch

    fg = m.cam_norm * m.present[1:]
    return m.only_present(torch.cat([1.0 - fg.amax(0, keepdim=True), fg]))


@readout("mean")
def _mean(m: Maps):
    """mean of normalised fg channels, bg from AM

    The AM's background probability; foreground the mean of its max-normalised probabilities and the
    min-max normalised CAM."""
    import torch

    from bao.method.norms import max_norm

    return m.only_present(torch.cat([m.prob[:1], (max_norm(m.prob[1:]) + m.cam_norm) / 2]))


@readout("am_bg")
def _am_bg(m: Maps):
    """[AM background softmax, refined CAM foreground]

    The AM's background probability max-normalised, stacked on the min-max normalised CAM."""
    import torch

    from bao.method.norms import max_norm

    return m.only_present(torch.cat([max_norm(m.prob[:1]), m.cam_norm]))


def seed_scores_by_rule(am_sum, cam_sum, label, combines, passes: int = 1) -> dict:
    """Seed scores (K + 1, H, W) of each readout in ``combines`` from one image's summed maps, what they
    share computed once."""
    for c in combines:
        if c not in READOUTS:
            raise ValueError(f"seeds.combine: {c!r} is not one of {tuple(READOUTS)}")
    maps = Maps(am_sum, cam_sum, label, passes)
    return {c: READOUTS[c](maps) for c in combines}


def combine_seed_scores(am_sum, cam_sum, label, combine: str, passes: int = 1):
    """``seed_scores_by_rule`` for one readout."""
    return seed_scores_by_rule(am_sum, cam_sum, label, (combine,), passes)[combine]


def seed_labels(scores):
    """The seed (H, W) uint8: argmax of (K + 1, H, W) scores over the class axis, the first maximum on ties.
    ``torch.max(dim).indices`` has argmax's tie rule and is several times faster than ``argmax(0)`` on
    a CPU, where a reduction over the outer axis is slow (bench/seed_argmax.py). Scores on a device are
    brought to the host."""
    import numpy as np

    return scores.max(0).indices.cpu().numpy().astype(np.uint8)
