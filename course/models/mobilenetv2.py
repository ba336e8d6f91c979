"""MobileNetV2 1.0 at 224x224, built from :class:`course.blocks.bottleneck.InvertedResidual`.

Twin: timm's ``mobilenetv2_100``, mapped by :func:`twin_mapping` (timm's EfficientNet-family
names, :mod:`course.models.efficientnet_names`).
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple, Type

import torch
from torch import nn

from course.blocks.bottleneck import InvertedResidual
from course.blocks.conv import ConvBNAct
from course.models.efficientnet_names import efficientnet_mapping
from course.models.zoo import Paper, register_model

__all__ = ["InvertedResidualNet", "MobileNetV2", "twin_mapping"]


def twin_mapping(model: nn.Module, twin: nn.Module) -> Dict[str, str]:
    """``{course name: timm name}``: stem, blocks and head as in
    :func:`~course.models.efficientnet_names.efficientnet_mapping`."""
    return efficientnet_mapping(twin)


# --- the model ----------------------------------------------------------------------------------

#: Sandler et al. 2018, Table 2: (t expansion, c output channels, n repeats, s first stride).
MOBILENETV2_STAGES: List[Tuple[int, int, int, int]] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


class InvertedResidualNet(nn.Module):
    """The macro-architecture of MobileNetV2 and MnasNet: a 3x3 stride-2 conv to 32 channels
    (``stem``), ``blocks`` ending with ``N`` channels, a 1x1 conv ``N -> 1280`` (``head``),
    global average pooling and a linear classifier; ``act`` after the stem and the head.
    ``(B, 3, 224, 224) -> (B, num_classes)``.
    """

    def __init__(
        self,
        blocks: Sequence[nn.Module],
        N: int,
        act: Type[nn.Module],
        num_classes: int = 1000,
    ):
        super().__init__()
        self.stem = ConvBNAct(3, 32, 3, stride=2, act=act)
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvBNAct(N, 1280, 1, act=act)
        self.classifier = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, 3, 224, 224)
        x = self.stem(x)  # (B, 32, 112, 112)
        x = self.blocks(x)  # (B, 320, 7, 7)
        x = self.head(x)  # (B, 1280, 7, 7)
        x = x.mean((2, 3))  # (B, 1280)
        return self.classifier(x)  # (B, num_classes)


class MobileNetV2(InvertedResidualNet):
    """MobileNetV2 1.0 (Sandler et al., CVPR 2018, Table 2), ReLU6 throughout.

    stem: 3x3 conv, 32, stride 2 -> 17 inverted residuals (Table 2's ``t, c, n, s``; 3x3
    depthwise; the first of each stage carries the stride) -> 1x1 conv 320 -> 1280 -> global
    average pool -> linear 1280 -> ``num_classes``. ``(B, 3, 224, 224) -> (B, num_classes)``.
    """

    def __init__(
        self,
        num_classes: int = 1000,
    ):
        blocks, N = [], 32
        for t, c, n, s in MOBILENETV2_STAGES:
            for i in range(n):
                blocks.append(InvertedResidual(N, c, t * N, K=3, stride=s if i == 0 else 1, act=nn.ReLU6))
                N = c
        super().__init__(blocks, N, nn.ReLU6, num_classes)


@register_model(
    "mobilenetv2_100",
    twin="timm:mobilenetv2_100",
    paper=Paper(
        params_m=3.4,
        macs_g=0.300,
        top1=72.0,
        citation=(
            "M. Sandler, A. Howard, M. Zhu, A. Zhmoginov, L.-C. Chen, \"MobileNetV2: Inverted "
            "Residuals and Linear Bottlenecks,\" CVPR 2018, Table 4 (MobileNetV2: 72.0% top-1, "
            "3.4M parameters, 300M MAdds)."
        ),
        input_size=224,
        convention="MAdds (multiply-adds = MACs)",
        distilled=False,
    ),
    family="MobileNet",
    chapter=4,
    twin_mapping=twin_mapping,
)
def mobilenetv2_100(num_classes: int = 1000) -> MobileNetV2:
    """MobileNetV2 1.0 at 224. The course counter gives 300.8M MACs (paper: 300M MAdds) and
    3,504,872 parameters, exactly timm's ``mobilenetv2_100`` (and torchvision's
    ``mobilenet_v2``); the paper prints 3.4M without saying what it left out."""
    return MobileNetV2(num_classes)
