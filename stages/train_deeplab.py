"""Stage train_deeplab@<source>: the segmentation network on the masks of train_aug (docs/method.md §5).

    python -m stages.train_deeplab {bao,transcam}

``bao``: the BAO masks (Table 1's BAO row); ``transcam``: the TransCAM masks (its row's val).
``deeplab.arch``: MCTformer's resnet38_seg (the release's segmentation: seg/train_seg.py, run_seg.sh),
from deeplab.pretrained (MCTformer: PSA's VOC-trained classifier res38_cls.pth) or, when that is null,
psa.pretrained's ImageNet ResNet-38; or DeepLab-v2/v3+ from deeplab.pretrained.

SGD with momentum, the head at ``head_lr_mult`` x the learning rate, poly decay, frozen BatchNorm
(paper setting) and ``deeplab.frozen`` layers, cross-entropy with 255 ignored. Training runs whole passes over train_aug until
``deeplab.iterations`` steps (rounded up to a whole pass); the loss is logged every ``log_every``
steps. Outputs ``<paths.deeplab>/<source>/model.pt`` and ``metrics/train_deeplab/<source>.csv``.
"""

import math
from pathlib import Path

import torch

from bao.config.deeplab import DeepLab
from bao.config.psa import Psa
from bao.core.io import load_label_png
from bao.core.launch import launcher
from bao.core.loop import Carried, Loop, Runtime
from bao.core.pipeline import paths
from bao.core.runtime import unwrap
from bao.core.stage import main_with_item
from bao.data.transforms import SegCrops
from bao.data.voc import VOCDataset
from bao.method.segmentation import freeze, param_groups, poly_factor, seg_loss
from bao.models.deeplab import build_deeplab
from bao.models.weights import save_trained, staged

SOURCES = ("bao", "transcam")


def run(params, source):
    P = paths()
    stage = f"train_deeplab@{source}"
    rt = Runtime.from_params(params.base)
    d = params.deeplab
    ds = VOCDataset(P.data, "train_aug", masks=None)
    masks = Path(P.masks) / source
    crops = SegCrops(
        ds,
        lambda i: load_label_png(masks / f"{i}.png"),
        d.crop_size,
        d.scale_range,
        rt.seed,
        d.scale_per,
        d.batch_size,
        d.pad_label,
    )
    seg38 = d.arch == "resnet38_seg"
    if seg38 and d.pretrained:  # MCTformer's start: PSA's VOC-trained res38_cls.pth (train_seg.py l.53-54)
        imagenet = staged(P.pretrained.deeplab, d.pretrained, "deeplab.pretrained")
    elif seg38:  # the option: psa.pretrained's ImageNet ResNet-38
        imagenet = staged(P.pretrained.resnet38, params.psa.pretrained, "psa.pretrained")
    else:
        imagenet = staged(P.pretrained.deeplab, d.pretrained, "deeplab.pretrained")
    net = build_deeplab(d, ds.space.n, imagenet=imagenet)
    freeze(net, d.frozen, d.freeze_bn)
    model = rt.wrap(net)
    opt = torch.optim.SGD(
        param_groups(net, d.lr, d.head_lr_mult), lr=d.lr, momentum=d.momentum, weight_decay=d.weight_decay
    )
    base_lrs = [g["lr"] for g in opt.param_groups]
    steps_per_epoch = len(ds) // d.batch_size
    epochs = math.ceil(d.iterations / steps_per_epoch)
    total = epochs * steps_per_epoch
    log = Carried([])  # rows logged every few steps, resumed with the run
    last = {}

    def step(batch):
        freeze(unwrap(model), d.frozen, d.freeze_bn)  # after the loop's train()
        x = batch["image"].to(rt.device, non_blocking=True)
        y = batch["target"].to(rt.device)
        with rt.amp():
            logits = model(x)
        loss = seg_loss(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        last["loss"] = loss.item()
        return dict(last)

    def after_step(global_step, epoch):
        if global_step % d.log_every == 0 or global_step == 1:
            log.value.append({"step": global_step, **last})
        factor = poly_factor(global_step, total, d.poly_power, mctformer=seg38)
        for g, lr in zip(opt.param_groups, base_lrs):
            g["lr"] = lr * factor

    ckpt = rt.checkpointer(stage, Path(P.checkpoints) / "train_deeplab" / source)
    loop = Loop(
        rt,
        model,
        opt,
        crops,
        d.batch_size,
        epochs,
        ckpt,
        d.checkpoint_every,
        step,
        stage,
        after_step=after_step,
        extra_state={"log": log},
    )
    loop.run()
    loop.finish(
        log.value,
        Path(P.metrics.train_deeplab) / f"{source}.csv",
        lambda: save_trained(unwrap(model), Path(P.deeplab) / source),
    )


if __name__ == "__main__":
    main_with_item(run, "train_deeplab", SOURCES, [DeepLab, Psa], launcher=launcher)
