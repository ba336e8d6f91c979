"""RepVGG-A0, -A1, -B0 (Ding et al., "RepVGG: Making VGG-style ConvNets Great Again", CVPR 2021).

A stem :class:`~course.blocks.reparam.RepVGGBlock` (3 -> stem width, stride 2), four stages of
RepVGG blocks (the first of each at stride 2), global average pooling and a linear classifier.
Stage widths are ``a · (64, 128, 256)`` and ``b · 512``; depths (2, 4, 14, 1) for the A models
and (4, 6, 16, 1) for B; the stem has ``min(64, 64a)`` channels (paper, Sec. 3.4 and Table 2).

Train-time and deploy-time variants are **separate zoo names**: ``repvgg_a0`` (three branches
per block) and ``repvgg_a0_deploy`` (one 3x3 conv with bias per block, what
:func:`course.blocks.reparam.reparameterize_model` turns ``repvgg_a0`` into).

Twins: timm's ``repvgg_a0``, ``repvgg_a1``, ``repvgg_b0`` (``timm/models/byobnet.py``); the
deploy twin is timm's model after ``timm.utils.reparameterize_model``. :func:`twin_mapping`
maps names explicitly (see :data:`TIMM_NAMES`).
"""

from __future__ import annotations

import functools
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import nn

from course.blocks.reparam import RepVGGBlock
from course.models.zoo import Paper, register_train_and_deploy

#: Course name part -> timm name part, applied to every dotted component of a state-dict key.
TIMM_NAMES: Dict[str, str] = {
    "conv3x3": "conv_kxk",
    "conv1x1": "conv_1x1",
    "reparam": "reparam_conv",
    "fc": "head.fc",
}

_CITATION = (
    "X. Ding, X. Zhang, N. Ma, J. Han, G. Ding, J. Sun, \"RepVGG: Making VGG-style ConvNets Great "
    "Again\", CVPR 2021, Table 4 (params are the deploy-time model's; \"Theo FLOPs\" are "
    "multiply-adds, printed to one decimal)"
)


class RepVGG(nn.Module):
    """RepVGG: a plain stack of RepVGG blocks (Ding et al., CVPR 2021).

    Args:
        depths: blocks per stage, e.g. (2, 4, 14, 1).
        widths: channels per stage, e.g. (48, 96, 192, 1280).
        stem_width: channels of the stem block.
        num_classes: classifier outputs.
        deploy: build every block in its deploy-time form (one 3x3 conv with bias).
    """

    def __init__(
        self,
        depths: Sequence[int],
        widths: Sequence[int],
        stem_width: int,
        num_classes: int = 1000,
        deploy: bool = False,
    ):
        super().__init__()
        if len(depths) != len(widths):
            raise ValueError(f"depths ({len(depths)} stages) and widths ({len(widths)} stages) differ in length")
        self.stem = RepVGGBlock(3, stem_width, stride=2, deploy=deploy)
        stages, channels = [], stem_width
        for depth, width in zip(depths, widths):
            blocks = [RepVGGBlock(channels if i == 0 else width, width, stride=2 if i == 0 else 1, deploy=deploy) for i in range(depth)]
            stages.append(nn.Sequential(*blocks))
            channels = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)  # (B, 3, H, W) -> (B, stem, H/2, W/2)
        x = self.stages(x)  # -> (B, C_last, H/32, W/32)
        return self.fc(self.pool(x).flatten(1))  # -> (B, num_classes)


def twin_mapping(model: nn.Module, twin: Optional[nn.Module] = None) -> Dict[str, str]:
    """``{course name: timm name}``: every dotted part of a name renamed by :data:`TIMM_NAMES`
    (train-time and deploy-time models alike; the deploy twin is re-parameterized by timm)."""
    return {key: ".".join(TIMM_NAMES.get(part, part) for part in key.split(".")) for key in model.state_dict()}


# --- the zoo ---------------------------------------------------------------------------------

#: name -> (depths, widths, stem width, paper params M (deploy), paper "FLOPs" G, top-1)
CONFIGS: Dict[str, Tuple[Tuple[int, ...], Tuple[int, ...], int, float, float, float]] = {
    "repvgg_a0": ((2, 4, 14, 1), (48, 96, 192, 1280), 48, 8.30, 1.4, 72.41),
    "repvgg_a1": ((2, 4, 14, 1), (64, 128, 256, 1280), 64, 12.78, 2.4, 74.46),
    "repvgg_b0": ((4, 6, 16, 1), (64, 128, 256, 1280), 64, 14.33, 3.1, 75.14),
}


for _name, (_depths, _widths, _stem, _params_m, _macs_g, _top1) in CONFIGS.items():
    register_train_and_deploy(
        _name,
        functools.partial(RepVGG, _depths, _widths, _stem),
        f"RepVGG-{_name[-2:].upper()}",
        twin=f"timm:{_name}",
        paper=Paper(_params_m, _macs_g, _top1, _CITATION, 224, "Theo FLOPs (B) = multiply-adds, deploy-time, 1 decimal",
                    distilled=False),
        family="RepVGG",
        chapter=7,
        twin_mapping=twin_mapping,
    )
