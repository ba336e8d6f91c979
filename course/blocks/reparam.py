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

Both blocks are a :class:`ReparamConv`, whose ``reparameterize()`` folds every branch
(:func:`fold_bn`, :func:`pad_kernel`, :func:`identity_kernel`) and builds one ``nn.Conv2d``
(with bias) named ``reparam`` the way :func:`fuse_conv_bn` builds its conv (:func:`conv_with`);
``deploy=True`` builds that deploy-time form directly.
"""

from __future__ import annotations

import copy
from typing import Callable, Dict, List, Optional, Tuple, Type

import torch
from torch import nn

from course.blocks.bottleneck import SqueezeExcite
from course.blocks.conv import ConvBN
from course.checks import check_conv, require_positive

__all__ = [
    "MobileOneBlock",
    "MobileOneUnit",
    "RepVGGBlock",
    "ReparamConv",
    "conv_with",
    "fold_bn",
    "fuse_conv_bn",
    "fuse_conv_bn_units",
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


def conv_with(template: nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor) -> nn.Conv2d:
    """A new ``nn.Conv2d`` with ``template``'s geometry (channels, kernel, stride, padding,
    dilation, groups) holding ``weight`` ``(M, N/G, K, K)`` and ``bias`` ``(M,)``."""
    conv = nn.Conv2d(
        template.in_channels, template.out_channels, template.kernel_size, template.stride, template.padding,
        template.dilation, template.groups, bias=True, padding_mode=template.padding_mode,
        device=weight.device, dtype=weight.dtype,
    )
    with torch.no_grad():
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)
    return conv


def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new ``nn.Conv2d`` (with bias) equal to ``bn(conv(x))`` in eval mode (see :func:`fold_bn`)."""
    with torch.no_grad():
        return conv_with(conv, *fold_bn(conv.weight, bn, conv.bias))


def fuse_conv_bn_units(module: nn.Module) -> None:
    """Replace, in place, every :class:`~course.blocks.conv.ConvBN` below ``module`` (that class
    exactly: a conv-BN pair without activation) by the one conv :func:`fuse_conv_bn` makes of
    it, equal in eval mode: the deploy form of a network built from conv-BN pairs (RepViT)."""
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is ConvBN:
                setattr(parent, name, fuse_conv_bn(child.conv, child.bn))


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


# --- the blocks ----------------------------------------------------------------------------------


class ReparamConv(nn.Module):
    """What every re-parameterizable conv shares: branches at train time, one conv at deploy time.

    Train time: ``act(se(sum of conv-BN branches + BN(x)))``, the identity-BN branch ``identity``
    only when ``N == M`` and ``stride == 1``; deploy time: ``act(se(conv(x) + b))``, one ``K x K``
    conv with bias named ``reparam``. A subclass names and builds its branches (its twin's names)
    and lists the conv-BN ones in :meth:`conv_branches`; this class sums them, folds them
    (:meth:`equivalent_kernel`) and swaps them for the one conv (:meth:`reparameterize`).

    Args:
        N, M, K, stride, groups: the geometry every branch shares (a 1x1 branch is padded to K).
        deploy: build ``reparam`` directly instead of the branches.
        branches: ``{name: module or None}`` of the train-time branches, built only when not
            ``deploy``; the names are what :meth:`reparameterize` drops (with ``identity``).
        act: the activation class after the sum (``nn.ReLU``, built in place as timm builds
            RepVGG's and MobileOne's; FastViT's units use ``nn.GELU``), or ``None`` for none.
        identity: add the identity-BN branch when ``N == M`` and ``stride == 1`` (RepLKNet's
            large-kernel conv has none).
    """

    def __init__(
        self,
        N: int,
        M: int,
        K: int,
        stride: int,
        groups: int,
        deploy: bool,
        branches: Callable[[], Dict[str, Optional[nn.Module]]],
        act: Optional[Type[nn.Module]] = nn.ReLU,
        identity: bool = True,
    ):
        super().__init__()
        check_conv(N, M, K, stride, groups)
        self.N, self.M, self.K, self.stride, self.groups = N, M, K, stride, groups
        self.reparam: Optional[nn.Conv2d] = None  # set by reparameterize(), or at once with deploy=True
        self.se: Optional[nn.Module] = None  # MobileOne-S4 adds a squeeze-and-excitation after the sum
        self.identity: Optional[nn.BatchNorm2d] = None
        if deploy:
            self.reparam = nn.Conv2d(N, M, K, stride, K // 2, groups=groups, bias=True)
            self.branch_names = ("identity",)
        else:
            self.identity = nn.BatchNorm2d(M) if identity and N == M and stride == 1 else None
            built = branches()
            for name, module in built.items():
                setattr(self, name, module)
            self.branch_names = ("identity", *built)
        if act is None:
            self.act = nn.Identity()
        else:
            self.act = nn.ReLU(inplace=True) if act is nn.ReLU else act()

    def conv_branches(self) -> List[ConvBN]:
        """The conv-BN branches, in the order they are summed (1x1 first, as timm), a ``K x K``
        one last (its conv's geometry is the deploy-time conv's)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, H, W) -> (B, M, H', W')
        if self.reparam is not None:
            out = self.reparam(x)
        else:
            first, *others = self.conv_branches()
            out = first(x)
            for branch in others:
                out = out + branch(x)  # (B, M, H', W')
            if self.identity is not None:
                out = out + self.identity(x)
        if self.se is not None:
            out = self.se(out)
        return self.act(out)

    def equivalent_kernel(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """The ``(M, N/G, K, K)`` kernel and ``(M,)`` bias of the single deploy-time conv:
        every branch folded (:func:`fold_bn`), padded to ``K x K`` (:func:`pad_kernel`) and summed
        (once re-parameterized: ``reparam``'s weight and bias)."""
        if self.reparam is not None:
            return self.reparam.weight, self.reparam.bias
        weight, bias = 0, 0
        for branch in self.conv_branches():
            w, b = fold_bn(branch.conv.weight, branch.bn)
            weight, bias = weight + pad_kernel(w, self.K), bias + b
        if self.identity is not None:
            eye = identity_kernel(self.M, self.K, self.groups, weight.device, weight.dtype)
            w, b = fold_bn(eye, self.identity)
            weight, bias = weight + w, bias + b
        return weight, bias

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Replace the branches by one conv with bias, ``reparam`` (in place; idempotent)."""
        if self.reparam is not None:
            return
        weight, bias = self.equivalent_kernel()
        self.reparam = conv_with(self.conv_branches()[-1].conv, weight, bias)  # a K x K branch's geometry
        for name in self.branch_names:
            setattr(self, name, None)


class RepVGGBlock(ReparamConv):
    """RepVGG block (Ding et al., CVPR 2021, Fig. 2 and 4): MobileOne's unit with one 3x3 branch.

    Train time: ``ReLU(BN(conv3x3 x) + BN(conv1x1 x) + BN(x))``; the identity branch exists
    only when ``N == M`` and ``stride == 1``. Deploy time: ``ReLU(conv3x3'(x) + b')``.
    Children named as in the paper (and timm): ``identity``, ``conv3x3``, ``conv1x1``, ``act``.

    Args:
        N, M: input and output channels.
        stride: 1 or 2 (applied by both conv branches).
        groups: G for both convs (RepVGG-A/B use 1).
        deploy: build the deploy-time form (one conv with bias) directly.
    """

    def __init__(
        self,
        N: int,
        M: int,
        stride: int = 1,
        groups: int = 1,
        deploy: bool = False,
    ):
        super().__init__(N, M, 3, stride, groups, deploy, lambda: {
            "conv3x3": ConvBN(N, M, 3, stride, groups),
            "conv1x1": ConvBN(N, M, 1, stride, groups),
        })

    def conv_branches(self) -> List[ConvBN]:
        return [self.conv1x1, self.conv3x3]


class MobileOneUnit(ReparamConv):
    """One re-parameterizable conv of MobileOne (Vasu et al., CVPR 2023, Fig. 3).

    Train time: ``act(se(BN(conv1x1 x) + sum_k BN(convKxK_k x) + BN(x)))`` with ``k`` =
    ``num_branches`` over-parameterized KxK branches, a 1x1 "scale" branch when ``K > 1``, and an
    identity branch when ``N == M`` and ``stride == 1``. Deploy time: ``act(se(convKxK'(x) + b'))``.

    Args:
        N, M: input and output channels.
        K: 3 for the depthwise unit, 1 for the pointwise unit.
        stride: 1 or 2.
        groups: G (``N`` for depthwise, 1 for pointwise).
        num_branches: k, the number of KxK-BN branches (the paper's over-parameterization factor).
        se: add a Squeeze-and-Excitation (``M -> M/16 -> M``) after the sum (MobileOne-S4).
        deploy: build the deploy-time form (one conv with bias) directly.
        act: the activation class (ReLU in MobileOne, GELU in FastViT's units) or ``None``.
    """

    def __init__(
        self,
        N: int,
        M: int,
        K: int,
        stride: int = 1,
        groups: int = 1,
        num_branches: int = 1,
        se: bool = False,
        deploy: bool = False,
        act: Optional[Type[nn.Module]] = nn.ReLU,
    ):
        require_positive(num_branches=num_branches)
        super().__init__(N, M, K, stride, groups, deploy, lambda: {
            "branches": nn.ModuleList(ConvBN(N, M, K, stride, groups) for _ in range(num_branches)),
            "scale": ConvBN(N, M, 1, stride, groups) if K > 1 else None,
        }, act)
        if se:
            self.se = SqueezeExcite(M, M // 16)

    def conv_branches(self) -> List[ConvBN]:
        return ([self.scale] if self.scale is not None else []) + list(self.branches)


class MobileOneBlock(nn.Module):
    """MobileOne block (Vasu et al., CVPR 2023, Fig. 3): a depthwise unit, then a pointwise unit.

    ``depthwise``: k branches of depthwise 3x3-BN (stride ``stride``), a depthwise 1x1-BN scale
    branch, identity-BN when it fits. ``pointwise``: k branches of 1x1-BN ``N -> M``, identity-BN
    when ``N == M``. Each unit ends with ReLU (and SE when ``se``); each re-parameterizes to one
    conv, so the deploy-time block is depthwise 3x3 + ReLU + 1x1 + ReLU, MobileNetV1's block.

    Args:
        N, M: input and output channels.
        stride: the depthwise unit's stride.
        num_branches: k.
        se: Squeeze-and-Excitation in both units (MobileOne-S4's last blocks).
        deploy: build the deploy-time form directly.
    """

    def __init__(
        self,
        N: int,
        M: int,
        stride: int = 1,
        num_branches: int = 1,
        se: bool = False,
        deploy: bool = False,
    ):
        super().__init__()
        self.depthwise = MobileOneUnit(N, N, 3, stride, N, num_branches, se, deploy)
        self.pointwise = MobileOneUnit(N, M, 1, 1, 1, num_branches, se, deploy)

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
