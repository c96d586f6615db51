"""mini-VOC: a small generated dataset in the exact VOC 2012 + SBD layout.

It is the project's embedded default, so ``dvc repro`` runs end to end on a CPU in minutes. It is built
to pose the problems WSSS methods exist for, otherwise the pipeline's numbers would mean nothing:

* **partial evidence**: every object is a large body whose texture is shared by a *group* of five
  classes, faintly tinted per class, plus a small, strongly class-specific "head" (its own hue, one of
  five shapes). The head is the most discriminative part and the body weaker evidence, so a
  classifier's CAM fires on the head and part of the body.
* **clutter**: backgrounds are low-frequency colour noise with random strokes and boxes, and headless
  body-textured blobs (distractors) that look like objects but are background.
* **co-occurrence**: some classes mostly appear on a typical background (boat on water, aeroplane and
  bird on sky, cow/horse/sheep on grass, train on rails), so background pixels correlate with labels.
* **VOC conventions**: JPEG images of varying non-square sizes, palette PNG masks with a 255 band at
  object boundaries in ``SegmentationClass`` (like VOC), band-free ``SegmentationClassAug`` (like SBD),
  1-3 objects of 1-2 classes per image, test images without masks.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from bao.core.classes import VOC, LabelSpace, write_label_space
from bao.core.io import save_label_png
from bao.data.voc import split_path

# class -> typical background texture (the co-occurrence bias), and how often it is used
TYPICAL_BG = {4: "water", 1: "sky", 3: "sky", 10: "grass", 13: "grass", 17: "grass", 19: "rails"}
TYPICAL_P = 0.8
GROUP_TEXTURES = ("fur", "stripes", "spots", "metal")  # body texture of group (c-1)//5
BAND = 3  # width of the 255 boundary band in SegmentationClass
BODY_TINT = 0.3  # how much of a body's colour is its class's tint (the rest: its group's texture)


def _class_colours(rng: np.random.Generator, n_classes: int = VOC.n) -> np.ndarray:
    """Head colours (outer, inner) per class: saturated hues evenly apart (VOC's 20: 18 degrees), and
    a black or white inner mark. (mini-VOC therefore trains without hue jitter: see params.yaml.)"""
    out = np.zeros((n_classes, 3, 3))
    for c in range(1, n_classes):
        out[c, 0] = _hsv((c - 1) / (n_classes - 1), 0.95, 0.95)
        out[c, 1] = _hsv(0.0, 0.0, 0.05 if c % 2 else 1.0)
        out[c, 2] = _hsv(((c - 1) % 5) / 5 + 0.1 * ((c - 1) // 5), 0.8, 0.8)  # body tint, 72 deg apart in a group
    return out * 255


def _hsv(h, s, v):
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i])


def _smooth_noise(rng, h, w, cells=6, channels=3):
    small = rng.random((cells, cells, channels)).astype(np.float32)
    img = Image.fromarray((small * 255).astype(np.uint8))
    return np.asarray(img.resize((w, h), Image.BILINEAR), dtype=np.float32) / 255.0


def _background(rng, h, w, kind):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "water":
        waves = 0.5 + 0.5 * np.sin(xx / rng.uniform(3, 6) + np.sin(yy / 7.0) * 2 + yy / rng.uniform(2, 4))
        base = np.stack([20 + 30 * waves, 70 + 50 * waves, 140 + 80 * waves], -1)
    elif kind == "sky":
        g = yy / h
        base = np.stack([150 + 60 * g, 190 + 40 * g, 250 - 20 * g], -1) + 25 * _smooth_noise(rng, h, w, 4)
    elif kind == "grass":
        n = rng.random((h, w))
        base = np.stack([40 + 50 * n, 110 + 90 * n, 30 + 40 * n], -1) + 40 * _smooth_noise(rng, h, w, 5)
    elif kind == "rails":
        ties = (np.mod(xx + 0.4 * yy, 14) < 4).astype(np.float32)
        base = np.stack([110 + 60 * ties, 100 + 40 * ties, 90 + 20 * ties], -1) + 30 * _smooth_noise(rng, h, w)
    else:  # generic cluttered scene
        base = 60 + 150 * _smooth_noise(rng, h, w, int(rng.integers(3, 9)))
        for _ in range(int(rng.integers(4, 10))):  # random boxes and strokes
            colour = rng.uniform(40, 220) + rng.uniform(-25, 25, 3)  # dull: saturated hues are heads
            y0, x0 = rng.integers(0, h), rng.integers(0, w)
            if rng.random() < 0.5:
                base[y0:y0 + rng.integers(4, h // 3), x0:x0 + rng.integers(4, w // 3)] = colour
            else:
                ang = rng.uniform(0, np.pi)
                d = np.abs((xx - x0) * np.sin(ang) - (yy - y0) * np.cos(ang))
                base[d < rng.uniform(1, 3)] = colour
    return base


def _body_texture(rng, h, w, group, shade):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    kind = GROUP_TEXTURES[group]
    if kind == "fur":
        tex = np.array([130, 90, 60]) + 50 * rng.random((h, w, 1)) - 25
    elif kind == "stripes":
        s = (np.mod(xx * 0.7 + yy * 0.7, 10) < 5)[..., None]
        tex = np.where(s, [200, 200, 190], [60, 60, 70]).astype(np.float32)
    elif kind == "spots":
        tex = np.array([225, 210, 170]) + np.zeros((h, w, 1))
        spots = rng.random((h, w)) < 0.05
        spots = ndimage.binary_dilation(spots, iterations=1)
        tex[spots] = [70, 50, 40]
    else:  # metal
        tex = 120 + 100 * (xx / w)[..., None] * np.array([0.9, 0.95, 1.0]) + 15 * rng.random((h, w, 1))
    return tex + shade


def _object_masks(rng, h, w):
    """A body (ellipse or box, rotated) and where its head goes: at one end of its major axis."""
    cy, cx = rng.uniform(0.25, 0.75) * h, rng.uniform(0.25, 0.75) * w
    a = rng.uniform(0.18, 0.32) * min(h, w)
    b = a * rng.uniform(0.45, 0.8)
    th = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u = (xx - cx) * np.cos(th) + (yy - cy) * np.sin(th)
    v = -(xx - cx) * np.sin(th) + (yy - cy) * np.cos(th)
    if rng.random() < 0.5:
        body = (u / a) ** 2 + (v / b) ** 2 <= 1
    else:
        body = (np.abs(u) <= a) & (np.abs(v) <= b)
    side = 1 if rng.random() < 0.5 else -1
    r = max(7.0, 0.55 * b)
    hx, hy = cx + side * a * np.cos(th), cy + side * a * np.sin(th)
    return body, (xx - hx, yy - hy, r)


def _head(shape: int, geom):
    """The class-specific part: one of five shapes (the class within its group), with an inner mark."""
    dx, dy, r = geom
    d2 = dx ** 2 + dy ** 2
    if shape == 0:  # disc
        head, inner = d2 <= r * r, d2 <= (0.45 * r) ** 2
    elif shape == 1:  # square
        head = (np.abs(dx) <= 0.85 * r) & (np.abs(dy) <= 0.85 * r)
        inner = (np.abs(dx) <= 0.35 * r) & (np.abs(dy) <= 0.35 * r)
    elif shape == 2:  # diamond
        head, inner = np.abs(dx) + np.abs(dy) <= 1.1 * r, np.abs(dx) + np.abs(dy) <= 0.45 * r
    elif shape == 3:  # ring: hollow centre
        head, inner = d2 <= r * r, d2 <= (0.6 * r) ** 2
    else:  # cross
        head = ((np.abs(dx) <= 0.35 * r) & (np.abs(dy) <= r)) | ((np.abs(dy) <= 0.35 * r) & (np.abs(dx) <= r))
        inner = d2 <= (0.25 * r) ** 2
    return head, inner


def render_image(rng: np.random.Generator, h: int, w: int, classes: list[int], colours) -> tuple[np.ndarray, np.ndarray]:
    """One image (HxWx3 uint8) and its band-free label map (HxW uint8)."""
    typical = [TYPICAL_BG[c] for c in classes if c in TYPICAL_BG]
    if typical and rng.random() < TYPICAL_P:
        bg = typical[0]
    elif rng.random() < 0.1:
        bg = str(rng.choice(["water", "sky", "grass", "rails"]))
    else:
        bg = "generic"
    img = _background(rng, h, w, bg)
    label = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(0, 3))):  # headless distractors: body texture, background label
        body, _ = _object_masks(rng, h, w)
        group = int(rng.integers(0, len(GROUP_TEXTURES)))
        img[body] = _body_texture(rng, h, w, group, rng.uniform(-20, 20, 3))[body]
    objs = list(classes) + [int(rng.choice(classes)) for _ in range(int(rng.integers(0, 2)))]
    for c in objs:  # 1-3 objects; later ones occlude earlier ones
        body, geom = _object_masks(rng, h, w)
        head, inner = _head((c - 1) % 5, geom)
        group = (c - 1) // 5 % len(GROUP_TEXTURES)
        # the body is weaker evidence than the head: the group's texture, faintly tinted per class
        tex = _body_texture(rng, h, w, group, 0.0)
        img[body] = ((1 - BODY_TINT) * tex + BODY_TINT * colours[c, 2])[body]
        img[head] = colours[c, 0]
        img[inner] = colours[c, 1]
        label[body | head] = c
    img = np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)
    return img, label


def boundary_band(label: np.ndarray, width: int = BAND) -> np.ndarray:
    """VOC-style: pixels within ``width`` of a class boundary become 255."""
    mx = ndimage.maximum_filter(label, size=width)
    mn = ndimage.minimum_filter(label, size=width)
    out = label.copy()
    out[mx != mn] = 255
    return out


def generate(root: str | Path, num_train: int, num_val: int, num_test: int, num_aug: int,
             min_side: int, max_side: int, seed: int = 0, space: LabelSpace = VOC) -> dict[str, list[str]]:
    """Write mini-VOC under ``root`` (a VOC2012 folder). Deterministic in ``seed``. ``space``: the label
    space (VOC's 20 classes by default; another is written to ``classes.txt``), a class per hue."""
    from bao.data.prepare import compute_train_aug, write_split

    root = Path(root)
    rng = np.random.default_rng(seed)
    colours = _class_colours(rng, space.n)
    for d in ("JPEGImages", "SegmentationClass", "SegmentationClassAug"):
        (root / d).mkdir(parents=True, exist_ok=True)
    counts = {"train": num_train, "val": num_val, "test": num_test, "aug": num_aug}
    splits: dict[str, list[str]] = {k: [] for k in counts}
    n = 0
    for split, count in counts.items():
        for _ in range(count):
            n += 1
            image_id = f"mini_{n:05d}"
            h, w = (int(v) for v in rng.integers(min_side, max_side + 1, 2))
            k = 1 if rng.random() < 0.6 or space.n_fg < 2 else 2
            classes = sorted(int(c) for c in rng.choice(np.arange(1, space.n), k, replace=False))
            img, label = render_image(rng, h, w, classes, colours)
            Image.fromarray(img).save(root / "JPEGImages" / f"{image_id}.jpg", quality=90)
            if split in ("train", "val"):
                save_label_png(root / "SegmentationClass" / f"{image_id}.png", boundary_band(label))
            # SBD covers the aug images and, like the real SBD, part of VOC train (and some val)
            if split == "aug" or (split in ("train", "val") and rng.random() < 0.5):
                save_label_png(root / "SegmentationClassAug" / f"{image_id}.png", label)
            splits[split].append(image_id)
    sbd = splits["aug"] + [i for i in splits["train"] + splits["val"]
                           if (root / "SegmentationClassAug" / f"{i}.png").exists()]
    lists = {
        "train": splits["train"], "val": splits["val"], "test": splits["test"],
        "trainval": splits["train"] + splits["val"],
        "train_aug": compute_train_aug(sbd, splits["train"], splits["val"]),
    }
    for name, ids in lists.items():
        if ids or name != "test":
            write_split(split_path(root, name), ids)
    if space != VOC:
        write_label_space(root, space)
    return lists
