"""The Conformer and SeCo ViT configurations by name, torch-free so that params are checked without
importing torch (``bao.config``); ``bao.models.factory`` and ``bao.models.vit`` build them. Official
configurations: pengzhiliang/Conformer models.py, TransCAM network/conformer_CAM.py Net_ti/sm/bs."""

CONFORMERS: dict[str, dict] = {
    "conformer_ti": dict(channel_ratio=1, embed_dim=384, depth=12, num_heads=6, mlp_ratio=4),
    "conformer_s": dict(channel_ratio=4, embed_dim=384, depth=12, num_heads=6, mlp_ratio=4),
    "conformer_b": dict(channel_ratio=6, embed_dim=576, depth=12, num_heads=9, mlp_ratio=4),
    # a small CPU configuration for mini-VOC (same structure, narrow and 6 blocks deep)
    "conformer_mini": dict(
        stem_channels=16, base_channel=16, channel_ratio=2, embed_dim=96, depth=6, num_heads=3, mlp_ratio=2
    ),
}


# SeCo's ViT backbones by name (timm VisionTransformer keyword arguments; bao.models.seco_net).
# vit_base_patch16_224 is SeCo's (model/backbone/vit.py: LayerNorm eps 1e-6, qkv bias, as timm's)
SECO_VITS: dict[str, dict] = {
    "vit_base_patch16_224": dict(patch_size=16, embed_dim=768, depth=12, num_heads=12),
    # a small CPU configuration for mini-VOC: same structure, narrow and 6 blocks deep
    "vit_mini": dict(patch_size=16, embed_dim=96, depth=6, num_heads=3, mlp_ratio=2.0),
}


def check_arch(p: str, arch: str) -> None:
    from bao.core.errors import ParamsError

    if arch not in CONFORMERS:
        raise ParamsError(f"{p}.arch: unknown model {arch!r}; known: {sorted(CONFORMERS)}")
