"""Stages get_{conformer,deeplab,transcam,resnet38,vit}_weights: fetch a published checkpoint once, so that the
training stages run offline. Each writes ``<folder>/weights.pth`` when its source is set (a path, an
https URL or ``gdrive://<id>``, checked against its md5 when one is given) and ``source.json`` (the
source and the md5 of what was fetched) either way; the file is loaded once here, so a checkpoint that
does not fit fails now, naming its keys, not hours later.

    python -m stages.get_weights {conformer,deeplab,transcam,resnet38,vit}

conformer: ImageNet Conformer (``model.pretrained``), for train_transcam.
deeplab: the segmentation network's start (``deeplab.pretrained``), for train_deeplab: DeepLab's ImageNet
backbone, or for resnet38_seg PSA's VOC-trained ResNet-38 classifier res38_cls.pth (MCTformer's start).
transcam: TransCAM's published classifier (``transcam.released``), which replaces train_transcam's training.
resnet38: PSA's ImageNet ResNet-38 (``psa.pretrained``; the MXNet ``.params`` file or a converted
state_dict), for train_affinity.
vit: SeCo's ImageNet ViT (``seco.pretrained``; timm layout, as SeCo's jx_vit_base_p16_224), or the
pretrain_vit stage's, for train_seco.
"""

from pathlib import Path

from bao.config.deeplab import DeepLab
from bao.config.psa import Psa
from bao.config.seco import Seco
from bao.config.transcam import Model, TransCAM
from bao.core.io import atomic_dir, write_json
from bao.core.pipeline import paths
from bao.core.stage import main_with_item

WEIGHTS = ("conformer", "deeplab", "transcam", "resnet38", "vit")


def run(params, which):
    if which == "conformer":
        source, md5, param = params.model.pretrained, params.model.pretrained_md5, "model.pretrained"
    elif which == "deeplab":
        source, md5, param = params.deeplab.pretrained, params.deeplab.pretrained_md5, "deeplab.pretrained"
    elif which == "transcam":
        source, md5, param = params.transcam.released, params.transcam.released_md5, "transcam.released"
    elif which == "resnet38":
        source, md5, param = params.psa.pretrained, params.psa.pretrained_md5, "psa.pretrained"
    else:
        source, md5, param = params.seco.pretrained, params.seco.pretrained_md5, "seco.pretrained"
    with atomic_dir(getattr(paths().pretrained, which)) as out:
        got = None
        if source:
            # imported here: with no source set (three of the five in the mini setting) the stage
            # skips torch and timm's start-up (about 6 s each)
            from bao.core.classes import VOC
            from bao.models.deeplab import build_deeplab
            from bao.models.factory import create_model
            from bao.models.resnet38 import create_affinitynet, load_resnet38_imagenet
            from bao.models.vit import create_vit
            from bao.models.weights import fetch_weights, load_pretrained, load_released_transcam, load_vit_pretrained

            path = out / "weights.pth"
            got = fetch_weights(source, path, md5, param)
            # the ImageNet checkpoints are checked without their heads: any label space fits them
            if which == "conformer":
                load_pretrained(create_model(params.model.arch, VOC.n), path)
            elif which == "deeplab":
                build_deeplab(params.deeplab, VOC.n, imagenet=path)
            elif which == "resnet38":
                load_resnet38_imagenet(create_affinitynet(params.psa.arch), path)
            elif which == "vit":
                load_vit_pretrained(create_vit(params.seco.arch), path)
            else:
                load_released_transcam(create_model(params.model.arch, num_classes=VOC.n), path)  # VOC-trained
            print(f"{param}: {source} -> {path} (md5 {got})")
        write_json(Path(out) / "source.json", {param: source, "md5": got})


if __name__ == "__main__":
    main_with_item(
        run, "get_weights", WEIGHTS, [DeepLab, Model, TransCAM, Psa, Seco], stage=lambda w: f"get_{w}_weights"
    )
