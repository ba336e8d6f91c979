"""MnasNet-A1 at 224x224, built from :class:`course.blocks.bottleneck.MBConv`.

timm's ``mnasnet_100`` is MnasNet-**B1** (no SE); MnasNet-A1 is ``semnasnet_100``.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

from torch import nn

from course.blocks.bottleneck import MBConv
from course.models.efficientnet_names import efficientnet_mapping
from course.models.mobilenetv2 import InvertedResidualNet
from course.models.zoo import Paper, register_model

__all__ = ["MnasNetA1", "twin_mapping"]


def twin_mapping(model: nn.Module, twin: nn.Module) -> Dict[str, str]:
    """``{course name: timm name}`` for ``semnasnet_100``: timm's EfficientNet-family names
    (:func:`~course.models.efficientnet_names.efficientnet_mapping`)."""
    return efficientnet_mapping(twin)

#: Tan et al. 2019, Figure 7(a): (t expansion, K kernel, c channels, n repeats, s stride, SE ratio).
#: t = 1 is the "SepConv" block (depthwise + linear 1x1, no expansion conv).
MNASNET_A1_STAGES: List[Tuple[int, int, int, int, int, float]] = [
    (1, 3, 16, 1, 1, 0.0),
    (6, 3, 24, 2, 2, 0.0),
    (3, 5, 40, 3, 2, 0.25),
    (6, 3, 80, 4, 2, 0.0),
    (6, 3, 112, 2, 1, 0.25),
    (6, 5, 160, 3, 2, 0.25),
    (6, 3, 320, 1, 1, 0.0),
]


class MnasNetA1(InvertedResidualNet):
    """MnasNet-A1 (Tan et al., CVPR 2019, Figure 7(a)), ReLU throughout, SE with a sigmoid gate
    and a squeeze width of a quarter of each block's *input* channels.

    stem 3x3 conv 32 stride 2 -> SepConv 16 -> MBConv stages of Figure 7(a) -> 1x1 conv
    320 -> 1280 -> global average pool -> linear. ``(B, 3, 224, 224) -> (B, num_classes)``.
    """

    def __init__(
        self,
        num_classes: int = 1000,
    ):
        blocks, N = [], 32
        for t, K, c, n, s, se_ratio in MNASNET_A1_STAGES:
            for i in range(n):
                blocks.append(MBConv(N, c, expansion=t, K=K, stride=s if i == 0 else 1, se_ratio=se_ratio))
                N = c
        super().__init__(blocks, N, nn.ReLU, num_classes)


@register_model(
    "mnasnet_a1",
    twin="timm:semnasnet_100",
    paper=Paper(
        params_m=3.9,
        macs_g=0.312,
        top1=75.2,
        citation=(
            "M. Tan, B. Chen, R. Pang, V. Vasudevan, M. Sandler, A. Howard, Q. V. Le, \"MnasNet: "
            "Platform-Aware Neural Architecture Search for Mobile,\" CVPR 2019, Table 1 "
            "(MnasNet-A1: 75.2% top-1, 3.9M parameters, 312M multiply-adds)."
        ),
        input_size=224,
        convention="Mult-Adds (multiply-adds = MACs)",
        distilled=False,
    ),
    family="MnasNet",
    chapter=4,
    twin_mapping=twin_mapping,
)
def mnasnet_a1(num_classes: int = 1000) -> MnasNetA1:
    """MnasNet-A1 at 224: 3,887,038 parameters and 311.6M MACs (SE and classifier included),
    exactly timm's ``semnasnet_100``; the paper prints 3.9M and 312M."""
    return MnasNetA1(num_classes)
