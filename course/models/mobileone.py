"""MobileOne-S0 to -S4 (Vasu et al., "MobileOne: An Improved One millisecond Mobile Backbone", CVPR 2023).

A stem :class:`~course.blocks.reparam.MobileOneUnit` (3x3, 3 -> stem width, stride 2, one
branch), four stages of :class:`~course.blocks.reparam.MobileOneBlock` (depthwise unit, then
pointwise unit; the first block of each stage at stride 2), global average pooling and a linear
classifier. Stage widths are ``alpha_i · (64, 128, 256, 512)``, depths (2, 8, 10, 1) and the
over-parameterization factor k = 4 for S0, 1 for S1-S4; S4 adds SE to the last 5 blocks of
stage 3 and the last block of stage 4 (paper, Sec. 3 and its architecture table; timm's
``mobileone_s*`` configurations agree).

Train-time and deploy-time variants are **separate zoo names**: ``mobileone_s0`` and
``mobileone_s0_deploy`` (each unit one conv with bias).

Twins: timm's ``mobileone_s0`` ... ``mobileone_s4`` (``timm/models/byobnet.py``), where each
unit is its own block: course ``stages.i.j.depthwise`` is timm ``stages.i.(2j)`` and
``stages.i.j.pointwise`` is timm ``stages.i.(2j+1)``; other names map by :data:`TIMM_NAMES`
(:func:`twin_mapping`).
"""

from __future__ import annotations

import functools
import re
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import nn

from course.blocks.reparam import MobileOneBlock, MobileOneUnit
from course.models.zoo import Paper, register_train_and_deploy

#: Course name part -> timm name part (after the depthwise/pointwise renumbering).
TIMM_NAMES: Dict[str, str] = {
    "branches": "conv_kxk",
    "scale": "conv_scale",
    "se": "attn",
    "reduce": "fc1",  # inside the squeeze-and-excitation
    "expand": "fc2",
    "reparam": "reparam_conv",
    "fc": "head.fc",
}

_CITATION = (
    "P. K. A. Vasu, J. Gabriel, J. Zhu, O. Tuzel, A. Ranjan, \"MobileOne: An Improved One "
    "millisecond Mobile Backbone\", CVPR 2023, ImageNet-1k comparison table (params and "
    "FLOPs of the re-parameterized model, FLOPs = multiply-adds, in M); top-1 also in the "
    "official README (github.com/apple/ml-mobileone); top-1 without distillation (the paper's "
    "distilled rows are separate, e.g. S1 77.4, S4 81.4)"
)


class MobileOne(nn.Module):
    """MobileOne (Vasu et al., CVPR 2023).

    Args:
        depths: blocks per stage, e.g. (2, 8, 10, 1).
        widths: channels per stage, e.g. (48, 128, 256, 1024).
        stem_width: channels of the stem unit.
        num_branches: k, the over-parameterization factor of every block.
        se_blocks: per stage, how many of its last blocks have Squeeze-and-Excitation.
        num_classes: classifier outputs.
        deploy: build every unit in its deploy-time form (one conv with bias).
    """

    def __init__(
        self,
        depths: Sequence[int],
        widths: Sequence[int],
        stem_width: int,
        num_branches: int = 1,
        se_blocks: Sequence[int] = (0, 0, 0, 0),
        num_classes: int = 1000,
        deploy: bool = False,
    ):
        super().__init__()
        if not (len(depths) == len(widths) == len(se_blocks)):
            raise ValueError("depths, widths and se_blocks need one entry per stage")
        self.stem = MobileOneUnit(3, stem_width, 3, stride=2, deploy=deploy)
        stages, channels = [], stem_width
        for depth, width, n_se in zip(depths, widths, se_blocks):
            blocks = []
            for i in range(depth):
                blocks.append(MobileOneBlock(channels, width, 2 if i == 0 else 1, num_branches, se=i >= depth - n_se, deploy=deploy))
                channels = width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)  # (B, 3, H, W) -> (B, stem, H/2, W/2)
        x = self.stages(x)  # -> (B, C_last, H/32, W/32)
        return self.fc(self.pool(x).flatten(1))  # -> (B, num_classes)


_UNIT = re.compile(r"^stages\.(\d+)\.(\d+)\.(depthwise|pointwise)\.")


def timm_key(key: str) -> str:
    """Course state-dict key -> timm key, e.g. ``stages.1.3.pointwise.branches.0.conv.weight``
    -> ``stages.1.7.conv_kxk.0.conv.weight``."""
    match = _UNIT.match(key)
    if match:
        stage, block, unit = match.groups()
        index = 2 * int(block) + (unit == "pointwise")
        key = f"stages.{stage}.{index}." + key[match.end():]
    return ".".join(TIMM_NAMES.get(part, part) for part in key.split("."))


def twin_mapping(model: nn.Module, twin: Optional[nn.Module] = None) -> Dict[str, str]:
    """``{course name: timm name}`` by :func:`timm_key` (train-time and deploy-time models alike)."""
    return {key: timm_key(key) for key in model.state_dict()}


# --- the zoo ---------------------------------------------------------------------------------

#: name -> (widths, stem, k, se_blocks, paper params M, paper FLOPs G, top-1)
CONFIGS: Dict[str, Tuple] = {
    "mobileone_s0": ((48, 128, 256, 1024), 48, 4, (0, 0, 0, 0), 2.1, 0.275, 71.4),
    "mobileone_s1": ((96, 192, 512, 1280), 64, 1, (0, 0, 0, 0), 4.8, 0.825, 75.9),
    "mobileone_s2": ((96, 256, 640, 2048), 64, 1, (0, 0, 0, 0), 7.8, 1.299, 77.4),
    "mobileone_s3": ((128, 320, 768, 2048), 64, 1, (0, 0, 0, 0), 10.1, 1.896, 78.1),
    "mobileone_s4": ((192, 448, 896, 2048), 64, 1, (0, 0, 5, 1), 14.8, 2.978, 79.4),
}
DEPTHS = (2, 8, 10, 1)


for _name, (_widths, _stem, _k, _se_blocks, _params_m, _macs_g, _top1) in CONFIGS.items():
    register_train_and_deploy(
        _name,
        functools.partial(MobileOne, DEPTHS, _widths, _stem, _k, _se_blocks),
        f"MobileOne-{_name[-2:].upper()}",
        twin=f"timm:{_name}",
        paper=Paper(_params_m, _macs_g, _top1, _CITATION, 224, "FLOPs (M) = multiply-adds, deploy-time",
                    distilled=False),
        family="MobileOne",
        chapter=7,
        twin_mapping=twin_mapping,
    )
