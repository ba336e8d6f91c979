"""Vision Transformer (ViT): global attention over 16 x 16 patches, the baseline of Chapter 5.

Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for Image Recognition at
Scale", ICLR 2021; the ViT-S/16 and ViT-B/16 numbers are from Touvron et al. (DeiT, below),
which trained them on ImageNet-1k alone.

Tensor names are timm's ``VisionTransformer``'s but for the patch embedding (:func:`twin_mapping`).
"""

from __future__ import annotations

from typing import Dict

import torch
from torch import nn

from course.blocks.attention import TransformerBlock
from course.models.twins import rename_prefixes
from course.models.zoo import Paper, register_model

DEIT = (
    "Touvron, Cord, Douze, Massa, Sablayrolles, Jégou, \"Training data-efficient image transformers "
    "& distillation through attention\", ICML 2021 (DeiT-{size} = ViT-{size}/16 at 224 trained on "
    "ImageNet-1k without a teacher: parameters and top-1; the distilled rows with the extra token, "
    "e.g. DeiT-B 83.4, are another network); the GFLOPs as listed for DeiT in Liu et al., \"Swin "
    "Transformer\", ICCV 2021, Table 1(a): DeiT-S 22M, 4.6G, 79.8; DeiT-B 86M, 17.5G, 81.8"
)


class VisionTransformer(nn.Module):
    """ViT: patch embedding (``Conv2d(3, C, P, stride=P)``), a class token, learned position
    embeddings, ``depth`` pre-norm transformer blocks, LayerNorm, and a linear head on the
    class token.

    At input ``H x W`` there are ``T = (H/P)·(W/P) + 1`` tokens (197 at 224 with ``P = 16``);
    each block costs ``12·T·C²`` (attention projections and MLP) ``+ 2·T²·C`` (attention).
    The position embeddings are for ``img_size``; another input size raises ``ValueError``.
    """

    def __init__(
        self,
        img_size: int = 224,
        patch: int = 16,
        dim: int = 384,
        depth: int = 12,
        heads: int = 6,
        mlp_ratio: float = 4.0,
        num_classes: int = 1000,
        fused: bool = False,
    ):
        super().__init__()
        if img_size % patch:
            raise ValueError(f"patch={patch} must divide img_size={img_size}")
        self.img_size = img_size
        tokens = (img_size // patch) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens + 1, dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        self.patch_embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.blocks = nn.Sequential(*[TransformerBlock(dim, heads, mlp_ratio, fused=fused) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)

    def set_fused(self, fused: bool) -> "VisionTransformer":
        """Switch every block between explicit matmuls and ``scaled_dot_product_attention``."""
        for block in self.blocks:
            block.attn.fused = fused
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        if (H, W) != (self.img_size, self.img_size):
            raise ValueError(f"this ViT's position embeddings are for {self.img_size} x {self.img_size} input, got {H} x {W}")
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, h·w, C)
        x = torch.cat([self.cls_token.expand(B, -1, -1), x], dim=1)  # (B, 1 + h·w, C)
        x = self.blocks(x + self.pos_embed)
        return self.head(self.norm(x)[:, 0])  # (B, classes), from the class token


def twin_mapping(model: nn.Module, twin: nn.Module) -> Dict[str, str]:
    """``{course name: timm name}``: the same names, but ``patch_embed`` is timm's ``patch_embed.proj``."""
    return rename_prefixes(model, {"patch_embed": "patch_embed.proj"})


@register_model(
    "vit_small_patch16_224",
    twin="timm:vit_small_patch16_224",
    paper=Paper(22.0, 4.6, 79.8, DEIT.format(size="S"), 224, "FLOPs (= multiply-adds)", distilled=False),
    family="ViT",
    chapter=5,
    twin_mapping=twin_mapping,
)
def vit_small_patch16_224(**kwargs) -> VisionTransformer:
    """ViT-S/16: C = 384, 12 blocks, 6 heads."""
    return VisionTransformer(dim=384, depth=12, heads=6, **kwargs)


@register_model(
    "vit_base_patch16_224",
    twin="timm:vit_base_patch16_224",
    paper=Paper(86.0, 17.5, 81.8, DEIT.format(size="B"), 224, "FLOPs (= multiply-adds)", distilled=False),
    family="ViT",
    chapter=5,
    twin_mapping=twin_mapping,
)
def vit_base_patch16_224(**kwargs) -> VisionTransformer:
    """ViT-B/16: C = 768, 12 blocks, 12 heads."""
    return VisionTransformer(dim=768, depth=12, heads=12, **kwargs)
