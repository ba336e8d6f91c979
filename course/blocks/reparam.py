"""Structural re-parameterization: train a multi-branch block, deploy one convolution.

Everything rests on two facts, both exact in eval mode (BatchNorm uses its running statistics):

1. **BatchNorm after a convolution is an affine map per output channel**, so it folds into the
   convolution (:func:`fold_bn`)::

       BN(W * x) = gamma * (W * x - mu) / sqrt(var + eps) + beta
                 = (t · W) * x + (beta - t · mu),          t = gamma / sqrt(var + eps)

2. **Convolution is linear in its kernel**: ``W1 * x + W2 * x = (W1 + W2) * x`` when both
   kernels have the same shape, stride and alignment. A 1x1 kernel is a KxK kernel that is zero
   except at its centre (:func:`pad_kernel`); the identity is a KxK kernel with a 1 at the centre
   of channel ``i -> i`` (:func:`identity_kernel`).

So a block ``ReLU(BN(conv3x3 x) + BN(conv1x1 x) + BN(x))`` becomes ``ReLU(conv3x3' x + b')``.

* :class:`RepVGGBlock`: 3x3-BN + 1x1-BN + identity-BN (Ding et al., "RepVGG: Making VGG-style
  ConvNets Great Again", CVPR 2021).
* :class:`MobileOneUnit`: k over-parameterized KxK-BN branches + a 1x1-BN "scale" branch +
  identity-BN, and :class:`MobileOneBlock` = a depthwise 3x3 unit followed by a pointwise 1x1
  unit (Vasu et al., "MobileOne: An Improved One millisecond Mobile Backbone", CVPR 2023).
* :func:`reparameterize_model`: calls ``reparameterize()`` on every block of a model.

Each block's ``reparameterize()`` replaces its branches by one ``nn.Conv2d`` (with bias) named
``reparam``; ``deploy=True`` builds that deploy-time form directly.
"""

from __future__ import annotations

import copy
from typing import Optional, Tuple

import torch
from torch import nn

__all__ = [
    "ConvBN",
    "MobileOneBlock",
    "MobileOneUnit",
    "RepVGGBlock",
    "SqueezeExcite",
    "fold_bn",
    "fuse_conv_bn",
    "identity_kernel",
    "pad_kernel",
    "reparameterize_model",
]


# --- the three identities ---------------------------------------------------------------------


def fold_bn(kernel: torch.Tensor, bn: nn.BatchNorm2d, conv_bias: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Fold an eval-mode BatchNorm into the convolution kernel before it.

    With ``t = gamma / sqrt(running_var + eps)`` (one value per output channel ``m``)::

        W'[m] = t[m] · W[m]                      (M, N/G, K, K)
        b'[m] = beta[m] + t[m] · (b[m] - mu[m])  (M,)     with b = 0 when the conv has no bias

    Args:
        kernel: the conv weight, ``(M, N/G, K, K)``.
        bn: the ``BatchNorm2d(M)`` applied to the conv's output.
        conv_bias: the conv's bias ``(M,)``, or ``None``.

    Returns:
        ``(weight, bias)`` of the single equivalent convolution.
    """
    if kernel.shape[0] != bn.num_features:
        raise ValueError(f"kernel has {kernel.shape[0]} output channels but bn has num_features={bn.num_features}")
    t = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (M,)
    bias = conv_bias if conv_bias is not None else torch.zeros_like(bn.running_mean)
    return kernel * t.reshape(-1, 1, 1, 1), bn.bias + t * (bias - bn.running_mean)


def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new ``nn.Conv2d`` (with bias) equal to ``bn(conv(x))`` in eval mode (see :func:`fold_bn`)."""
    fused = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
        conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode,
        device=conv.weight.device, dtype=conv.weight.dtype,
    )
    with torch.no_grad():
        weight, bias = fold_bn(conv.weight, bn, conv.bias)
        fused.weight.copy_(weight)
        fused.bias.copy_(bias)
    return fused


def pad_kernel(kernel: torch.Tensor, K: int) -> torch.Tensor:
    """Zero-pad a ``(M, N/G, k, k)`` kernel to ``(M, N/G, K, K)``, keeping it centred.

    A 1x1 conv with padding 0 and a 3x3 conv with padding 1 read the same centre pixel, so the
    padded 1x1 kernel gives the same output as the 1x1 conv.
    """
    k = kernel.shape[-1]
    if K < k or (K - k) % 2:
        raise ValueError(f"K={K} must be at least the kernel size {k} and differ from it by an even number")
    p = (K - k) // 2
    return nn.functional.pad(kernel, [p, p, p, p])


def identity_kernel(channels: int, K: int, groups: int = 1, device=None, dtype=None) -> torch.Tensor:
    """The ``(C, C/G, K, K)`` kernel of a conv that returns its input (stride 1, padding K//2).

    Output channel ``i`` reads input channel ``i``, which is channel ``i % (C/G)`` inside its
    group, through a 1 at the kernel's centre.
    """
    if channels % groups:
        raise ValueError(f"groups={groups} must divide channels={channels}")
    per_group = channels // groups
    kernel = torch.zeros(channels, per_group, K, K, device=device, dtype=dtype)
    i = torch.arange(channels)
    kernel[i, i % per_group, K // 2, K // 2] = 1.0  # output channel i <- input channel i
    return kernel


# --- building blocks -------------------------------------------------------------------------


class ConvBN(nn.Module):
    """``BN(conv(x))``: a ``Conv2d(N, M, K, stride, padding=K//2, groups, bias=False)`` and a ``BatchNorm2d(M)``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
    ):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))  # (B, N, H, W) -> (B, M, H/stride, W/stride)

    def fused(self, K: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """The folded ``(weight, bias)``, the kernel zero-padded to ``K x K``."""
        weight, bias = fold_bn(self.conv.weight, self.bn)
        return pad_kernel(weight, K), bias


class SqueezeExcite(nn.Module):
    """Squeeze-and-Excitation (Hu et al., CVPR 2018) as MobileOne-S4 uses it (timm's ``SEModule``).

    ``x * sigmoid(fc2(ReLU(fc1(mean_hw(x)))))`` with 1x1 convs ``C -> C/16 -> C``.
    It runs after the branches are summed, so it survives re-parameterization unchanged.
    """

    def __init__(
        self,
        channels: int,
        reduced: int,
    ):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, reduced, 1)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)  # (B, C, 1, 1)
        s = self.fc2(self.act(self.fc1(s)))  # (B, C, 1, 1)
        return x * torch.sigmoid(s)  # (B, C, H, W)


def _new_reparam_conv(template: nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor) -> nn.Conv2d:
    conv = nn.Conv2d(
        template.in_channels, template.out_channels, template.kernel_size, template.stride,
        template.padding, groups=template.groups, bias=True,
        device=weight.device, dtype=weight.dtype,
    )
    with torch.no_grad():
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)
    return conv


class RepVGGBlock(nn.Module):
    """RepVGG block (Ding et al., CVPR 2021, Fig. 2 and 4).

    Train time: ``ReLU(BN(conv3x3 x) + BN(conv1x1 x) + BN(x))``; the identity branch exists
    only when ``N == M`` and ``stride == 1``. Deploy time: ``ReLU(conv3x3'(x) + b')``.

    Args:
        in_channels: N.
        out_channels: M.
        stride: 1 or 2 (applied by both conv branches).
        groups: G for both convs (RepVGG-A/B use 1).
        deploy: build the deploy-time form (one conv with bias) directly.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        groups: int = 1,
        deploy: bool = False,
    ):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}")
        self.in_channels, self.out_channels, self.stride, self.groups = in_channels, out_channels, stride, groups
        self.reparam: Optional[nn.Conv2d] = None
        self.identity = self.conv3x3 = self.conv1x1 = None
        if deploy:
            self.reparam = nn.Conv2d(in_channels, out_channels, 3, stride, 1, groups=groups, bias=True)
        else:
            has_identity = in_channels == out_channels and stride == 1
            self.identity = nn.BatchNorm2d(out_channels) if has_identity else None
            self.conv3x3 = ConvBN(in_channels, out_channels, 3, stride, groups)
            self.conv1x1 = ConvBN(in_channels, out_channels, 1, stride, groups)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reparam is not None:
            return self.act(self.reparam(x))  # (B, N, H, W) -> (B, M, H', W')
        out = self.conv1x1(x) + self.conv3x3(x)  # (B, M, H', W')
        if self.identity is not None:
            out += self.identity(x)
        return self.act(out)

    def equivalent_kernel(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """The ``(M, N/G, 3, 3)`` kernel and ``(M,)`` bias of the single deploy-time conv."""
        weight, bias = self.conv3x3.fused(3)
        w1, b1 = self.conv1x1.fused(3)
        weight, bias = weight + w1, bias + b1
        if self.identity is not None:
            eye = identity_kernel(self.out_channels, 3, self.groups, weight.device, weight.dtype)
            w_id, b_id = fold_bn(eye, self.identity)
            weight, bias = weight + w_id, bias + b_id
        return weight, bias

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Replace the three branches by one 3x3 conv with bias (in place; idempotent)."""
        if self.reparam is not None:
            return
        weight, bias = self.equivalent_kernel()
        self.reparam = _new_reparam_conv(self.conv3x3.conv, weight, bias)
        self.identity = self.conv3x3 = self.conv1x1 = None


class MobileOneUnit(nn.Module):
    """One re-parameterizable conv of MobileOne (Vasu et al., CVPR 2023, Fig. 3).

    Train time: ``act(se(sum_k BN(convKxK_k x) + BN(conv1x1 x) + BN(x)))`` with ``k`` =
    ``num_branches`` over-parameterized KxK branches, a 1x1 "scale" branch when ``K > 1``, and an
    identity branch when ``N == M`` and ``stride == 1``. Deploy time: ``act(se(convKxK'(x) + b'))``.

    Args:
        in_channels: N.
        out_channels: M.
        kernel_size: K (3 for the depthwise unit, 1 for the pointwise unit).
        stride: 1 or 2.
        groups: G (``N`` for depthwise, 1 for pointwise).
        num_branches: k, the number of KxK-BN branches (the paper's over-parameterization factor).
        se: add a Squeeze-and-Excitation (``C -> C/16 -> C``) after the sum (MobileOne-S4).
        deploy: build the deploy-time form (one conv with bias) directly.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
        num_branches: int = 1,
        se: bool = False,
        deploy: bool = False,
    ):
        super().__init__()
        if num_branches < 1:
            raise ValueError(f"num_branches={num_branches} must be at least 1")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.groups = kernel_size, stride, groups
        self.reparam: Optional[nn.Conv2d] = None
        self.identity = self.branches = self.scale = None
        if deploy:
            self.reparam = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups, bias=True)
        else:
            has_identity = in_channels == out_channels and stride == 1
            self.identity = nn.BatchNorm2d(out_channels) if has_identity else None
            self.branches = nn.ModuleList(
                ConvBN(in_channels, out_channels, kernel_size, stride, groups) for _ in range(num_branches)
            )
            self.scale = ConvBN(in_channels, out_channels, 1, stride, groups) if kernel_size > 1 else None
        self.se = SqueezeExcite(out_channels, out_channels // 16) if se else nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reparam is not None:
            return self.act(self.se(self.reparam(x)))  # (B, N, H, W) -> (B, M, H', W')
        out = self.scale(x) if self.scale is not None else 0
        for branch in self.branches:
            out = out + branch(x)  # (B, M, H', W')
        if self.identity is not None:
            out = out + self.identity(x)
        return self.act(self.se(out))

    def equivalent_kernel(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """The ``(M, N/G, K, K)`` kernel and ``(M,)`` bias of the single deploy-time conv."""
        K = self.kernel_size
        weight, bias = 0, 0
        for branch in self.branches:
            w, b = branch.fused(K)
            weight, bias = weight + w, bias + b
        if self.scale is not None:
            w, b = self.scale.fused(K)
            weight, bias = weight + w, bias + b
        if self.identity is not None:
            eye = identity_kernel(self.out_channels, K, self.groups, weight.device, weight.dtype)
            w, b = fold_bn(eye, self.identity)
            weight, bias = weight + w, bias + b
        return weight, bias

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Replace all branches by one KxK conv with bias (in place; idempotent)."""
        if self.reparam is not None:
            return
        weight, bias = self.equivalent_kernel()
        self.reparam = _new_reparam_conv(self.branches[0].conv, weight, bias)
        self.identity = self.branches = self.scale = None


class MobileOneBlock(nn.Module):
    """MobileOne block (Vasu et al., CVPR 2023, Fig. 3): a depthwise unit, then a pointwise unit.

    ``depthwise``: k branches of depthwise 3x3-BN (stride ``stride``), a depthwise 1x1-BN scale
    branch, identity-BN when it fits. ``pointwise``: k branches of 1x1-BN ``N -> M``, identity-BN
    when ``N == M``. Each unit ends with ReLU (and SE when ``se``); each re-parameterizes to one
    conv, so the deploy-time block is depthwise 3x3 + ReLU + 1x1 + ReLU, MobileNetV1's block.

    Args:
        in_channels: N.
        out_channels: M.
        stride: the depthwise unit's stride.
        num_branches: k.
        se: Squeeze-and-Excitation in both units (MobileOne-S4's last blocks).
        deploy: build the deploy-time form directly.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        num_branches: int = 1,
        se: bool = False,
        deploy: bool = False,
    ):
        super().__init__()
        self.depthwise = MobileOneUnit(in_channels, in_channels, 3, stride, in_channels, num_branches, se, deploy)
        self.pointwise = MobileOneUnit(in_channels, out_channels, 1, 1, 1, num_branches, se, deploy)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))  # (B, N, H, W) -> (B, N, H', W') -> (B, M, H', W')

    def reparameterize(self) -> None:
        """Re-parameterize both units (in place; idempotent)."""
        self.depthwise.reparameterize()
        self.pointwise.reparameterize()


def reparameterize_model(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Call ``reparameterize()`` on every module of ``model`` that has one (like timm's).

    The folding uses BatchNorm's running statistics, so the result equals the original model in
    **eval** mode. ``inplace=False`` (default) converts a deep copy and leaves ``model`` as it was.

    Returns:
        The deploy-time model (in eval mode).
    """
    if not inplace:
        model = copy.deepcopy(model)
    for module in list(model.modules()):
        if hasattr(module, "reparameterize") and module is not model:
            module.reparameterize()
    if hasattr(model, "reparameterize"):
        model.reparameterize()
    return model.eval()
