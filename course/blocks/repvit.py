"""RepViT's blocks: MobileNetV3's block rearranged like a ViT block, re-parameterized like RepVGG.

Wang, Chen, Lin, Han, Ding, "RepViT: Revisiting Mobile CNN From ViT Perspective", CVPR 2024
(arXiv:2307.09283), Sec. 3 and Fig. 2-3.

A MobileNetV3 block mixes tokens (the depthwise conv) and channels (the 1x1 convs) inside one
residual unit. RepViT separates them the way a MetaFormer does:

* **token mixer** (:class:`RepDWConv`): a ``3x3`` depthwise conv with a parallel ``1x1``
  depthwise conv and an identity, all followed by one BatchNorm (RepVGG-style branches; optional
  SE after it);
* **channel mixer**: ``1x1 (C -> 2C) -> GELU -> 1x1 (2C -> C)`` with a residual (an FFN).

Every conv is a :class:`~course.blocks.conv.ConvBN` (conv, then BatchNorm; activations are
separate modules, as in the authors' code). At deployment the three branches of the token
mixer become **one** depthwise conv (:meth:`RepDWConv.reparameterize`), every conv-BN pair one
conv with a bias (:func:`course.blocks.reparam.fuse_conv_bn_units`) and the BatchNorm before
each classifier folds into it (:meth:`NormLinear.fuse`, :meth:`DistilledClassifier.reparameterize`),
so the deployed model is a plain stack of convs. ``deploy=True`` builds that form directly.
The folding uses the public identities of :mod:`course.blocks.reparam` (``fold_bn``,
``pad_kernel``, ``identity_kernel``, ``conv_with``).
"""

from __future__ import annotations

from typing import Optional, Tuple, Type

import torch
from torch import nn

from course.blocks.bottleneck import SqueezeExcite
from course.blocks.conv import ConvBN
from course.blocks.reparam import conv_with, fold_bn, identity_kernel, pad_kernel
from course.checks import check_conv, make_divisible

__all__ = [
    "DistilledClassifier", "NormLinear", "RepDWConv", "RepViTBlock", "RepViTDownsample", "RepViTFFN", "conv_bn",
]


def conv_bn(N: int, M: int, K: int, stride: int = 1, groups: int = 1, deploy: bool = False) -> nn.Module:
    """A :class:`~course.blocks.conv.ConvBN`, or (``deploy``) the one conv with a bias it folds
    into (:func:`course.blocks.reparam.fuse_conv_bn`): ``(B, N, H, W) -> (B, M, H', W')``."""
    if deploy:
        check_conv(N, M, K, stride, groups)
        return nn.Conv2d(N, M, K, stride, K // 2, groups=groups)
    return ConvBN(N, M, K, stride, groups)


class RepDWConv(nn.Module):
    """RepViT's token mixer: ``BN(dwconv_KxK-BN(x) + dwconv_1x1(x) + x)``; deploy: one ``K x K`` depthwise conv.

    Folding (eval mode): the ``K x K`` branch folds its BatchNorm (:func:`fold_bn`), the ``1x1``
    kernel is zero-padded to ``K x K`` (:func:`pad_kernel`), the identity is a ``K x K`` kernel
    with a 1 at its centre (:func:`identity_kernel`); their sum ``W`` (bias ``b``) then folds
    the final BatchNorm: ``W' = t·W``, ``b' = β + t·(b - μ)``, ``t = γ / sqrt(σ² + ε)``.

    Shapes ``(B, C, H, W) -> (B, C, H, W)``; MACs ``H·W·C·(K² + 1)`` at train time,
    ``H·W·C·K²`` deployed. Children ``conv`` (a :class:`ConvBN`), ``conv1`` (the 1x1 depthwise
    conv, with a bias and no BatchNorm), ``bn``; deployed: ``reparam``.
    """

    def __init__(
        self,
        dim: int,
        K: int = 3,
        deploy: bool = False,
    ):
        super().__init__()
        check_conv(dim, dim, K, groups=dim)
        self.dim, self.K = dim, K
        self.reparam: Optional[nn.Conv2d] = None
        self.conv = self.conv1 = self.bn = None
        if deploy:
            self.reparam = nn.Conv2d(dim, dim, K, 1, K // 2, groups=dim)
        else:
            self.conv = ConvBN(dim, dim, K, groups=dim)
            self.conv1 = nn.Conv2d(dim, dim, 1, groups=dim)
            self.bn = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reparam is not None:
            return self.reparam(x)
        return self.bn(self.conv(x) + self.conv1(x) + x)

    def equivalent_kernel(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(C, 1, K, K)`` kernel and ``(C,)`` bias of the one deploy-time depthwise conv."""
        weight, bias = fold_bn(self.conv.conv.weight, self.conv.bn)  # K x K branch, its BatchNorm folded
        weight = weight + pad_kernel(self.conv1.weight, self.K)  # + the 1x1 branch
        weight = weight + identity_kernel(self.dim, self.K, self.dim, weight.device, weight.dtype)  # + x
        return fold_bn(weight, self.bn, bias + self.conv1.bias)  # the BatchNorm after the sum

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Replace the branches by one depthwise conv with bias (in place; idempotent)."""
        if self.reparam is None:
            self.reparam = conv_with(self.conv.conv, *self.equivalent_kernel())
            self.conv = self.conv1 = self.bn = None


class RepViTFFN(nn.Module):
    """The channel mixer: ``1x1 (C -> hidden) -> BN -> GELU -> 1x1 (hidden -> C) -> BN`` (no residual here).

    Children ``conv1``, ``act``, ``conv2`` (:func:`conv_bn`: conv-BN pairs, or their folded convs).
    """

    def __init__(
        self,
        dim: int,
        hidden: int,
        act: Type[nn.Module] = nn.GELU,
        deploy: bool = False,
    ):
        super().__init__()
        self.conv1 = conv_bn(dim, hidden, 1, deploy=deploy)
        self.act = act()
        self.conv2 = conv_bn(hidden, dim, 1, deploy=deploy)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.act(self.conv1(x)))


class RepViTBlock(nn.Module):
    """``y = SE(RepDWConv(x))``, then ``y + FFN(y)`` (Fig. 3): token mixing, then channel mixing.

    The token mixer's identity branch is the first residual; the FFN has its own.
    ``se`` adds squeeze-and-excitation (width ``C/4`` rounded to 8) after the token mixer
    (RepViT puts it on every other block).
    """

    def __init__(
        self,
        dim: int,
        mlp_ratio: int = 2,
        K: int = 3,
        se: bool = False,
        deploy: bool = False,
    ):
        super().__init__()
        self.token_mixer = RepDWConv(dim, K, deploy)
        self.se = SqueezeExcite(dim, make_divisible(dim / 4, 8, round_limit=0.0)) if se else nn.Identity()
        self.channel_mixer = RepViTFFN(dim, dim * mlp_ratio, deploy=deploy)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        x = self.se(self.token_mixer(x))
        return x + self.channel_mixer(x)


class RepViTDownsample(nn.Module):
    """Between stages (Sec. 3.2, "separate downsampling"): a RepViT block, a ``K x K``
    stride-2 depthwise conv, a ``1x1`` conv ``N -> M``, then ``x + FFN(x)``.
    ``(B, N, H, W) -> (B, M, H/2, W/2)``.
    """

    def __init__(
        self,
        N: int,
        M: int,
        mlp_ratio: int = 2,
        K: int = 3,
        deploy: bool = False,
    ):
        super().__init__()
        self.pre_block = RepViTBlock(N, mlp_ratio, K, se=False, deploy=deploy)
        self.spatial_downsample = conv_bn(N, N, K, 2, groups=N, deploy=deploy)
        self.channel_downsample = conv_bn(N, M, 1, deploy=deploy)
        self.ffn = RepViTFFN(M, M * mlp_ratio, deploy=deploy)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.channel_downsample(self.spatial_downsample(self.pre_block(x)))  # (B, M, H/2, W/2)
        return x + self.ffn(x)


class NormLinear(nn.Module):
    """``Linear(BatchNorm1d(x))``; :meth:`fuse` returns the one ``nn.Linear`` equal to it in eval mode.

    With ``t = γ / sqrt(σ² + ε)``: ``W' = W·diag(t)``, ``b' = b + W·(β - t·μ)``.
    """

    def __init__(
        self,
        N: int,
        M: int,
    ):
        super().__init__()
        self.bn = nn.BatchNorm1d(N)
        self.linear = nn.Linear(N, M)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, N) -> (B, M)
        return self.linear(self.bn(x))

    @torch.no_grad()
    def fuse(self) -> nn.Linear:
        t = self.bn.weight / torch.sqrt(self.bn.running_var + self.bn.eps)  # (N,)
        shift = self.bn.bias - t * self.bn.running_mean  # (N,)
        fused = nn.Linear(self.linear.in_features, self.linear.out_features,
                          device=t.device, dtype=self.linear.weight.dtype)
        fused.weight.copy_(self.linear.weight * t)
        fused.bias.copy_(self.linear.bias + self.linear.weight @ shift)
        return fused


class DistilledClassifier(nn.Module):
    """Two :class:`NormLinear` heads (classifier and DeiT-style distillation head), averaged.

    Deploy: one ``nn.Linear`` (``fused``) whose weights are the average of the two folded heads.
    """

    def __init__(
        self,
        N: int,
        num_classes: int,
        deploy: bool = False,
    ):
        super().__init__()
        self.head = self.head_dist = None
        self.fused: Optional[nn.Linear] = nn.Linear(N, num_classes) if deploy else None
        if not deploy:
            self.head = NormLinear(N, num_classes)
            self.head_dist = NormLinear(N, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, N) -> (B, num_classes)
        if self.fused is not None:
            return self.fused(x)
        return (self.head(x) + self.head_dist(x)) / 2

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fold both BatchNorms and average the two heads into one ``nn.Linear`` (in place; idempotent)."""
        if self.fused is not None:
            return
        a, b = self.head.fuse(), self.head_dist.fuse()
        a.weight.copy_((a.weight + b.weight) / 2)
        a.bias.copy_((a.bias + b.bias) / 2)
        self.fused, self.head, self.head_dist = a, None, None
