"""Pyramid Vision Transformers: spatial-reduction attention in a four-stage pyramid.

* PVT (v1): Wang, Xie, Li, Fan, Song, Liang, Lu, Luo, Shao, "Pyramid Vision Transformer: A
  Versatile Backbone for Dense Prediction without Convolutions", ICCV 2021. No timm twin
  (timm has only v2): checked against the paper's parameters and MACs.
* PVTv2: Wang, Xie, Li, Fan, Song, Liang, Lu, Luo, Shao, "PVT v2: Improved Baselines with
  Pyramid Vision Transformer", Computational Visual Media 8(3), 2022. Tensor names are timm's
  ``PyramidVisionTransformerV2``'s (:func:`twin_mapping`).
"""

from __future__ import annotations

from typing import Dict, Sequence

import torch
from torch import nn

from course.blocks.attention import PatchEmbed, PVTBlock
from course.models.zoo import Paper, register_model

PVT_V1 = (
    "Wang, Xie, Li, Fan, Song, Liang, Lu, Luo, Shao, \"Pyramid Vision Transformer: A Versatile "
    "Backbone for Dense Prediction without Convolutions\", ICCV 2021, ImageNet classification "
    "table (PVT-Tiny: 13.2M parameters, 1.9 GFLOPs, top-1 75.1, i.e. top-1 error 24.9)"
)
PVT_V2 = (
    "Wang, Xie, Li, Fan, Song, Liang, Lu, Luo, Shao, \"PVT v2: Improved Baselines with Pyramid "
    "Vision Transformer\", Computational Visual Media 8(3), 2022, ImageNet classification table (PVTv2-B0: 3.4M "
    "parameters, 0.6 GFLOPs, top-1 70.5; the 3.4M leave out the 257K-parameter classifier, "
    "3.67M with it)"
)


class PVTStage(nn.Module):
    """Patch embedding (it also downsamples), then ``depth`` PVT blocks on the ``(h, w)`` map.

    ``version=1``: a learned position embedding for ``tokens`` tokens is added after the patch
    embedding (with a class token first when ``cls_token``); there is no stage norm.
    ``version=2``: no position embedding, a LayerNorm ends the stage.
    Input and output: ``(B, C, H, W)`` maps (the last v1 stage returns the class token's
    features ``(B, C)``).
    """

    def __init__(
        self,
        in_dim: int,
        dim: int,
        depth: int,
        heads: int,
        sr_ratio: int,
        mlp_ratio: float,
        patch: int,
        stride: int,
        version: int,
        tokens: int = 0,
        cls_token: bool = False,
        linear: bool = False,
        embed: bool = True,
    ):
        super().__init__()
        self.version = version
        self.tokens = tokens
        padding = patch // 2 if version == 2 else 0
        if version == 1:
            self.patch_embed = PatchEmbed(in_dim, dim, patch, stride, padding)
            self.pos_embed = nn.Parameter(torch.zeros(1, tokens + int(cls_token), dim))
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
            self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if cls_token else None
        else:  # PVTv2's first stage gets an embedded map (the model owns that patch embedding)
            self.downsample = PatchEmbed(in_dim, dim, patch, stride, padding) if embed else None
        self.blocks = nn.ModuleList([
            PVTBlock(dim, heads, sr_ratio, mlp_ratio, version=version, linear=linear) for _ in range(depth)
        ])
        if version == 2:
            self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.version == 1:
            x = self.patch_embed(x)  # (B, h, w, C)
        else:
            x = self.downsample(x) if self.downsample is not None else x.permute(0, 2, 3, 1)
        B, h, w, C = x.shape
        x = x.reshape(B, h * w, C)  # (B, h·w, C)
        if self.version == 1:
            if h * w != self.tokens:
                raise ValueError(f"PVT's position embeddings are for {self.tokens} tokens, the map has {h} x {w}")
            if self.cls_token is not None:
                x = torch.cat([self.cls_token.expand(B, -1, -1), x], dim=1)  # (B, 1 + h·w, C)
            x = x + self.pos_embed
        for block in self.blocks:
            x = block(x, (h, w))
        if self.version == 1 and self.cls_token is not None:
            return x  # (B, 1 + h·w, C): the model reads the class token
        if self.version == 2:
            x = self.norm(x)
        return x.transpose(1, 2).reshape(B, C, h, w)  # (B, C, h, w)


class PyramidVisionTransformer(nn.Module):
    """PVT v1 or v2: four stages at strides 4, 8, 16, 32 with spatial-reduction ratios ``sr_ratios``.

    v1: non-overlapping patch embeddings (4 x 4, then 2 x 2), position embeddings, a class
    token in the last stage, final LayerNorm, head on the class token. v2: overlapping patch
    embeddings (7 x 7 stride 4, then 3 x 3 stride 2), depthwise conv in the FFN, global
    average pool, head.
    """

    def __init__(
        self,
        dims: Sequence[int] = (64, 128, 320, 512),
        depths: Sequence[int] = (2, 2, 2, 2),
        heads: Sequence[int] = (1, 2, 5, 8),
        mlp_ratios: Sequence[float] = (8, 8, 4, 4),
        sr_ratios: Sequence[int] = (8, 4, 2, 1),
        version: int = 2,
        linear: bool = False,
        img_size: int = 224,
        num_classes: int = 1000,
    ):
        super().__init__()
        self.version = version
        stages = []
        for i in range(4):
            if version == 1:
                patch, stride = (4, 4) if i == 0 else (2, 2)
            else:
                patch, stride = (7, 4) if i == 0 else (3, 2)
            tokens = (img_size // 2 ** (i + 2)) ** 2
            stages.append(PVTStage(
                3 if i == 0 else dims[i - 1], dims[i], depths[i], heads[i], sr_ratios[i], mlp_ratios[i],
                patch, stride, version, tokens=tokens, cls_token=(version == 1 and i == 3), linear=linear,
                embed=(version == 1 or i > 0),
            ))
        if version == 2:
            self.patch_embed = PatchEmbed(3, dims[0], 7, 4, 3)
        self.stages = nn.Sequential(*stages)
        if version == 1:
            self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.version == 1:
            x = self.stages(x)  # (B, 1 + h·w, C)
            return self.head(self.norm(x)[:, 0])  # class token
        x = self.patch_embed(x).permute(0, 3, 1, 2)  # (B, C, H/4, W/4)
        x = self.stages(x)  # (B, 8C, H/32, W/32)
        return self.head(x.mean(dim=(2, 3)))  # global average pool, (B, classes)


def twin_mapping(model: nn.Module, twin: nn.Module) -> Dict[str, str]:
    """``{course name: timm name}`` for PVTv2: every name is the same."""
    return {key: key for key in model.state_dict()}


@register_model(
    "pvt_tiny",
    twin=None,
    paper=Paper(13.2, 1.9, 75.1, PVT_V1, 224, "GFLOPs (= multiply-adds)", distilled=False),
    family="PVT",
    chapter=5,
)
def pvt_tiny(**kwargs) -> PyramidVisionTransformer:
    """PVT-Tiny (v1): dims (64, 128, 320, 512), depths (2, 2, 2, 2), heads (1, 2, 5, 8),
    MLP ratios (8, 8, 4, 4), reduction ratios (8, 4, 2, 1)."""
    return PyramidVisionTransformer((64, 128, 320, 512), (2, 2, 2, 2), (1, 2, 5, 8), (8, 8, 4, 4), (8, 4, 2, 1),
                                    version=1, **kwargs)


@register_model(
    "pvt_v2_b0",
    twin="timm:pvt_v2_b0",
    paper=Paper(3.4, 0.6, 70.5, PVT_V2, 224, "GFLOPs (= multiply-adds)", distilled=False),
    family="PVT",
    chapter=5,
    twin_mapping=twin_mapping,
)
def pvt_v2_b0(**kwargs) -> PyramidVisionTransformer:
    """PVTv2-B0: dims (32, 64, 160, 256), depths (2, 2, 2, 2), heads (1, 2, 5, 8),
    MLP ratios (8, 8, 4, 4), reduction ratios (8, 4, 2, 1)."""
    return PyramidVisionTransformer((32, 64, 160, 256), (2, 2, 2, 2), (1, 2, 5, 8), (8, 8, 4, 4), (8, 4, 2, 1),
                                    version=2, **kwargs)
