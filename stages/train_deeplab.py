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
import torch.nn.functional as F

from bao.config.deeplab import DeepLab
from bao.config.psa import Psa
from bao.core.classes import IGNORE
from bao.core.io import load_label_png
from bao.core.loop import Carried, Loop, Runtime
from bao.core.pipeline import paths
from bao.core.runtime import unwrap
from bao.core.stage import main_with_item
from bao.data.transforms import SegCrops
from bao.data.voc import VOCDataset
from bao.models.deeplab import build_deeplab
from bao.models.norm import freeze_bn
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
    net = build_deeplab(d, imagenet=imagenet)
    if d.frozen:  # resnet38d.py not_training: conv1a keeps its ImageNet weights (resnet38_seg only)
        for name in d.frozen:
            getattr(net, name).requires_grad_(False)
    head = [p for m in net.head_modules() for p in m.parameters()]
    head_ids = {id(p) for p in head}
    backbone = [p for p in net.parameters() if id(p) not in head_ids and p.requires_grad]
    model = rt.wrap(net)
    opt = torch.optim.SGD(
        [{"params": backbone, "lr": d.lr}, {"params": head, "lr": d.lr * d.head_lr_mult}],
        lr=d.lr,
        momentum=d.momentum,
        weight_decay=d.weight_decay,
    )
    base_lrs = [g["lr"] for g in opt.param_groups]
    steps_per_epoch = len(ds) // d.batch_size
    epochs = math.ceil(d.iterations / steps_per_epoch)
    total = epochs * steps_per_epoch
    log = Carried([])  # rows logged every few steps, resumed with the run
    last = {}

    def step(batch):
        if d.freeze_bn:
            freeze_bn(model)
        x = batch["image"].to(rt.device, non_blocking=True)
        y = batch["target"].to(rt.device)
        with rt.amp():
            logits = model(x)
        # resnet38_seg returns stride-8 logits: upsampled to the crop (train_seg.py l.92); DeepLab's already are
        logits = F.interpolate(logits.float(), size=y.shape[-2:], mode="bilinear", align_corners=False)
        loss = F.cross_entropy(logits, y, ignore_index=IGNORE)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        last["loss"] = loss.item()
        return dict(last)

    def after_step(global_step, epoch):
        if global_step % d.log_every == 0 or global_step == 1:
            log.value.append({"step": global_step, **last})
        # poly: deeplab/train_deeplab.py divides by max_iter + 1; MCTformer's PolyOptimizer_cls by max_step
        factor = (1 - global_step / (total if seg38 else total + 1)) ** d.poly_power
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
    main_with_item(run, "train_deeplab", SOURCES, [DeepLab, Psa])
