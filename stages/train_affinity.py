"""Stage train_affinity: PSA's AffinityNet on the confident labels of make_aff_labels (TransCAM
train_aff.py; docs/method.md §4.2).

ResNet-38d (``psa.arch``; ImageNet weights from get_resnet38_weights when ``psa.pretrained`` is set)
with PSA's affinity head, trained on train_aug crops to predict, for every pixel pair within
``psa.radius`` at stride 8, whether the two share a label: loss bg/4 + fg/4 + neg/2. SGD with poly
decay and PSA's four learning-rate groups (x1 backbone weights, x2 biases, x10 new weights, x20 new
biases); ``psa.momentum`` is TransCAM's effective 5e-4. Outputs ``<paths.affinity>/model.pt`` and
``metrics/train_affinity.csv``.
"""

from pathlib import Path

import torch

from bao.config.psa import Psa
from bao.core.io import load_label_png
from bao.core.launch import launcher
from bao.core.loop import Loop, Runtime
from bao.core.pipeline import paths
from bao.core.runtime import unwrap
from bao.core.stage import main
from bao.data.voc import VOCDataset
from bao.method.psa import AffinityCrops, affinity_loss, pair_affinity
from bao.models.norm import freeze_bn
from bao.models.resnet38 import AffinityNet, create_affinitynet, load_resnet38_imagenet
from bao.models.weights import save_trained, staged

STAGE = "train_affinity"


def run(params):
    P = paths()
    rt = Runtime.from_params(params.base)
    p = params.psa
    ds = VOCDataset(P.data, "train_aug", masks=None)
    labels = Path(P.aff_labels)
    crops = AffinityCrops(
        ds,
        lambda i: load_label_png(labels / f"{i}.png"),
        p.crop_size,
        p.color_jitter,
        p.radius,
        AffinityNet.STRIDE,
        rt.seed,
    )
    net = create_affinitynet(p.arch)
    imagenet = staged(P.pretrained.resnet38, p.pretrained, "psa.pretrained")
    if imagenet is not None:
        load_resnet38_imagenet(net, imagenet)
    net.freeze(p.frozen)
    if p.freeze_bn:
        freeze_bn(net)
    groups = net.parameter_groups()
    # (lr multiplier, weight decay) per group: train_aff.py's PolyOptimizer groups
    opt = torch.optim.SGD(
        [
            {"params": g, "lr": p.lr * m, "weight_decay": wd}
            for g, (m, wd) in zip(groups, [(1, p.weight_decay), (2, 0.0), (10, p.weight_decay), (20, 0.0)])
            if g
        ],
        lr=p.lr,
        momentum=p.momentum,
    )
    base_lrs = [g["lr"] for g in opt.param_groups]
    model = rt.wrap(net)
    total = p.epochs * (len(ds) // p.batch_size)

    def step(batch):
        if p.freeze_bn:
            freeze_bn(model)
        x = batch["image"].to(rt.device, non_blocking=True)
        with rt.amp():
            feat = model(x)
        aff = pair_affinity(feat.float(), p.radius)
        loss, parts = affinity_loss(aff, *(batch[k].to(rt.device) for k in ("bg", "fg", "neg")))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return parts

    def after_step(global_step, epoch):
        factor = (1 - global_step / total) ** p.poly_power  # PolyOptimizer: lr (1 - step/max_step)^0.9
        for g, lr in zip(opt.param_groups, base_lrs):
            g["lr"] = lr * factor

    loop = Loop(
        rt,
        model,
        opt,
        crops,
        p.batch_size,
        p.epochs,
        rt.checkpointer(STAGE),
        p.checkpoint_every,
        step,
        STAGE,
        after_step=after_step,
    )
    loop.finish(loop.run(), P.metrics.train_affinity, lambda: save_trained(unwrap(model), P.affinity))


if __name__ == "__main__":
    main(run, STAGE, [Psa], launcher=launcher)
