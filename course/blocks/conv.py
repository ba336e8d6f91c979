"""Cheap convolutions: depthwise, pointwise, group and depthwise-separable conv; SqueezeNet's Fire.

Each block is a plain ``nn.Module`` (the single convolutions are ``nn.Conv2d`` with fixed
arguments, so every tool that knows ``nn.Conv2d`` knows them). Symbols: ``N`` input channels,
``M`` output channels, ``K`` kernel size, ``G`` groups (``groups`` in code). A bad
configuration raises a ``ValueError`` that names the offending parameter
(:mod:`course.checks`).

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
* **Conv-BN** and **conv-BN-activation** (:class:`ConvBN`, :class:`ConvBNAct`): the units
  the other chapters' blocks are built from.
* **Fire module** (Iandola et al., "SqueezeNet", arXiv:1602.07360, 2016, Fig. 1): squeeze
  ``1 x 1`` to few channels, then expand with ``1 x 1`` and ``3 x 3`` convs side by side.
"""

from __future__ import annotations

from typing import Optional, Type

import torch
from torch import nn

from course.checks import check_conv, require_odd, require_positive

__all__ = [
    "ConvBN", "ConvBNAct", "DepthwiseConv", "DepthwiseSeparableConv", "Fire", "GroupConv", "PointwiseConv",
]


class GroupConv(nn.Conv2d):
    """``K x K`` group convolution: ``G`` independent convs, each ``N/G -> M/G`` channels.

    Shapes: ``(B, N, H, W) -> (B, M, H', W')`` with ``H' = (H - 1) // stride + 1`` ("same"
    padding ``K // 2``). Params ``K² (N/G) M``; MACs ``H' W' K² (N/G) M``: ``G`` times fewer
    than the dense conv. ``groups = 1`` is the ordinary convolution.

    Papers: Krizhevsky et al., NeurIPS 2012 (two groups, one per GPU); Xie et al., ResNeXt,
    CVPR 2017 (groups as "cardinality").

    Raises:
        ValueError: naming the parameter: non-positive sizes, an even ``K``, or ``groups``
            that does not divide ``N`` or ``M``.
    """

    def __init__(
        self,
        N: int,
        M: int,
        K: int = 3,
        stride: int = 1,
        groups: int = 1,
        bias: bool = False,
    ):
        check_conv(N, M, K, stride, groups)
        super().__init__(N, M, K, stride, padding=K // 2, groups=groups, bias=bias)


class DepthwiseConv(nn.Conv2d):
    """``K x K`` depthwise convolution: one filter per channel (``G = N = M``).

    Shapes: ``(B, N, H, W) -> (B, N, H', W')``, "same" padding ``K // 2``.
    Params ``K² N``; MACs ``H' W' K² N``. It never mixes channels: that is the pointwise
    conv's job.

    Raises:
        ValueError: naming the parameter (non-positive sizes, even ``K``).
    """

    def __init__(
        self,
        N: int,
        K: int = 3,
        stride: int = 1,
        bias: bool = False,
    ):
        require_positive(N=N, stride=stride)
        require_odd(K=K)
        super().__init__(N, N, K, stride, padding=K // 2, groups=N, bias=bias)


class PointwiseConv(nn.Conv2d):
    """``1 x 1`` (pointwise) convolution: a linear map of the channels at every pixel.

    Shapes: ``(B, N, H, W) -> (B, M, H, W)``. Params ``N M``; MACs ``H W N M``.

    Raises:
        ValueError: naming the parameter (non-positive channels).
    """

    def __init__(
        self,
        N: int,
        M: int,
        bias: bool = False,
    ):
        require_positive(N=N, M=M)
        super().__init__(N, M, kernel_size=1, bias=bias)


class ConvBN(nn.Sequential):
    """``Conv2d(N, M, K, stride, padding=K//2, groups, bias=False)`` -> ``BatchNorm2d(M)``.

    A *linear* unit (no activation): the projection of an inverted residual, a branch of a
    re-parameterizable block, the depthwise conv of a ShuffleNet unit. No conv bias: the batch
    norm's shift plays its role. Shapes: ``(B, N, H, W) -> (B, M, H', W')``. Children: ``conv``,
    ``bn``. In eval mode it is one conv with a bias (:func:`course.blocks.reparam.fuse_conv_bn`).

    Args:
        bias: give the conv a bias anyway. It adds nothing a network could not do without (the
            batch norm's shift absorbs it) but some released networks have one
            (EfficientFormerV2), and a twin's weights need a place to go.

    Raises:
        ValueError: naming the parameter (non-positive sizes, even ``K``, ``groups`` that does
            not divide ``N`` or ``M``).
    """

    def __init__(
        self,
        N: int,
        M: int,
        K: int,
        stride: int = 1,
        groups: int = 1,
        bias: bool = False,
    ):
        super().__init__()
        check_conv(N, M, K, stride, groups)
        self.conv = nn.Conv2d(N, M, K, stride, padding=K // 2, groups=groups, bias=bias)
        self.bn = nn.BatchNorm2d(M)


class ConvBNAct(ConvBN):
    """``conv K x K -> BatchNorm -> activation``, the unit most CNNs are built from.

    :class:`ConvBN` followed by ``act()`` (a class such as ``nn.ReLU``, ``nn.ReLU6``,
    ``nn.Hardswish``); ``act=None`` leaves the activation out (then it is a :class:`ConvBN`).
    Shapes: ``(B, N, H, W) -> (B, M, H', W')``. Children: ``conv``, ``bn`` and, with an
    activation, ``act``.
    """

    def __init__(
        self,
        N: int,
        M: int,
        K: int,
        stride: int = 1,
        groups: int = 1,
        act: Optional[Type[nn.Module]] = nn.ReLU,
        bias: bool = False,
    ):
        super().__init__(N, M, K, stride, groups, bias)
        if act is not None:
            self.act = act()


class DepthwiseSeparableConv(nn.Module):
    """MobileNet's unit: depthwise ``K x K`` -> BN -> act, then pointwise ``1 x 1`` -> BN -> act.

    Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision
    Applications", arXiv:1704.04861, 2017 (Fig. 3). It replaces one ``K x K`` conv ``N -> M``:

    * MACs ``H' W' N (K² + M)`` instead of ``H' W' K² N M``, a ratio ``1/M + 1/K²``
      (about 1/8 to 1/9 for ``K = 3``);
    * params ``K² N + N M`` (+ ``2N + 2M`` for the two batch norms' scale and shift).

    The stride, if any, is the depthwise conv's: the pointwise conv runs at ``H' x W'``.

    Shapes: ``(B, N, H, W) -> (B, M, H', W')``. Children as timm's MobileNetV1 block:
    ``conv_dw``, ``bn_dw``, ``act_dw``, ``conv_pw``, ``bn_pw``, ``act_pw``.

    Args:
        act: ``nn.ReLU`` in the paper's text; ``nn.ReLU6`` in the authors' TF-slim release and
            in timm (see :mod:`course.models.mobilenetv1`); built in place, as timm does.
        pointwise_act: ``False`` leaves the pointwise conv linear (``act_pw`` an ``nn.Identity``),
            as EfficientViT's stem does (:mod:`course.models.efficientvit`).
    """

    def __init__(
        self,
        N: int,
        M: int,
        K: int = 3,
        stride: int = 1,
        act: Type[nn.Module] = nn.ReLU,
        pointwise_act: bool = True,
    ):
        super().__init__()
        self.conv_dw = DepthwiseConv(N, K, stride)
        self.bn_dw = nn.BatchNorm2d(N)
        self.act_dw = act(inplace=True)
        self.conv_pw = PointwiseConv(N, M)
        self.bn_pw = nn.BatchNorm2d(M)
        self.act_pw = act(inplace=True) if pointwise_act else nn.Identity()

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
        N: int,
        S: int,
        E1: int,
        E3: int,
    ):
        super().__init__()
        require_positive(N=N, S=S, E1=E1, E3=E3)
        self.squeeze = PointwiseConv(N, S, bias=True)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = PointwiseConv(S, E1, bias=True)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = GroupConv(S, E3, K=3, bias=True)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, H, W)
        s = self.squeeze_activation(self.squeeze(x))  # (B, S, H, W)
        e1 = self.expand1x1_activation(self.expand1x1(s))  # (B, E1, H, W)
        e3 = self.expand3x3_activation(self.expand3x3(s))  # (B, E3, H, W)
        return torch.cat([e1, e3], dim=1)  # (B, E1 + E3, H, W)
