"""Loading and checking params.yaml: a typed view of the sections a stage reads.

Each section is a dataclass (``Section``) in ``bao.config``: field names and types, a ``check``, no
defaults (values and their documentation live in conf/config.yaml only). ``load`` reads params.yaml
and builds the sections a stage asks for; any unknown or missing key, wrong type or impossible value
fails before work starts, with a message naming the key.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import yaml

from bao.core.errors import ParamsError

# dotted keys a stage read (only when BAO_TRACE_DIR is set: the end-to-end test compares them with
# dvc.yaml's params, tests/trace_hook.py)
_READS: set[str] | None = set() if os.environ.get("BAO_TRACE_DIR") else None


def reads() -> set[str]:
    return set(_READS or ())


class Section:
    """Base of every params section; ``KEY`` is its top-level key in params.yaml."""

    KEY: ClassVar[str] = ""
    _key = ""

    def __getattribute__(self, name):
        value = object.__getattribute__(self, name)
        if (
            _READS is not None
            and not name.startswith("_")
            and not isinstance(value, Section)
            and name in object.__getattribute__(self, "__dataclass_fields__")
        ):
            _READS.add(object.__getattribute__(self, "_key") + name)
        return value


def positive(key: str, value, allow_zero=False) -> None:
    if value is None:
        return
    values = value if isinstance(value, (list, tuple)) else [value]
    for v in values:
        if v < 0 or (v == 0 and not allow_zero):
            raise ParamsError(f"{key}: must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def check_rates(key: str, rates) -> None:
    if rates is not None and (not rates or any(not isinstance(r, int) or r < 1 for r in rates)):
        raise ParamsError(f"{key}: needs null or a list of positive integer dilations, got {rates}")


def choice(options) -> type:
    """The type of a parameter that takes one of ``options`` (a choice list of ``bao.config.choices``)."""
    return Literal[tuple(options)]


@dataclass
class Base(Section):
    KEY: ClassVar[str] = "base"
    seed: int
    device: choice(("auto", "cpu", "cuda"))
    amp: bool
    num_workers: int
    infer_workers: int | Literal["auto"]
    bad_input: choice(("error", "skip"))
    cpu_kernels: choice(("portable", "native"))
    cpu_threads: int | Literal["auto"]
    gpus: int | Literal["auto"]
    crf_workers: int | Literal["auto"]

    def check(self, p):
        positive(f"{p}.num_workers", self.num_workers, allow_zero=True)
        for key in ("gpus", "crf_workers"):
            if getattr(self, key) != "auto":
                positive(f"{p}.{key}", getattr(self, key))
        if self.infer_workers != "auto":
            positive(f"{p}.infer_workers", self.infer_workers)
        if self.cpu_threads != "auto":
            positive(f"{p}.cpu_threads", self.cpu_threads)


def _check_type(key: str, tp, value):
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, key)
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ParamsError(f"{key}: must be one of {list(typing.get_args(tp))}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            if len(args) < len(typing.get_args(tp)):
                return None
            raise ParamsError(f"{key}: must be set, got null")
        errors = []
        for a in args:
            try:
                return _check_type(key, a, value)
            except ParamsError as e:
                errors.append(str(e))
        raise ParamsError(" or ".join(errors))
    if origin is list:
        if not isinstance(value, list):
            raise ParamsError(f"{key}: must be a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_check_type(f"{key}[{i}]", item, v) for i, v in enumerate(value)]
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{key}: must be a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{key}: must be an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{key}: must be true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ParamsError(f"{key}: must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported parameter type {tp} for {key}")


def build(cls, raw, prefix: str):
    """``cls`` (a Section) from its mapping ``raw``, every key required and checked."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{prefix or 'params'}: must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for k in raw:
        if k not in names:
            raise ParamsError(f"{prefix + '.' if prefix else ''}{k}: unknown parameter (known: {', '.join(names)})")
    values = {}
    for name in names:
        key = f"{prefix}.{name}" if prefix else name
        if name not in raw:
            raise ParamsError(f"{key}: missing parameter")
        values[name] = _check_type(key, hints[name], raw[name])
    obj = cls(**values)
    object.__setattr__(obj, "_key", f"{prefix}." if prefix else "")
    if hasattr(obj, "check"):
        obj.check(prefix)
    return obj


class Params:
    """The sections a stage loaded, as attributes (``params.bao.lr``); another section is an error
    naming it, so a stage that reads a section it did not declare fails at once."""

    def __init__(self, sections: dict[str, Section]):
        self.__dict__.update(sections)

    def __getattr__(self, name):
        if name.startswith("__"):  # pickle's and copy's probes (a worker process receives the params)
            raise AttributeError(name)
        raise SectionNotLoaded(f"params.{name}: not loaded by this stage (pass its section to bao.core.stage.main)")


class SectionNotLoaded(ParamsError, AttributeError):
    """A stage read a params section it did not load: a ParamsError (one line naming it) that
    ``getattr(params, name, default)`` also understands."""


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: parameters file not found (run from the project root)") from None
    except yaml.YAMLError as e:
        raise ParamsError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: must be a mapping of sections")
    return raw


def parse(raw: dict, sections) -> Params:
    """``Base`` and ``sections`` (Section classes) built from the mapping ``raw``."""
    out = {}
    for cls in (Base, *sections):
        if cls.KEY not in raw:
            raise ParamsError(f"{cls.KEY}: missing section")
        out[cls.KEY] = build(cls, raw[cls.KEY], cls.KEY)
    if _READS is not None:
        _READS.clear()  # the checks' reads are not the stage's
    return Params(out)


def load(path: str | Path = "params.yaml", sections=()) -> Params:
    return parse(read_yaml(path), sections)
