"""The paper setting rehearsed on the CPU: `dvc exp run -S +experiment=paper -S +rehearsal=cpu` on a
small VOC-sized folder, offline, from random weights, through to Table 1 (README "Paper setting").
Several minutes: `pytest -m "not rehearsal"` skips it."""

import json
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT
from test_pipeline import copy_project, sh


@pytest.mark.rehearsal
def test_paper_setting_rehearsal_reaches_table1(tmp_path_factory):
    data = tmp_path_factory.mktemp("voc")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "scripts.other_voc",
            str(data),
            "--train",
            "2",
            "--val",
            "1",
            "--test",
            "1",
            "--aug",
            "0",
            "--min-side",
            "320",
            "--max-side",
            "500",
        ],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    # MCTformer's start for resnet38_seg, staged as the paper setting stages PSA's res38_cls.pth: a
    # ResNet-38 classifier state_dict in PSA's layout (backbone keys + the 20-class fc8), random values
    import torch

    from bao.models.resnet38 import ResNet38d

    torch.manual_seed(0)
    res38_cls = ResNet38d(1).state_dict()
    res38_cls["fc8.weight"] = torch.randn(20, 4096, 1, 1) * 0.01
    cls_path = tmp_path_factory.mktemp("weights") / "res38_cls.pth"
    torch.save(res38_cls, cls_path)
    project = copy_project(tmp_path_factory.mktemp("clone") / "bao")
    sh(
        f"{sys.executable} -m dvc exp run -S +experiment=paper -S +rehearsal=cpu -S data.folder={data / 'VOCdevkit'}"
        f" -S deeplab.pretrained={cls_path}",
        project,
    )
    staged = json.loads((project / "models" / "pretrained" / "deeplab" / "source.json").read_text())
    assert staged["deeplab.pretrained"] == str(cls_path) and len(staged["md5"]) == 32
    p = yaml.safe_load((project / "params.yaml").read_text())
    # the paper's sizes, untouched
    assert (p["model"]["arch"], p["transcam"]["augment"]["crop_size"], p["cams"]["scales"]) == (
        "conformer_s",
        512,
        [256, 512, 768],
    )
    assert (
        p["deeplab"]["arch"],
        p["deeplab"]["backbone"],
        p["deeplab"]["crop_size"],
        p["masks"]["crf"]["bilateral_sxy"],
        p["masks"]["crf"]["n_labels"],
        p["bao"]["head"],
        p["bao"]["target_mode"],
        p["ema"]["span"],
    ) == ("resnet38_seg", "resnet38d", 321, 50, 91, "classifier_x", "train", "epoch")
    assert (p["psa"]["arch"], p["psa"]["crop_size"], p["psa"]["frozen"]) == (
        "resnet38d",
        448,
        ["conv1a", "b2", "b2_1", "b2_2"],
    )
    s = p["seco"]  # SeCo at its sizes: ViT-B/16, crop 448, 12 views of which 10 local crops of 64 px, its queue
    assert (
        s["arch"],
        s["crop_size"],
        s["local_crop_size"],
        s["ncrops"],
        s["queue"],
        s["aspp_rates"],
        s["par_dilations"],
        s["energy"]["weight"],
        s["energy"]["kernel"],
        s["mask_scales"],
    ) == (
        "vit_base_patch16_224",
        448,
        64,
        12,
        4608,
        [6, 12, 18, 24],
        [1, 2, 4, 8, 12, 24],
        1e-7,
        "lattice",
        [1.0, 0.5, 0.75, 1.25, 1.5, 1.75, 2.0],
    )
    m = project / "metrics"
    for name in (
        "transcam_seed",
        "seed",
        "mask",
        "transcam_mask",
        "transcam_mask_crf",
        "segmentation",
        "transcam_segmentation",
        "seco_seed",
        "seco_mask",
        "seco_segmentation",
    ):
        assert 0 <= json.loads((m / f"{name}.json").read_text())["miou"] <= 1
    assert "| BAO | CRF |" in (m / "table1.md").read_text()
    assert "| SeCo (CVPR 2024) | CRF | –" not in (m / "table1.md").read_text()  # its row is computed
    assert "Dataset: folder" in (m / "table1.md").read_text()


@pytest.mark.rehearsal
def test_coco_setting_rehearsal_reaches_table1(tmp_path_factory):
    """`+experiment=coco` at COCO's sizes through every stage, on a generated tree in COCO's layout
    (images + instances JSON), to Table 1's COCO columns."""
    tree = tmp_path_factory.mktemp("coco") / "coco"
    subprocess.run(
        [sys.executable, "-m", "scripts.other_coco", str(tree), "--train", "2", "--val", "1"]
        + ["--min-side", "320", "--max-side", "500"],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    project = copy_project(tmp_path_factory.mktemp("clone") / "bao")
    sh(f"{sys.executable} -m dvc exp run -S +experiment=coco -S +rehearsal=coco_cpu -S data.folder={tree}", project)
    p = yaml.safe_load((project / "params.yaml").read_text())
    assert (p["data"]["source"], p["model"]["arch"], p["transcam"]["augment"]["crop_size"]) == (
        "coco",
        "conformer_s",
        512,
    )
    s = p["seco"]  # train_coco.py's own values
    assert (s["arch"], s["crop_size"], s["high_thre"], s["bkg_thre"], s["proto_m"], s["w_ptc"], s["seg_size"]) == (
        "vit_base_patch16_224",
        448,
        0.65,
        0.45,
        0.99,
        0.2,
        "image",
    )
    m = project / "metrics"
    data = json.loads((m / "data.json").read_text())
    assert data["source"] == "coco" and len(data["classes"]) == 81 and data["classes"][80] == "toothbrush"
    for name in ("transcam_seed", "seed", "mask", "transcam_mask", "segmentation", "seco_seed", "seco_segmentation"):
        scores = json.loads((m / f"{name}.json").read_text())
        assert 0 <= scores["miou"] <= 1
    per_class = json.loads((m / "details" / "segmentation.json").read_text())
    assert list(per_class["iou"])[-1] == "toothbrush" and len(per_class["iou"]) == 81
    table = (m / "table1.md").read_text()
    assert "| COCO val | published: Seed | Mask | COCO val |" in table and "| BAO | CRF |" in table
    assert "Dataset: coco" in table
