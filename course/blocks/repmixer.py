"""FastViT's blocks: RepMixer, a token mixer that re-parameterizes away its own skip connection.

Vasu, Gabriel, Zhu, Tuzel, Ranjan, "FastViT: A Fast Hybrid Vision Transformer using Structural
Reparameterization", ICCV 2023 (arXiv:2303.14189), Sec. 3 and Fig. 2.

**RepMixer** (:class:`RepMixer`, Eq. 2-3 of the paper). A MetaFormer block mixes tokens with
``x + Mixer(Norm(x))``; a ConvMixer-like choice is ``x + DWConv(BN(x))``. RepMixer rewrites it as

    Y = x + γ ⊙ (DWConv_BN(x) - BN(x))         (train: depthwise K x K + 1x1 + identity branches)

and since every term is linear in ``x`` in eval mode, the whole thing (skip connection included)
is **one depthwise conv**: ``Y = DWConv'(x)`` with ``W' = I + γ·(W_mix - W_norm)``,
``b' = γ·(b_mix - b_norm)``. The skip connection costs memory traffic on a phone (the input
must stay alive until the add); after re-parameterization it is gone.

Other re-parameterizable pieces, each with a ``reparameterize()`` that
:func:`course.blocks.reparam.reparameterize_model` calls:

* :class:`MobileOneConv`: MobileOne's unit with FastViT's activation (GELU) and optional SE:
  ``act(SE(sum of K x K-BN branches + 1x1-BN scale branch + identity-BN))`` -> one conv;
* :class:`ReparamLargeKernelConv` (from RepLKNet): a ``7 x 7`` conv-BN plus a parallel ``3 x 3``
  conv-BN -> one ``7 x 7`` conv (the patch embedding between stages);
* :class:`RepCPE`: the conditional positional encoding ``x + DWConv_7x7(x)`` of the attention
  stage -> one depthwise conv.

The folding uses the public identities of :mod:`course.blocks.reparam` (``fold_bn``,
``pad_kernel``, ``identity_kernel``).
"""

from __future__ import annotations

from typing import Optional, Tuple, Type

import torch
from torch import nn

from course.blocks.attention import Attention
from course.blocks.bottleneck import SqueezeExcite
from course.blocks.convnorm import ConvNorm, check_conv
from course.blocks.reparam import fold_bn, identity_kernel, pad_kernel

__all__ = [
    "FastViTAttentionBlock",
    "FastViTConvMlp",
    "LayerScale2d",
    "MobileOneConv",
    "RepCPE",
    "RepMixer",
    "RepMixerBlock",
    "ReparamLargeKernelConv",
]


def _conv_with(weight: torch.Tensor, bias: torch.Tensor, stride: int, groups: int) -> nn.Conv2d:
    """A new ``nn.Conv2d`` (padding ``K // 2``) holding ``weight`` and ``bias``."""
    M, n, K, _ = weight.shape
    conv = nn.Conv2d(n * groups, M, K, stride, K // 2, groups=groups, device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)
    return conv


class LayerScale2d(nn.Module):
    """``x · γ`` with one learned ``γ`` per channel, stored ``(C, 1, 1)`` as in FastViT's code."""

    def __init__(
        self,
        dim: int,
        init: float = 1e-5,
    ):
        super().__init__()
        self.gamma = nn.Parameter(init * torch.ones(dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        return x * self.gamma


class MobileOneConv(nn.Module):
    """MobileOne's re-parameterizable conv (Vasu et al., CVPR 2023) with FastViT's options.

    Train: ``act(SE(Σ_k BN(conv_KxK,k(x)) + BN(conv_1x1(x)) + BN(x)))`` with ``num_branches``
    ``K x K`` branches, the ``1x1`` "scale" branch when ``K > 1`` and ``scale_branch``, the
    identity branch when ``N == M`` and ``stride == 1``. Deploy: ``act(SE(conv'(x)))``.

    Args:
        N, M, K, stride, groups: the convolution every branch shares.
        act: activation class or ``None``.
        se: squeeze-and-excitation (width ``M/16``) before the activation.
        scale_branch: include the ``1x1`` branch.
        num_branches: the over-parameterization factor k (0 allowed: then only identity-BN).
        deploy: build the one-conv form directly.

    Children: ``identity``, ``conv_kxk`` (a list of :class:`ConvNorm`), ``conv_scale``, ``se``,
    ``act``; deployed: ``reparam``.
    """

    def __init__(
        self,
        N: int,
        M: int,
        K: int,
        stride: int = 1,
        groups: int = 1,
        act: Optional[Type[nn.Module]] = nn.GELU,
        se: bool = False,
        scale_branch: bool = True,
        num_branches: int = 1,
        deploy: bool = False,
    ):
        super().__init__()
        check_conv(N, M, K, stride, groups)
        if not isinstance(num_branches, int) or num_branches < 0:
            raise ValueError(f"num_branches must be a non-negative integer, got {num_branches!r}")
        has_identity = N == M and stride == 1
        if num_branches == 0 and not has_identity:
            raise ValueError("num_branches=0 leaves no branch (the identity needs N == M and stride == 1)")
        self.N, self.M, self.K, self.stride, self.groups = N, M, K, stride, groups
        self.reparam: Optional[nn.Conv2d] = None
        self.identity = self.conv_kxk = self.conv_scale = None
        if deploy:
            self.reparam = nn.Conv2d(N, M, K, stride, K // 2, groups=groups)
        else:
            self.identity = nn.BatchNorm2d(N) if has_identity else None
            self.conv_kxk = nn.ModuleList(ConvNorm(N, M, K, stride, groups) for _ in range(num_branches)) \
                if num_branches else None
            self.conv_scale = ConvNorm(N, M, 1, stride, groups) if K > 1 and scale_branch else None
        self.se = SqueezeExcite(M, max(1, int(M / 16 + 0.5))) if se else nn.Identity()
        self.act = act() if act is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, H, W) -> (B, M, H', W')
        if self.reparam is not None:
            return self.act(self.se(self.reparam(x)))
        out = self.identity(x) if self.identity is not None else 0
        if self.conv_scale is not None:
            out = out + self.conv_scale(x)
        for branch in self.conv_kxk or ():
            out = out + branch(x)
        return self.act(self.se(out))

    def equivalent_kernel(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(M, N/G, K, K)`` kernel and ``(M,)`` bias of the one conv all branches sum to."""
        if self.reparam is not None:
            return self.reparam.weight, self.reparam.bias
        weight, bias = 0, 0
        for branch in self.conv_kxk or ():
            w, b = branch.folded()
            weight, bias = weight + w, bias + b
        if self.conv_scale is not None:
            w, b = self.conv_scale.folded()
            weight, bias = weight + pad_kernel(w, self.K), bias + b
        if self.identity is not None:
            bn = self.identity
            eye = identity_kernel(self.N, self.K, self.groups, bn.weight.device, bn.weight.dtype)
            w, b = fold_bn(eye, bn)
            weight, bias = weight + w, bias + b
        return weight, bias

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Replace the branches by one conv with bias (in place; idempotent)."""
        if self.reparam is None:
            self.reparam = _conv_with(*self.equivalent_kernel(), self.stride, self.groups)
            self.identity = self.conv_kxk = self.conv_scale = None


class ReparamLargeKernelConv(nn.Module):
    """``BN(conv_KxK(x)) + BN(conv_3x3(x))`` -> one ``K x K`` conv (Ding et al., RepLKNet, CVPR 2022).

    FastViT's patch embedding: ``K = 7``, stride 2, ``groups = N`` (each input channel feeds
    ``M/N`` outputs). No activation (as in the released weights).
    """

    def __init__(
        self,
        N: int,
        M: int,
        K: int = 7,
        stride: int = 2,
        groups: int = 1,
        small_K: int = 3,
        deploy: bool = False,
    ):
        super().__init__()
        check_conv(N, M, K, stride, groups)
        if not 0 < small_K <= K or small_K % 2 == 0:
            raise ValueError(f"small_K must be odd and at most K={K}, got {small_K!r}")
        self.K, self.stride, self.groups = K, stride, groups
        self.reparam: Optional[nn.Conv2d] = None
        self.large_conv = self.small_conv = None
        if deploy:
            self.reparam = nn.Conv2d(N, M, K, stride, K // 2, groups=groups)
        else:
            self.large_conv = ConvNorm(N, M, K, stride, groups)
            self.small_conv = ConvNorm(N, M, small_K, stride, groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reparam is not None:
            return self.reparam(x)
        return self.large_conv(x) + self.small_conv(x)

    def equivalent_kernel(self) -> Tuple[torch.Tensor, torch.Tensor]:
        if self.reparam is not None:
            return self.reparam.weight, self.reparam.bias
        w, b = self.large_conv.folded()
        w_small, b_small = self.small_conv.folded()
        return w + pad_kernel(w_small, self.K), b + b_small

    @torch.no_grad()
    def reparameterize(self) -> None:
        if self.reparam is None:
            self.reparam = _conv_with(*self.equivalent_kernel(), self.stride, self.groups)
            self.large_conv = self.small_conv = None


class RepMixer(nn.Module):
    """RepMixer: ``x + γ ⊙ (mixer(x) - norm(x))``, one depthwise ``K x K`` conv at deploy time.

    ``mixer`` is a depthwise :class:`MobileOneConv` (``K x K`` + ``1x1`` + identity branches, no
    activation), ``norm`` the identity-BN branch alone (a BatchNorm). Folding (eval):
    ``W' = I + γ·(W_mixer - W_norm)``, ``b' = γ·(b_mixer - b_norm)``, ``I`` the identity kernel.
    MACs ``H·W·C·(K² + 1)`` at train time, ``H·W·C·K²`` deployed; no skip connection deployed.
    """

    def __init__(
        self,
        dim: int,
        K: int = 3,
        layer_scale: float = 1e-5,
        deploy: bool = False,
    ):
        super().__init__()
        check_conv(dim, dim, K, groups=dim)
        self.dim, self.K = dim, K
        self.reparam: Optional[nn.Conv2d] = None
        self.norm = self.mixer = self.layer_scale = None
        if deploy:
            self.reparam = nn.Conv2d(dim, dim, K, 1, K // 2, groups=dim)
        else:
            self.norm = MobileOneConv(dim, dim, K, groups=dim, act=None, scale_branch=False, num_branches=0)
            self.mixer = MobileOneConv(dim, dim, K, groups=dim, act=None)
            self.layer_scale = LayerScale2d(dim, layer_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        if self.reparam is not None:
            return self.reparam(x)
        return x + self.layer_scale(self.mixer(x) - self.norm(x))

    def equivalent_kernel(self) -> Tuple[torch.Tensor, torch.Tensor]:
        if self.reparam is not None:
            return self.reparam.weight, self.reparam.bias
        w_mix, b_mix = self.mixer.equivalent_kernel()
        w_norm, b_norm = self.norm.equivalent_kernel()
        gamma = self.layer_scale.gamma  # (C, 1, 1)
        eye = identity_kernel(self.dim, self.K, self.dim, w_mix.device, w_mix.dtype)
        return eye + gamma.unsqueeze(-1) * (w_mix - w_norm), gamma.flatten() * (b_mix - b_norm)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Replace the skip connection, both branches and the layer scale by one depthwise conv."""
        if self.reparam is None:
            self.reparam = _conv_with(*self.equivalent_kernel(), 1, self.dim)
            self.norm = self.mixer = self.layer_scale = None


class RepCPE(nn.Module):
    """Conditional positional encoding ``x + DWConv_KxK(x)`` (Chu et al., 2021) -> one depthwise conv.

    Folding: ``W' = W + I``, ``b' = b``.
    """

    def __init__(
        self,
        dim: int,
        K: int = 7,
        deploy: bool = False,
    ):
        super().__init__()
        check_conv(dim, dim, K, groups=dim)
        self.dim, self.K = dim, K
        self.reparam: Optional[nn.Conv2d] = None
        self.pos_enc = None
        if deploy:
            self.reparam = nn.Conv2d(dim, dim, K, 1, K // 2, groups=dim)
        else:
            self.pos_enc = nn.Conv2d(dim, dim, K, 1, K // 2, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reparam is not None:
            return self.reparam(x)
        return x + self.pos_enc(x)

    @torch.no_grad()
    def reparameterize(self) -> None:
        if self.reparam is None:
            w = self.pos_enc.weight
            eye = identity_kernel(self.dim, self.K, self.dim, w.device, w.dtype)
            self.reparam = _conv_with(w + eye, self.pos_enc.bias, 1, self.dim)
            self.pos_enc = None


class FastViTConvMlp(nn.Module):
    """FastViT's FFN: ``7x7 depthwise conv + BN``, then ``1x1 (C -> hidden) -> GELU -> 1x1 (hidden -> C)``.

    The depthwise conv (with its BatchNorm) is *not* re-parameterized in FastViT's code: it
    stays a conv + BN at deploy time.
    """

    def __init__(
        self,
        dim: int,
        hidden: int,
        act: Type[nn.Module] = nn.GELU,
    ):
        super().__init__()
        self.conv = ConvNorm(dim, dim, 7, groups=dim)
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.act = act()
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(self.conv(x))))


class RepMixerBlock(nn.Module):
    """``y = RepMixer(x)`` (its own skip inside), then ``y + γ ⊙ FFN(y)``."""

    def __init__(
        self,
        dim: int,
        mlp_ratio: float = 3.0,
        K: int = 3,
        layer_scale: float = 1e-5,
        deploy: bool = False,
    ):
        super().__init__()
        self.token_mixer = RepMixer(dim, K, layer_scale, deploy)
        self.mlp = FastViTConvMlp(dim, int(dim * mlp_ratio))
        self.layer_scale = LayerScale2d(dim, layer_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.token_mixer(x)
        return x + self.layer_scale(self.mlp(x))


class FastViTAttentionBlock(nn.Module):
    """FastViT's attention stage block: ``x + γ1 ⊙ MHSA(BN(x))``, then ``x + γ2 ⊙ FFN(x)``.

    The attention is :class:`course.blocks.attention.Attention` (heads of width ``head_dim``,
    no QKV bias) on the ``H·W`` tokens of the map.
    """

    def __init__(
        self,
        dim: int,
        mlp_ratio: float = 4.0,
        head_dim: int = 32,
        layer_scale: float = 1e-5,
        fused: bool = False,
    ):
        super().__init__()
        if dim % head_dim:
            raise ValueError(f"head_dim={head_dim} must divide dim={dim}")
        self.norm = nn.BatchNorm2d(dim)
        self.token_mixer = Attention(dim, dim // head_dim, qkv_bias=False, fused=fused)
        self.layer_scale_1 = LayerScale2d(dim, layer_scale)
        self.mlp = FastViTConvMlp(dim, int(dim * mlp_ratio))
        self.layer_scale_2 = LayerScale2d(dim, layer_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        B, C, H, W = x.shape
        tokens = self.token_mixer(self.norm(x).flatten(2).transpose(1, 2))  # (B, H·W, C)
        x = x + self.layer_scale_1(tokens.transpose(1, 2).reshape(B, C, H, W))
        return x + self.layer_scale_2(self.mlp(x))
