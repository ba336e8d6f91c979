"""The name mapping from timm's EfficientNet-family models to the course's MobileNets.

timm builds ``mobilenetv2_*``, ``mobilenetv3_*`` and ``semnasnet_*`` (MnasNet-A1) with one
``EfficientNet`` class; :func:`efficientnet_mapping` maps their tensors to the course's
:mod:`~course.models.mobilenetv2`, :mod:`~course.models.mobilenetv3` and
:mod:`~course.models.mnasnet` (each of which names its ``top_level`` part).

timm's blocks live in ``blocks.<stage>.<index>``; the course's in one flat ``blocks.<k>`` (``k``
counts timm's blocks in order). Inside a block, :data:`TIMM_BLOCK_PARTS` renames the modules;
parameter and buffer names below a module (weight, bias, running_mean, ...) are the same.
"""

from __future__ import annotations

from typing import Dict

from torch import nn

__all__ = ["TIMM_BLOCK_PARTS", "TIMM_TOP_LEVEL", "efficientnet_mapping"]

#: Inside one of timm's blocks, by the block's class: timm's module -> the course's module.
TIMM_BLOCK_PARTS: Dict[str, Dict[str, str]] = {
    "InvertedResidual": {
        "conv_pw": "expand.conv", "bn1": "expand.bn",
        "conv_dw": "depthwise.conv", "bn2": "depthwise.bn",
        "se.conv_reduce": "se.reduce", "se.conv_expand": "se.expand",
        "conv_pwl": "project.conv", "bn3": "project.bn",
    },
    "DepthwiseSeparableConv": {  # an inverted residual without expansion (t = 1)
        "conv_dw": "depthwise.conv", "bn1": "depthwise.bn",
        "se.conv_reduce": "se.reduce", "se.conv_expand": "se.expand",
        "conv_pw": "project.conv", "bn2": "project.bn",
    },
    "ConvBnAct": {"conv": "conv", "bn1": "bn"},  # MobileNetV3's last 1x1 conv
}

#: Outside the blocks (MobileNetV2, MnasNet): timm's module -> the course's module.
TIMM_TOP_LEVEL: Dict[str, str] = {
    "conv_stem": "stem.conv", "bn1": "stem.bn",
    "conv_head": "head.conv", "bn2": "head.bn",
    "classifier": "classifier",
}


def _translate(key: str, parts: Dict[str, str], where: str) -> str:
    for timm_name in sorted(parts, key=len, reverse=True):  # longest prefix first
        if key.startswith(timm_name + "."):
            return parts[timm_name] + key[len(timm_name):]
    raise ValueError(f"no mapping for timm tensor {where}{key!r}")


def efficientnet_mapping(twin: nn.Module, top_level: Dict[str, str] = TIMM_TOP_LEVEL) -> Dict[str, str]:
    """``{course name: timm name}`` for every tensor of the timm ``twin``.

    ``blocks.<k>.<course part>.<leaf>`` <- ``blocks.<s>.<j>.<timm part>.<leaf>`` by
    :data:`TIMM_BLOCK_PARTS` (``k`` = position of the block in timm's order); every other name
    by ``top_level``.

    Raises:
        ValueError: for a timm block type or tensor the mapping does not know.
    """
    mapping: Dict[str, str] = {}
    k = 0
    for s, stage in enumerate(twin.blocks):
        for j, block in enumerate(stage):
            parts = TIMM_BLOCK_PARTS.get(type(block).__name__)
            if parts is None:
                raise ValueError(f"no mapping for timm block type {type(block).__name__}")
            for key in block.state_dict():
                mapping[f"blocks.{k}." + _translate(key, parts, f"blocks.{s}.{j}.")] = f"blocks.{s}.{j}.{key}"
            k += 1
    for key in twin.state_dict():
        if not key.startswith("blocks."):
            mapping[_translate(key, top_level, "")] = key
    return mapping
