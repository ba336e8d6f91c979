"""MobileNetV3-Large and -Small 1.0 at 224x224, built from :class:`course.blocks.bottleneck.MobileNetV3Block`.

The layer tables are the paper's Tables 1 and 2 (Howard et al., ICCV 2019). Where timm's twins
(``mobilenetv3_large_100``, ``mobilenetv3_small_100``, the same networks as torchvision's
``mobilenet_v3_large/small``) read the tables differently, the course follows the twin and
says so here:

* **SE width.** The paper says "squeeze to 1/4 of the expansion channels"; the reference
  implementation (and timm) round it with ``make_divisible(mid / 4, 8)``: 72 -> 24 (not 18),
  120 -> 32 (not 30), 16 -> 8 (not 4), 240 -> 64 (not 60), 144 -> 40 (not 36). The course
  does the same.
* **Small's last conv.** Table 2 marks the final ``conv2d 1x1, 576`` with SE; the reference
  implementation and the twins have none, and neither does the course. An SE there would add
  ``2·576·144 = 165,888`` MACs (0.3%) and 166,464 parameters.
* **Counted MACs vs the paper.** Counted with the course counter (every conv and linear,
  SE and classifier included): Large 216.6M vs the paper's 219M MAdds (-1.1%), Small 56.5M vs
  56M (+0.9%); both within 2%. Parameters: 5,483,032 and 2,542,856 vs the paper's printed 5.4M
  and 2.5M (the paper does not say what it counted; the twins agree with the course exactly).
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import torch
from torch import nn

from course.blocks.bottleneck import MobileNetV3Block
from course.blocks.conv import ConvBNAct
from course.models.efficientnet_names import TIMM_TOP_LEVEL, efficientnet_mapping
from course.models.zoo import Paper, register_model

__all__ = ["MobileNetV3", "MOBILENETV3_LARGE", "MOBILENETV3_SMALL", "twin_mapping"]

RE, HS = nn.ReLU, nn.Hardswish

#: Table 1, the bneck rows: (K, exp size, out, SE, NL, stride).
MOBILENETV3_LARGE: List[Tuple[int, int, int, bool, type, int]] = [
    (3, 16, 16, False, RE, 1),
    (3, 64, 24, False, RE, 2),
    (3, 72, 24, False, RE, 1),
    (5, 72, 40, True, RE, 2),
    (5, 120, 40, True, RE, 1),
    (5, 120, 40, True, RE, 1),
    (3, 240, 80, False, HS, 2),
    (3, 200, 80, False, HS, 1),
    (3, 184, 80, False, HS, 1),
    (3, 184, 80, False, HS, 1),
    (3, 480, 112, True, HS, 1),
    (3, 672, 112, True, HS, 1),
    (5, 672, 160, True, HS, 2),
    (5, 960, 160, True, HS, 1),
    (5, 960, 160, True, HS, 1),
]

#: Table 2, the bneck rows: (K, exp size, out, SE, NL, stride).
MOBILENETV3_SMALL: List[Tuple[int, int, int, bool, type, int]] = [
    (3, 16, 16, True, RE, 2),
    (3, 72, 24, False, RE, 2),
    (3, 88, 24, False, RE, 1),
    (5, 96, 40, True, HS, 2),
    (5, 240, 40, True, HS, 1),
    (5, 240, 40, True, HS, 1),
    (5, 120, 48, True, HS, 1),
    (5, 144, 48, True, HS, 1),
    (5, 288, 96, True, HS, 2),
    (5, 576, 96, True, HS, 1),
    (5, 576, 96, True, HS, 1),
]


class MobileNetV3(nn.Module):
    """MobileNetV3 (Howard et al., ICCV 2019, Tables 1 and 2).

    stem 3x3 conv 16 stride 2 (hard-swish) -> the bneck rows of ``table`` -> 1x1 conv to
    ``last`` channels (BN, hard-swish; in ``blocks`` as the final entry, like the tables) ->
    global average pool -> 1x1 conv ``last -> head`` without BN ("NBN", so with a bias),
    hard-swish -> linear ``head -> num_classes``. Moving the 1280-wide layer after the pool
    is the paper's "efficient last stage": it runs on 1x1 instead of 7x7.
    ``(B, 3, 224, 224) -> (B, num_classes)``.
    """

    def __init__(
        self,
        table: List[Tuple[int, int, int, bool, type, int]],
        last: int,
        head: int,
        num_classes: int = 1000,
    ):
        super().__init__()
        self.stem = ConvBNAct(3, 16, 3, stride=2, act=nn.Hardswish)
        blocks, N = [], 16
        for K, mid, M, se, act, stride in table:
            blocks.append(MobileNetV3Block(N, M, mid, K=K, stride=stride, se=se, act=act))
            N = M
        blocks.append(ConvBNAct(N, last, 1, act=nn.Hardswish))
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Conv2d(last, head, 1)
        self.head_act = nn.Hardswish()
        self.classifier = nn.Linear(head, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, 3, 224, 224)
        x = self.stem(x)  # (B, 16, 112, 112)
        x = self.blocks(x)  # (B, last, 7, 7)
        x = x.mean((2, 3), keepdim=True)  # (B, last, 1, 1)
        x = self.head_act(self.head(x))  # (B, head, 1, 1)
        return self.classifier(x.flatten(1))  # (B, num_classes)


#: timm's names outside the blocks -> the course's (MobileNetV3 has no BN in its head).
TIMM_TOP_LEVEL_V3: Dict[str, str] = {**TIMM_TOP_LEVEL, "conv_head": "head"}


def twin_mapping(model: nn.Module, twin: nn.Module) -> Dict[str, str]:
    """``{course name: timm name}``: timm's EfficientNet-family names
    (:func:`~course.models.efficientnet_names.efficientnet_mapping`) with ``conv_head -> head``."""
    return efficientnet_mapping(twin, TIMM_TOP_LEVEL_V3)


_CITATION = (
    "A. Howard, M. Sandler, G. Chu, L.-C. Chen, B. Chen, M. Tan, W. Wang, Y. Zhu, R. Pang, "
    "V. Vasudevan, Q. V. Le, H. Adam, \"Searching for MobileNetV3,\" ICCV 2019, Table 3"
)


@register_model(
    "mobilenetv3_large_100",
    twin="timm:mobilenetv3_large_100",
    paper=Paper(
        params_m=5.4,
        macs_g=0.219,
        top1=75.2,
        citation=_CITATION + " (V3-Large 1.0: 75.2% top-1, 219M MAdds, 5.4M parameters).",
        input_size=224,
        convention="MAdds (multiply-adds = MACs)",
        distilled=False,
    ),
    family="MobileNet",
    chapter=4,
    twin_mapping=twin_mapping,
)
def mobilenetv3_large_100(num_classes: int = 1000) -> MobileNetV3:
    """MobileNetV3-Large 1.0 at 224 (Table 1); see the module docstring for the gaps to the paper."""
    return MobileNetV3(MOBILENETV3_LARGE, last=960, head=1280, num_classes=num_classes)


@register_model(
    "mobilenetv3_small_100",
    twin="timm:mobilenetv3_small_100",
    paper=Paper(
        params_m=2.5,
        macs_g=0.056,
        top1=67.4,
        citation=_CITATION + " (V3-Small 1.0: 67.4% top-1, 56M MAdds, 2.5M parameters).",
        input_size=224,
        convention="MAdds (multiply-adds = MACs)",
        distilled=False,
    ),
    family="MobileNet",
    chapter=4,
    twin_mapping=twin_mapping,
)
def mobilenetv3_small_100(num_classes: int = 1000) -> MobileNetV3:
    """MobileNetV3-Small 1.0 at 224 (Table 2, without SE on the last 1x1 conv, like the twins)."""
    return MobileNetV3(MOBILENETV3_SMALL, last=576, head=1024, num_classes=num_classes)
