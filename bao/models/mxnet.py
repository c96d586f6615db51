"""Reading an MXNet ``.params`` file without MXNet, and renaming model A1's arrays (PSA's ImageNet
ResNet-38, ``ilsvrc-cls_rna-a1_cls1000_ep-0001.params``) to ``ResNet38d`` keys."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import torch

from bao.core.errors import CheckpointError

_MX_LIST_MAGIC = 0x112
_MX_V1, _MX_V2, _MX_V3 = 0xF993FAC8, 0xF993FAC9, 0xF993FACA
_MX_DTYPES = {0: np.float32, 1: np.float64, 2: np.float16, 3: np.uint8, 4: np.int32, 5: np.int8, 6: np.int64}

_BN = {"gamma": "weight", "beta": "bias", "mean": "running_mean", "var": "running_var"}  # *_moving_mean -> mean


def read_mxnet_params(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of an MXNet ``.params`` file (``mx.nd.save`` of a dict), dense ones only: the list
    header (magic 0x112), each NDArray (V1/V2/V3 magic or the legacy layout: shape, context, dtype,
    data), then the names. Keys lose their ``arg:``/``aux:`` prefix."""
    path = Path(path)
    buf = path.read_bytes()
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, buf, pos)
        pos += struct.calcsize("<" + fmt)
        return v if len(v) > 1 else v[0]

    try:
        magic, _reserved, n = take("QQQ")
        if magic != _MX_LIST_MAGIC:
            raise CheckpointError(f"{path}: not an MXNet NDArray list (magic {magic:#x})")
        arrays = []
        for _ in range(n):
            head = take("I")
            if head in (_MX_V2, _MX_V3):
                stype = take("i")
                if stype != 0:
                    raise CheckpointError(f"{path}: sparse NDArray (storage type {stype}) not supported")
                ndim = take("i")
                shape = take(f"{ndim}q") if ndim else ()
            elif head == _MX_V1:
                ndim = take("I")
                shape = take(f"{ndim}q") if ndim else ()
            else:  # legacy: the first word is ndim, then uint32 dims
                ndim = head
                shape = take(f"{ndim}I") if ndim else ()
            shape = (shape,) if isinstance(shape, int) else tuple(shape)
            if ndim == 0:
                arrays.append(np.zeros(0, np.float32))
                continue
            _dev_type, _dev_id, dtype = take("iii")
            dt = np.dtype(_MX_DTYPES[dtype])
            count = int(np.prod(shape))
            arrays.append(np.frombuffer(buf, dt, count, pos).reshape(shape).copy())
            pos += count * dt.itemsize
        n_names = take("Q")
        names = []
        for _ in range(n_names):
            length = take("Q")
            names.append(buf[pos:pos + length].decode())
            pos += length
    except (struct.error, KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: truncated or malformed MXNet .params file ({e})") from None
    if len(names) != len(arrays):
        raise CheckpointError(f"{path}: {len(arrays)} arrays but {len(names)} names")
    return {k.split(":", 1)[-1]: a for k, a in zip(names, arrays)}


def mxnet_to_resnet38(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Rename model A1's MXNet arrays to ResNet38d keys (the naming of PSA's convert_mxnet_to_torch):
    ``res2a_branch2a_weight`` -> ``b2.conv_branch2a.weight``, ``bn3b1_branch2b1_gamma`` ->
    ``b3_1.bn_branch2b1.weight``, ``conv1a_weight`` -> ``conv1a.weight``, ``bn7_*`` -> ``bn7.*``;
    the ImageNet classifier (``linear1000``) is dropped."""
    out = {}
    for k, v in arrays.items():
        toks = k.split("_")
        if toks[0].startswith("conv1a"):
            out["conv1a.weight"] = v
        elif toks[0].startswith("linear1000"):
            continue
        elif len(toks) > 2 and toks[1].startswith("branch"):
            block = toks[0]  # res4b3 / bn4b3 / res2a / bn2a
            digits = block.lstrip("resbn")  # "4b3" or "2a"
            name = f"b{digits[0]}" if digits.endswith("a") else f"b{digits[0]}_{digits[-1]}"
            kind = "conv" if block.startswith("res") else "bn"
            last = "weight" if kind == "conv" else _BN[toks[-1]]
            out[f"{name}.{kind}_{toks[1]}.{last}"] = v
        elif toks[0] == "bn7":
            out["bn7." + _BN[toks[-1]]] = v
        else:
            raise CheckpointError(f"unexpected array '{k}' in the ResNet-38 MXNet file")
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in out.items()}


def is_mxnet_params(path: str | Path) -> bool:
    """Whether the file starts with an MXNet NDArray list's magic."""
    with open(path, "rb") as f:
        return struct.unpack("<Q", f.read(8) or b"\0" * 8)[0] == _MX_LIST_MAGIC
