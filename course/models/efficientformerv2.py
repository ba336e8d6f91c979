"""EfficientFormerV2-S0, -S1, -S2 (Li et al., "Rethinking Vision Transformers for MobileNet Size
and Speed", ICCV 2023), built from :mod:`course.blocks.efficientformer`.

The network (paper Fig. 2 (f) and Sec. 4): a stem of two 3x3 stride-2 convs (C/2 and C
channels), four stages at strides 4, 8, 16, 32, a BatchNorm, global average pooling and two
linear heads whose outputs are averaged (the classifier and the distillation head, as in DeiT).

* **4D partition** (all of stages 1-2, the first blocks of stages 3-4): the conv block
  ``x + LS(FFN(x))`` (1x1 conv, 3x3 depthwise, 1x1 conv, each with BatchNorm);
* **3D partition** (the last ``num_vit`` blocks of stages 3 and 4): attention first. In stage 3
  (14x14) the attention is *strided*: Q, K, V on a 7x7 map, output upsampled back.
* **Downsampling**: a 3x3 stride-2 conv between stages; before stage 4 an attention path
  (queries at stride 2) is added to it.
* **Latency-driven slimming** (Sec. 4) chose the widths, depths, per-block FFN expansion
  ratios (3 or 4) and ``num_vit`` of each size: they are :data:`CONFIGS` below (the authors'
  released configurations, as in timm).

Twins: timm's ``efficientformerv2_s0``, ``_s1``, ``_s2``. The course model has the twin's
modules under the same names except LayerScale's parameter (``scale`` here, ``gamma`` in
timm); :func:`twin_mapping` lists every pair.

**Paper numbers** (the paper's ImageNet-1K comparison, Table 2 as the course's capstone data
cites it; 224x224, "GMACs"): S0 3.5M params, 0.40 GMACs, 75.7%
top-1; S1 6.1M, 0.65 G, 79.0%; S2 12.6M, 1.25 G, 81.6%. These top-1 numbers come **with
knowledge distillation** (a RegNetY-16GF teacher, DeiT's recipe, 300 epochs); without it S0 and
S1 reach 73.7% and 77.9% (as reported by Yun and Ro, "SHViT", CVPR 2024, Tables 2 and 3, which
list both). Counted here (every conv, matmul and linear, both heads): S0 0.396 G (-1.0%), S1
0.652 G (+0.3%), S2 1.247 G (-0.2%). Parameters: 3,600,256, 6,185,560, 12,710,112 with both heads
(3.42M, 5.96M, 12.42M without the distillation head): the paper's rounding fits neither
reading exactly. The paper's table could not be read from a primary copy in this session:
the numbers above agree with the values other papers quote for it (SHViT, CVPR 2024; iFormer,
ICLR 2025) and with the timm model cards.
"""

from __future__ import annotations

import math
import re
from typing import Dict, Sequence, Tuple

import torch
from torch import nn

from course.blocks.conv import ConvBNAct
from course.blocks.efficientformer import Attention4D, EfficientFormerV2Block, EfficientFormerV2Downsample
from course.blocks.stage import Stage
from course.models.zoo import Paper, register_model

__all__ = ["CONFIGS", "EfficientFormerV2", "twin_mapping"]

#: name -> (widths, depths, FFN expansion ratio of every block per stage, num_vit); the released configurations.
CONFIGS: Dict[str, Tuple[Tuple[int, ...], Tuple[int, ...], Tuple[Tuple[int, ...], ...], int]] = {
    "s0": ((32, 48, 96, 176), (2, 2, 6, 4), ((4, 4), (4, 4), (4, 3, 3, 3, 4, 4), (4, 3, 3, 4)), 2),
    "s1": ((32, 48, 120, 224), (3, 3, 9, 6), ((4,) * 3, (4,) * 3, (4, 4, 3, 3, 3, 3, 4, 4, 4), (4, 4, 3, 3, 4, 4)), 2),
    "s2": ((32, 64, 144, 288), (4, 4, 12, 8),
           ((4,) * 4, (4,) * 4, (4, 4, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4), (4, 4, 3, 3, 3, 3, 4, 4)), 4),
}


class EfficientFormerV2(nn.Module):
    """EfficientFormerV2 (Li et al., ICCV 2023): ``(B, 3, 224, 224) -> (B, num_classes)``.

    Args:
        widths: channels of the four stages.
        depths: blocks per stage.
        mlp_ratios: FFN expansion ratio of every block, per stage.
        num_vit: how many of the last blocks of stages 3 and 4 have attention.
        img_size: the input size (the attention biases are learned for its token grids).
        num_classes: classifier outputs.
    """

    def __init__(
        self,
        widths: Sequence[int],
        depths: Sequence[int],
        mlp_ratios: Sequence[Sequence[float]],
        num_vit: int,
        img_size: int = 224,
        num_classes: int = 1000,
    ):
        super().__init__()
        if not len(widths) == len(depths) == len(mlp_ratios) == 4:
            raise ValueError("widths, depths and mlp_ratios need one entry per stage (4 stages)")
        for i, (depth, ratios) in enumerate(zip(depths, mlp_ratios)):
            if len(ratios) != depth:
                raise ValueError(f"mlp_ratios[{i}] has {len(ratios)} entries for {depth} blocks")
        self.stem = nn.Sequential()
        self.stem.add_module("conv1", ConvBNAct(3, widths[0] // 2, 3, 2, act=nn.GELU, bias=True))
        self.stem.add_module("conv2", ConvBNAct(widths[0] // 2, widths[0], 3, 2, act=nn.GELU, bias=True))
        size = math.ceil(img_size / 4)
        stages, channels = [], widths[0]
        for i, (width, depth) in enumerate(zip(widths, depths)):
            if i == 0:
                downsample = None
            else:
                downsample = EfficientFormerV2Downsample(channels, width, size, attention=i == 3)
                size = math.ceil(size / 2)
            blocks = []
            for j in range(depth):
                attention = None
                if i >= 2 and j >= depth - num_vit:  # the 3D partition: the last num_vit blocks
                    attention = Attention4D(width, resolution=size, stride=2 if i == 2 else None)
                blocks.append(EfficientFormerV2Block(width, mlp_ratios[i][j], attention))
            stages.append(Stage(blocks, downsample))
            channels = width
        self.stages = nn.Sequential(*stages)
        self.norm = nn.BatchNorm2d(channels)
        self.head = nn.Linear(channels, num_classes)
        self.head_dist = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W)
        x = self.stem(x)  # (B, C1, H/4, W/4)
        x = self.stages(x)  # (B, C4, H/32, W/32)
        x = self.norm(x).mean((2, 3))  # (B, C4)
        return (self.head(x) + self.head_dist(x)) / 2  # classifier and distillation head, averaged


def twin_mapping(model: nn.Module, twin: nn.Module) -> Dict[str, str]:
    """Course tensor name -> timm tensor name: the same names, LayerScale's ``scale`` -> ``gamma``.

    >>> # stages.2.blocks.5.ls1.scale -> stages.2.blocks.5.ls1.gamma
    """
    return {key: re.sub(r"\.ls(\d)\.scale$", r".ls\1.gamma", key) for key in model.state_dict()}


_CITATION = (
    "Y. Li, J. Hu, Y. Wen, G. Evangelidis, K. Salahi, Y. Wang, S. Tulyakov, J. Ren, \"Rethinking Vision "
    "Transformers for MobileNet Size and Speed\", ICCV 2023, Table 2 (ImageNet-1K, 224x224; top-1 trained WITH "
    "knowledge distillation from RegNetY-16GF, 300 epochs{extra}; the table itself could not be opened in this "
    "session: the values agree with those quoted by SHViT, CVPR 2024, Tables 2-3, and iFormer, ICLR 2025, Table 4)"
)

#: name -> (params M, GMACs, top-1, the top-1 without distillation where another paper reports it)
PAPER = {
    "s0": (3.5, 0.40, 75.7, "; 73.7% without distillation per SHViT Table 2"),
    "s1": (6.1, 0.65, 79.0, "; 77.9% without distillation per SHViT Table 2"),
    "s2": (12.6, 1.25, 81.6, ""),
}


def _register(size: str) -> None:
    widths, depths, ratios, num_vit = CONFIGS[size]
    params_m, macs_g, top1, extra = PAPER[size]

    def build(num_classes: int = 1000, img_size: int = 224) -> EfficientFormerV2:
        return EfficientFormerV2(widths, depths, ratios, num_vit, img_size=img_size, num_classes=num_classes)

    name = f"efficientformerv2_{size}"
    build.__name__ = name
    build.__doc__ = f"EfficientFormerV2-{size.upper()}: widths {widths}, depths {depths}, {num_vit} attention blocks in stages 3-4."
    register_model(
        name,
        twin=f"timm:{name}",
        paper=Paper(params_m, macs_g, top1, _CITATION.format(extra=extra), 224,
                    "GMACs (multiply-adds); top-1 with distillation", distilled=True),
        family="EfficientFormer",
        chapter=6,
        twin_mapping=twin_mapping,
    )(build)


for _size in CONFIGS:
    _register(_size)
