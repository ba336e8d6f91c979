"""MobileNetV2 1.0 at 224x224, built from :class:`course.blocks.bottleneck.InvertedResidual`.

Also home of :func:`copy_timm_weights`, the documented name mapping from timm's
EfficientNet-family models (``mobilenetv2_*``, ``mobilenetv3_*``, ``semnasnet_*``) to the
course's MobileNets; ``mobilenetv3.py`` and ``mnasnet.py`` use it too.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import torch
from torch import nn

from course.blocks.bottleneck import ConvBNAct, InvertedResidual
from course.models.zoo import Paper, register_model

__all__ = ["MobileNetV2", "copy_timm_weights", "timm_name_mapping"]

# --- the name mapping from timm ----------------------------------------------------------------

#: Inside one of timm's blocks: timm's module -> the course's module. timm's blocks live in
#: ``blocks.<stage>.<index>``; the course's in one flat ``blocks.<k>`` (k counts timm's blocks
#: in order). Parameter and buffer names below a module (weight, bias, running_mean, ...)
#: are the same on both sides.
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


def timm_name_mapping(twin: nn.Module, top_level: Dict[str, str] = TIMM_TOP_LEVEL) -> Dict[str, str]:
    """``{timm state_dict key: course state_dict key}`` for every tensor of ``twin``.

    ``blocks.<s>.<j>.<timm part>.<leaf>`` -> ``blocks.<k>.<course part>.<leaf>`` by
    :data:`TIMM_BLOCK_PARTS` (``k`` = position of the block in timm's order); every other key
    by ``top_level``. Raises ``ValueError`` for a tensor the mapping does not know.
    """
    mapping: Dict[str, str] = {}
    k = 0
    for s, stage in enumerate(twin.blocks):
        for j, block in enumerate(stage):
            parts = TIMM_BLOCK_PARTS.get(type(block).__name__)
            if parts is None:
                raise ValueError(f"no mapping for timm block type {type(block).__name__}")
            for key in block.state_dict():
                mapping[f"blocks.{s}.{j}.{key}"] = f"blocks.{k}." + _translate(key, parts, f"blocks.{s}.{j}.")
            k += 1
    for key in twin.state_dict():
        if not key.startswith("blocks."):
            mapping[key] = _translate(key, top_level, "")
    return mapping


def copy_timm_weights(model: nn.Module, twin: nn.Module, top_level: Dict[str, str] = TIMM_TOP_LEVEL) -> None:
    """Copy every parameter and buffer of the timm ``twin`` into the course ``model``, by
    :func:`timm_name_mapping`. Strict: every tensor of the course model must be covered once,
    with the same shape (else ``ValueError`` naming the tensor)."""
    mapping = timm_name_mapping(twin, top_level)
    source = twin.state_dict()
    target = model.state_dict()
    state = {}
    for timm_key, course_key in mapping.items():
        if course_key not in target:
            raise ValueError(f"timm {timm_key!r} maps to {course_key!r}, which the course model lacks")
        if target[course_key].shape != source[timm_key].shape:
            raise ValueError(
                f"shape mismatch: course {course_key} {tuple(target[course_key].shape)} "
                f"vs timm {timm_key} {tuple(source[timm_key].shape)}"
            )
        state[course_key] = source[timm_key]
    missing = sorted(set(target) - set(state))
    if missing:
        raise ValueError(f"course tensors with no timm source: {missing[:5]}")
    model.load_state_dict(state, strict=True)


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


class MobileNetV2(nn.Module):
    """MobileNetV2 1.0 (Sandler et al., CVPR 2018, Table 2), ReLU6 throughout.

    stem: 3x3 conv, 32, stride 2 -> 17 inverted residuals (Table 2's ``t, c, n, s``; 3x3
    depthwise; the first of each stage carries the stride) -> 1x1 conv 320 -> 1280 -> global
    average pool -> linear 1280 -> ``num_classes``. ``(B, 3, 224, 224) -> (B, num_classes)``.
    """

    def __init__(
        self,
        num_classes: int = 1000,
    ):
        super().__init__()
        self.stem = ConvBNAct(3, 32, 3, stride=2, act=nn.ReLU6)
        blocks, N = [], 32
        for t, c, n, s in MOBILENETV2_STAGES:
            for i in range(n):
                blocks.append(InvertedResidual(N, c, t * N, K=3, stride=s if i == 0 else 1, act=nn.ReLU6))
                N = c
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvBNAct(N, 1280, 1, act=nn.ReLU6)
        self.classifier = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, 3, 224, 224)
        x = self.stem(x)  # (B, 32, 112, 112)
        x = self.blocks(x)  # (B, 320, 7, 7)
        x = self.head(x)  # (B, 1280, 7, 7)
        x = x.mean((2, 3))  # (B, 1280)
        return self.classifier(x)  # (B, num_classes)


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
    ),
    family="MobileNet",
    chapter=4,
    twin_weights=copy_timm_weights,
)
def mobilenetv2_100(num_classes: int = 1000) -> MobileNetV2:
    """MobileNetV2 1.0 at 224. The course counter gives 300.8M MACs (paper: 300M MAdds) and
    3,504,872 parameters, exactly timm's ``mobilenetv2_100`` (and torchvision's
    ``mobilenet_v2``); the paper prints 3.4M without saying what it left out."""
    return MobileNetV2(num_classes)
