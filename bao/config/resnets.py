"""PSA's ResNet-38d configurations by name (torch-free): AffinityNet (``psa.arch``) and MCTformer's
resnet38_seg (``deeplab.backbone``); ``bao.models.resnet38`` builds them."""

# PSA's ResNet-38d by name -> channel divisor (bao.models.resnet38): AffinityNet (psa.arch) and
# MCTformer's resnet38_seg (deeplab.backbone); resnet38d_mini has an eighth of the channels, for mini-VOC
RESNET38: dict[str, int] = {"resnet38d": 1, "resnet38d_mini": 8}


# ResNet-38d layers that may be kept at their ImageNet weights (psa.frozen, deeplab.frozen)
RESNET38_EARLY = ("conv1a", "b2", "b2_1", "b2_2", "b3", "b3_1", "b3_2")


def check_frozen(p: str, frozen: list[str]) -> None:
    from bao.core.errors import ParamsError

    for k in frozen:
        if k not in RESNET38_EARLY:
            raise ParamsError(f"{p}.frozen: unknown layer {k!r} (one of {', '.join(RESNET38_EARLY)})")
