"""MobileNetV1, built from :class:`course.blocks.conv.DepthwiseSeparableConv`.

Howard, Zhu, Chen, Kalenichenko, Wang, Weyand, Andreetto, Adam, "MobileNets: Efficient
Convolutional Neural Networks for Mobile Vision Applications", arXiv:1704.04861, 2017.

The network (paper Table 1): a full ``3x3`` conv, stride 2, 32 channels; 13 depthwise-separable
blocks (the stride, when 2, is the depthwise conv's); global average pooling; one fully
connected layer to 1000 classes. Every conv is followed by batch norm and an activation.

Two knobs trade accuracy for cost (paper Section 3.3-3.4):

* **width multiplier** ``alpha``: every layer's channels ``C -> alpha C`` (rounded to a multiple
  of 8, as in timm; exact for the paper's 1, 0.75, 0.5, 0.25); MACs and params fall roughly
  as ``alpha²``;
* **resolution multiplier** ``rho``: the input is ``224 rho`` pixels square
  (:func:`input_resolution`; 224, 192, 160, 128); MACs fall as ``rho²``, params do not change.
  It is a property of the input, not of the model (global pooling accepts any size).

**Differences from the paper, and why.** The twin is timm's ``mobilenetv1_100``; the course
model matches it exactly (same parameters, same outputs after copying weights by :func:`twin_mapping`):

* activation: the paper's text says ReLU; the authors' TF-slim release
  (``tensorflow/models/research/slim/nets/mobilenet_v1.py``) and timm use **ReLU6**, so the
  default here is ``nn.ReLU6``; ``act=nn.ReLU`` gives the paper's text. Parameters
  and MACs are the same either way.
* paper Table 1 prints the second-to-last depthwise conv as "s2", but its input and output are
  both 7x7: it is stride 1 (as in the TF-slim release and timm).

**Twin name mapping** (:func:`twin_mapping`): ``stem.conv`` -> ``conv_stem``, ``stem.bn`` ->
``bn1``; block ``blocks.i`` (``i = 0..12``) -> ``blocks.s.j`` (timm groups the 13 blocks in
stages of 1, 2, 2, 6, 2, a new stage at each stride-2 block), with ``conv_dw`` -> ``conv_dw``,
``bn_dw`` -> ``bn1``, ``conv_pw`` -> ``conv_pw``, ``bn_pw`` -> ``bn2``; ``classifier`` ->
``classifier``.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple, Type

import torch
from torch import nn

from course.blocks.conv import ConvBNAct, DepthwiseSeparableConv
from course.models.zoo import Paper, register_model

__all__ = [
    "LAYERS", "PAPER_TABLE6", "PAPER_TABLE7", "MobileNetV1", "input_resolution",
    "mobilenetv1_025", "mobilenetv1_050", "mobilenetv1_075", "mobilenetv1_100", "twin_mapping", "width",
]

#: Paper Table 1 after the stem: (stride of the depthwise conv, output channels), 13 blocks.
LAYERS: List[Tuple[int, int]] = [
    (1, 64),
    (2, 128), (1, 128),
    (2, 256), (1, 256),
    (2, 512), (1, 512), (1, 512), (1, 512), (1, 512), (1, 512),
    (2, 1024), (1, 1024),  # the paper's table prints "s2" for the last one: a typo (7x7 -> 7x7)
]
STEM_CHANNELS = 32


def width(channels: int, alpha: float, divisor: int = 8) -> int:
    """``alpha * channels`` rounded to the nearest multiple of ``divisor`` (timm's
    ``make_divisible``: at least ``divisor``, and never more than 10% below ``alpha * channels``).

    >>> width(1024, 0.75), width(32, 0.25)
    (768, 8)
    """
    value = channels * alpha
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def input_resolution(rho: float, base: int = 224) -> int:
    """The input size for resolution multiplier ``rho``: ``round(224 rho)`` (1 -> 224, 4/7 -> 128)."""
    if not 0 < rho <= 1:
        raise ValueError(f"rho must be in (0, 1], got {rho!r}")
    return round(base * rho)


class MobileNetV1(nn.Module):
    """MobileNetV1 (Howard et al. 2017, Table 1) with width multiplier ``alpha``.

    Shapes: ``(B, 3, H, W) -> (B, num_classes)``; features ``(B, 1024 alpha, H/32, W/32)``.

    Args:
        alpha: width multiplier in (0, 1] (the paper uses 1, 0.75, 0.5, 0.25); larger values
            are allowed (timm has ``mobilenetv1_125``).
        num_classes: 1000 for ImageNet.
        act: ``nn.ReLU6`` (TF-slim release, timm) or ``nn.ReLU`` (paper's text).

    Raises:
        ValueError: for ``alpha <= 0`` or ``num_classes < 1``.
    """

    def __init__(
        self,
        alpha: float = 1.0,
        num_classes: int = 1000,
        act: Type[nn.Module] = nn.ReLU6,
    ):
        super().__init__()
        if not alpha > 0:
            raise ValueError(f"alpha must be positive, got {alpha!r}")
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        self.alpha = alpha
        channels = width(STEM_CHANNELS, alpha)
        self.stem = ConvBNAct(3, channels, 3, stride=2, act=act)
        blocks = []
        for stride, out_channels in LAYERS:
            out_channels = width(out_channels, alpha)
            blocks.append(DepthwiseSeparableConv(channels, out_channels, 3, stride, act=act))
            channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)
        self.num_features = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W)
        x = self.stem(x)  # (B, 32 alpha, H/2, W/2)
        x = self.blocks(x)  # (B, 1024 alpha, H/32, W/32)
        x = torch.flatten(self.pool(x), 1)  # (B, 1024 alpha)
        return self.classifier(x)  # (B, num_classes)


_PARTS = {"conv_dw": "conv_dw", "bn_dw": "bn1", "conv_pw": "conv_pw", "bn_pw": "bn2"}


def _timm_block_names() -> List[str]:
    """``blocks.s.j`` of timm for each of the 13 blocks: a new stage at every stride-2 block."""
    names, stage, j = [], 0, 0
    for i, (stride, _) in enumerate(LAYERS):
        if i > 0 and stride == 2:
            stage, j = stage + 1, 0
        names.append(f"blocks.{stage}.{j}")
        j += 1
    return names


def twin_mapping(model: MobileNetV1, twin: Optional[nn.Module] = None) -> Dict[str, str]:
    """``{course state-dict name: timm state-dict name}`` for every tensor of ``model``
    (the rules are in this module's docstring; they need no look at the ``twin``)."""
    timm_blocks = _timm_block_names()
    mapping = {}
    for key in model.state_dict():
        parts = key.split(".")
        if parts[0] == "stem":
            theirs = {"conv": "conv_stem", "bn": "bn1"}[parts[1]] + "." + ".".join(parts[2:])
        elif parts[0] == "blocks":
            theirs = f"{timm_blocks[int(parts[1])]}.{_PARTS[parts[2]]}." + ".".join(parts[3:])
        else:  # classifier.weight, classifier.bias
            theirs = key
        mapping[key] = theirs
    return mapping


_CITATION = (
    "A. G. Howard, M. Zhu, B. Chen, D. Kalenichenko, W. Wang, T. Weyand, M. Andreetto, H. Adam, "
    "'MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications', "
    "arXiv:1704.04861, 2017"
)
_CONVENTION = "Million Mult-Adds (= MACs)"

#: Paper Table 6 (width multiplier, input 224): alpha -> (top-1 %, million Mult-Adds, million params).
PAPER_TABLE6: Dict[float, Tuple[float, float, float]] = {
    1.0: (70.6, 569, 4.2),
    0.75: (68.4, 325, 2.6),
    0.5: (63.7, 149, 1.3),
    0.25: (50.6, 41, 0.5),
}
#: Paper Table 7 (resolution multiplier, alpha = 1): input size -> (top-1 %, million Mult-Adds, million params).
PAPER_TABLE7: Dict[int, Tuple[float, float, float]] = {
    224: (70.6, 569, 4.2),
    192: (69.1, 418, 4.2),
    160: (67.2, 290, 4.2),
    128: (64.4, 186, 4.2),
}


def _paper(alpha: float) -> Paper:
    top1, macs_m, params_m = PAPER_TABLE6[alpha]
    return Paper(
        params_m=params_m,
        macs_g=macs_m / 1000,
        top1=top1,
        citation=f"{_CITATION} (Table 6, '{alpha} MobileNet-224'; Table 8 for 1.0)",
        input_size=224,
        convention=_CONVENTION,
        distilled=False,
    )


@register_model("mobilenetv1_100", twin="timm:mobilenetv1_100", paper=_paper(1.0), family="MobileNet",
                chapter=2, twin_mapping=twin_mapping)
def mobilenetv1_100(num_classes: int = 1000, act: Type[nn.Module] = nn.ReLU6) -> MobileNetV1:
    """MobileNetV1, alpha = 1 (paper: 4.2 M params, 569 M MACs, 70.6% top-1)."""
    return MobileNetV1(alpha=1.0, num_classes=num_classes, act=act)


@register_model("mobilenetv1_075", paper=_paper(0.75), family="MobileNet", chapter=2)
def mobilenetv1_075(num_classes: int = 1000, act: Type[nn.Module] = nn.ReLU6) -> MobileNetV1:
    """MobileNetV1, alpha = 0.75 (paper: 2.6 M params, 325 M MACs, 68.4% top-1)."""
    return MobileNetV1(alpha=0.75, num_classes=num_classes, act=act)


@register_model("mobilenetv1_050", paper=_paper(0.5), family="MobileNet", chapter=2)
def mobilenetv1_050(num_classes: int = 1000, act: Type[nn.Module] = nn.ReLU6) -> MobileNetV1:
    """MobileNetV1, alpha = 0.5 (paper: 1.3 M params, 149 M MACs, 63.7% top-1)."""
    return MobileNetV1(alpha=0.5, num_classes=num_classes, act=act)


@register_model("mobilenetv1_025", paper=_paper(0.25), family="MobileNet", chapter=2)
def mobilenetv1_025(num_classes: int = 1000, act: Type[nn.Module] = nn.ReLU6) -> MobileNetV1:
    """MobileNetV1, alpha = 0.25 (paper: 0.5 M params, 41 M MACs, 50.6% top-1)."""
    return MobileNetV1(alpha=0.25, num_classes=num_classes, act=act)
