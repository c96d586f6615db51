"""dvc.yaml tells the truth: each stage depends on the code it runs, declares the params it reads,
and writes only its own outputs (the dynamic half runs in tests/test_pipeline.py's end-to-end run)."""

import ast
import json
import os
from collections import defaultdict
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from bao import closure
from bao.core import pipeline

# params a stage reads only under another setting than the tiny end-to-end run's: declared, not read there
READ_ONLY_ELSEWHERE = {
    "prepare_data": {
        "data.folder",
        "data.download_dir",
        "data.voc_urls",
        "data.voc_md5",
        "data.sbd_urls",
        "data.sbd_md5",
        *(f"data.coco.{k}_{v}" for k in ("train", "val", "annotation") for v in ("urls", "md5")),
    },  # data.source: folder | voc | coco
    # only with a checkpoint to fetch and check
    "get_conformer_weights": {"model.arch"},
    "get_transcam_weights": {"model.arch"},
    "get_deeplab_weights": {"deeplab.arch", "deeplab.backbone", "deeplab.output_stride"},
    "get_resnet38_weights": {"psa.arch"},
    # deeplab.arch: resnet38_seg with deeplab.pretrained null starts from psa.pretrained's ImageNet ResNet-38
    "train_deeplab@bao": {"psa.pretrained"},
    "train_deeplab@transcam": {"psa.pretrained"},
    # bao.epoch_eval_scales: null scores the per-epoch curves at cams.scales
    **{f"train_bao_{v}": {"cams.scales"} for v in ("amn", "share", "ema", "share_ema")},
}


def covered(path: str, declared: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in declared)


@pytest.fixture(autouse=True)
def at_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def test_every_stage_depends_on_the_code_it_imports():
    missing, unused = [], []
    for stage in pipeline.stage_names():
        deps = pipeline.resolve(stage)["deps"]
        code = closure.stage_code(stage)
        missing += [(stage, f) for f in code if not covered(f, deps)]
        # as precise as simple: a declared project .py file is one the stage imports
        unused += [(stage, d) for d in deps if d.endswith(".py") and d not in code]
    assert not missing, f"dvc.yaml misses (stage, file): {missing}"
    assert not unused, f"dvc.yaml declares code a stage does not import: {unused}"


def test_closure_sees_imports_inside_functions(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bao").mkdir()
    (tmp_path / "bao" / "__init__.py").write_text("")
    (tmp_path / "bao" / "a.py").write_text("def f():\n    from bao import b\n")
    (tmp_path / "bao" / "b.py").write_text("import os\n")
    (tmp_path / "s.py").write_text("import bao.a\n")
    assert closure.code_closure("s.py") == ["bao/__init__.py", "bao/a.py", "bao/b.py", "s.py"]


def test_paths_are_declared_once():
    """No stage or library module spells an artefact path of dvc.yaml's vars: they read them."""

    def values(tree):
        return [v for x in tree.values() for v in (values(x) if isinstance(x, dict) else [x])]

    literals = {v for v in values(yaml.safe_load((ROOT / "dvc.yaml").read_text())["vars"][0]["paths"]) if "/" in v}
    offenders = []
    for f in list((ROOT / "stages").glob("*.py")) + list((ROOT / "bao").rglob("*.py")):
        text = f.read_text()
        offenders += [(f.name, v) for v in literals if f'"{v}' in text or f"'{v}" in text]
    assert not offenders, offenders


def test_resume_key_ignores_workers_and_sees_inputs(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    raw = pipeline.load_raw_params()
    stage = "make_masks_bao"
    monkeypatch.setattr(pipeline, "tree_md5", lambda p: "same")
    key = pipeline.resume_key(stage, raw)
    raw2 = yaml.safe_load(yaml.safe_dump(raw))
    raw2["base"]["crf_workers"] = 7
    assert pipeline.resume_key(stage, raw2) == key
    raw2["masks"]["crf"]["gt_prob"] = 0.5
    assert pipeline.resume_key(stage, raw2) != key
    monkeypatch.setattr(pipeline, "tree_md5", lambda p: "other" if p.endswith("seeds/bao") else "same")
    assert pipeline.resume_key(stage, raw) != key


def test_trace_records_files_not_probes(tmp_path, monkeypatch):
    """The audit hook records a file a stage reads or writes, not a read of a path that is no file
    (imports probe sys.path entries such as an editable install's path hook)."""
    import trace_hook as trace

    monkeypatch.setattr(trace, "_opens", {})
    (tmp_path / "data.txt").write_text("x")
    monkeypatch.chdir(tmp_path)
    trace._hook("open", ("data.txt", "r", 0))
    trace._hook("open", ("__editable__.pkg-0.1.finder.__path_hook__", "rb", 0))
    trace._hook("open", ("out/new.png", None, os.O_WRONLY | os.O_CREAT))
    assert trace._opens == {"data.txt": "r", "out/new.png": "w"}


def check_traces(project: Path, trace_dir: Path) -> None:
    """Called by the end-to-end test: compare what each stage read, opened and wrote with dvc.yaml."""
    cwd = os.getcwd()
    os.chdir(project)
    try:
        raw = pipeline.load_raw_params()
        reads, opens = defaultdict(set), defaultdict(dict)
        for f in trace_dir.glob("*.json"):
            rec = json.loads(f.read_text())
            reads[rec["stage"]] |= set(rec["params"])
            for path, mode in rec["opens"].items():
                if opens[rec["stage"]].get(path) != "w":
                    opens[rec["stage"]][path] = mode
        problems = []
        for stage in pipeline.stage_names(raw):
            spec = pipeline.resolve(stage, raw)
            declared = set(pipeline.declared_params(stage, raw))
            assert stage in reads, f"{stage}: no trace recorded"
            extra = reads[stage] - declared
            unread = declared - reads[stage] - READ_ONLY_ELSEWHERE.get(stage, set())
            if stage == "check_params":  # it tracks all of params.yaml to check every key, reading few
                unread = set()
            problems += [f"{stage} reads undeclared param {k}" for k in sorted(extra)]
            problems += [f"{stage} declares unread param {k}" for k in sorted(unread)]
            outs = spec["outs"] + spec["metrics"] + spec["plots"]
            for path, mode in opens[stage].items():
                if path in ("params.yaml", "dvc.yaml"):
                    continue
                # atomic writes go through <out>.partial/ and .<name>.<random>.tmp beside the target
                name = Path(path.replace(".partial/", "/").replace(".partial", ""))
                if name.name.startswith(".") and name.name.endswith(".tmp"):
                    name = name.parent / name.name[1:].rsplit(".", 2)[0]
                logical = name.as_posix()
                if mode == "w" and not covered(logical, outs):
                    problems.append(f"{stage} writes {path}, not one of its outputs")
                if mode == "r" and not covered(logical, spec["deps"] + outs):
                    problems.append(f"{stage} reads {path}, not one of its deps")
        assert not problems, "\n".join(problems)
    finally:
        os.chdir(cwd)


# the package markers every closure runs (docstrings only, but stages/__init__.py, which chooses the CPU
# kernels from the core before a stage imports torch), beside the core
MARKERS = {"bao/__init__.py", "bao/config/__init__.py", "stages/__init__.py"}
MARKER_IMPORTS = {"stages/__init__.py": {"bao.core.kernels"}}
CORE_MAX_LINES = 800


def _closures() -> dict[str, set[str]]:
    return {stage: set(closure.stage_code(stage)) for stage in pipeline.stage_names()}


def test_the_code_every_stage_runs_is_the_small_core():
    """What every stage's closure shares is ``bao/core`` (and package markers), under 800 lines: an
    edit elsewhere cannot re-run the whole pipeline."""
    shared = set.intersection(*_closures().values())
    assert {f for f in shared if not f.startswith("bao/core/")} <= MARKERS, shared
    lines = sum(len((ROOT / f).read_text().splitlines()) for f in shared)
    assert lines <= CORE_MAX_LINES, f"the shared code is {lines} lines"
    for f in MARKERS:  # a marker imports nothing (but the core)
        tree = ast.parse((ROOT / f).read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert imported <= MARKER_IMPORTS.get(f, set()), f


def test_pretraining_depends_on_the_core_and_its_own_code_only():
    """The mini setting's stand-ins for ImageNet checkpoints (kept in git) are not made stale by an edit
    to TransCAM, BAO, SeCo, PSA, the CRF or scoring: only by the core and their own model, data,
    recipe and params schema."""
    own = {
        "stages/pretrain.py",
        "bao/method/__init__.py",
        "bao/method/pretrain.py",  # the recipe: heads, grouping loss, schedule, accuracy
        "bao/data/__init__.py",
        "bao/data/shapes.py",  # the generated classification set
        "bao/models/__init__.py",
        "bao/models/conformer.py",
        "bao/models/factory.py",
        "bao/models/vit.py",
        "bao/config/archs.py",  # the two models' configurations
        "bao/config/pretrain.py",  # the pretrain section's schema
    }
    for stage in ("pretrain", "pretrain_vit"):
        code = set(closure.stage_code(stage))
        extra = {f for f in code - own - MARKERS if not f.startswith("bao/core/")}
        assert not extra, f"{stage} depends on {sorted(extra)}"


def test_no_stage_script_edits_sys_path():
    """Stages run as ``python -m stages.<name>`` from the checkout's root, which puts that checkout
    first: no script inserts into sys.path (tests/test_checkout.py runs a copy)."""
    offenders = [p.name for p in (ROOT / "stages").glob("*.py") if "sys.path" in p.read_text()]
    assert not offenders, offenders
    cmds = [pipeline.resolve(s)["cmd"] for s in pipeline.stage_names()]
    assert all(c.startswith("python -m stages.") for c in cmds), cmds


def test_dvc_yaml_code_deps_are_generated(tmp_path, monkeypatch):
    """``python -m bao.closure --write`` leaves dvc.yaml as committed: its code deps are the closures."""
    copy = tmp_path / "dvc.yaml"
    copy.write_text((ROOT / "dvc.yaml").read_text())
    assert not closure.write_deps(copy)
