"""Swin Transformer: window attention with shifted windows, four stages at strides 4 to 32.

Liu, Lin, Cao, Hu, Wei, Zhang, Lin, Guo, "Swin Transformer: Hierarchical Vision Transformer
using Shifted Windows", ICCV 2021.

Tensor names are timm's ``SwinTransformer``'s but for the head (:func:`twin_mapping`).
"""

from __future__ import annotations

from typing import Dict, Sequence

import torch
from torch import nn

from course.blocks.attention import PatchEmbed, PatchMerging, SwinBlock
from course.models.twins import rename_prefixes
from course.models.zoo import Paper, register_model

SWIN = (
    "Liu, Lin, Cao, Hu, Wei, Zhang, Lin, Guo, \"Swin Transformer: Hierarchical Vision Transformer "
    "using Shifted Windows\", ICCV 2021, Table 1(a) (Swin-T, ImageNet-1k, 224; the official "
    "repository's README rounds the parameters to 28M)"
)


class SwinStage(nn.Module):
    """Optional patch merging, then ``depth`` Swin blocks alternating W-MSA and SW-MSA."""

    def __init__(
        self,
        dim: int,
        out_dim: int,
        depth: int,
        heads: int,
        window: int = 7,
        downsample: bool = True,
        fused: bool = False,
    ):
        super().__init__()
        self.downsample = PatchMerging(dim, out_dim) if downsample else nn.Identity()
        self.blocks = nn.Sequential(*[
            SwinBlock(out_dim, heads, window, shift=0 if i % 2 == 0 else window // 2, fused=fused)
            for i in range(depth)
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, h, w, C) -> (B, h/2, w/2, 2C)
        return self.blocks(self.downsample(x))


class SwinTransformer(nn.Module):
    """Swin: patch embedding 4 x 4 (stride 4), four stages with ``depths`` blocks, patch merging
    between stages (strides 4, 8, 16, 32), LayerNorm, global average pool, linear head."""

    def __init__(
        self,
        dim: int = 96,
        depths: Sequence[int] = (2, 2, 6, 2),
        heads: Sequence[int] = (3, 6, 12, 24),
        window: int = 7,
        num_classes: int = 1000,
        fused: bool = False,
    ):
        super().__init__()
        self.patch_embed = PatchEmbed(3, dim, patch=4)
        dims = [dim * 2 ** i for i in range(len(depths))]
        self.layers = nn.Sequential(*[
            SwinStage(dims[max(i - 1, 0)], dims[i], depths[i], heads[i], window, downsample=i > 0, fused=fused)
            for i in range(len(depths))
        ])
        self.norm = nn.LayerNorm(dims[-1])
        self.head = nn.Linear(dims[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)  # (B, H/4, W/4, C)
        x = self.norm(self.layers(x))  # (B, H/32, W/32, 8C)
        return self.head(x.mean(dim=(1, 2)))  # (B, classes)


def twin_mapping(model: nn.Module, twin: nn.Module) -> Dict[str, str]:
    """``{course name: timm name}``: the same names, but ``head`` is timm's ``head.fc``."""
    return rename_prefixes(model, {"head": "head.fc"})


@register_model(
    "swin_tiny_patch4_window7_224",
    twin="timm:swin_tiny_patch4_window7_224",
    paper=Paper(29.0, 4.5, 81.3, SWIN, 224, "FLOPs (= multiply-adds)", distilled=False),
    family="Swin",
    chapter=5,
    twin_mapping=twin_mapping,
)
def swin_tiny_patch4_window7_224(**kwargs) -> SwinTransformer:
    """Swin-T: C = 96, depths (2, 2, 6, 2), heads (3, 6, 12, 24), window 7."""
    return SwinTransformer(dim=96, depths=(2, 2, 6, 2), heads=(3, 6, 12, 24), window=7, **kwargs)
