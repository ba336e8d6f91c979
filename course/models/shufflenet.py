"""ShuffleNet V1 and V2 at the papers' ImageNet configurations, built from ``course.blocks.shuffle``.

ShuffleNet V1 (Zhang et al., CVPR 2018, Table 1)::

    conv 3x3 s2 (stem) -> maxpool 3x3 s2 -> stage 2 (4 units) -> stage 3 (8) -> stage 4 (4)
    -> global average pool -> fc 1000

The first unit of each stage has stride 2; the first pointwise conv of stage 2 is dense (its
input has only 24 channels). Output channels of the stages at 1x (Table 1):
g=1: 144, 288, 576; g=2: 200, 400, 800; g=3: 240, 480, 960; g=4: 272, 544, 1088;
g=8: 384, 768, 1536. "ShuffleNet s x" multiplies them by s. The paper does not print the
stem width of the scaled networks nor how bottlenecks are rounded; we follow the authors'
released code (megvii-model/ShuffleNet-Series): stem 12 at 0.5x, 24 at 1x and 1.5x, 48 at 2x,
and the bottleneck (M/4) rounded up to a multiple of the groups. That reproduces the paper's
MFLOPs within 2% for every model registered here. There is no timm/torchvision twin.

ShuffleNet V2 (Ma et al., ECCV 2018, Table 5)::

    conv 3x3 s2 (24) -> maxpool -> stages 2, 3, 4 (4, 8, 4 units) -> conv 1x1 -> pool -> fc

with stage widths 0.5x: 48, 96, 192, 1024; 1x: 116, 232, 464, 1024; 1.5x: 176, 352, 704, 1024;
2x: 244, 488, 976, 2048. Twin: torchvision's ``shufflenet_v2_x0_5`` ... ``x2_0``.

Name mapping torchvision -> course (:func:`torchvision_to_course_name`; :func:`twin_mapping`
gives it the other way round), index for index inside each unit's ``nn.Sequential``::

    conv1.0.*, conv1.1.*    -> stem.conv.*, stem.bn.*
    stage{s}.{i}.branch1.*  -> stages.{s-2}.{i}.left.*
    stage{s}.{i}.branch2.*  -> stages.{s-2}.{i}.right.*
    conv5.0.*, conv5.1.*    -> head.conv.*, head.bn.*
    fc.*                    -> classifier.*
"""

from __future__ import annotations

import re
from typing import Dict, Sequence, Tuple

from torch import Tensor, nn

from course.blocks.conv import ConvBNAct
from course.blocks.shuffle import ShuffleV1Unit, ShuffleV2Unit
from course.models.zoo import Paper, register_model

__all__ = [
    "ShuffleNetV1",
    "ShuffleNetV2",
    "V1_CHANNELS",
    "V2_CHANNELS",
    "torchvision_to_course_name",
    "twin_mapping",
    "v1_stem_width",
]

REPEATS = (4, 8, 4)  # units in stages 2, 3, 4 (both papers)

#: ShuffleNet V1 at 1x: output channels of stages 2, 3, 4 by groups (Zhang et al., Table 1).
V1_CHANNELS: Dict[int, Tuple[int, int, int]] = {
    1: (144, 288, 576),
    2: (200, 400, 800),
    3: (240, 480, 960),
    4: (272, 544, 1088),
    8: (384, 768, 1536),
}

#: ShuffleNet V2: output channels of stages 2, 3, 4 and of conv5, by width (Ma et al., Table 5).
V2_CHANNELS: Dict[float, Tuple[int, int, int, int]] = {
    0.5: (48, 96, 192, 1024),
    1.0: (116, 232, 464, 1024),
    1.5: (176, 352, 704, 1024),
    2.0: (244, 488, 976, 2048),
}

_V1_STEM = {0.5: 12, 1.0: 24, 1.5: 24, 2.0: 48}  # authors' released code (see module docstring)


def v1_stem_width(scale: float) -> int:
    """Channels of ShuffleNet V1's first conv at ``scale`` (0.5, 1, 1.5 or 2)."""
    if scale not in _V1_STEM:
        raise ValueError(f"scale={scale!r} must be one of {sorted(_V1_STEM)}")
    return _V1_STEM[scale]


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


class ShuffleNetV1(nn.Module):
    """ShuffleNet V1 (Zhang et al., CVPR 2018, Table 1) with ``groups`` and width ``scale``.

    Args:
        groups: ``G`` of the pointwise group convolutions: 1, 2, 3, 4 or 8.
        scale: width multiplier ``s``: 0.5, 1, 1.5 or 2.
        num_classes: classifier outputs.

    Raises:
        ValueError: naming the parameter, for an unknown ``groups`` or ``scale``.
    """

    def __init__(
        self,
        groups: int = 3,
        scale: float = 1.0,
        num_classes: int = 1000,
    ):
        super().__init__()
        if groups not in V1_CHANNELS:
            raise ValueError(f"groups={groups!r} must be one of {sorted(V1_CHANNELS)} (the paper's Table 1)")
        stem = v1_stem_width(scale)
        self.stem = ConvBNAct(3, stem, 3, stride=2)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        stages, N = [], stem
        for index, (width, repeats) in enumerate(zip(V1_CHANNELS[groups], REPEATS)):
            M = int(width * scale)
            bottleneck = _round_up(M // 4, groups)
            units = []
            for i in range(repeats):
                first = i == 0
                units.append(
                    ShuffleV1Unit(N, M, groups, stride=2 if first else 1, bottleneck=bottleneck,
                                  group_first=not (index == 0 and first))
                )
                N = M
            stages.append(nn.Sequential(*units))
        self.stages = nn.Sequential(*stages)
        self.classifier = nn.Linear(N, num_classes)

    def forward(self, x: Tensor) -> Tensor:  # x: (B, 3, 224, 224)
        x = self.pool(self.stem(x))  # (B, stem, 56, 56)
        x = self.stages(x)  # (B, C4, 7, 7)
        x = x.mean((2, 3))  # global average pool: (B, C4)
        return self.classifier(x)  # (B, num_classes)


class ShuffleNetV2(nn.Module):
    """ShuffleNet V2 (Ma et al., ECCV 2018, Table 5) at width ``width`` (0.5, 1, 1.5 or 2).

    Raises:
        ValueError: naming ``width`` when it is not one of the paper's four.
    """

    def __init__(
        self,
        width: float = 1.0,
        num_classes: int = 1000,
    ):
        super().__init__()
        if width not in V2_CHANNELS:
            raise ValueError(f"width={width!r} must be one of {sorted(V2_CHANNELS)} (the paper's Table 5)")
        *stage_widths, head = V2_CHANNELS[width]
        self.stem = ConvBNAct(3, 24, 3, stride=2)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        stages, N = [], 24
        for M, repeats in zip(stage_widths, REPEATS):
            units = [ShuffleV2Unit(N, M, stride=2)] + [ShuffleV2Unit(M, M) for _ in range(repeats - 1)]
            stages.append(nn.Sequential(*units))
            N = M
        self.stages = nn.Sequential(*stages)
        self.head = ConvBNAct(N, head, 1)
        self.classifier = nn.Linear(head, num_classes)

    def forward(self, x: Tensor) -> Tensor:  # x: (B, 3, 224, 224)
        x = self.pool(self.stem(x))  # (B, 24, 56, 56)
        x = self.stages(x)  # (B, C4, 7, 7)
        x = self.head(x)  # (B, 1024 or 2048, 7, 7)
        x = x.mean((2, 3))  # global average pool
        return self.classifier(x)  # (B, num_classes)


# --- weights from the torchvision twin ----------------------------------------------------------

_RULES: Sequence[Tuple[str, str]] = (
    (r"^conv1\.0\.", "stem.conv."),
    (r"^conv1\.1\.", "stem.bn."),
    (r"^stage(\d)\.(\d+)\.branch1\.", "stages.{s}.{i}.left."),
    (r"^stage(\d)\.(\d+)\.branch2\.", "stages.{s}.{i}.right."),
    (r"^conv5\.0\.", "head.conv."),
    (r"^conv5\.1\.", "head.bn."),
    (r"^fc\.", "classifier."),
)


def torchvision_to_course_name(name: str) -> str:
    """The course name of torchvision ShuffleNetV2's tensor ``name`` (see the module docstring).

    >>> torchvision_to_course_name("stage3.0.branch1.2.weight")
    'stages.1.0.left.2.weight'

    Raises:
        ValueError: for a name no rule covers.
    """
    for pattern, replacement in _RULES:
        match = re.match(pattern, name)
        if match:
            groups = match.groups()
            prefix = replacement.format(s=int(groups[0]) - 2, i=groups[1]) if groups else replacement
            return prefix + name[match.end():]
    raise ValueError(f"no mapping for torchvision tensor name={name!r}")


def twin_mapping(model: nn.Module, twin: nn.Module) -> Dict[str, str]:
    """``{course name: torchvision name}`` for every tensor of the torchvision ShuffleNetV2
    ``twin`` (:func:`torchvision_to_course_name`, turned around)."""
    return {torchvision_to_course_name(key): key for key in twin.state_dict()}


# --- the zoo -------------------------------------------------------------------------------------

_V1_CITATION = (
    "X. Zhang, X. Zhou, M. Lin, J. Sun, 'ShuffleNet: An Extremely Efficient Convolutional Neural "
    "Network for Mobile Devices', CVPR 2018, {table}"
)
_V1_CONVENTION = "MFLOPs, counted as multiply-adds (the unit costs of Sec. 3.3, e.g. hw(2cm/g + 9m), are multiply-adds)"
_V2_CITATION = (
    "N. Ma, X. Zhang, H.-T. Zheng, J. Sun, 'ShuffleNet V2: Practical Guidelines for Efficient "
    "CNN Architecture Design', ECCV 2018, Table 5 (FLOPs, params) and Table 8 (top-1 error)"
)
_V2_CONVENTION = "MFLOPs, defined in the paper as the number of multiply-adds"

# (groups, scale) -> (MFLOPs, top-1 error %, table). The paper lists no parameter counts.
_V1_PAPER = {
    (1, 1.0): (143, 33.6, "Table 1 (complexity) and Table 2 (error)"),
    (2, 1.0): (140, 32.7, "Table 1 (complexity) and Table 2 (error)"),
    (3, 1.0): (137, 32.6, "Table 1 (complexity) and Table 2 (error)"),
    (4, 1.0): (133, 32.8, "Table 1 (complexity) and Table 2 (error)"),
    (8, 1.0): (137, 32.4, "Table 1 (complexity) and Table 2 (error)"),
    (1, 0.5): (38, 45.1, "Table 2"),
    (2, 0.5): (38, 44.4, "Table 2"),
    (3, 0.5): (38, 43.2, "Table 2"),
    (4, 0.5): (38, 41.6, "Table 2"),
    (3, 1.5): (292, 28.5, "Table 8"),
    (3, 2.0): (524, 26.3, "Table 8"),
}

# width -> (params M, MFLOPs, top-1 error %)
_V2_PAPER = {
    0.5: (1.4, 41, 39.7),
    1.0: (2.3, 146, 30.6),
    1.5: (3.5, 299, 27.4),
    2.0: (7.4, 591, 25.1),
}


def _scale_name(scale: float) -> str:
    return f"x{scale:.1f}".replace(".", "_")


def _register_v1(groups: int, scale: float) -> None:
    mflops, error, table = _V1_PAPER[(groups, scale)]
    paper = Paper(
        params_m=None,  # not published by the paper
        macs_g=mflops / 1000,
        top1=round(100 - error, 1),
        citation=_V1_CITATION.format(table=table),
        convention=_V1_CONVENTION,
        distilled=False,
    )

    def builder(**kwargs) -> nn.Module:
        return ShuffleNetV1(groups=groups, scale=scale, **kwargs)

    builder.__name__ = f"shufflenet_v1_g{groups}_{_scale_name(scale)}"
    builder.__doc__ = f"ShuffleNet V1 {scale}x, g={groups} (Zhang et al., CVPR 2018)."
    register_model(builder.__name__, twin=None, paper=paper, family="ShuffleNet", chapter=3)(builder)


def _register_v2(width: float) -> None:
    params_m, mflops, error = _V2_PAPER[width]
    paper = Paper(
        params_m=params_m,
        macs_g=mflops / 1000,
        top1=round(100 - error, 1),
        citation=_V2_CITATION,
        convention=_V2_CONVENTION,
        distilled=False,
    )

    def builder(**kwargs) -> nn.Module:
        return ShuffleNetV2(width=width, **kwargs)

    name = f"shufflenet_v2_{_scale_name(width)}"
    builder.__name__ = name
    builder.__doc__ = f"ShuffleNet V2 {width}x (Ma et al., ECCV 2018)."
    register_model(
        name, twin=f"torchvision:{name}", paper=paper, family="ShuffleNet", chapter=3,
        twin_mapping=twin_mapping,
    )(builder)


for _groups, _scale in _V1_PAPER:
    _register_v1(_groups, _scale)
for _width in _V2_PAPER:
    _register_v2(_width)
