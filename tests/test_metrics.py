import numpy as np

from bao.scoring.metrics import ConfusionMatrix


def independent_miou(preds, gts, n=21):
    ious = []
    for c in range(n):
        inter = union = 0
        for p, g in zip(preds, gts):
            keep = g != 255
            inter += np.sum((p == c) & (g == c) & keep)
            union += np.sum(((p == c) | (g == c)) & keep)
        if union:
            ious.append(inter / union)
    return np.mean(ious)


def test_streaming_matches_independent():
    rng = np.random.default_rng(0)
    preds, gts = [], []
    cm = ConfusionMatrix(21)
    for _ in range(5):
        h, w = rng.integers(10, 40, 2)
        g = rng.integers(0, 6, (h, w)).astype(np.uint8)
        g[rng.random((h, w)) < 0.1] = 255
        p = rng.integers(0, 7, (h, w)).astype(np.uint8)
        cm.update(p, g)
        preds.append(p)
        gts.append(g)
    s = cm.summary()
    assert abs(s["miou"] - independent_miou(preds, gts)) < 1e-9
    keep = np.concatenate([g.ravel() for g in gts]) != 255
    acc = np.mean(np.concatenate([p.ravel() for p in preds])[keep] == np.concatenate([g.ravel() for g in gts])[keep])
    assert abs(s["pixel_acc"] - acc) < 1e-12


def test_shape_mismatch_raises():
    import pytest

    with pytest.raises(ValueError):
        ConfusionMatrix(21).update(np.zeros((2, 2)), np.zeros((3, 2)))


def test_write_scores_splits_headline_and_record(tmp_path):
    """A metric file holds the headline numbers only; the whole record goes to metrics/details/."""
    import json

    from bao.scoring.metrics import details_path, write_scores

    record = {"split": "train", "images": 3, "miou": 0.5, "best_threshold": 0.4, "iou": {"background": 0.9}}
    write_scores(tmp_path / "seed.json", record, headline=("miou", "best_threshold"))
    assert json.loads((tmp_path / "seed.json").read_text()) == {"miou": 0.5, "best_threshold": 0.4}
    assert details_path(tmp_path / "seed.json") == tmp_path / "details" / "seed.json"
    assert json.loads((tmp_path / "details" / "seed.json").read_text()) == record


def test_table1_has_cocos_columns_on_a_coco_run(monkeypatch):
    """On COCO 2014: seed, mask and COCO val (no test split), beside SeCo's published COCO val; VOC's
    layout otherwise."""
    from conftest import ROOT

    from bao.core.pipeline import paths
    from bao.scoring.report import table1, table1_markdown

    monkeypatch.chdir(ROOT)
    m = paths().metrics
    coco = table1_markdown(table1(m, None, coco=True), "note", coco=True)
    header, rule, *rows = coco.splitlines()[:5]
    assert header == "| Method | Post-processing | Seed | Mask | COCO val | published: Seed | Mask | COCO val |"
    assert rule.count("|") == header.count("|") and all(r.count("|") == header.count("|") for r in rows)
    assert next(r for r in rows if r.startswith("| SeCo")).endswith("| – | – | 46.7 |")
    voc = table1_markdown(table1(m, 74.6), "note").splitlines()[0]
    assert voc.endswith("| val | test |") and "COCO" not in voc
