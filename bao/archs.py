"""The Conformer and SeCo ViT configurations by name, torch-free so that params are checked without importing torch
(``bao.config``); ``bao.models.create_model`` builds them. Official configurations:
pengzhiliang/Conformer models.py, TransCAM network/conformer_CAM.py Net_ti/sm/bs."""

CONFORMERS: dict[str, dict] = {
    "conformer_ti": dict(channel_ratio=1, embed_dim=384, depth=12, num_heads=6, mlp_ratio=4),
    "conformer_s": dict(channel_ratio=4, embed_dim=384, depth=12, num_heads=6, mlp_ratio=4),
    "conformer_b": dict(channel_ratio=6, embed_dim=576, depth=12, num_heads=9, mlp_ratio=4),
    # a small CPU configuration for mini-VOC (same structure, narrow and 6 blocks deep)
    "conformer_mini": dict(stem_channels=16, base_channel=16, channel_ratio=2, embed_dim=96, depth=6, num_heads=3,
                           mlp_ratio=2),
}

# PSA's ResNet-38d by name -> channel divisor (bao.models.resnet38): AffinityNet (psa.arch) and
# MCTformer's resnet38_seg (deeplab.backbone); resnet38d_mini has an eighth of the channels, for mini-VOC
RESNET38: dict[str, int] = {"resnet38d": 1, "resnet38d_mini": 8}

# SeCo's ViT backbones by name (timm VisionTransformer keyword arguments; bao.models.seco_net).
# vit_base_patch16_224 is SeCo's (model/backbone/vit.py: LayerNorm eps 1e-6, qkv bias, as timm's)
SECO_VITS: dict[str, dict] = {
    "vit_base_patch16_224": dict(patch_size=16, embed_dim=768, depth=12, num_heads=12),
    # a small CPU configuration for mini-VOC: same structure, narrow and 6 blocks deep
    "vit_mini": dict(patch_size=16, embed_dim=96, depth=6, num_heads=3, mlp_ratio=2.0),
}
