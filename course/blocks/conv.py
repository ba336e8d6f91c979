"""Cheap convolutions: depthwise, pointwise, group and depthwise-separable conv; SqueezeNet's Fire.

Each block is a plain ``nn.Module`` (the single convolutions are ``nn.Conv2d`` with fixed
arguments, so every tool that knows ``nn.Conv2d`` knows them). Symbols: ``N`` input channels,
``M`` output channels, ``K`` kernel size, ``G`` groups. A bad configuration raises a
``ValueError`` that names the offending parameter.

Their closed-form costs are in :mod:`course.cost.separable`.

* **Group conv** (Krizhevsky et al., "ImageNet Classification with Deep Convolutional Neural
  Networks", NeurIPS 2012; Xie et al., "Aggregated Residual Transformations for Deep Neural
  Networks" (ResNeXt), CVPR 2017): the ``N`` inputs and ``M`` outputs are split into ``G``
  groups; each output sees only the ``N/G`` inputs of its group. Cost ``/ G``.
* **Depthwise conv**: a group conv with ``G = N = M``: one ``K x K`` filter per channel.
* **Pointwise conv**: a ``1 x 1`` conv: mixes channels, sees one pixel.
* **Depthwise-separable conv** (Sifre 2014; Chollet, "Xception", CVPR 2017; Howard et al.,
  "MobileNets", arXiv:1704.04861, 2017, Fig. 3): depthwise then pointwise, each followed by
  batch norm and an activation.
* **Fire module** (Iandola et al., "SqueezeNet", arXiv:1602.07360, 2016, Fig. 1): squeeze
  ``1 x 1`` to few channels, then expand with ``1 x 1`` and ``3 x 3`` convs side by side.
"""

from __future__ import annotations

from typing import Type

import torch
from torch import nn

__all__ = ["ConvBNAct", "DepthwiseConv", "DepthwiseSeparableConv", "Fire", "GroupConv", "PointwiseConv"]


def _require_positive(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _require_odd(kernel_size: int) -> None:
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd (for 'same' padding K // 2), got {kernel_size}")


def _require_groups(in_channels: int, out_channels: int, groups: int) -> None:
    if in_channels % groups:
        raise ValueError(f"groups={groups} must divide in_channels={in_channels}")
    if out_channels % groups:
        raise ValueError(f"groups={groups} must divide out_channels={out_channels}")


class GroupConv(nn.Conv2d):
    """``K x K`` group convolution: ``G`` independent convs, each ``N/G -> M/G`` channels.

    Shapes: ``(B, N, H, W) -> (B, M, H', W')`` with ``H' = (H - 1) // stride + 1`` ("same"
    padding ``K // 2``). Params ``K² (N/G) M``; MACs ``H' W' K² (N/G) M``: ``G`` times fewer
    than the dense conv. ``G = 1`` is the ordinary convolution.

    Papers: Krizhevsky et al., NeurIPS 2012 (two groups, one per GPU); Xie et al., ResNeXt,
    CVPR 2017 (groups as "cardinality").

    Raises:
        ValueError: naming the parameter: non-positive sizes, an even ``kernel_size``, or
            ``groups`` that does not divide ``in_channels`` or ``out_channels``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        groups: int = 1,
        stride: int = 1,
        bias: bool = False,
    ):
        _require_positive(in_channels=in_channels, out_channels=out_channels, kernel_size=kernel_size,
                          groups=groups, stride=stride)
        _require_odd(kernel_size)
        _require_groups(in_channels, out_channels, groups)
        super().__init__(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2,
                         groups=groups, bias=bias)


class DepthwiseConv(nn.Conv2d):
    """``K x K`` depthwise convolution: one filter per channel (``G = N = M``).

    Shapes: ``(B, N, H, W) -> (B, N, H', W')``, "same" padding ``K // 2``.
    Params ``K² N``; MACs ``H' W' K² N``. It never mixes channels: that is the pointwise
    conv's job.

    Raises:
        ValueError: naming the parameter (non-positive sizes, even ``kernel_size``).
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        bias: bool = False,
    ):
        _require_positive(channels=channels, kernel_size=kernel_size, stride=stride)
        _require_odd(kernel_size)
        super().__init__(channels, channels, kernel_size, stride, padding=kernel_size // 2,
                         groups=channels, bias=bias)


class PointwiseConv(nn.Conv2d):
    """``1 x 1`` (pointwise) convolution: a linear map of the channels at every pixel.

    Shapes: ``(B, N, H, W) -> (B, M, H, W)``. Params ``N M``; MACs ``H W N M``.

    Raises:
        ValueError: naming the parameter (non-positive channels).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        bias: bool = False,
    ):
        _require_positive(in_channels=in_channels, out_channels=out_channels)
        super().__init__(in_channels, out_channels, kernel_size=1, bias=bias)


class ConvBNAct(nn.Module):
    """``conv K x K -> BatchNorm -> activation``, the unit most CNNs are built from.

    Shapes: ``(B, N, H, W) -> (B, M, H', W')`` ("same" padding ``K // 2``, no conv bias: the
    batch norm's shift plays its role).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        activation: Type[nn.Module] = nn.ReLU,
    ):
        super().__init__()
        self.conv = GroupConv(in_channels, out_channels, kernel_size, groups=groups, stride=stride)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = activation(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, H, W)
        return self.act(self.bn(self.conv(x)))  # (B, M, H', W')


class DepthwiseSeparableConv(nn.Module):
    """MobileNet's unit: depthwise ``K x K`` -> BN -> act, then pointwise ``1 x 1`` -> BN -> act.

    Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision
    Applications", arXiv:1704.04861, 2017 (Fig. 3). It replaces one ``K x K`` conv ``N -> M``:

    * MACs ``H' W' N (K² + M)`` instead of ``H' W' K² N M``, a ratio ``1/M + 1/K²``
      (about 1/8 to 1/9 for ``K = 3``);
    * params ``K² N + N M`` (+ ``2N + 2M`` for the two batch norms' scale and shift).

    The stride, if any, is the depthwise conv's: the pointwise conv runs at ``H' x W'``.

    Shapes: ``(B, N, H, W) -> (B, M, H', W')``.

    Args:
        activation: ``nn.ReLU`` in the paper's text; ``nn.ReLU6`` in the authors' TF-slim
            release and in timm (see :mod:`course.models.mobilenetv1`).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        activation: Type[nn.Module] = nn.ReLU,
    ):
        super().__init__()
        self.conv_dw = DepthwiseConv(in_channels, kernel_size, stride)
        self.bn_dw = nn.BatchNorm2d(in_channels)
        self.act_dw = activation(inplace=True)
        self.conv_pw = PointwiseConv(in_channels, out_channels)
        self.bn_pw = nn.BatchNorm2d(out_channels)
        self.act_pw = activation(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, H, W)
        x = self.act_dw(self.bn_dw(self.conv_dw(x)))  # (B, N, H', W'): filter each channel
        return self.act_pw(self.bn_pw(self.conv_pw(x)))  # (B, M, H', W'): mix channels


class Fire(nn.Module):
    """SqueezeNet's Fire module: squeeze ``1 x 1`` -> ReLU, then expand ``1 x 1`` and ``3 x 3``
    side by side -> ReLU, concatenated.

    Iandola et al., "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and <0.5MB
    model size", arXiv:1602.07360, 2016 (Section 3.2, Fig. 1). With ``S`` squeeze channels
    and ``E1``, ``E3`` expand channels (the paper's ``s1x1``, ``e1x1``, ``e3x3``; it keeps
    ``S < E1 + E3`` so the ``3 x 3`` filters see few input channels):

    * params ``N S + S E1 + 9 S E3`` (+ ``S + E1 + E3`` biases);
    * MACs ``H W (N S + S E1 + 9 S E3)``.

    Shapes: ``(B, N, H, W) -> (B, E1 + E3, H, W)``. Convs have biases (SqueezeNet has no
    batch norm). Attribute names follow torchvision's ``Fire``.

    Raises:
        ValueError: naming the parameter (non-positive channels).
    """

    def __init__(
        self,
        in_channels: int,
        squeeze_channels: int,
        expand1x1_channels: int,
        expand3x3_channels: int,
    ):
        super().__init__()
        _require_positive(in_channels=in_channels, squeeze_channels=squeeze_channels,
                          expand1x1_channels=expand1x1_channels, expand3x3_channels=expand3x3_channels)
        self.squeeze = PointwiseConv(in_channels, squeeze_channels, bias=True)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = PointwiseConv(squeeze_channels, expand1x1_channels, bias=True)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = GroupConv(squeeze_channels, expand3x3_channels, kernel_size=3, bias=True)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, H, W)
        s = self.squeeze_activation(self.squeeze(x))  # (B, S, H, W)
        e1 = self.expand1x1_activation(self.expand1x1(s))  # (B, E1, H, W)
        e3 = self.expand3x3_activation(self.expand3x3(s))  # (B, E3, H, W)
        return torch.cat([e1, e3], dim=1)  # (B, E1 + E3, H, W)
