"""EfficientViT-B1 (Cai et al., "EfficientViT: Lightweight Multi-Scale Attention for High-Resolution
Dense Prediction", ICCV 2023; MIT's EfficientViT), built from :mod:`course.blocks.linear_attention`.

* **stem**: 3x3 stride-2 conv, then depthwise-separable residual blocks;
* **stages 1-2** (strides 4, 8): a stride-2 MBConv, then residual MBConvs;
* **stages 3-4** (strides 16, 32): a stride-2 MBConv (fewer BatchNorms), then
  :class:`~course.blocks.linear_attention.EfficientViTBlock`: multi-scale ReLU linear attention
  (heads of width 16) followed by an MBConv, each residual;
* **head**: 1x1 conv (BN, hard-swish), global average pooling, linear (no bias) -> LayerNorm ->
  hard-swish -> linear classifier.

Hard-swish everywhere. Twin: timm's ``efficientvit_b1`` (``timm/models/efficientvit_mit.py``);
:func:`twin_mapping` lists the name pairs.

**Paper numbers** (the authors' table of B-series ImageNet results, repeated in their
repository, ``applications/cls.md`` of github.com/mit-han-lab/efficientvit): B1 at 224x224:
9.1M params, 0.52 G MACs, 79.39% top-1, trained from scratch on ImageNet-1K (300 + 20 warm-up
epochs, supervised, no distillation). Counted here: 9,102,024 params (twin: the same), 0.519 G
MACs (-0.2%). The repository lists no B0, so the course has none. The paper's table number
could not be confirmed in this session.

MSRA's EfficientViT (Liu et al., CVPR 2023, cascaded group attention; timm ``efficientvit_m*``)
is a different network with the same name; it is not built here.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Dict, Sequence

import torch
from torch import nn

from course.blocks.convnorm import ConvNorm
from course.blocks.linear_attention import EfficientViTBlock, EfficientViTDSConv, EfficientViTMBConv, Residual
from course.models.twins import copy_state_by_name
from course.models.zoo import Paper, register_model

__all__ = ["EfficientViT", "twin_mapping"]


class Stage(nn.Module):
    def __init__(self, blocks: Sequence[nn.Module]):
        super().__init__()
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class EfficientViT(nn.Module):
    """EfficientViT (B series): ``(B, 3, H, W) -> (B, num_classes)``.

    Args:
        widths: stem width, then the four stages' widths.
        depths: stem blocks, then blocks per stage.
        head_dim: the attention's width per head (16 for B0-B1, 32 for B2-B3).
        head_widths: widths of the head's 1x1 conv and hidden linear layer.
        expansion: MBConv expansion (4).
    """

    def __init__(
        self,
        widths: Sequence[int],
        depths: Sequence[int],
        head_dim: int,
        head_widths: Sequence[int],
        expansion: float = 4.0,
        num_classes: int = 1000,
    ):
        super().__init__()
        if len(widths) != len(depths) or len(widths) != 5:
            raise ValueError("widths and depths need 5 entries each (stem and four stages)")
        act = nn.Hardswish
        self.stem = nn.Sequential()
        self.stem.add_module("in_conv", ConvNorm(3, widths[0], 3, 2, act=act))
        for i in range(depths[0]):
            self.stem.add_module(f"res{i}", Residual(EfficientViTDSConv(widths[0], widths[0], act=act)))
        stages, N = [], widths[0]
        for i, (width, depth) in enumerate(zip(widths[1:], depths[1:])):
            attention = i >= 2
            blocks = [Residual(EfficientViTMBConv(N, width, stride=2, expansion=expansion, act=act,
                                                  fewer_norm=attention), shortcut=False)]
            if attention:
                blocks += [EfficientViTBlock(width, width // head_dim, expansion, act) for _ in range(depth)]
            else:
                blocks += [Residual(EfficientViTMBConv(width, width, expansion=expansion, act=act))
                           for _ in range(depth - 1)]
            stages.append(Stage(blocks))
            N = width
        self.stages = nn.Sequential(*stages)
        self.head = nn.Module()
        self.head.in_conv = ConvNorm(N, head_widths[0], 1, act=act)
        self.head.classifier = nn.Sequential(OrderedDict(
            fc=nn.Linear(head_widths[0], head_widths[1], bias=False),
            norm=nn.LayerNorm(head_widths[1]),
            act=act(),
            out=nn.Linear(head_widths[1], num_classes),
        ))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))  # (B, C4, H/32, W/32)
        x = self.head.in_conv(x).mean((2, 3))  # (B, head_widths[0])
        return self.head.classifier(x)  # (B, num_classes)


#: Course name part -> timm name part (regular expressions, in order).
TIMM_RENAMES = [
    (r"\.bn\.", ".norm."),  # timm's ConvNormAct calls its BatchNorm "norm"
    (r"^head\.classifier\.fc\.", "head.classifier.0."),
    (r"^head\.classifier\.norm\.", "head.classifier.1."),
    (r"^head\.classifier\.out\.", "head.classifier.4."),
]


def twin_mapping(model: nn.Module, twin: nn.Module) -> Dict[str, str]:
    """Course tensor name -> timm tensor name (:data:`TIMM_RENAMES`); otherwise timm's names."""
    mapping = {}
    for key in model.state_dict():
        name = key
        for pattern, repl in TIMM_RENAMES:
            name = re.sub(pattern, repl, name)
        mapping[key] = name
    return mapping


_CITATION = (
    "H. Cai, J. Li, M. Hu, C. Gan, S. Han, \"EfficientViT: Lightweight Multi-Scale Attention for High-Resolution "
    "Dense Prediction\", ICCV 2023, ImageNet classification results as listed in the authors' repository "
    "(github.com/mit-han-lab/efficientvit, applications/cls.md, \"EfficientViT B series\": B1 224x224, 79.390% "
    "top-1, 9.1M params, 0.52G MACs; trained from scratch, no distillation)"
)


@register_model(
    "efficientvit_b1",
    twin="timm:efficientvit_b1",
    paper=Paper(9.1, 0.52, 79.39, _CITATION, 224, "MACs (multiply-adds); top-1 without distillation"),
    family="EfficientViT",
    chapter=5,
    twin_weights=lambda m, t: copy_state_by_name(m, t, twin_mapping(m, t)),
)
def efficientvit_b1(num_classes: int = 1000) -> EfficientViT:
    """EfficientViT-B1: widths (16, 32, 64, 128, 256), depths (1, 2, 3, 3, 4), heads of width 16."""
    return EfficientViT((16, 32, 64, 128, 256), (1, 2, 3, 3, 4), 16, (1536, 1600), num_classes=num_classes)
