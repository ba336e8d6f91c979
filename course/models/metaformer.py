"""PoolFormer and a generic MetaFormer: one macro-architecture, any token mixer.

Yu, Luo, Zhou, Si, Zhou, Wang, Feng, Yan, "MetaFormer Is Actually What You Need for Vision",
CVPR 2022. Tensor names are timm's ``MetaFormer`` (``poolformer_s12``)'s but for the stem, the
downsampling convs and the head (:func:`twin_mapping`). One difference from the paper's code,
which timm made too: the final norm is a LayerNorm applied *after* global average pooling.
"""

from __future__ import annotations

from typing import Dict, Sequence, Union

import torch
from torch import nn

from course.blocks.metaformer import MetaFormerBlock, make_mixer
from course.models.twins import rename_prefixes
from course.models.zoo import Paper, register_model

POOLFORMER = (
    "Yu, Luo, Zhou, Si, Zhou, Wang, Feng, Yan, \"MetaFormer Is Actually What You Need for Vision\", "
    "CVPR 2022, Table 1 (PoolFormer-S12: 12M parameters, 1.8G MACs, top-1 77.2)"
)


class MetaFormer(nn.Module):
    """Four stages at strides 4, 8, 16, 32 of :class:`MetaFormerBlock` with a pluggable mixer.

    Stem ``Conv2d(3, C1, 7, stride 4, padding 2)``; between stages ``Conv2d(3 x 3, stride 2)``;
    then global average pool, LayerNorm, linear head (PoolFormer's macro-architecture).

    Args:
        mixers: one mixer name for every stage (``"pool"``), or four names, from
            :data:`course.mixers.MIXER_NAMES`.
        depths, dims: blocks and channels per stage.
        head_dim: channels per attention head (heads = dim // head_dim) for attention mixers.
        sr_ratios: spatial-reduction ratios for ``"sra"``, per stage.
        img_size: the input size the spatial MLP is built for (other mixers take any size).
    """

    def __init__(
        self,
        mixers: Union[str, Sequence[str]] = "pool",
        depths: Sequence[int] = (2, 2, 6, 2),
        dims: Sequence[int] = (64, 128, 320, 512),
        head_dim: int = 32,
        sr_ratios: Sequence[int] = (8, 4, 2, 1),
        mlp_ratio: float = 4.0,
        img_size: int = 224,
        num_classes: int = 1000,
    ):
        super().__init__()
        if isinstance(mixers, str):
            mixers = [mixers] * len(depths)
        if not (len(mixers) == len(depths) == len(dims) == len(sr_ratios) == 4):
            raise ValueError("mixers, depths, dims and sr_ratios need one entry per stage (4 stages)")
        for dim in dims:
            if dim % head_dim:
                raise ValueError(f"head_dim={head_dim} must divide every stage width, not {dim}")
        self.mixers = list(mixers)
        self.stem = nn.Conv2d(3, dims[0], 7, stride=4, padding=2)
        stages = []
        size = (img_size + 4 - 7) // 4 + 1  # the stem's output size
        for i in range(4):
            if i > 0:
                size = (size + 2 - 3) // 2 + 1
            blocks = [
                MetaFormerBlock(dims[i], make_mixer(mixers[i], dims[i], dims[i] // head_dim, size, size, sr_ratios[i],
                                                    shift=0 if j % 2 == 0 else 3), mlp_ratio)
                for j in range(depths[i])
            ]
            stage = nn.Module()
            stage.downsample = nn.Conv2d(dims[i - 1], dims[i], 3, stride=2, padding=1) if i > 0 else nn.Identity()
            stage.blocks = nn.Sequential(*blocks)
            stages.append(stage)
        self.stages = nn.ModuleList(stages)
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)  # (B, C1, H/4, W/4)
        for stage in self.stages:
            x = stage.blocks(stage.downsample(x))  # (B, Ci, H/2^(i+2), W/2^(i+2))
        return self.head(self.norm(x.mean(dim=(2, 3))))  # pool, norm, (B, classes)


def metaformer(mixer: Union[str, Sequence[str]] = "pool", **kwargs) -> MetaFormer:
    """The generic builder: PoolFormer-S12's macro-architecture with any mixer(s).

    >>> model = metaformer("dwconv", depths=(1, 1, 1, 1))
    """
    return MetaFormer(mixer, **kwargs)


def twin_mapping(model: nn.Module, twin: nn.Module) -> Dict[str, str]:
    """``{course name: timm name}``: timm wraps the stem and downsampling convs (``.conv``) and
    keeps the final norm in its head (``head.norm``, ``head.fc``)."""
    renames = {"stem": "stem.conv", "norm": "head.norm", "head": "head.fc"}
    renames.update({f"stages.{i}.downsample": f"stages.{i}.downsample.conv" for i in range(1, 4)})
    return rename_prefixes(model, renames)


@register_model(
    "poolformer_s12",
    twin="timm:poolformer_s12",
    paper=Paper(12.0, 1.8, 77.2, POOLFORMER, 224, "MACs", distilled=False),
    family="MetaFormer",
    chapter=6,
    twin_mapping=twin_mapping,
)
def poolformer_s12(**kwargs) -> MetaFormer:
    """PoolFormer-S12: pooling mixer, depths (2, 2, 6, 2), dims (64, 128, 320, 512)."""
    return MetaFormer("pool", (2, 2, 6, 2), (64, 128, 320, 512), **kwargs)
