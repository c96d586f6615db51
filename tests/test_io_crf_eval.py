import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from bao.core.io import atomic_dir, atomic_file, save_label_png, save_npz
from bao.data.voc import VOCDataset, read_split
from bao.method.cam_labels import cam_to_label
from bao.method.crf import crf_labels
from bao.scoring.labels import add_threshold_sweep, score_cams, score_labels, threshold_range
from bao.scoring.labels import main as eval_main
from bao.scoring.metrics import ConfusionMatrix


def test_atomic_file_keeps_old_on_failure(tmp_path):
    p = tmp_path / "m.json"
    p.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_file(p, "w") as f:
            f.write("half")
            raise RuntimeError("killed")
    assert p.read_text() == "old" and [x.name for x in tmp_path.iterdir()] == ["m.json"]


def test_atomic_dir_swaps_only_on_success(tmp_path):
    out = tmp_path / "seeds"
    with atomic_dir(out) as d:
        (d / "a.png").write_text("1")
    with pytest.raises(RuntimeError):
        with atomic_dir(out, resume_key="k") as d:
            (d / "b.png").write_text("2")
            raise RuntimeError("killed")
    assert sorted(x.name for x in out.iterdir()) == ["a.png"]
    with atomic_dir(out, resume_key="k") as d:  # same key: the partial work is kept
        assert (d / "b.png").exists()
    with atomic_dir(out, resume_key="other") as d:
        assert not any(d.glob("*.png"))
    # without a resume key a failure leaves no <out>.partial behind (and the old output intact)
    with pytest.raises(ValueError):
        with atomic_dir(out) as d:
            (d / "c.png").write_text("3")
            raise ValueError("bad input")
    assert not (tmp_path / "seeds.partial").exists() and out.is_dir() and not (out / "c.png").exists()


CRF = SimpleNamespace(
    gt_prob=0.7,
    gauss_sxy=3,
    gauss_compat=3,
    bilateral_sxy=50,
    bilateral_srgb=5,
    bilateral_compat=10,
    iterations=10,
    absent="merged",
)


@pytest.mark.parametrize("n_labels", [21, 91])
def test_merged_absent_labels_are_the_literal_crf_on_photographs(n_labels):
    """The label CRF over the labels present plus one merged absent label equals the literal call over
    all n_labels on every pixel of natural photographs (matplotlib's sample photographs, 500 px, a
    three-label seed that follows their content; and a seed with five labels)."""
    from bench.paper_hours import photographs, seed_on

    for _, img in photographs():
        for seed in (seed_on(img), np.where(seed_on(img) == 0, (img[..., 0] // 64).astype(np.uint8) * 3, seed_on(img))):
            literal = crf_labels(img, seed, SimpleNamespace(**{**vars(CRF), "absent": "literal"}), n_labels)
            merged = crf_labels(img, seed, CRF, n_labels)
            assert len(np.unique(seed)) >= 3 and np.array_equal(merged, literal)


def test_merged_crf_lets_an_absent_label_win_where_the_literal_one_does():
    """A pixel can end up with an absent label (the smallest absent index wins a tie, as np.argmax):
    with a weak unary and strong kernels the merged form still answers as the literal call."""
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)
    seed = rng.choice(np.array([0, 4, 9], np.uint8), (24, 24))
    weak = SimpleNamespace(**{**vars(CRF), "gt_prob": 0.03})  # below (1 - 0.03) / 20: the seed label loses
    literal = crf_labels(img, seed, SimpleNamespace(**{**vars(weak), "absent": "literal"}), 21)
    merged = crf_labels(img, seed, weak, 21)
    assert np.array_equal(merged, literal) and not set(np.unique(literal)) <= {0, 4, 9}


def test_crf_snaps_labels_to_edges():
    img = np.zeros((40, 40, 3), np.uint8)
    img[:, 20:] = 255
    truth = np.zeros((40, 40), np.uint8)
    truth[:, 20:] = 7
    seed = np.zeros_like(truth)
    seed[:, 14:] = 7  # the seed spills over the edge
    out = crf_labels(img, seed, CRF)
    assert (out == truth).mean() > (seed == truth).mean()
    assert set(np.unique(out)) <= {0, 7}


def test_eval_labels_cli_on_unseen_tree(mini_root, tmp_path, capsys):
    ds = VOCDataset(mini_root, "val")
    rng = np.random.default_rng(1)
    pred_dir = tmp_path / "pred"
    cm = ConfusionMatrix(21)
    for i in ds.ids:
        gt = ds.load_mask(i)
        pred = np.where(rng.random(gt.shape) < 0.3, rng.integers(0, 21, gt.shape), np.where(gt == 255, 0, gt))
        save_label_png(pred_dir / f"{i}.png", pred.astype(np.uint8))
        cm.update(pred, gt)
    out = tmp_path / "res.json"
    assert eval_main([str(pred_dir), "--root", str(mini_root), "--split", "val", "--json", str(out)]) == 0
    assert abs(json.loads(out.read_text())["miou"] - cm.summary()["miou"]) < 1e-9
    assert "mIoU" in capsys.readouterr().out


def test_cam_threshold_sweep(mini_root, tmp_path):
    ds = VOCDataset(mini_root, "train")
    for i in ds.ids:
        gt = ds.load_mask(i)
        keys = np.flatnonzero(ds.label(i)) + 1
        cams = np.stack([(gt == k) * 0.8 + 0.1 for k in keys]).astype(np.float16)
        save_npz(tmp_path / f"{i}.npz", keys=keys.astype(np.uint8), cams=cams)
    res = score_cams(tmp_path, mini_root, "train", threshold_range(0, 0.6, 0.05))
    assert 0.1 <= res["best_threshold"] < 0.9 and res["miou"] == pytest.approx(1.0)
    assert res["curve"][0]["miou"] < res["miou"]  # t=0: everything foreground


@pytest.mark.parametrize("thresholds", [threshold_range(0, 0.8, 0.01), [0.5, 0.1, 0.29, 0.29, 0.7]])
def test_threshold_sweep_equals_per_threshold(thresholds):
    # the one-histogram sweep counts exactly what cam_to_label gives at each threshold, including CAM
    # values equal to a threshold (float32 comparison), a NaN, ignored pixels and no foreground class
    thresholds = [float(t) for t in thresholds]
    rng = np.random.default_rng(0)
    for trial in range(40):
        k = int(rng.integers(0, 4))
        keys = np.sort(rng.choice(np.arange(1, 21), k, replace=False))
        cams = (np.round(rng.random((k, 12, 16)) * 100) / 100).astype(np.float32)
        if k and trial % 5 == 0:
            cams[0, 0, 0] = np.nan
        gt = rng.integers(0, 21, (12, 16))
        gt[rng.random(gt.shape) < 0.1] = 255
        got = [ConfusionMatrix(21) for _ in thresholds]
        add_threshold_sweep(got, thresholds, keys, cams, gt)
        for t, cm in zip(thresholds, got):
            want = ConfusionMatrix(21)
            want.update(cam_to_label(keys, cams, t), gt)
            assert (cm.hist == want.hist).all(), (trial, t)


def test_missing_prediction_named(mini_root, tmp_path):
    from bao.core.errors import DataError

    with pytest.raises(DataError, match=read_split(mini_root, "val")[0]):
        score_labels(tmp_path, mini_root, "val")


def test_cli_exit_code_on_bad_input(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "bao.scoring.labels", str(tmp_path / "nope"), "--root", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "not a folder" in r.stderr


def crf_work(out_dir):
    from bao.core.io import save_label_png

    def work(image_id):
        rng = np.random.default_rng(int(image_id))
        img = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
        seed = (rng.random((30, 40)) < 0.5).astype(np.uint8) * 3
        save_label_png(out_dir / f"{image_id}.png", crf_labels(img, seed, CRF))

    return work


def test_parallel_run_split_equals_serial(tmp_path):
    from functools import partial

    from bao.core.workers import run_split

    ids = [str(i) for i in range(6)]
    outs = {}
    for w in (1, 2):
        d = tmp_path / f"w{w}"
        d.mkdir()
        assert run_split(partial(crf_work, d), ids, d, ".png", workers=w) == {}  # work returns nothing
        outs[w] = {p.name: p.read_bytes() for p in d.glob("*.png")}
    assert len(outs[1]) == 6 and outs[1] == outs[2]


def test_save_npz_is_byte_stable(tmp_path):
    import time

    from bao.core.io import load_npz

    cams = np.random.default_rng(0).random((2, 5, 7)).astype(np.float16)
    save_npz(tmp_path / "a.npz", keys=np.array([3, 9], np.uint8), cams=cams)
    time.sleep(1.1)  # zip timestamps have 2-second resolution; ours are fixed
    save_npz(tmp_path / "b.npz", keys=np.array([3, 9], np.uint8), cams=cams)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    assert np.array_equal(load_npz(tmp_path / "a.npz")["cams"], cams)


def dying_work(out_dir, victim):
    import os
    import signal
    import time

    def work(image_id):
        if image_id == victim:
            os.kill(os.getpid(), signal.SIGKILL)  # as the out-of-memory killer does
        time.sleep(0.05)
        (out_dir / f"{image_id}.txt").write_text(image_id)

    return work


def test_a_killed_worker_fails_the_stage_fast_and_a_rerun_resumes(tmp_path):
    """ProcessPoolExecutor notices the dead worker: the stage (map_split's body: run_split in a
    resumable atomic_dir) fails within seconds naming the images not done, the .partial keeps the ones
    written, and a re-run does only the rest."""
    import time
    from functools import partial

    from bao.core.workers import WorkerDied, run_split

    ids = [f"{i:03d}" for i in range(40)]
    out = tmp_path / "out"

    def stage(victim):
        with atomic_dir(out, resume_key="k") as tmp:
            run_split(partial(dying_work, tmp, victim), ids, tmp, ".txt", workers=2, desc="s")

    t0 = time.perf_counter()
    with pytest.raises(WorkerDied, match=r"images not done: .*017"):
        stage("017")
    assert time.perf_counter() - t0 < 60
    partial_dir = tmp_path / "out.partial"
    kept = {p.stem for p in partial_dir.glob("*.txt")}
    assert not out.exists() and "017" not in kept
    before = {i: (partial_dir / f"{i}.txt").stat().st_mtime_ns for i in kept}
    stage(None)
    assert sorted(p.stem for p in out.glob("*.txt")) == ids
    assert {i: (out / f"{i}.txt").stat().st_mtime_ns for i in kept} == before  # resumed, not redone


def crf_like(path, value):
    """A hand-off target: writes its file in a CPU process; ``value`` -1 dies as a killed process."""
    import os
    import signal

    if value < 0:
        os.kill(os.getpid(), signal.SIGKILL)
    path.write_text(str(value))
    return value * 2


def handing_work(out_dir, victim):
    from bao.core.workers import hand_off

    def work(image_id):
        hand_off(crf_like, out_dir / f"{image_id}.txt", -1 if image_id == victim else int(image_id))

    return work


@pytest.mark.parametrize("workers", [1, 2])
def test_crfs_handed_off_to_cpu_processes_finish_or_fail(tmp_path, workers):
    """A GPU stage's CRFs run on base.crf_workers CPU processes (one GPU worker, or two sharing them):
    every file is written when the stage returns; a killed CRF process fails it, naming the images."""
    from functools import partial

    from bao.core.workers import HandOff, WorkerDied, hand_off, handing_off, run_split

    ids = [f"{i:03d}" for i in range(12)]
    (tmp_path / "a").mkdir()
    run_split(partial(handing_work, tmp_path / "a", None), ids, tmp_path / "a", ".txt", workers, "s", cpu_workers=4)
    assert sorted(p.stem for p in (tmp_path / "a").glob("*.txt")) == ids
    assert (tmp_path / "a" / "011.txt").read_text() == "11"
    (tmp_path / "b").mkdir()
    with pytest.raises(WorkerDied, match=r"images not done: .*005"):
        run_split(
            partial(handing_work, tmp_path / "b", "005"), ids, tmp_path / "b", ".txt", workers, "s", cpu_workers=4
        )
    # results come back to the process that handed the work off, in any order
    got = []
    with handing_off(2) as off:
        assert isinstance(off, HandOff) and off.pool is not None
        for i in range(5):
            hand_off(crf_like, tmp_path / f"c{i}.txt", i, then=got.append)
    assert sorted(got) == [0, 2, 4, 6, 8]
