"""EfficientFormerV2's blocks: a 4D network whose attention runs on feature maps.

Li, Hu, Wen, Evangelidis, Salahi, Wang, Tulyakov, Ren, "Rethinking Vision Transformers for
MobileNet Size and Speed", ICCV 2023 (arXiv:2212.08059), Sec. 3 and Fig. 2.

EfficientFormer (v1) had a 4D part (conv blocks on ``(B, C, H, W)`` maps) and a 3D part
(transformer blocks on ``(B, T, C)`` token sequences) with a reshape in between. V2 keeps every
tensor 4D: its attention takes and returns a map, its projections are 1x1 convs with BatchNorm
(foldable, fast on mobile), and the *same* block serves both partitions:

* the 4D (conv) partition, stages 1-2 and the first blocks of stages 3-4:
  ``x + LS(FFN(x))`` with the **unified FFN** (:class:`FFN`): 1x1 conv, a 3x3 depthwise conv
  (the local token mixer, folded into the FFN, Sec. 3.1), 1x1 conv;
* the 3D (attention) partition, the last blocks of stages 3-4: ``x + LS(Attention(x))`` first.

The attention (:class:`Attention4D`, Sec. 3.3-3.5) adds to plain multi-head attention:

* **local bias on V**: a 3x3 depthwise conv of V is added to the attention output;
* **talking heads**: 1x1 convs that mix the heads' score maps before and after the softmax;
* a learned **attention bias** per head and relative offset ``(|dy|, |dx|)``;
* **stride attention** (stage 3, 14x14): Q, K, V are computed on a map downsampled by a
  stride-2 depthwise conv (7x7: 4x fewer tokens, 16x fewer score entries) and the output is
  upsampled back (bilinear);
* **attention downsampling** (:class:`Attention4DDownsample`, between stages 3 and 4): queries
  from a pooled + strided-conv map (local and global), keys and values at full resolution.

Every block is built from :class:`course.blocks.conv.ConvBN` / :class:`~course.blocks.conv.ConvBNAct`
(here with a conv bias before the BatchNorm, as in the released weights) and
:class:`course.blocks.metaformer.LayerScale`.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from course.blocks.conv import ConvBN, ConvBNAct
from course.blocks.metaformer import LayerScale
from course.checks import require_positive

__all__ = [
    "Attention4D",
    "Attention4DDownsample",
    "EfficientFormerV2Block",
    "EfficientFormerV2Downsample",
    "FFN",
    "LocalGlobalQuery",
    "attention_bias_index",
]


def attention_bias_index(resolution: int, query_step: int = 1) -> torch.Tensor:
    """Index of the learned bias of every (query, key) pair on a ``resolution x resolution`` map.

    Key ``j`` at ``(y_j, x_j)`` and query ``i`` at ``(y_i, x_i)`` (queries on every
    ``query_step``-th pixel of the same map) share the bias entry ``|y_i - y_j|·resolution +
    |x_i - x_j|``: one learned value per head and absolute offset (``resolution²`` of them),
    as in LeViT and EfficientFormer.

    Returns:
        ``(T_q, T)`` long tensor, ``T = resolution²``, ``T_q = ceil(resolution / query_step)²``.
    """
    ys, xs = torch.meshgrid(torch.arange(resolution), torch.arange(resolution), indexing="ij")
    k_pos = torch.stack([ys.flatten(), xs.flatten()])  # (2, T)
    q = torch.arange(0, resolution, query_step)
    qy, qx = torch.meshgrid(q, q, indexing="ij")
    q_pos = torch.stack([qy.flatten(), qx.flatten()])  # (2, T_q)
    offset = (q_pos[:, :, None] - k_pos[:, None, :]).abs()  # (2, T_q, T)
    return offset[0] * resolution + offset[1]


class FFN(nn.Module):
    """The unified FFN: ``1x1 (C -> hidden) -> 3x3 depthwise -> 1x1 (hidden -> C)`` (Sec. 3.1).

    Each conv has a bias and a BatchNorm; GELU after the first two. The depthwise conv is
    EfficientFormerV2's only local token mixer in the 4D partition.
    MACs on ``(B, C, H, W)``: ``H·W·(2·C·hidden + 9·hidden)``.
    """

    def __init__(
        self,
        dim: int,
        hidden: int,
        act: type = nn.GELU,
    ):
        super().__init__()
        self.fc1 = ConvBNAct(dim, hidden, 1, act=act, bias=True)
        self.mid = ConvBNAct(hidden, hidden, 3, groups=hidden, act=act, bias=True)
        self.fc2 = ConvBN(hidden, dim, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        return self.fc2(self.mid(self.fc1(x)))  # (B, hidden, H, W) -> (B, C, H, W)


class Attention4D(nn.Module):
    """Multi-head attention on a ``(B, C, H, W)`` map, with local V, talking heads and bias.

    With ``heads`` heads of key width ``key_dim`` and value width ``d = attn_ratio·key_dim``
    (``D = heads·d``), on the ``T = h·w`` tokens of the (strided) map::

        Q, K = BN(1x1 conv(x)) -> (B, heads, T, key_dim)   V = BN(1x1 conv(x)) -> (B, D, h, w)
        A = talking_head2(softmax(talking_head1(Q Kᵀ / sqrt(key_dim) + bias)))
        out = proj(GELU(A V + local(V)))          local = BN(3x3 depthwise conv), proj: D -> C

    With ``stride`` (stage 3), a ``3x3`` depthwise conv (stride ``stride``) shrinks the map
    first and the output is upsampled back (bilinear): ``stride²`` fewer tokens, ``stride⁴``
    fewer score entries.

    Args:
        dim: C, channels in and out.
        heads: attention heads (8 in EfficientFormerV2).
        key_dim: Q and K width per head (32).
        attn_ratio: V width per head / ``key_dim`` (4).
        resolution: the map size the attention bias is learned for (after ``stride``: the
            bias covers ``ceil(resolution / stride)²`` tokens).
        stride: ``None`` or the stride of the downsampling depthwise conv.

    Input and output ``(B, C, resolution, resolution)``; another size raises ``ValueError``
    (the learned bias is tied to the token grid).
    """

    def __init__(
        self,
        dim: int,
        heads: int = 8,
        key_dim: int = 32,
        attn_ratio: int = 4,
        resolution: int = 7,
        stride: Optional[int] = None,
    ):
        super().__init__()
        require_positive(dim=dim, heads=heads, key_dim=key_dim, attn_ratio=attn_ratio, resolution=resolution)
        if stride is not None and (not isinstance(stride, int) or stride < 2):
            raise ValueError(f"stride must be None or an integer >= 2, got {stride!r}")
        self.heads, self.key_dim, self.scale = heads, key_dim, key_dim ** -0.5
        self.d = attn_ratio * key_dim  # value width per head
        D = self.d * heads
        self.stride = stride
        self.input_resolution = resolution
        self.resolution = math.ceil(resolution / stride) if stride else resolution
        self.stride_conv = ConvBN(dim, dim, 3, stride, groups=dim, bias=True) if stride else None
        self.q = ConvBN(dim, heads * key_dim, 1, bias=True)
        self.k = ConvBN(dim, heads * key_dim, 1, bias=True)
        self.v = ConvBN(dim, D, 1, bias=True)
        self.v_local = ConvBN(D, D, 3, groups=D, bias=True)
        self.talking_head1 = nn.Conv2d(heads, heads, 1)
        self.talking_head2 = nn.Conv2d(heads, heads, 1)
        self.act = nn.GELU()
        self.proj = ConvBN(D, dim, 1, bias=True)
        T = self.resolution ** 2
        self.attention_biases = nn.Parameter(torch.zeros(heads, T))
        self.register_buffer("bias_index", attention_bias_index(self.resolution), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        if (H, W) != (self.input_resolution,) * 2:
            raise ValueError(f"this attention was built for a {self.input_resolution} x {self.input_resolution} map, "
                             f"got {H} x {W}")
        if self.stride_conv is not None:
            x = self.stride_conv(x)  # (B, C, h, w), h = H / stride
        h = w = self.resolution
        T = h * w
        q = self.q(x).reshape(B, self.heads, self.key_dim, T).transpose(2, 3)  # (B, heads, T, key_dim)
        k = self.k(x).reshape(B, self.heads, self.key_dim, T)  # (B, heads, key_dim, T)
        v = self.v(x)  # (B, D, h, w)
        v_local = self.v_local(v)  # (B, D, h, w): the local bias on V
        v = v.reshape(B, self.heads, self.d, T).transpose(2, 3)  # (B, heads, T, d)
        scores = (q @ k) * self.scale + self.attention_biases[:, self.bias_index]  # (B, heads, T, T)
        attn = self.talking_head2(self.talking_head1(scores).softmax(dim=-1))  # heads mixed, (B, heads, T, T)
        x = (attn @ v).transpose(2, 3).reshape(B, self.heads * self.d, h, w) + v_local  # (B, D, h, w)
        if self.stride is not None:
            x = F.interpolate(x, scale_factor=self.stride, mode="bilinear", align_corners=False)  # (B, D, H, W)
        return self.proj(self.act(x))  # (B, C, H, W)


class LocalGlobalQuery(nn.Module):
    """The downsampling attention's queries: ``proj(local(x) + pool(x))``, at stride 2.

    ``local`` is a 3x3 depthwise conv (stride 2, with bias), ``pool`` takes every other pixel
    (``AvgPool2d(1, 2)``), ``proj`` a 1x1 conv + BatchNorm to ``M`` channels.
    """

    def __init__(
        self,
        N: int,
        M: int,
    ):
        super().__init__()
        self.pool = nn.AvgPool2d(1, 2, 0)
        self.local = nn.Conv2d(N, N, 3, 2, 1, groups=N)
        self.proj = ConvBN(N, M, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, H, W) -> (B, M, H/2, W/2)
        return self.proj(self.local(x) + self.pool(x))


class Attention4DDownsample(nn.Module):
    """Attention that halves the map (Sec. 3.5): queries at stride 2, keys and values at full size.

    Each of the ``ceil(H/2)²`` queries attends to all ``H²`` keys; the output is
    ``proj(GELU(A V + local(V)))`` where ``local`` is a stride-2 depthwise conv of V.
    Widths: ``key_dim = 16``, ``d = attn_ratio·key_dim`` per head (64), ``heads = 8``.
    ``(B, dim, H, H) -> (B, out_dim, ceil(H/2), ceil(H/2))`` with ``H = resolution``.
    """

    def __init__(
        self,
        dim: int,
        out_dim: int,
        heads: int = 8,
        key_dim: int = 16,
        attn_ratio: int = 4,
        resolution: int = 14,
    ):
        super().__init__()
        require_positive(dim=dim, heads=heads, key_dim=key_dim, attn_ratio=attn_ratio, resolution=resolution)
        self.heads, self.key_dim, self.scale = heads, key_dim, key_dim ** -0.5
        self.d = attn_ratio * key_dim
        D = self.d * heads
        self.resolution = resolution
        self.out_resolution = math.ceil(resolution / 2)
        self.q = LocalGlobalQuery(dim, heads * key_dim)
        self.k = ConvBN(dim, heads * key_dim, 1, bias=True)
        self.v = ConvBN(dim, D, 1, bias=True)
        self.v_local = ConvBN(D, D, 3, 2, groups=D, bias=True)
        self.act = nn.GELU()
        self.proj = ConvBN(D, out_dim, 1, bias=True)
        self.attention_biases = nn.Parameter(torch.zeros(heads, resolution ** 2))
        self.register_buffer("bias_index", attention_bias_index(resolution, query_step=2), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        if (H, W) != (self.resolution,) * 2:
            raise ValueError(f"this attention was built for a {self.resolution} x {self.resolution} map, got {H} x {W}")
        T, Tq = H * W, self.out_resolution ** 2
        q = self.q(x).reshape(B, self.heads, self.key_dim, Tq).transpose(2, 3)  # (B, heads, Tq, key_dim)
        k = self.k(x).reshape(B, self.heads, self.key_dim, T)  # (B, heads, key_dim, T)
        v = self.v(x)  # (B, D, H, W)
        v_local = self.v_local(v)  # (B, D, H/2, W/2)
        v = v.reshape(B, self.heads, self.d, T).transpose(2, 3)  # (B, heads, T, d)
        scores = (q @ k) * self.scale + self.attention_biases[:, self.bias_index]  # (B, heads, Tq, T)
        x = (scores.softmax(dim=-1) @ v).transpose(2, 3)  # (B, heads, d, Tq)
        x = x.reshape(B, self.heads * self.d, self.out_resolution, self.out_resolution) + v_local
        return self.proj(self.act(x))  # (B, out_dim, H/2, W/2)


class EfficientFormerV2Block(nn.Module):
    """``x + LS(Attention4D(x))`` (3D partition only), then ``x + LS(FFN(x))`` on a ``(B, C, H, W)`` map.

    ``attention=None`` gives the 4D (conv) block: the FFN's depthwise conv is its token mixer.

    Args:
        dim: C.
        mlp_ratio: FFN hidden width / C (3 or 4, searched per block).
        attention: an :class:`Attention4D`, or ``None``.
        layer_scale: LayerScale initial value (1e-5).
    """

    def __init__(
        self,
        dim: int,
        mlp_ratio: float = 4.0,
        attention: Optional[nn.Module] = None,
        layer_scale: float = 1e-5,
    ):
        super().__init__()
        self.token_mixer = attention
        self.ls1 = LayerScale(dim, layer_scale) if attention is not None else None
        self.mlp = FFN(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim, layer_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        if self.token_mixer is not None:
            x = x + self.ls1(self.token_mixer(x))
        return x + self.ls2(self.mlp(x))


class EfficientFormerV2Downsample(nn.Module):
    """Between stages: a 3x3 stride-2 conv + BN, plus (before the last stage) :class:`Attention4DDownsample`.

    ``(B, N, H, H) -> (B, M, ceil(H/2), ceil(H/2))``; with attention the two paths are summed
    (the "dual-path" downsampling of Sec. 3.5).
    """

    def __init__(
        self,
        N: int,
        M: int,
        resolution: int,
        attention: bool = False,
    ):
        super().__init__()
        self.conv = ConvBN(N, M, 3, 2, bias=True)
        self.attn = Attention4DDownsample(N, M, resolution=resolution) if attention else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return out + self.attn(x) if self.attn is not None else out

