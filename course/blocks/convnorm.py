"""``conv -> BatchNorm -> activation`` with every knob the post-2023 mobile networks turn, and its fold.

The fast architectures of 2023-2024 (EfficientFormerV2, MobileNetV4, RepViT, FastViT,
EfficientViT) are built from one unit: a ``K x K`` convolution (grouped or depthwise, with or
without a bias), an optional BatchNorm and an optional activation. :class:`ConvNorm` is that
unit. In eval mode the BatchNorm is an affine map per channel, so it folds into the convolution
(:func:`course.blocks.reparam.fold_bn`); :meth:`ConvNorm.fuse` does that in place, and
``deploy=True`` builds the folded form directly (a conv with a bias and no BatchNorm), the
form a re-parameterized model deploys.

Symbols: ``N`` input channels, ``M`` output channels, ``K`` kernel size, ``G`` groups.
"""

from __future__ import annotations

from typing import Optional, Tuple, Type

import torch
from torch import nn

from course.blocks.reparam import fold_bn, fuse_conv_bn

__all__ = ["ConvNorm", "check_conv"]


def check_conv(N: int, M: int, K: int, stride: int = 1, groups: int = 1) -> None:
    """Validate a convolution's configuration; ``ValueError`` names the offending parameter."""
    for name, value in (("N", N), ("M", M), ("K", K), ("stride", stride), ("groups", groups)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if K % 2 == 0:
        raise ValueError(f"K must be odd (same padding K // 2), got K={K}")
    if N % groups or M % groups:
        raise ValueError(f"groups={groups} must divide N={N} and M={M}")


class ConvNorm(nn.Module):
    """``act(BN(conv(x)))``: a ``K x K`` conv with padding ``K // 2``, BatchNorm, activation.

    Shapes: ``(B, N, H, W) -> (B, M, H', W')`` with ``H' = (H - 1) // stride + 1``.
    Params ``K²·(N/G)·M`` (+ ``M`` bias) + ``2M`` (BatchNorm); MACs ``H'·W'·K²·(N/G)·M``.

    Args:
        N, M, K, stride, groups: the convolution.
        act: an activation class (``nn.ReLU``, ``nn.GELU``, ...) or ``None``.
        bias: give the convolution a bias (EfficientFormerV2 does, before its BatchNorm).
        norm: follow the convolution by ``BatchNorm2d(M)``.
        deploy: build the folded form: one conv with a bias, no BatchNorm (what :meth:`fuse`
            turns the train-time form into).

    Children: ``conv``, ``bn`` (when ``norm`` and not ``deploy``), ``act`` (when ``act``).

    Raises:
        ValueError: naming the parameter (non-positive sizes, even ``K``, ``groups`` that does
            not divide ``N`` and ``M``).
    """

    def __init__(
        self,
        N: int,
        M: int,
        K: int = 1,
        stride: int = 1,
        groups: int = 1,
        act: Optional[Type[nn.Module]] = None,
        bias: bool = False,
        norm: bool = True,
        deploy: bool = False,
    ):
        super().__init__()
        check_conv(N, M, K, stride, groups)
        folded = deploy and norm
        self.conv = nn.Conv2d(N, M, K, stride, K // 2, groups=groups, bias=bias or folded)
        self.bn = nn.BatchNorm2d(M) if norm and not deploy else None
        self.act = act() if act is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, H, W)
        x = self.conv(x)  # (B, M, H', W')
        if self.bn is not None:
            x = self.bn(x)
        return self.act(x) if self.act is not None else x

    def folded(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(weight, bias)`` of the one conv equal to ``BN(conv(x))`` in eval mode.

        ``weight`` is ``(M, N/G, K, K)``, ``bias`` is ``(M,)`` (zeros when there is neither a
        BatchNorm nor a conv bias).
        """
        if self.bn is not None:
            return fold_bn(self.conv.weight, self.bn, self.conv.bias)
        bias = self.conv.bias if self.conv.bias is not None else torch.zeros_like(self.conv.weight[:, 0, 0, 0])
        return self.conv.weight, bias

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold the BatchNorm into the conv, in place (eval-mode equivalent; idempotent)."""
        if self.bn is not None:
            self.conv, self.bn = fuse_conv_bn(self.conv, self.bn), None
