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

Also here: the MBConv and depthwise-separable variants EfficientViT builds its convolutional
stages from (:class:`EfficientViTMBConv`, :class:`EfficientViTDSConv`), the residual wrapper, and
:class:`EfficientViTBlock` (attention as the context module, an MBConv as the local module).

Closed-form cost: :func:`course.cost.modern.relu_linear_attention`.
"""

from __future__ import annotations

from typing import Sequence, Type

import torch
import torch.nn.functional as F
from torch import nn

from course.blocks.convnorm import ConvNorm

__all__ = [
    "EfficientViTBlock",
    "EfficientViTDSConv",
    "EfficientViTMBConv",
    "LiteMLA",
    "Residual",
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
        if not isinstance(heads, int) or heads < 1 or dim % heads:
            raise ValueError(f"heads={heads!r} must be a positive integer dividing dim={dim}")
        for s in scales:
            if not isinstance(s, int) or s < 1 or s % 2 == 0:
                raise ValueError(f"scales must be odd positive kernel sizes, got {tuple(scales)!r}")
        self.d, self.eps = dim // heads, eps
        D = heads * self.d
        self.qkv = ConvNorm(dim, 3 * D, 1, norm=False)
        self.aggreg = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(3 * D, 3 * D, s, padding=s // 2, groups=3 * D, bias=False),  # s x s neighbourhood
                nn.Conv2d(3 * D, 3 * D, 1, groups=3 * heads, bias=False),  # mixed within each head's q, k or v
            )
            for s in scales
        )
        self.proj = ConvNorm(D * (1 + len(scales)), dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        qkv = self.qkv(x)  # (B, 3D, H, W)
        qkv = torch.cat([qkv] + [aggregate(qkv) for aggregate in self.aggreg], dim=1)  # (B, 3D(1+S), H, W)
        qkv = qkv.reshape(B, -1, 3 * self.d, H * W).transpose(-1, -2)  # (B, heads(1+S), T, 3d)
        q, k, v = qkv.chunk(3, dim=-1)  # each (B, heads(1+S), T, d)
        out = relu_linear_attention(q, k, v, self.eps)  # (B, heads(1+S), T, d)
        out = out.transpose(-1, -2).reshape(B, -1, H, W)  # (B, D(1+S), H, W)
        return self.proj(out)  # (B, C, H, W)


class Residual(nn.Module):
    """``main(x) + x`` (``shortcut=True``) or ``main(x)``."""

    def __init__(self, main: nn.Module, shortcut: bool = True):
        super().__init__()
        self.main = main
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x) + x if self.shortcut else self.main(x)


class EfficientViTMBConv(nn.Module):
    """MBConv as EfficientViT writes it: ``1x1 expand (act) -> K x K depthwise (act) -> 1x1 project``.

    ``fewer_norm=False``: every conv bias-free with a BatchNorm (the conv stages).
    ``fewer_norm=True``: the expand and depthwise convs have a bias and no BatchNorm, only the
    projection keeps one (the attention stages). ``mid = round(N·expansion)``.
    """

    def __init__(
        self,
        N: int,
        M: int,
        K: int = 3,
        stride: int = 1,
        expansion: float = 4.0,
        act: Type[nn.Module] = nn.Hardswish,
        fewer_norm: bool = False,
    ):
        super().__init__()
        mid = round(N * expansion)
        self.inverted_conv = ConvNorm(N, mid, 1, act=act, bias=fewer_norm, norm=not fewer_norm)
        self.depth_conv = ConvNorm(mid, mid, K, stride, groups=mid, act=act, bias=fewer_norm, norm=not fewer_norm)
        self.point_conv = ConvNorm(mid, M, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, H, W) -> (B, M, H', W')
        return self.point_conv(self.depth_conv(self.inverted_conv(x)))


class EfficientViTDSConv(nn.Module):
    """Depthwise-separable conv: ``K x K`` depthwise (BN, act), ``1x1`` (BN, no act)."""

    def __init__(
        self,
        N: int,
        M: int,
        K: int = 3,
        stride: int = 1,
        act: Type[nn.Module] = nn.Hardswish,
    ):
        super().__init__()
        self.depth_conv = ConvNorm(N, N, K, stride, groups=N, act=act)
        self.point_conv = ConvNorm(N, M, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.point_conv(self.depth_conv(x))


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
