"""Bottleneck blocks: ResNet's bottleneck, MobileNetV2's inverted residual, SE, MBConv, MobileNetV3.

Symbols: ``N`` input channels, ``M`` output channels, ``K`` depthwise kernel size, ``mid`` the
expanded (MobileNet) or reduced (ResNet) width inside the block, ``R`` the squeeze width of
squeeze-and-excitation. Every conv is followed by a BatchNorm; convs have no bias.

* :class:`ResNetBottleneck` -- He et al., "Deep Residual Learning for Image Recognition",
  CVPR 2016 (the torchvision "v1.5" form: the stride sits on the 3x3 conv).
* :class:`InvertedResidual` -- Sandler et al., "MobileNetV2: Inverted Residuals and Linear
  Bottlenecks", CVPR 2018; with an optional SE it is also the MnasNet / MobileNetV3 block.
* :class:`SqueezeExcite` -- Hu, Shen, Sun, "Squeeze-and-Excitation Networks", CVPR 2018.
* :class:`MBConv` -- Tan et al., "MnasNet: Platform-Aware Neural Architecture Search for
  Mobile", CVPR 2019 (inverted residual + SE sized from the block's input).
* :class:`MobileNetV3Block` -- Howard et al., "Searching for MobileNetV3", ICCV 2019
  (hard-swish or ReLU, hard-sigmoid SE sized from the expanded width).
"""

from __future__ import annotations

from typing import Type

import torch
from torch import nn

from course.blocks.conv import ConvBN, ConvBNAct
from course.checks import check_inverted_residual, make_divisible, mbconv_se_width, require_positive, require_stride

__all__ = [
    "InvertedResidual",
    "MBConv",
    "MobileNetV3Block",
    "ResNetBottleneck",
    "SqueezeExcite",
    "make_divisible",  # defined in course.checks: the closed-form costs round widths by it too
]

Activation = Type[nn.Module]  # a class such as nn.ReLU, nn.ReLU6, nn.Hardswish


class ResNetBottleneck(nn.Module):
    """ResNet's bottleneck: 1x1 reduce -> 3x3 -> 1x1 expand, plus the shortcut, then ReLU.

    ``(B, N, H, W) -> (B, expansion·mid, H/stride, W/stride)``. The 3x3 conv runs on the
    narrow width ``mid``, so it costs ``K²·mid²`` per pixel instead of ``K²·N²``. The shortcut
    is the identity when shapes match, else a strided 1x1 conv + BN ("projection").
    Its tensors are registered in torchvision's ``Bottleneck`` order (conv1, bn1, ... downsample).
    """

    def __init__(
        self,
        N: int,
        mid: int,
        stride: int = 1,
        expansion: int = 4,
    ):
        super().__init__()
        require_positive(N=N, mid=mid, expansion=expansion)
        require_stride(stride)
        M = mid * expansion
        self.conv1 = nn.Conv2d(N, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, M, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(M)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or N != M:
            self.downsample = nn.Sequential(nn.Conv2d(N, M, 1, stride, bias=False), nn.BatchNorm2d(M))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, N, H, W)
        out = self.relu(self.bn1(self.conv1(x)))  # (B, mid, H, W)
        out = self.relu(self.bn2(self.conv2(out)))  # (B, mid, H', W')
        out = self.bn3(self.conv3(out))  # (B, M, H', W')
        shortcut = x if self.downsample is None else self.downsample(x)  # (B, M, H', W')
        return self.relu(out + shortcut)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: re-weight each channel by a gate computed from the whole map.

    squeeze: global average ``(B, C, H, W) -> (B, C, 1, 1)``; excite: 1x1 conv ``C -> R``,
    activation, 1x1 conv ``R -> C``, gate (sigmoid; hard-sigmoid in MobileNetV3); scale: the
    input times the gate. Cost: ``2·C·R`` MACs per image, ``2·C·R + R + C`` parameters.
    """

    def __init__(
        self,
        C: int,
        R: int,
        act: Activation = nn.ReLU,
        gate: Activation = nn.Sigmoid,
    ):
        super().__init__()
        require_positive(C=C, R=R)
        self.reduce = nn.Conv2d(C, R, 1)
        self.act = act()
        self.expand = nn.Conv2d(R, C, 1)
        self.gate = gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C, H, W)
        s = x.mean((2, 3), keepdim=True)  # (B, C, 1, 1)
        s = self.gate(self.expand(self.act(self.reduce(s))))  # (B, C, 1, 1), in [0, 1]
        return x * s  # (B, C, H, W)


class InvertedResidual(nn.Module):
    """MobileNetV2's inverted residual with a linear bottleneck (optionally with SE).

    1x1 expand ``N -> mid`` (BN, act) -> KxK depthwise at ``stride`` (BN, act) -> [SE] ->
    1x1 project ``mid -> M`` (BN, **no activation**: the linear bottleneck) -> ``+ x`` when
    ``stride == 1`` and ``N == M``. With ``mid == N`` there is no expansion conv (MobileNetV2's
    first block, ``t = 1``). ``(B, N, H, W) -> (B, M, H/stride, W/stride)``.

    Children: ``expand`` (``nn.Identity`` when ``mid == N``), ``depthwise``, ``se``
    (``nn.Identity`` when ``R == 0``), ``project``: :class:`~course.blocks.conv.ConvBNAct`
    modules, a :class:`SqueezeExcite` and a :class:`~course.blocks.conv.ConvBN`.
    """

    def __init__(
        self,
        N: int,
        M: int,
        mid: int,
        K: int = 3,
        stride: int = 1,
        act: Activation = nn.ReLU6,
        R: int = 0,
        se_gate: Activation = nn.Sigmoid,
    ):
        super().__init__()
        check_inverted_residual(N, M, mid, K, stride, R)
        self.has_skip = stride == 1 and N == M
        self.expand = ConvBNAct(N, mid, 1, act=act) if mid != N else nn.Identity()
        self.depthwise = ConvBNAct(mid, mid, K, stride, groups=mid, act=act)
        self.se = SqueezeExcite(mid, R, act=nn.ReLU, gate=se_gate) if R else nn.Identity()
        self.project = ConvBN(mid, M, 1)  # linear: no activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, N, H, W)
        out = self.expand(x)  # (B, mid, H, W)
        out = self.depthwise(out)  # (B, mid, H', W')
        out = self.se(out)  # (B, mid, H', W')
        out = self.project(out)  # (B, M, H', W'), linear
        return out + x if self.has_skip else out


class MBConv(InvertedResidual):
    """MnasNet's mobile inverted bottleneck: expansion ``t`` (``mid = t·N``), ReLU, and an
    optional SE of width ``R = int(se_ratio · N)`` (relative to the block's *input*), sigmoid gate.
    """

    def __init__(
        self,
        N: int,
        M: int,
        expansion: int = 6,
        K: int = 3,
        stride: int = 1,
        se_ratio: float = 0.0,
    ):
        R = mbconv_se_width(N, expansion, se_ratio)
        super().__init__(N, M, expansion * N, K, stride, act=nn.ReLU, R=R, se_gate=nn.Sigmoid)


class MobileNetV3Block(InvertedResidual):
    """MobileNetV3's bneck: expanded width ``mid`` ("exp size" in the paper's tables),
    activation ReLU or hard-swish, optional SE of width ``make_divisible(mid / 4)`` with a
    hard-sigmoid gate.

    ``hswish(x) = x · ReLU6(x + 3) / 6``, ``hsigmoid(x) = ReLU6(x + 3) / 6``: piecewise-linear
    stand-ins for swish and sigmoid that are cheap on mobile CPUs and exact in low precision.
    """

    def __init__(
        self,
        N: int,
        M: int,
        mid: int,
        K: int = 3,
        stride: int = 1,
        se: bool = False,
        act: Activation = nn.Hardswish,
    ):
        require_positive(mid=mid)
        R = make_divisible(mid / 4) if se else 0
        super().__init__(N, M, mid, K, stride, act=act, R=R, se_gate=nn.Hardsigmoid)

