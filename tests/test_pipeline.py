"""End to end: `dvc repro` on a tiny mini-VOC in a fresh copy of the project, then the experiment
commands the README shows."""

import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest
import yaml
from conftest import ROOT
from test_graph import check_traces

TINY = {
    "data": {"mini": {"num_train": 8, "num_val": 4, "num_test": 2, "num_aug": 8, "min_side": 64, "max_side": 96}},
    "pretrain": {"images_per_epoch": 32, "val_images": 16, "epochs": 2, "batch_size": 16, "image_size": 64},
    "transcam": {
        "epochs": 2,
        "bao_start_epoch": 1,
        "batch_size": 4,
        "augment": {"resize_long": [64, 96], "crop_size": 64},
    },
    "cams": {"scales": [64]},
    "bao": {"epochs": 2, "batch_size": 4, "augment": {"resize_long": [64, 96], "crop_size": 64}},
    "psa": {"epochs": 1, "batch_size": 4, "crop_size": 72},
    "deeplab": {"iterations": 4, "batch_size": 4, "crop_size": 64, "log_every": 1},
    "evaluate": {"scales": [1.0]},
    # SeCo: every branch of its schedule (warm-up, prototypes, LIL/LIG, segmentation, cam2mask) in 6 steps
    "seco": {
        "iterations": 6,
        "warmup_iters": 1,
        "update_prototype": 1,
        "lil_lig_after": 1,
        "seg_after": 2,
        "cam2mask": 3,
        "crop_size": 64,
        "ncrops": 4,
        "queue": 48,
        "cam_scales": [1.0, 0.5],
        "par_iterations": 2,
        "mask_scales": [1.0, 0.5],
        "seg_scales": [1.0],
    },
}


def stage_names(project) -> set[str]:
    cwd = os.getcwd()
    os.chdir(project)
    try:
        from bao.core.pipeline import stage_names as names

        return set(names())
    finally:
        os.chdir(cwd)


def merge(base, over):
    for k, v in over.items():
        if isinstance(v, dict):
            merge(base[k], v)
        else:
            base[k] = v
    return base


def sh(cmd, cwd, **env_extra):
    env = {**os.environ, "DVC_NO_ANALYTICS": "true", "PYTHONUNBUFFERED": "1", **env_extra}
    r = subprocess.run(cmd, cwd=cwd, shell=True, capture_output=True, text=True, env=env)
    assert r.returncode == 0, f"{cmd} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout


KEPT_METRICS = ("metrics/pretrain.csv", "metrics/pretrain_vit.csv")  # the pretrain stages' (kept in git)


def copy_project(dst):
    """The project's files (as git sees them, no metrics or data but the pretrain stage's) in ``dst``, as a
    fresh git repository."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for f in files:
        # metrics are regenerated, except the pretrain stage's: it is kept in git with its checkpoint, so a
        # clone (and this copy) finds that stage current and does not retrain it
        if (ROOT / f).is_file() and (not f.startswith(("metrics/", "data/")) or f in KEPT_METRICS):
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, dst / f)
    (dst / "metrics").mkdir(exist_ok=True)
    sh("git init -q && git add -A && git commit -qm init", dst)
    return dst


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    dst = copy_project(tmp_path_factory.mktemp("clone") / "bao")
    params = merge(yaml.safe_load((dst / "params.yaml").read_text()), TINY)
    params["report"]["figure2_ids"] = ["mini_00009"]
    params["report"]["figure3_ids"] = ["mini_00001"]
    for f in ("params.yaml", "conf/config.yaml"):  # dvc exp run composes params.yaml from conf/ (Hydra)
        (dst / f).write_text(yaml.safe_dump(params, sort_keys=False))
    sh("git add -A && git commit -qm tiny", dst)
    return dst


def stale(project) -> set[str]:
    out = sh(f"{sys.executable} -m dvc status", project)
    return {line[:-1] for line in out.splitlines() if line and not line[0].isspace() and line.endswith(":")}


@pytest.mark.slow
def test_dvc_repro_end_to_end(project, tmp_path):
    traces = tmp_path / "traces"
    sh(
        f"{sys.executable} -m dvc repro",
        project,
        BAO_TRACE_DIR=str(traces),
        BAO_STAGE_HOOK="trace_hook",
        PYTHONPATH=str(ROOT / "tests"),
    )
    check_traces(project, traces)  # every stage read, opened and wrote only what dvc.yaml declares
    m = project / "metrics"
    for name in (
        "transcam_seed",
        "seed",
        "mask",
        "transcam_mask",
        "transcam_mask_crf",
        "segmentation",
        "transcam_segmentation",
    ):
        assert 0 <= json.loads((m / f"{name}.json").read_text())["miou"] <= 1
    # the metric files DVC lists hold the headline numbers only; the records are in metrics/details/
    assert json.loads((m / "details" / "transcam_mask.json").read_text())["refinement"] == "psa+crf"
    assert set(json.loads((m / "transcam_seed.json").read_text())) == {"miou", "best_threshold"}
    assert set(json.loads((m / "seed.json").read_text())) == {"miou"}
    assert "iou" in json.loads((m / "details" / "segmentation.json").read_text())
    for v in ("amn", "share", "ema", "share+ema"):
        assert (m / "bao" / f"{v}.csv").read_text().startswith("epoch,")
    # after a Share epoch the target is the online model: its online scores are the target's, and present
    import csv

    rows = list(csv.DictReader((m / "bao" / "share.csv").open()))[1:]
    scored = [r for r in rows if r["miou_camsfg_ambg"]]  # bao.epoch_eval_every: some epochs are not scored
    assert scored and scored[-1] == rows[-1]  # the last epoch always is
    for r in scored:
        assert r["online_miou_camsfg_ambg"] == r["miou_camsfg_ambg"] and 0 <= float(r["online_miou_cam"]) <= 1
    table = (m / "table1.md").read_text()
    seed = json.loads((m / "seed.json").read_text())["miou"]
    assert f"| BAO | CRF | {100 * seed:.1f} |" in table
    psa_mask = json.loads((m / "transcam_mask.json").read_text())["miou"]
    assert f"| PSA random walk + CRF (used) | {100 * psa_mask:.1f} |" in table
    assert "| TransCAM | PSA + CRF |" in table
    # SeCo's row from its own stages' metric files
    seco = [100 * json.loads((m / f"seco_{k}.json").read_text())["miou"] for k in ("seed", "mask", "segmentation")]
    assert "| SeCo (CVPR 2024) | CRF | {:.1f} | {:.1f} | {:.1f} |".format(*seco) in table

    history = list(csv.DictReader((m / "train_seco.csv").open()))
    # seco.iterations counts the steps taken (the release's max_iters): 6 in 2 passes of 4 batches
    assert [int(r["iterations"]) for r in history] == [4, 6] and all(0 <= float(r["miou_seed"]) <= 1 for r in history)
    for fig in ("figure2", "figure3", "figure4", "threshold"):
        assert (project / "plots" / f"{fig}.png").stat().st_size > 1000
    import tarfile

    with tarfile.open(project / "results" / "voc2012_test.tar") as tar:  # the VOC server's layout
        names = [n for n in tar.getnames() if n.endswith(".png")]
    assert len(names) == 2 and all(n.startswith("results/VOC2012/Segmentation/comp6_test_cls/") for n in names)
    assert "up to date" in sh(f"{sys.executable} -m dvc status", project)
    # README "Exact results through a DVC remote": one clone pushes its outputs to a folder remote, a
    # second clone pulls them and finds every stage current (nothing to run), the same files byte for byte
    dvc = f"{sys.executable} -m dvc"
    sh(f"{dvc} remote add -d shared {tmp_path / 'remote'} && {dvc} push -q", project)
    sh("git add -A && git commit -qm results", project)
    second = tmp_path / "second"
    sh(f"git clone -q {project} {second}", tmp_path)
    sh(f"{dvc} pull -q", second)
    assert "up to date" in sh(f"{dvc} status", second)
    for f in ("metrics", "plots", "seeds", "masks", "models/deeplab", "data/VOC2012"):
        sh(f"git diff --no-index --quiet {project / f} {second / f}", tmp_path)  # fails on any difference
    # what dvc status calls stale follows what the stages use
    params = (project / "params.yaml").read_text()
    (project / "params.yaml").write_text(params.replace("combine: camsfg_ambg", "combine: cam"))
    # check_params re-runs on any params change (its output stays the same); the readout: no training stage
    assert stale(project) == {"check_params", "make_seeds", "report"}
    (project / "params.yaml").write_text(params)

    # an edit re-runs only the stages whose code it is (narrow closures, docs: README "The graph is true")
    def edited(rel, expected):
        path = project / rel
        code = path.read_text()
        path.write_text(code + "# edited\n")
        try:
            assert stale(project) == expected, rel
        finally:
            path.write_text(code)

    weights = {f"get_{w}_weights" for w in ("conformer", "transcam", "deeplab", "resnet38", "vit")}
    bao_training = {f"train_bao_{v}" for v in ("amn", "share", "ema", "share_ema")}
    conformer_stages = {"pretrain", "pretrain_vit", "train_transcam", "make_cams", "make_seeds", "report"}
    edited("bao/models/conformer.py", conformer_stages | weights | bao_training)
    edited("bao/method/seco/losses.py", {"train_seco"})  # SeCo's training only; not TransCAM's or BAO's rows
    edited("bao/method/psa.py", {"train_affinity", "random_walk"})
    edited("bao/core/io.py", set(stage_names(project)))  # the core: every stage
    # an experiment through DVC: a new tau changes the EMA variant, and metrics diff runs on it
    sh("git add -A && git commit -q --allow-empty -m baseline", project)
    before = (m / "bao" / "ema.csv").read_text()
    sh(f"{sys.executable} -m dvc exp run -S ema.tau=0.5", project)
    assert yaml.safe_load((project / "params.yaml").read_text())["ema"]["tau"] == 0.5
    assert (m / "bao" / "ema.csv").read_text() != before  # the EMA target moved differently
    sh(f"{sys.executable} -m dvc metrics diff --json", project)  # runs against the committed baseline
    # README "Experiments": its `dvc exp show` command fits a 120-column terminal with nothing elided
    readme = (project / "README.md").read_text()
    cmd = re.search(r"^(?:\$ )?(dvc exp show [^#\n]*)", readme, re.M).group(1).strip()
    table = sh(f"{sys.executable} -m {cmd}", project, COLUMNS="120")
    assert "…" not in table and max(map(len, table.splitlines())) <= 120, table
    assert "ema.tau" in table and "metrics/seed.json:miou" in table, table
    # a misspelt key (Hydra's advice: +bao.epoch) fails in check_params, before any stage deletes its
    # outputs; README "After a failed experiment": back to the last commit, dvc status clean
    r = subprocess.run(
        f"{sys.executable} -m dvc exp run -S +bao.epoch=3",
        cwd=project,
        shell=True,
        capture_output=True,
        text=True,
        env={**os.environ, "DVC_NO_ANALYTICS": "true"},
    )
    assert r.returncode != 0 and "bao.epoch: unknown parameter" in r.stdout + r.stderr
    assert "Running stage 'prepare_data'" not in r.stdout + r.stderr
    assert "deleted" not in sh(f"{sys.executable} -m dvc status", project)  # the failed check removed nothing
    recovery = re.search(r"^(python -m scripts.restore)\s+#", (project / "README.md").read_text(), re.M).group(1)
    sh(recovery.replace("python ", f"{sys.executable} "), project)
    assert "up to date" in sh(f"{sys.executable} -m dvc status", project)
    # README: a queued experiment runs in its own tree; when it fails, it stays listed as Failed with
    # its log, and the workspace is untouched
    sh(f"{sys.executable} -m dvc exp run --queue -S +bao.epoch=3 --name bad-key", project)
    sh(f"{sys.executable} -m dvc queue start -j 1", project)
    for _ in range(300):
        status = sh(f"{sys.executable} -m dvc queue status", project)
        if "bad-key" in status and not re.search(r"Queued|Running", status):
            break
        time.sleep(1)
    assert re.search(r"bad-key\s.*Failed", status), status
    assert "bao.epoch: unknown parameter" in sh(f"{sys.executable} -m dvc queue logs bad-key", project)
    assert re.search(r"bad-key.*,Failed,", sh(f"{sys.executable} -m dvc exp show --csv", project)), "not listed"
    table = sh(f"{sys.executable} -m {cmd}", project, COLUMNS="120")  # queued runs add State/Executor
    assert "…" not in table and max(map(len, table.splitlines())) <= 120, table
    assert "up to date" in sh(f"{sys.executable} -m dvc status", project)
    # base.gpus: each training stage launches its ranks itself (two gloo processes here), inside the
    # stage DVC runs; rank 0 writes what one process writes, and DVC records it as any run
    trained = {"train_transcam", "train_affinity", "train_seco", *bao_training}
    trained |= {f"train_deeplab@{s}" for s in ("bao", "transcam")}
    written = {
        f: sorted(p.relative_to(project).as_posix() for p in (project / f).rglob("*")) for f in ("models", "metrics")
    }
    out = sh(f"{sys.executable} -m dvc exp run -S base.gpus=2", project)
    assert set(re.findall(r"\[([a-z_@+]+)\] done in [0-9.]+s \(2 processes\)", out)) == trained, out[-3000:]
    assert {f: sorted(p.relative_to(project).as_posix() for p in (project / f).rglob("*")) for f in written} == written
    assert "up to date" in sh(f"{sys.executable} -m dvc status", project)
    # another label space: a VOC-layout folder of 5 classes (background + 4) with names of its own (its classes.txt) runs
    # to Table 1, and every per-class record is named by those classes
    other = tmp_path / "cells"
    names = ["background", "nucleus", "membrane", "vesicle", "debris"]
    sh(
        f"{sys.executable} -m scripts.other_voc {other} --train 8 --val 4 --aug 8 --min-side 64 --max-side 96 "
        f"--classes {','.join(names[1:])}",
        project,
    )
    sh(f"{dvc} exp run -S base.gpus=auto -S data.source=folder -S data.folder={other}/VOCdevkit", project)
    assert json.loads((m / "data.json").read_text())["classes"] == names
    per_class = 0
    for f in (m / "details").glob("*.json"):
        stack = [json.loads(f.read_text())]
        while stack:
            d = stack.pop()
            if isinstance(d, dict):
                if isinstance(d.get("iou"), dict):
                    assert list(d["iou"]) == names, f
                    per_class += 1
                stack += list(d.values())
    assert per_class >= 5
    assert (m / "segmentation_iou.csv").read_text().split()[1:] and all(
        line.split(",")[0] in names for line in (m / "segmentation_iou.csv").read_text().split()[1:]
    )
    assert "| BAO | CRF |" in (m / "table1.md").read_text()
    assert "up to date" in sh(f"{dvc} status", project)


def test_fresh_clone_does_not_retrain_pretrain(tmp_path):
    """The pretrain stages' outputs are in git with their lock: a clone finds them current (no
    retraining), as long as their code and params are those the committed checkpoints were trained with."""
    project = copy_project(tmp_path / "bao")
    out = sh(f"{sys.executable} -m dvc status pretrain pretrain_vit", project)
    assert "pretrain:" not in out and "pretrain_vit:" not in out, out
