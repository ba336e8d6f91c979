"""Cascaded group attention: MSRA's EfficientViT, attention that feeds each head a different split.

Liu, Peng, Zheng, Yang, Hu, Yuan, "EfficientViT: Memory Efficient Vision Transformer with
Cascaded Group Attention", CVPR 2023 (arXiv:2305.07027), Sec. 3 and Fig. 6.

Multi-head attention gives every head the whole input and lets the heads compute similar maps
(redundant work). **Cascaded group attention** (:class:`CascadedGroupAttention`) splits the
channels into ``heads`` groups; head ``j`` sees group ``j`` *plus the output of head j-1*::

    x_1' = x_1            x_j' = x_j + out_{j-1}       out_j = Attn(Q_j, K_j, V_j)(x_j')

so each head's Q, K, V projections are ``heads`` times narrower (``C/heads`` inputs) and the
cascade deepens the network for free. Q additionally goes through a ``5x5`` depthwise conv
(local detail). Attention runs in ``7 x 7`` windows (:class:`LocalWindowAttention`).

The block (:class:`CascadedAttentionBlock`, the "sandwich layout" of Sec. 3.1) puts one
attention between two pairs of (depthwise conv, FFN), each residual: memory-bound attention is
a small share of the block's time.

Tensor names follow the authors' code and timm (``m`` for the residual branch).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from course.blocks.attention import window_partition, window_reverse
from course.blocks.bottleneck import SqueezeExcite
from course.blocks.conv import ConvBN, ConvBNAct
from course.blocks.efficientformer import attention_bias_index
from course.checks import make_divisible, require_divides

__all__ = [
    "CascadedAttentionBlock",
    "CascadedGroupAttention",
    "ConvFFN",
    "LocalWindowAttention",
    "PatchMerging",
    "ResidualBranch",
]


class ResidualBranch(nn.Module):
    """``x + m(x)``."""

    def __init__(self, m: nn.Module):
        super().__init__()
        self.m = m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.m(x)


class ConvFFN(nn.Module):
    """``1x1 (C -> hidden) -> BN -> ReLU -> 1x1 (hidden -> C) -> BN``."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.pw1 = ConvBNAct(dim, hidden, 1, act=nn.ReLU)
        self.pw2 = ConvBN(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw2(self.pw1(x))


class CascadedGroupAttention(nn.Module):
    """Cascaded group attention on a ``(B, C, r, r)`` window (Sec. 3.2, Eq. 2-3).

    For head ``j`` (input ``C/heads`` channels): ``q, k, v = BN(1x1 conv(x_j'))`` with widths
    ``key_dim, key_dim, C/heads``; ``q = BN(dw conv_5x5(q))``; ``out_j = v softmax(qᵀk/√key_dim +
    bias_j)ᵀ``; the outputs are concatenated and projected (ReLU, 1x1 conv, BN). ``bias_j`` is
    a learned value per head and relative offset ``(|dy|, |dx|)``.

    MACs on ``T = r²`` tokens: ``Σ_j [T·(C/heads)·(2·key_dim + C/heads) + T·25·key_dim
    + T²·(key_dim + C/heads)] + T·C·C``: the projections cost ``1/heads`` of multi-head
    attention's.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        key_dim: int,
        resolution: int,
        kernels: Sequence[int] = (5, 5, 5, 5),
    ):
        super().__init__()
        require_divides("heads", heads, dim=dim)
        if len(kernels) < heads:
            raise ValueError(f"kernels needs one entry per head ({heads}), got {len(kernels)}")
        self.heads, self.key_dim, self.scale = heads, key_dim, key_dim ** -0.5
        self.val_dim = dim // heads
        self.resolution = resolution
        self.qkvs = nn.ModuleList(ConvBN(dim // heads, 2 * key_dim + self.val_dim, 1) for _ in range(heads))
        self.dws = nn.ModuleList(ConvBN(key_dim, key_dim, kernels[j], groups=key_dim) for j in range(heads))
        self.proj = nn.Sequential(nn.ReLU(), ConvBN(self.val_dim * heads, dim, 1))
        self.attention_biases = nn.Parameter(torch.zeros(heads, resolution * resolution))
        self.register_buffer("bias_index", attention_bias_index(resolution), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, r, r)
        B, C, H, W = x.shape
        splits = x.chunk(self.heads, dim=1)  # heads x (B, C/heads, r, r)
        bias = self.attention_biases[:, self.bias_index]  # (heads, T, T)
        outs, feat = [], splits[0]
        for j in range(self.heads):
            if j > 0:
                feat = feat + splits[j]  # the cascade: the previous head's output joins this split
            q, k, v = self.qkvs[j](feat).split([self.key_dim, self.key_dim, self.val_dim], dim=1)
            q = self.dws[j](q)  # local detail on the queries
            q, k, v = q.flatten(2), k.flatten(2), v.flatten(2)  # (B, d, T)
            # torch.bmm, not @: the same kernel, without the expand/reshape steps @ adds around
            # it (5 operators per product, 240 in EfficientViT-M0, which count() charges one by one)
            attn = (torch.bmm((q * self.scale).transpose(1, 2), k) + bias[j]).softmax(dim=-1)  # (B, T, T)
            feat = torch.bmm(v, attn.transpose(1, 2)).view(B, self.val_dim, H, W)  # (B, C/heads, r, r)
            outs.append(feat)
        return self.proj(torch.cat(outs, dim=1))  # (B, C, r, r)


class LocalWindowAttention(nn.Module):
    """:class:`CascadedGroupAttention` in non-overlapping ``window x window`` windows.

    A map no larger than the window is attended as a whole (the window shrinks to it); a
    larger one is zero-padded at the bottom and right to a multiple of the window, cut into
    windows (:func:`course.blocks.attention.window_partition`), attended and pasted back.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        key_dim: int,
        resolution: int,
        window: int = 7,
        kernels: Sequence[int] = (5, 5, 5, 5),
    ):
        super().__init__()
        self.window = min(window, resolution)
        self.attn = CascadedGroupAttention(dim, heads, key_dim, self.window, kernels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        B, C, H, W = x.shape
        ws = self.window
        if H == ws and W == ws:
            return self.attn(x)
        pad_b, pad_r = (-H) % ws, (-W) % ws
        x = F.pad(x.permute(0, 2, 3, 1), (0, 0, 0, pad_r, 0, pad_b))  # (B, Hp, Wp, C)
        windows = window_partition(x, ws).permute(0, 3, 1, 2)  # (B·nW, C, ws, ws)
        windows = self.attn(windows).permute(0, 2, 3, 1)  # (B·nW, ws, ws, C)
        x = window_reverse(windows, ws, H + pad_b, W + pad_r)[:, :H, :W]  # (B, H, W, C)
        return x.permute(0, 3, 1, 2)


class CascadedAttentionBlock(nn.Module):
    """The sandwich: ``DW -> FFN -> window attention -> DW -> FFN``, each ``x + f(x)``.

    DW is a 3x3 depthwise conv + BN (a token mixer for local detail), FFN a :class:`ConvFFN`
    with hidden width ``2C``.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        key_dim: int,
        resolution: int,
        window: int = 7,
        kernels: Sequence[int] = (5, 5, 5, 5),
    ):
        super().__init__()
        self.dw0 = ResidualBranch(ConvBN(dim, dim, 3, groups=dim))
        self.ffn0 = ResidualBranch(ConvFFN(dim, 2 * dim))
        self.mixer = ResidualBranch(LocalWindowAttention(dim, heads, key_dim, resolution, window, kernels))
        self.dw1 = ResidualBranch(ConvBN(dim, dim, 3, groups=dim))
        self.ffn1 = ResidualBranch(ConvFFN(dim, 2 * dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        return self.ffn1(self.dw1(self.mixer(self.ffn0(self.dw0(x)))))


class PatchMerging(nn.Module):
    """Downsampling: ``1x1 (N -> 4N), ReLU, 3x3 depthwise stride 2, ReLU, SE, 1x1 (4N -> M)``,
    an inverted residual without the residual. ``(B, N, H, W) -> (B, M, ceil(H/2), ceil(W/2))``."""

    def __init__(self, N: int, M: int):
        super().__init__()
        hidden = 4 * N
        self.conv1 = ConvBNAct(N, hidden, 1, act=nn.ReLU)
        self.conv2 = ConvBNAct(hidden, hidden, 3, 2, groups=hidden, act=nn.ReLU)
        self.se = SqueezeExcite(hidden, make_divisible(hidden / 4, 8, round_limit=0.0))
        self.conv3 = ConvBN(hidden, M, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(self.se(self.conv2(self.conv1(x))))
