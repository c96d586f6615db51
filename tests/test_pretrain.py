"""The mini setting's pretraining: the generated classification set, the schedule, the stage, and the
checkpoint it hands to get_conformer_weights."""

import numpy as np
import torch
import yaml
from conftest import ROOT
from test_stages import base_params, run_stage

from bao.data import minivoc
from bao.data.shapes import NUM_CLASSES, SHAPES, TEXTURES, ShapesDataset, render, shape_mask, token_labels
from bao.method.pretrain import grouping_loss, lr_at


def test_classes_are_shape_by_texture_and_balanced():
    assert NUM_CLASSES == len(SHAPES) * len(TEXTURES) == 48
    ds = ShapesDataset(96, 64, seed=0)
    assert [ds[i]["target"] for i in range(96)] == [i % 48 for i in range(96)]


def test_images_are_deterministic_and_fresh_per_epoch():
    ds = ShapesDataset(4, 64, seed=3)
    a = ds[1]["image"]
    assert torch.equal(a, ShapesDataset(4, 64, seed=3)[1]["image"])
    ds.set_epoch(1)
    assert not torch.equal(a, ds[1]["image"])
    assert not torch.equal(a, ShapesDataset(4, 64, seed=3, split="val")[1]["image"])


def test_shapes_differ_and_fill_part_of_the_frame():
    v, u = np.mgrid[-1.2:1.2:64j, -1.2:1.2:64j]
    masks = [shape_mask(s, u, v) for s in range(len(SHAPES))]
    for i, m in enumerate(masks):
        assert 0.1 < m.mean() < 0.7, SHAPES[i]
        for j in range(i):
            assert (m != masks[j]).mean() > 0.05, (SHAPES[i], SHAPES[j])


def test_rendered_object_is_drawn():
    rng = np.random.default_rng(0)
    img, mask = render(rng, 96, 5)
    assert img.shape == (96, 96, 3) and img.dtype == np.uint8 and img.std() > 10
    assert 0.03 < mask.mean() < 0.6


def test_token_labels_by_hand():
    mask = np.zeros((32, 48), bool)
    mask[:16, :8] = True  # half of patch (0, 0)
    mask[16:, 16:40] = True  # all of (1, 1), half of (1, 2)
    assert token_labels(mask, 4).tolist() == [[5, 0, 0], [0, 5, 5]]
    mask[0, 8] = False
    assert token_labels(mask, 4)[0, 0] == 5


def test_not_minivoc_vocabulary():
    # its own classes: none of mini-VOC's head shapes or scene backgrounds by name
    assert not {"disc", "square", "diamond", "ring", "cross"} & set(SHAPES)
    assert not set(minivoc.GROUP_TEXTURES) & set(TEXTURES)


def test_grouping_loss_by_hand():
    # patch 0 is background, 1 and 2 one object; rows are queries (one block, no class token mass)
    attn = torch.tensor([[[0.5, 0.25, 0.25], [0.0, 1.0, 0.0], [0.0, 0.5, 0.5]]])
    tok = torch.tensor([[0, 3, 3]])
    bg, fg = -np.log(0.5), 0.0  # background: half its attention at home; the object: all of it
    assert abs(grouping_loss(attn, tok, depth=1).item() - (bg + fg) / 2) < 1e-6
    assert abs(grouping_loss(2 * attn, tok, depth=2).item() - (bg + fg) / 2) < 1e-6  # summed over 2 blocks
    assert abs(grouping_loss(attn, torch.tensor([[0, 0, 0]]), depth=1).item()) < 1e-6  # one region


def test_warmup_then_cosine():
    assert lr_at(0, 100, 10, 1.0) == 0.1 and lr_at(9, 100, 10, 1.0) == 1.0
    assert lr_at(10, 100, 10, 1.0) == 1.0 and abs(lr_at(55, 100, 10, 1.0) - 0.5) < 1e-9
    assert lr_at(100, 100, 10, 1.0) == 0.0


def test_stage_trains_and_get_weights_loads_it(tmp_path):
    p = base_params()
    p["pretrain"].update(images_per_epoch=32, val_images=16, epochs=2, batch_size=16, image_size=64)
    for code in ("stages", "bao"):  # its resume key hashes its declared code deps
        (tmp_path / code).symlink_to(ROOT / code)
    assert run_stage(tmp_path, "check_params", p).returncode == 0  # its output is every stage's dependency
    r = run_stage(tmp_path, "pretrain", p, "conformer")
    assert r.returncode == 0, r.stderr[-2000:]
    rows = (tmp_path / "metrics" / "pretrain.csv").read_text().splitlines()
    assert rows[0] == "epoch,step,loss,l_cls,l_token,l_attention,val_acc,val_token_acc" and len(rows) == 3
    assert (tmp_path / "models" / "pretrain" / "weights.pth").exists()
    assert not list(tmp_path.rglob("*.partial"))
    # the mini default model.pretrained points at it; get_conformer_weights checks it key for key
    assert yaml.safe_load((ROOT / "params.yaml").read_text())["model"]["pretrained"] == "models/pretrain/weights.pth"
    r = run_stage(tmp_path, "get_weights", p, "conformer")
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "models" / "pretrained" / "conformer" / "weights.pth").exists()
    # SeCo's mini ViT, the same way (class-token head + token labels), and get_vit_weights loads it
    r = run_stage(tmp_path, "pretrain", p, "vit")
    assert r.returncode == 0, r.stderr[-2000:]
    rows = (tmp_path / "metrics" / "pretrain_vit.csv").read_text().splitlines()
    assert rows[0] == "epoch,step,loss,l_cls,l_token,val_acc,val_token_acc" and len(rows) == 3
    assert yaml.safe_load((ROOT / "params.yaml").read_text())["seco"]["pretrained"] == "models/pretrain_vit/weights.pth"
    r = run_stage(tmp_path, "get_weights", p, "vit")
    assert r.returncode == 0, r.stderr[-2000:]
    sd = torch.load(tmp_path / "models" / "pretrained" / "vit" / "weights.pth", weights_only=True)
    assert "blocks.0.attn.qkv.weight" in sd and "pos_embed" in sd  # timm's layout, as SeCo's checkpoint
