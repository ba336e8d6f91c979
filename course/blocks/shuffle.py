"""Channel shuffle and the ShuffleNet units.

* ShuffleNet V1: X. Zhang, X. Zhou, M. Lin, J. Sun, "ShuffleNet: An Extremely Efficient
  Convolutional Neural Network for Mobile Devices", CVPR 2018 (Fig. 2).
* ShuffleNet V2: N. Ma, X. Zhang, H.-T. Zheng, J. Sun, "ShuffleNet V2: Practical Guidelines
  for Efficient CNN Architecture Design", ECCV 2018 (Fig. 3 c, d).

Symbols: ``N`` input channels, ``M`` output channels, ``G`` groups. Every convolution here has
no bias (a BatchNorm follows it).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from course.blocks.conv import ConvBN, ConvBNAct
from course.checks import check_shuffle_v1_unit, check_shuffle_v2_unit, require_divides, require_positive

__all__ = ["ChannelShuffle", "ShuffleV1Unit", "ShuffleV2Unit", "channel_shuffle"]


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """Interleave the channels of ``groups`` groups: reshape, transpose, reshape.

    ``(B, C, H, W) -> (B, G, C/G, H, W) -> transpose(1, 2) -> (B, C/G, G, H, W) -> (B, C, H, W)``

    Input channel ``g * (C/G) + k`` (channel ``k`` of group ``g``) lands at position
    ``k * G + g``: after the shuffle, every consecutive run of ``G`` channels holds one channel
    from each group, so each group of the next group convolution sees all the groups.

    Raises:
        ValueError: when ``groups`` is not a positive integer dividing the channels.
    """
    B, C, H, W = x.shape
    require_divides("groups", groups, channels=C)
    x = x.view(B, groups, C // groups, H, W)  # (B, G, C/G, H, W)
    x = x.transpose(1, 2).contiguous()  # (B, C/G, G, H, W), copied into the new order
    return x.view(B, C, H, W)  # (B, C, H, W)


class ChannelShuffle(nn.Module):
    """:func:`channel_shuffle` as a module (so the cost counter shows it as a row)."""

    def __init__(self, groups: int):
        super().__init__()
        require_positive(groups=groups)
        self.groups = groups

    def forward(self, x: Tensor) -> Tensor:
        return channel_shuffle(x, self.groups)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


class ShuffleV1Unit(nn.Module):
    """ShuffleNet V1 unit (Zhang et al., CVPR 2018, Fig. 2 b, c).

    ``1x1 group conv (N -> bottleneck, G groups) + BN + ReLU -> channel shuffle ->
    3x3 depthwise conv (stride) + BN -> 1x1 group conv (bottleneck -> M') + BN``, then

    * stride 1: ``ReLU(x + branch)`` with ``M' = M = N``;
    * stride 2: ``ReLU(concat(avgpool3x3_s2(x), branch))`` with ``M' = M - N``.

    Args:
        N: input channels.
        M: output channels.
        groups: ``G``, groups of the two pointwise convolutions.
        stride: 1 or 2.
        bottleneck: channels of the depthwise conv; default ``M // 4`` (the paper's ratio).
        group_first: ``False`` for the very first unit of the network, whose input (24
            channels) is too thin to split: its first pointwise conv is dense and needs no
            shuffle after it.

    Raises:
        ValueError: naming the parameter, for a stride other than 1 or 2, ``N != M`` at
            stride 1, ``M <= N`` at stride 2, or channels that ``groups`` does not divide.
    """

    def __init__(
        self,
        N: int,
        M: int,
        groups: int,
        stride: int = 1,
        bottleneck: Optional[int] = None,
        group_first: bool = True,
    ):
        super().__init__()
        bottleneck, branch_out, first_groups = check_shuffle_v1_unit(N, M, groups, stride, bottleneck, group_first)
        self.stride = stride
        self.reduce = ConvBNAct(N, bottleneck, 1, groups=first_groups, act=nn.ReLU)
        self.shuffle = ChannelShuffle(groups) if first_groups > 1 else nn.Identity()
        self.depthwise = ConvBN(bottleneck, bottleneck, 3, stride, groups=bottleneck)
        self.expand = ConvBN(bottleneck, branch_out, 1, groups=groups)
        self.shortcut = nn.AvgPool2d(3, stride=2, padding=1) if stride == 2 else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:  # x: (B, N, H, W)
        y = self.shuffle(self.reduce(x))  # (B, bottleneck, H, W), groups interleaved
        y = self.expand(self.depthwise(y))  # (B, M or M - N, H', W')
        if self.stride == 1:
            return self.relu(x + y)  # (B, M, H, W)
        return self.relu(torch.cat([self.shortcut(x), y], dim=1))  # (B, N + M - N, H/2, W/2)


class ShuffleV2Unit(nn.Module):
    """ShuffleNet V2 unit (Ma et al., ECCV 2018, Fig. 3 c, d).

    * stride 1 (channel split): the input's ``N`` channels split in two halves; the left half
      passes unchanged, the right one goes through ``1x1 conv + BN + ReLU -> 3x3 depthwise +
      BN -> 1x1 conv + BN + ReLU`` (all ``N/2`` wide); concat, then shuffle with 2 groups.
    * stride 2 (no split): both branches see the whole input. Left: ``3x3 depthwise (s2) + BN
      -> 1x1 conv (N -> M/2) + BN + ReLU``; right: ``1x1 conv (N -> M/2) + BN + ReLU -> 3x3
      depthwise (s2) + BN -> 1x1 conv + BN + ReLU``; concat (``M`` channels), shuffle.

    Every 1x1 conv keeps its input and output widths equal inside a branch (guideline G1) and
    is dense (G2); the block has two branches (G3); the shortcut is a concatenation, not an
    addition, and "concat + shuffle + split" of consecutive units fuse into one element-wise
    operation (G4).

    Args:
        N: input channels.
        M: output channels (even: two halves).
        stride: 1 or 2.

    Raises:
        ValueError: naming the parameter, for a stride other than 1 or 2, an odd ``M`` (or
            odd ``N`` for the split), or ``N != M`` at stride 1.
    """

    def __init__(
        self,
        N: int,
        M: int,
        stride: int = 1,
    ):
        super().__init__()
        check_shuffle_v2_unit(N, M, stride)
        half = M // 2
        self.stride = stride
        if stride == 1:
            self.left = nn.Identity()  # the left half is passed through untouched
        else:
            self.left = nn.Sequential(
                nn.Conv2d(N, N, 3, stride, 1, groups=N, bias=False),
                nn.BatchNorm2d(N),
                nn.Conv2d(N, half, 1, bias=False),
                nn.BatchNorm2d(half),
                nn.ReLU(inplace=True),
            )
        right_in = half if stride == 1 else N
        self.right = nn.Sequential(
            nn.Conv2d(right_in, half, 1, bias=False),
            nn.BatchNorm2d(half),
            nn.ReLU(inplace=True),
            nn.Conv2d(half, half, 3, stride, 1, groups=half, bias=False),
            nn.BatchNorm2d(half),
            nn.Conv2d(half, half, 1, bias=False),
            nn.BatchNorm2d(half),
            nn.ReLU(inplace=True),
        )
        self.shuffle = ChannelShuffle(2)

    def forward(self, x: Tensor) -> Tensor:  # x: (B, N, H, W)
        if self.stride == 1:
            x_left, x_right = x.chunk(2, dim=1)  # channel split: two (B, N/2, H, W)
            out = torch.cat([x_left, self.right(x_right)], dim=1)  # (B, M, H, W)
        else:
            out = torch.cat([self.left(x), self.right(x)], dim=1)  # (B, M, H/2, W/2)
        return self.shuffle(out)
