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

FastViT's other re-parameterizable convs are the course's :class:`~course.blocks.reparam.ReparamConv`
family, each with a ``reparameterize()`` that :func:`course.blocks.reparam.reparameterize_model`
calls:

* MobileOne's unit, :class:`~course.blocks.reparam.MobileOneUnit`, with FastViT's activation
  (``act=nn.GELU``): ``act(SE(sum of K x K-BN branches + 1x1-BN scale branch + identity-BN))``
  -> one conv (the stem, the patch embeddings' 1x1 convs, the final conv);
* :class:`ReparamLargeKernelConv` (from RepLKNet): a ``7 x 7`` conv-BN plus a parallel ``3 x 3``
  conv-BN -> one ``7 x 7`` conv (the patch embedding between stages);

and :class:`RepCPE`, the conditional positional encoding ``x + DWConv_7x7(x)`` of the attention
stage -> one depthwise conv. The folding uses the public identities of
:mod:`course.blocks.reparam` (``fold_bn``, ``identity_kernel``, ``conv_with``).
"""

from __future__ import annotations

from typing import List, Optional, Tuple, Type

import torch
from torch import nn

from course.blocks.attention import Attention
from course.blocks.conv import ConvBN
from course.blocks.metaformer import LayerScale
from course.blocks.reparam import MobileOneUnit, ReparamConv, conv_with, fold_bn, identity_kernel
from course.checks import check_conv, require_odd

__all__ = [
    "FastViTAttentionBlock",
    "FastViTConvMlp",
    "LayerScale2d",
    "RepCPE",
    "RepMixer",
    "RepMixerBlock",
    "ReparamLargeKernelConv",
]


class LayerScale2d(LayerScale):
    """:class:`~course.blocks.metaformer.LayerScale` (``x · γ``, one learned ``γ`` per channel)
    with ``γ`` stored ``(C, 1, 1)``, the shape FastViT's code (and so its twin) stores it in."""

    def __init__(
        self,
        dim: int,
        init: float = 1e-5,
    ):
        super().__init__(dim, init)
        self.scale = nn.Parameter(init * torch.ones(dim, 1, 1))


class ReparamLargeKernelConv(ReparamConv):
    """``BN(conv_KxK(x)) + BN(conv_3x3(x))`` -> one ``K x K`` conv (Ding et al., RepLKNet, CVPR 2022).

    FastViT's patch embedding: ``K = 7``, stride 2, ``groups = N`` (each input channel feeds
    ``M/N`` outputs). No identity branch and no activation (as in the released weights).
    Children ``large_conv``, ``small_conv`` (:class:`~course.blocks.conv.ConvBN`); deployed:
    ``reparam``.
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
        require_odd(small_K=small_K)
        if small_K > K:
            raise ValueError(f"small_K={small_K} must be at most K={K}")
        super().__init__(N, M, K, stride, groups, deploy, lambda: {
            "large_conv": ConvBN(N, M, K, stride, groups),
            "small_conv": ConvBN(N, M, small_K, stride, groups),
        }, act=None, identity=False)

    def conv_branches(self) -> List[ConvBN]:
        return [self.small_conv, self.large_conv]  # the K x K one last: its geometry is the deployed conv's


class RepMixer(nn.Module):
    """RepMixer: ``x + γ ⊙ (mixer(x) - norm(x))``, one depthwise ``K x K`` conv at deploy time.

    ``mixer`` is a depthwise :class:`~course.blocks.reparam.MobileOneUnit` (``K x K`` + ``1x1`` +
    identity branches, no activation), ``norm`` a BatchNorm (the identity branch alone).
    Folding (eval): ``W' = I + γ·(W_mixer - W_norm)``, ``b' = γ·(b_mixer - b_norm)``, ``I`` the
    identity kernel. MACs ``H·W·C·(K² + 1)`` at train time, ``H·W·C·K²`` deployed; no skip
    connection deployed.
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
            self.norm = nn.BatchNorm2d(dim)
            self.mixer = MobileOneUnit(dim, dim, K, groups=dim, act=None)
            self.layer_scale = LayerScale2d(dim, layer_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        if self.reparam is not None:
            return self.reparam(x)
        return x + self.layer_scale(self.mixer(x) - self.norm(x))

    def equivalent_kernel(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(C, 1, K, K)`` kernel and ``(C,)`` bias of the one deploy-time depthwise conv."""
        w_mix, b_mix = self.mixer.equivalent_kernel()
        eye = identity_kernel(self.dim, self.K, self.dim, w_mix.device, w_mix.dtype)
        w_norm, b_norm = fold_bn(eye, self.norm)
        gamma = self.layer_scale.scale  # (C, 1, 1)
        return eye + gamma.unsqueeze(-1) * (w_mix - w_norm), gamma.flatten() * (b_mix - b_norm)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Replace the skip connection, both branches and the layer scale by one depthwise conv."""
        if self.reparam is None:
            self.mixer.reparameterize()  # its branches -> one depthwise conv (idempotent)
            self.reparam = conv_with(self.mixer.reparam, *self.equivalent_kernel())
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
            self.reparam = conv_with(self.pos_enc, w + eye, self.pos_enc.bias)
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
        self.conv = ConvBN(dim, dim, 7, groups=dim)
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
