"""What ``dvc.yaml`` declares, read by the stages themselves: the artefact paths (its ``vars``) and
each stage's resolved deps, params and outs; and the resume key every resumable stage derives from
them. Paths are declared once, in dvc.yaml; nothing in the stages repeats them.
"""

from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path
from types import SimpleNamespace

import yaml

from bao.core.errors import ParamsError
from bao.core.io import md5sum

DVC_YAML = Path("dvc.yaml")
PARAMS_YAML = Path("params.yaml")
# params that cannot change a stage's output (process counts, checkpoint spacing): a resumed run keeps
# its work when only these change
NOT_IN_RESUME_KEY = ("num_workers", "infer_workers", "crf_workers", "checkpoint_every")
_EXPR = re.compile(r"\$\{\s*([^}]+?)\s*\}")


def _dvc_yaml() -> dict:
    return _read_dvc_yaml(Path.cwd())


@functools.cache
def _read_dvc_yaml(root: Path) -> dict:
    path = root / DVC_YAML
    if not path.exists():
        raise ParamsError(f"{DVC_YAML}: not found (run stages from the project root)")
    return yaml.safe_load(path.read_text())


def _vars() -> dict:
    out = {}
    for v in _dvc_yaml().get("vars", []):
        if isinstance(v, dict):
            out.update(v)
    return out


def _namespace(tree):
    return SimpleNamespace(**{k: _namespace(v) for k, v in tree.items()}) if isinstance(tree, dict) else tree


def paths() -> SimpleNamespace:
    """``paths().cams``, ``paths().metrics.seed`` etc.: the artefact paths of dvc.yaml's ``vars``."""
    return _namespace(_vars()["paths"])


def lookup(tree: dict, dotted: str):
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ParamsError(f"{dotted}: not found (dvc.yaml refers to it)")
        node = node[part]
    return node


def _interpolate(value, ctx: dict):
    if isinstance(value, str):
        m = _EXPR.fullmatch(value)
        if m:  # a whole-value ${...} keeps its type (list, dict), as DVC does
            return lookup(ctx, m.group(1))
        return _EXPR.sub(lambda m: str(lookup(ctx, m.group(1))), value)
    if isinstance(value, list):
        return [_interpolate(v, ctx) for v in value]
    if isinstance(value, dict):
        return {_interpolate(k, ctx): _interpolate(v, ctx) for k, v in value.items()}
    return value


def load_raw_params(path: Path = PARAMS_YAML) -> dict:
    return yaml.safe_load(Path(path).read_text())


def stage_names(raw_params: dict | None = None) -> list[str]:
    """Every stage of dvc.yaml, foreach groups expanded (``train_deeplab@bao``)."""
    raw = load_raw_params() if raw_params is None else raw_params
    ctx = {**raw, **_vars()}
    names = []
    for name, spec in _dvc_yaml()["stages"].items():
        if "foreach" not in spec:
            names.append(name)
            continue
        items = _interpolate(spec["foreach"], ctx)
        names += [f"{name}@{k}" for k in (items if isinstance(items, list) else items.keys())]
    return names


def resolve(stage: str, raw_params: dict | None = None) -> dict:
    """The stage's definition with ``${...}`` filled in: ``{"cmd", "deps", "params", "outs", ...}``.
    ``deps``/``params`` are lists of strings, ``outs``/``metrics``/``plots`` lists of paths."""
    raw = load_raw_params() if raw_params is None else raw_params
    group, _, key = stage.partition("@")
    spec = _dvc_yaml()["stages"].get(group)
    if spec is None:
        raise ParamsError(f"{DVC_YAML}: no stage {group!r}")
    ctx = {**raw, **_vars()}
    if "foreach" in spec:
        items = _interpolate(spec["foreach"], ctx)
        if key not in (items if isinstance(items, list) else items.keys()):
            raise ParamsError(f"{DVC_YAML}: stage {group!r} has no item {key!r} (items: {list(items)})")
        item = key if isinstance(items, list) else items[key]
        spec = spec["do"]
        ctx = {**ctx, "item": item, "key": key}
    out = _interpolate(spec, ctx)
    for field in ("outs", "metrics", "plots"):
        out[field] = [next(iter(o)) if isinstance(o, dict) else o for o in out.get(field, [])]
    out.setdefault("deps", [])
    params = []
    for p in out.get("params", []):  # "key" or {params.yaml: [keys]} (the form YAML anchors share)
        if isinstance(p, dict):  # {params.yaml: null}: the whole file (check_params)
            params += [k for keys in p.values() for k in (list(raw) if keys is None else keys)]
        else:
            params.append(p)
    out["params"] = params
    return out


def leaves(tree, prefix: str = "") -> list[str]:
    """Dotted keys of every leaf under ``tree`` (lists are leaves)."""
    if not isinstance(tree, dict):
        return [prefix]
    return [k for name, sub in tree.items() for k in leaves(sub, f"{prefix}.{name}" if prefix else name)]


def declared_params(stage: str, raw_params: dict | None = None) -> list[str]:
    """The leaf keys a stage declares (a section stands for every key under it)."""
    raw = load_raw_params() if raw_params is None else raw_params
    keys = []
    for p in resolve(stage, raw)["params"]:
        keys += leaves(lookup(raw, p), p)
    return sorted(set(keys))


def tree_md5(path: str | Path) -> str:
    """md5 over a file, or over a folder's relative file names and contents (sorted)."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: a declared dependency of this stage is missing")
    h = hashlib.md5()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        h.update(f.relative_to(path).as_posix().encode() if f != path else b"")
        md5sum(f, h=h)
    return h.hexdigest()


def resume_key(stage: str, raw_params: dict | None = None) -> str:
    """One recipe for every resumable stage: the values of its declared params (less worker counts)
    and the checksums of all its declared deps (code, data, checkpoints). A partial result written
    under another key is discarded: when in doubt, start over."""
    raw = load_raw_params() if raw_params is None else raw_params
    values = {k: lookup(raw, k) for k in declared_params(stage, raw) if k.rsplit(".", 1)[-1] not in NOT_IN_RESUME_KEY}
    deps = {d: tree_md5(d) for d in resolve(stage, raw)["deps"]}
    blob = repr((stage, sorted(values.items()), sorted(deps.items()))).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
