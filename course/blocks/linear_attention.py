"""ReLU linear attention: attention whose cost grows linearly with the number of tokens.

Cai, Li, Hu, Gan, Han, "EfficientViT: Lightweight Multi-Scale Attention for High-Resolution
Dense Prediction", ICCV 2023 (arXiv:2205.14756), Sec. 3.1 and Fig. 3-4.

Softmax attention computes ``softmax(Q Kᵀ) V``: the ``T x T`` score matrix costs ``T²·d``
MACs to fill and ``T²·d`` to apply, quadratic in the tokens ``T = H·W``. Replace the softmax
similarity ``exp(q·k)`` by ``ReLU(q)·ReLU(k)`` and the sum can be re-associated::

    out_i = Σ_j (ReLU(q_i)·ReLU(k_j)) v_j / Σ_j ReLU(q_i)·ReLU(k_j)
          = ReLU(q_i) (Σ_j ReLU(k_j)ᵀ v_j) / ReLU(q_i) (Σ_j ReLU(k_j)ᵀ)

``Σ_j ReLU(k_j)ᵀ v_j`` is one ``d x d`` matrix shared by every query: ``T·d²`` MACs to build,
``T·d²`` to apply. Linear in ``T``; the ``T x T`` matrix never exists. Appending a column of ones
to V computes the denominator in the same product (:func:`relu_linear_attention`).

EfficientViT's block (:class:`LiteMLA`, "lightweight multi-scale linear attention") adds
*multi-scale tokens*: Q, K and V are also aggregated over ``5 x 5`` neighbourhoods (a depthwise
conv and a grouped 1x1 conv), giving a second set of heads with local context, which ReLU
attention (weaker at local detail than softmax) needs.

Also here: the MBConv EfficientViT builds its convolutional stages from
(:class:`EfficientViTMBConv`, from the course's :class:`~course.blocks.conv.ConvBN` /
:class:`~course.blocks.conv.ConvBNAct`, and :func:`conv_act` where EfficientViT drops the
BatchNorm), the residual wrapper, and :class:`EfficientViTBlock` (attention as the context
module, an MBConv as the local module). Its stem's depthwise-separable conv is MobileNet's
(:class:`course.blocks.conv.DepthwiseSeparableConv`, with a linear pointwise conv).

Closed-form cost: :func:`course.cost.modern.relu_linear_attention`.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence, Type

import torch
import torch.nn.functional as F
from torch import nn

from course.blocks.conv import ConvBN, ConvBNAct
from course.checks import check_conv, check_lite_mla

__all__ = [
    "EfficientViTBlock",
    "EfficientViTMBConv",
    "LiteMLA",
    "Residual",
    "conv_act",
    "relu_linear_attention",
]


def relu_linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``ReLU(Q) (ReLU(K)ᵀ V) / ReLU(Q) (ReLU(K)ᵀ 1)`` for Q, K, V ``(..., T, d)`` -> ``(..., T, d)``.

    MACs: ``T·d·(d+1)`` for ``ReLU(K)ᵀ [V 1]`` and as many for the product with ``ReLU(Q)``;
    no ``T x T`` tensor is formed. The ``+ eps`` keeps an all-zero query finite.
    """
    q, k = F.relu(q), F.relu(k)
    v = F.pad(v, (0, 1), value=1.0)  # (..., T, d + 1): the last column sums the weights
    kv = k.transpose(-1, -2) @ v  # (..., d, d + 1), shared by all queries
    out = q @ kv  # (..., T, d + 1)
    return out[..., :-1] / (out[..., -1:] + eps)


class LiteMLA(nn.Module):
    """EfficientViT's multi-scale ReLU linear attention on a ``(B, C, H, W)`` map.

    ``qkv`` (1x1 conv, no bias, no norm) gives ``3·D`` channels, ``D = heads·d``; for each scale
    ``s`` an aggregation (``s x s`` depthwise conv, then a 1x1 conv grouped per head) gives
    another ``3·D``. Each of the ``heads·(1 + len(scales))`` heads runs
    :func:`relu_linear_attention`; a 1x1 conv + BatchNorm projects ``D·(1 + len(scales)) -> C``.

    MACs with ``T = H·W`` and ``S = len(scales)``: ``T·C·3D`` (qkv) ``+ S·T·3D·(s² + 3d)``
    (aggregation) ``+ 2·heads·(1+S)·T·d·(d+1)`` (attention) ``+ T·D·(1+S)·C`` (proj): linear in ``T``.

    Args:
        dim: C.
        heads: heads per scale; ``d = dim // heads`` (EfficientViT-B uses ``d = 16``).
        scales: the aggregation kernels (``(5,)``).
        eps: added to the denominator.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        scales: Sequence[int] = (5,),
        eps: float = 1e-5,
    ):
        super().__init__()
        check_lite_mla(dim, heads, scales)
        self.d, self.eps = dim // heads, eps
        D = heads * self.d
        self.qkv = nn.Conv2d(dim, 3 * D, 1, bias=False)  # no norm, no bias
        self.aggreg = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(3 * D, 3 * D, s, padding=s // 2, groups=3 * D, bias=False),  # s x s neighbourhood
                nn.Conv2d(3 * D, 3 * D, 1, groups=3 * heads, bias=False),  # mixed within each head's q, k or v
            )
            for s in scales
        )
        self.proj = ConvBN(D * (1 + len(scales)), dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        qkv = self.qkv(x)  # (B, 3D, H, W)
        qkv = torch.cat([qkv] + [aggregate(qkv) for aggregate in self.aggreg], dim=1)  # (B, 3D(1+S), H, W)
        qkv = qkv.reshape(B, -1, 3 * self.d, H * W).transpose(-1, -2)  # (B, heads(1+S), T, 3d)
        q, k, v = qkv.chunk(3, dim=-1)  # each (B, heads(1+S), T, d)
        out = relu_linear_attention(q, k, v, self.eps)  # (B, heads(1+S), T, d)
        out = out.transpose(-1, -2).reshape(B, -1, H, W)  # (B, D(1+S), H, W)
        return self.proj(out)  # (B, C, H, W)


def conv_act(N: int, M: int, K: int, stride: int = 1, groups: int = 1,
             act: Type[nn.Module] = nn.Hardswish) -> nn.Sequential:
    """``K x K`` conv with a bias, then ``act``, no BatchNorm: EfficientViT's "fewer norm"
    convs in the attention stages. ``(B, N, H, W) -> (B, M, H', W')``; children ``conv``, ``act``."""
    check_conv(N, M, K, stride, groups)
    return nn.Sequential(OrderedDict(conv=nn.Conv2d(N, M, K, stride, K // 2, groups=groups), act=act()))


class Residual(nn.Module):
    """``main(x) + x`` (``shortcut=True``) or ``main(x)``."""

    def __init__(self, main: nn.Module, shortcut: bool = True):
        super().__init__()
        self.main = main
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x) + x if self.shortcut else self.main(x)


class EfficientViTMBConv(nn.Module):
    """MBConv as EfficientViT writes it: ``1x1 expand (act) -> 3x3 depthwise (act) -> 1x1 project``.

    ``fewer_norm=False``: every conv bias-free with a BatchNorm (the conv stages).
    ``fewer_norm=True``: the expand and depthwise convs have a bias and no BatchNorm, only the
    projection keeps one (the attention stages). ``mid = round(N·expansion)``; the depthwise
    kernel is 3x3 in every EfficientViT. ``(B, N, H, W) -> (B, M, H/stride, W/stride)``.
    """

    def __init__(
        self,
        N: int,
        M: int,
        stride: int = 1,
        expansion: float = 4.0,
        act: Type[nn.Module] = nn.Hardswish,
        fewer_norm: bool = False,
    ):
        super().__init__()
        mid = round(N * expansion)
        if fewer_norm:
            self.inverted_conv = conv_act(N, mid, 1, act=act)
            self.depth_conv = conv_act(mid, mid, 3, stride, groups=mid, act=act)
        else:
            self.inverted_conv = ConvBNAct(N, mid, 1, act=act)
            self.depth_conv = ConvBNAct(mid, mid, 3, stride, groups=mid, act=act)
        self.point_conv = ConvBN(mid, M, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, H, W) -> (B, M, H', W')
        return self.point_conv(self.depth_conv(self.inverted_conv(x)))


class EfficientViTBlock(nn.Module):
    """``x + LiteMLA(x)`` (global context, linear in tokens), then ``x + MBConv(x)`` (local detail)."""

    def __init__(
        self,
        dim: int,
        heads: int,
        expansion: float = 4.0,
        act: Type[nn.Module] = nn.Hardswish,
    ):
        super().__init__()
        self.context_module = Residual(LiteMLA(dim, heads))
        self.local_module = Residual(EfficientViTMBConv(dim, dim, expansion=expansion, act=act, fewer_norm=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        return self.local_module(self.context_module(x))
