"""Stage train_seco: SeCo's single-stage training on train_aug (zwyang6/SeCo scripts/train_voc.py;
docs/method.md §8.1).

Each iteration: the CAM and aux CAM at ``seco.cam_scales`` (no gradient) give the PAR-refined pseudo
label (the segmentation head's target) and the crop-tag map (from the aux CAM, from the last layer's
after ``seco.cam2mask``); ten local crops are cut from the crop and from its augmented copy at the same
places and tagged; one forward gives the class logits, the segmentation logits, the reservoir's
embeddings and the prototypes. Loss: classification + aux classification + w_ptc patch contrast,
+ w_lil LIL + w_lig LIG after ``lil_lig_after``, + w_seg segmentation + w_reg dense energy after
``seg_after`` (l.225-231). PolyWarmupAdamW: four groups, the heads at ``head_lr_mult``.
``seco.iterations`` counts steps, as the release's max_iters; the loop runs whole passes and stops
stepping there. After every pass the seed (the stage make_seco_labels' protocol) is scored on VOC
train, to show convergence.

Outputs ``<paths.seco>/model.pt`` and ``metrics/train_seco.csv``.
"""

import torch
import torch.nn.functional as F

from bao.config.seco import Seco
from bao.core.image import to_tensor
from bao.core.launch import launcher
from bao.core.loop import Carried, Loop, Runtime
from bao.core.pipeline import paths
from bao.core.runtime import batch_indices, unwrap
from bao.core.stage import main
from bao.data.seco_views import SeCoViews
from bao.data.voc import VOCDataset
from bao.method.seco.cams import cam_seed, cam_to_pseudo_label, multi_scale_cam, refine_with_background
from bao.method.seco.crops import assign_crop_tags
from bao.method.seco.energy import dense_energy_loss
from bao.method.seco.infer import infer_cams
from bao.method.seco.losses import balanced_seg_loss, label_to_aff_mask, lig_loss, lil_loss, patch_contrast_loss
from bao.method.seco.schedule import loss_weights, poly_warmup_lr
from bao.models.seco_net import build_seco
from bao.models.weights import save_trained, staged
from bao.scoring.metrics import ConfusionMatrix

STAGE = "train_seco"


# imutils.py denormalize_img / losses.py get_energy_loss: the mean and std in 0-255 units
_MEAN255, _STD255 = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)


def denormalize(x: torch.Tensor) -> torch.Tensor:
    """Normalised images back to 0-255 floats, the energy loss's image (losses.py l.215-218)."""
    mean = torch.tensor(_MEAN255, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(_STD255, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return x * std + mean


def par_image(x: torch.Tensor) -> torch.Tensor:
    """PAR's image in [0, 1]: de-normalised, cast to uint8 (truncated), / 255 (imutils.py
    ``denormalize_img2``, train_voc.py l.182). The clamp only defines what the cast leaves to the
    platform (values below 0 or above 255, which a de-normalised image does not reach by more than
    float error)."""
    return denormalize(x).trunc().clamp(0, 255) / 255.0


@torch.no_grad()
def score_seeds(net, root, cfg, device, amp) -> float:
    """The seed mIoU on VOC train (make_seco_labels' seed protocol)."""
    net.eval()
    ds = VOCDataset(root, "train")
    cm = ConfusionMatrix(ds.space.n)
    for image_id in ds.ids:
        image = ds.load_image(image_id)
        x = to_tensor(image)[None].to(device)
        with amp():
            cam = infer_cams(net, x, cfg.crop_size, cfg.seed_scales)
        label = torch.from_numpy(ds.label(image_id))[None].to(device)
        cm.update(cam_seed(cam.float(), label, cfg.bkg_thre)[0].cpu().numpy(), ds.load_mask(image_id, image.shape[:2]))
    net.train()
    return cm.summary()["miou"]


def run(params):
    P = paths()
    cfg = params.seco
    rt = Runtime.from_params(params.base)
    ds = VOCDataset(P.data, "train_aug", masks=None)
    views = SeCoViews(ds, cfg.crop_size, cfg.scale_range, cfg.color_jitter, rt.seed)
    net = build_seco(cfg, ds.space.n)
    weights = staged(P.pretrained.vit, cfg.pretrained, "seco.pretrained")
    if weights is not None:
        net.load_backbone(weights)
    model = rt.wrap(net)
    groups = net.param_groups()
    mults = [1.0, 1.0, cfg.head_lr_mult, cfg.head_lr_mult]  # optimizer_engine.py: heads at lr x 10
    opt = torch.optim.AdamW(
        [{"params": g, "lr": cfg.lr * m, "initial_lr": cfg.lr * m} for g, m in zip(groups, mults)],
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        betas=(0.9, 0.999),
        eps=1e-8,
    )
    per_pass = len(batch_indices(len(views), cfg.batch_size, rt.seed, 0, rt.dist.rank, rt.dist.world))
    passes = -(-cfg.iterations // per_pass)
    it = Carried(0)  # the iteration count, checkpointed with the run (the schedule reads it)
    n_local = cfg.ncrops - 2
    c = cfg

    def step(batch):
        n_iter = it.value
        if n_iter >= cfg.iterations:  # max_iters reached inside the last pass
            return {}
        x = batch["image"].to(rt.device, non_blocking=True)
        cls_label = batch["label"].to(rt.device)
        box = batch["box"]
        with rt.amp():
            cams, cams_aux = multi_scale_cam(unwrap(model), x, c.cam_scales)
        cams, cams_aux = cams.float(), cams_aux.float()
        # the segmentation head's pseudo label from the CAM; with seg_mask_source from the aux CAM before
        # that iteration (train_coco.py l.192-195; train_voc.py l.186-187: the CAM throughout)
        late = c.seg_mask_source is None or n_iter >= c.seg_mask_source
        valid_cam, _ = cam_to_pseudo_label(cams if late else cams_aux, cls_label, box, c.high_thre, c.low_thre)
        pseudo = refine_with_background(
            par_image(x),
            valid_cam,
            cls_label,
            box,
            c.high_thre,
            c.low_thre,
            dilations=tuple(c.par_dilations),
            iterations=c.par_iterations,
        )
        # the crop tags from the aux CAM, from the last layer's after cam2mask (train_voc.py l.196)
        _, roi = cam_to_pseudo_label(
            cams if n_iter >= c.cam2mask else cams_aux, cls_label, box, c.high_thre, c.low_thre, mid=-1
        )
        crops_k, _ = assign_crop_tags(
            batch["local_src"].to(rt.device), roi, n_local, c.local_crop_size, c.tag_threshold
        )
        crops_q, flags = assign_crop_tags(x, roi, n_local, c.local_crop_size, c.tag_threshold)
        flags = flags.reshape(-1, 1)
        label_idx = batch["label_idx"].to(rt.device).view(-1, 1)
        with rt.amp():
            cls, seg, fmap, cls_aux, out_q, feats, tags, protos = model(
                x,
                [x, batch["global2"].to(rt.device)] + crops_q + crops_k,
                flags,
                label_idx,
                update_prototypes=n_iter >= c.update_prototype,
            )
        cls, cls_aux, fmap, out_q, feats = cls.float(), cls_aux.float(), fmap.float(), out_q.float(), feats.float()
        l_cls = F.multilabel_soft_margin_loss(cls, cls_label)
        l_aux = F.multilabel_soft_margin_loss(cls_aux, cls_label)
        n = out_q.shape[0]
        l_lil, revised = lil_loss(out_q, feats[n:], flags[:, 0], tags[n:, 0], c.temp_lil, c.temp_lil)
        l_lig = lig_loss(out_q, protos.float(), revised, c.temp_lig, c.temp_lig)
        seg = F.interpolate(seg.float(), size=pseudo.shape[1:], mode="bilinear", align_corners=False)
        l_seg = balanced_seg_loss(seg, pseudo)
        roi_box = torch.zeros_like(pseudo, dtype=torch.float32)
        for k, (y0, y1, x0, x1) in enumerate(box.tolist()):
            roi_box[k, y0:y1, x0:x1] = 1
        e = c.energy
        l_reg = dense_energy_loss(
            denormalize(x), seg.softmax(1), roi_box, pseudo, e.weight, e.sigma_rgb, e.sigma_xy, e.scale, kernel=e.kernel
        )
        # ToCo's patch contrast on the aux CAM's labels at the token grid; the box is in pixels, applied
        # to the grid as released (train_voc.py l.220-223)
        small = F.interpolate(cams_aux, size=fmap.shape[2:], mode="bilinear", align_corners=False)
        _, label_aux = cam_to_pseudo_label(small, cls_label, box, c.high_thre, c.low_thre)
        l_ptc = patch_contrast_loss(fmap, label_to_aff_mask(label_aux))
        w = loss_weights(n_iter, c)
        parts = {"cls": l_cls, "cls_aux": l_aux, "ptc": l_ptc, "lil": l_lil, "lig": l_lig, "seg": l_seg, "reg": l_reg}
        loss = sum(w[k] * v for k, v in parts.items())  # zero weights kept: every parameter takes part
        mult = poly_warmup_lr(n_iter, c.warmup_iters, c.iterations, c.warmup_ratio, c.poly_power)
        for g in opt.param_groups:
            g["lr"] = g["initial_lr"] * mult
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        it.value += 1
        return {"loss": loss.item(), **{k: v.item() for k, v in parts.items()}}

    def end_epoch(epoch):
        if not rt.dist.main:
            return {}
        return {"iterations": it.value, "miou_seed": score_seeds(unwrap(model), P.data, c, rt.device, rt.amp)}

    loop = Loop(
        rt,
        model,
        opt,
        views,
        cfg.batch_size,
        passes,
        rt.checkpointer(STAGE),
        cfg.checkpoint_every,
        step,
        STAGE,
        end_epoch=end_epoch,
        extra_state={"iterations": it},
    )
    loop.finish(loop.run(), P.metrics.train_seco, lambda: save_trained(unwrap(model), P.seco))


if __name__ == "__main__":
    main(run, STAGE, [Seco], launcher=launcher)
