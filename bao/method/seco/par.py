"""PAR: SeCo's pixel-adaptive refinement.

References are to zwyang6/SeCo's files (``model/losses.py``, ``model/PAR.py``, ``utils/camutils.py``,
``scripts/train_voc.py``); where the release departs from a textbook form, the release is implemented.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# --- PAR: pixel-adaptive refinement (PAR.py) ----------------------------------------------------

# the 8 neighbours in the release's kernel order (PAR.py get_kernel, l.10-23); diagonals at sqrt(2)
_OFFSETS = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]


def _neighbours(x: torch.Tensor, dilations) -> torch.Tensor:
    """(B, C, K, H, W): each pixel's 8 neighbours at every dilation, replicate padding."""
    h, w = x.shape[-2:]
    out = []
    for d in dilations:
        p = F.pad(x, [d] * 4, mode="replicate")
        out += [p[..., d + dy * d : d + dy * d + h, d + dx * d : d + dx * d + w] for dy, dx in _OFFSETS]
    return torch.stack(out, 2)


def par_refine(
    image: torch.Tensor,
    masks: torch.Tensor,
    dilations=(1, 2, 4, 8, 12, 24),
    iterations: int = 10,
    w1: float = 0.3,
    w2: float = 0.01,
) -> torch.Tensor:
    """Refine ``masks`` (B, K, h, w) by ``image`` (B, 3, H, W) (PAR.py ``PAR.forward``, l.64-93).
    The masks are resized to the image (bilinear, corners aligned); each pixel's weights over its
    neighbours are softmax(-(|I_n - I| / std_n(I_n) / w1)^2, channel mean) + w2 softmax(-(dist /
    std(dist) / w1)^2), and the masks are averaged with them ``iterations`` times."""
    masks = F.interpolate(masks, size=image.shape[-2:], mode="bilinear", align_corners=True)
    nb = _neighbours(image, dilations)
    diff = (nb - image.unsqueeze(2)).abs()
    aff = -((diff / (nb.std(2, keepdim=True) + 1e-8) / w1) ** 2)
    aff = aff.mean(1, keepdim=True)
    dist = torch.tensor(
        [d * (math.sqrt(2) if dy and dx else 1.0) for d in dilations for dy, dx in _OFFSETS],
        dtype=image.dtype,
        device=image.device,
    ).view(1, 1, -1, 1, 1)
    pos = -((dist / (dist.std(2, keepdim=True) + 1e-8) / w1) ** 2)
    weights = aff.softmax(2) + w2 * pos.softmax(2)
    for _ in range(iterations):
        masks = (_neighbours(masks, dilations) * weights).sum(2)
    return masks
