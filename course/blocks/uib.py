"""MobileNetV4's blocks: the Universal Inverted Bottleneck and Mobile MQA.

Qin, Leichner, Delakis, Fornoni, Luo, Yang, Wang, Banbury, Ye, Akin, Aggarwal, Zhu, Moro,
Howard, "MobileNetV4: Universal Models for the Mobile Ecosystem", ECCV 2024 (arXiv:2404.10518),
Sec. 3 and Fig. 4.

**The Universal Inverted Bottleneck (UIB)** (:class:`UniversalInvertedBottleneck`) is one block
with two *optional* depthwise convs around MobileNetV2's expand / project pair::

    [depthwise start_K] -> 1x1 expand (act) -> [depthwise mid_K (act)] -> 1x1 project (+ x)

The two switches give four blocks the literature knew under four names:

=====================  ===========  =========  ==========================================
variant                ``start_K``  ``mid_K``  what it is
=====================  ===========  =========  ==========================================
inverted bottleneck    0            K          MobileNetV2's block (spatial mixing on the
                                               expanded width)
ConvNeXt-like          K            0          spatial mixing *before* the expansion
                                               (cheap: on N channels, not N·e)
FFN                    0            0          two 1x1 convs: the transformer's MLP
ExtraDW                K1           K2         both: a deeper receptive field for little cost
=====================  ===========  =========  ==========================================

The stride (when 2) sits on the middle depthwise conv, else on the first (MobileNetV4 never
strides an FFN). The start conv has no activation (BN only); the expansion and the middle
conv have one; the projection is linear. With ``layer_scale`` (the hybrid models) the output is
scaled per channel before the residual add.

**Mobile MQA** (:class:`MobileMQA`, :class:`MobileMQABlock`): multi-*query* attention (Shazeer,
"Fast Transformer Decoding: One Write-Head is All You Need", 2019): every head has its own
queries but all heads share **one** key and one value projection, so K and V cost ``1/heads``
of multi-head attention's and the memory traffic of the attention falls with them, which is
what mobile accelerators are bound by. Optionally (``kv_stride = 2``, the "spatial reduction"
of Sec. 3.2) K and V come from a map shrunk by a stride-2 depthwise conv: 4x fewer keys.

Also here: :class:`FusedInvertedBottleneck` (MobileNetV4's FusedIB, EfficientNetV2's
Fused-MBConv): a full ``K x K`` conv that expands, then a 1x1 projection.

Closed-form costs: :mod:`course.cost.modern` (``uib``, ``mobile_mqa``).
"""

from __future__ import annotations

from typing import Optional, Type

import torch
from torch import nn

from course.blocks.attention import attend
from course.blocks.conv import ConvBN, ConvBNAct
from course.blocks.metaformer import LayerScale
from course.checks import check_mobile_mqa, check_uib, make_divisible, require_positive_number

__all__ = [
    "FusedInvertedBottleneck",
    "MobileMQA",
    "MobileMQABlock",
    "UIB_VARIANTS",
    "UniversalInvertedBottleneck",
    "uib_variant",
]

#: The four UIB variants: name -> (start depthwise present, middle depthwise present).
UIB_VARIANTS = {
    "inverted_bottleneck": (False, True),
    "convnext": (True, False),
    "ffn": (False, False),
    "extra_dw": (True, True),
}


def uib_variant(start_K: int, mid_K: int) -> str:
    """The name of the UIB with these depthwise kernels (0 = absent): ``"extra_dw"``, ...

    >>> uib_variant(0, 3), uib_variant(5, 0), uib_variant(0, 0), uib_variant(3, 5)
    ('inverted_bottleneck', 'convnext', 'ffn', 'extra_dw')
    """
    present = (bool(start_K), bool(mid_K))
    return next(name for name, flags in UIB_VARIANTS.items() if flags == present)


class UniversalInvertedBottleneck(nn.Module):
    """The UIB: ``[dw start_K] -> 1x1 expand -> [dw mid_K] -> 1x1 project (-> LS) (+ x)``.

    Shapes: ``(B, N, H, W) -> (B, M, H', W')``. With ``mid = make_divisible(N·expansion, 8)``
    and ``H' W'`` after the stride:

    * MACs ``= H·W·start_K²·N`` (start, at the input's or strided size) ``+ H·W·N·mid`` (expand)
      ``+ H'·W'·mid_K²·mid`` (middle) ``+ H'·W'·mid·M`` (project);
    * params: the same kernels (``start_K²·N + N·mid + mid_K²·mid + mid·M``), ``2·C`` per
      BatchNorm, ``M`` for the layer scale.

    Args:
        N, M: input and output channels.
        start_K: kernel of the depthwise conv before the expansion (0: none).
        mid_K: kernel of the depthwise conv after the expansion (0: none).
        stride: 1 or 2; on the middle conv if there is one, else on the start conv.
        expansion: ``mid / N`` (rounded to a multiple of 8, as MobileNets do).
        act: the activation class (``nn.ReLU`` in MobileNetV4 small and medium).
        layer_scale: initial LayerScale value, or ``None`` for none.

    Children: ``dw_start``, ``pw_exp``, ``dw_mid``, ``pw_proj`` (:class:`~course.blocks.conv.ConvBN`
    or :class:`~course.blocks.conv.ConvBNAct`, ``nn.Identity`` when absent) and ``layer_scale``;
    the names of the authors' code and timm.

    Raises:
        ValueError: naming the parameter (:func:`course.checks.check_uib`): an even or negative
            kernel, a stride other than 1 or 2, a stride with no depthwise conv to carry it, a
            non-positive expansion.
    """

    def __init__(
        self,
        N: int,
        M: int,
        start_K: int = 0,
        mid_K: int = 3,
        stride: int = 1,
        expansion: float = 4.0,
        act: Type[nn.Module] = nn.ReLU,
        layer_scale: Optional[float] = None,
    ):
        super().__init__()
        mid = check_uib(N, M, start_K, mid_K, stride, expansion)
        self.variant = uib_variant(start_K, mid_K)
        self.has_skip = stride == 1 and N == M
        start_stride = 1 if mid_K else stride
        self.dw_start = ConvBN(N, N, start_K, start_stride, groups=N) if start_K else nn.Identity()
        self.pw_exp = ConvBNAct(N, mid, 1, act=act)
        self.dw_mid = ConvBNAct(mid, mid, mid_K, stride, groups=mid, act=act) if mid_K else nn.Identity()
        self.pw_proj = ConvBN(mid, M, 1)
        self.layer_scale = LayerScale(M, layer_scale) if layer_scale is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, H, W)
        out = self.dw_start(x)  # (B, N, H or H', .): spatial mixing before expanding (ConvNeXt, ExtraDW)
        out = self.pw_exp(out)  # (B, mid, ...): expand
        out = self.dw_mid(out)  # (B, mid, H', W'): spatial mixing on the wide tensor (IB, ExtraDW)
        out = self.layer_scale(self.pw_proj(out))  # (B, M, H', W'): linear projection
        return out + x if self.has_skip else out


class FusedInvertedBottleneck(nn.Module):
    """FusedIB: a full ``K x K`` conv ``N -> N·e`` (BN, act) then a 1x1 projection (BN), ``+ x`` when shapes match.

    MACs ``H'·W'·(K²·N·mid + mid·M)``: dense, so it is only used early, where ``N`` is small
    (MobileNetV4 medium's 32 -> 48 block at 112x112, EfficientNetV2's early stages).
    Children ``expand`` and ``project``.
    """

    def __init__(self, N: int, M: int, K: int, stride: int, expansion: float = 4.0, act: Type[nn.Module] = nn.ReLU):
        super().__init__()
        require_positive_number(expansion=expansion)
        mid = make_divisible(N * expansion)
        self.has_skip = stride == 1 and N == M
        self.expand = ConvBNAct(N, mid, K, stride, act=act)
        self.project = ConvBN(mid, M, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.expand(x))  # (B, mid, H', W') -> (B, M, H', W')
        return out + x if self.has_skip else out


class MobileMQA(nn.Module):
    """Multi-query attention on a ``(B, C, H, W)`` map (MobileNetV4, Sec. 3.2).

    ``heads`` query projections, **one** key and one value projection shared by all heads::

        Q = 1x1 conv(x)                                  (B, heads, H·W, key_dim)
        K = 1x1 conv(BN(dw conv_s(x)))   V = likewise    (B, 1, h'·w', key_dim / value_dim)
        out = 1x1 conv(softmax(Q Kᵀ / sqrt(key_dim)) V)  (B, C_out, H, W)

    where ``dw conv_s`` is a ``dw_K x dw_K`` depthwise conv of stride ``kv_stride`` (with its
    BatchNorm) when ``kv_stride > 1`` and nothing otherwise; ``h' = ceil(H / kv_stride)``.
    No bias anywhere (as in the authors' code).

    MACs with ``T = H·W``, ``S = h'·w'``: ``T·C·heads·key_dim`` (Q) ``+ S·C·(key_dim + value_dim)``
    (K, V) ``[+ 2·S·dw_K²·C`` (the two strided dw convs)] ``+ heads·T·S·(key_dim + value_dim)``
    (scores and weighted sum) ``+ T·heads·value_dim·C_out`` (output).

    Args:
        dim: C, input channels.
        heads: number of query heads.
        key_dim, value_dim: widths of the (shared) key and value.
        kv_stride: 1, or the stride of the depthwise conv that shrinks K and V's map.
        dw_K: that conv's kernel.
        out_dim: output channels (default ``dim``).
        fused: use ``F.scaled_dot_product_attention`` (same numbers up to rounding).
    """

    def __init__(
        self,
        dim: int,
        heads: int = 4,
        key_dim: int = 64,
        value_dim: int = 64,
        kv_stride: int = 1,
        dw_K: int = 3,
        out_dim: Optional[int] = None,
        fused: bool = False,
    ):
        super().__init__()
        check_mobile_mqa(dim, heads, key_dim, value_dim, kv_stride, dw_K)
        out_dim = out_dim or dim
        self.heads, self.key_dim, self.value_dim, self.fused = heads, key_dim, value_dim, fused
        self.query = nn.Conv2d(dim, heads * key_dim, 1, bias=False)
        self.key_down = ConvBN(dim, dim, dw_K, kv_stride, groups=dim) if kv_stride > 1 else nn.Identity()
        self.key = nn.Conv2d(dim, key_dim, 1, bias=False)
        self.value_down = ConvBN(dim, dim, dw_K, kv_stride, groups=dim) if kv_stride > 1 else nn.Identity()
        self.value = nn.Conv2d(dim, value_dim, 1, bias=False)
        self.output = nn.Conv2d(heads * value_dim, out_dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        q = self.query(x).reshape(B, self.heads, self.key_dim, H * W).transpose(2, 3)  # (B, heads, T, key_dim)
        k = self.key(self.key_down(x)).flatten(2).transpose(1, 2).unsqueeze(1)  # (B, 1, S, key_dim): shared
        v = self.value(self.value_down(x)).flatten(2).transpose(1, 2).unsqueeze(1)  # (B, 1, S, value_dim)
        out = attend(q, k, v, fused=self.fused)  # (B, heads, T, value_dim): K and V broadcast over heads
        out = out.transpose(1, 2).reshape(B, H, W, self.heads * self.value_dim).permute(0, 3, 1, 2)
        return self.output(out)  # (B, out_dim, H, W)


class MobileMQABlock(nn.Module):
    """MobileNetV4's attention block: ``x + LS(MobileMQA(BN(x)))`` on a ``(B, C, H, W)`` map.

    Children ``norm`` (BatchNorm, no activation), ``attn`` (:class:`MobileMQA`), ``layer_scale``.
    """

    def __init__(
        self,
        dim: int,
        heads: int = 4,
        key_dim: int = 64,
        value_dim: int = 64,
        kv_stride: int = 1,
        dw_K: int = 3,
        layer_scale: Optional[float] = 1e-5,
        fused: bool = False,
    ):
        super().__init__()
        self.norm = nn.BatchNorm2d(dim)
        self.attn = MobileMQA(dim, heads, key_dim, value_dim, kv_stride, dw_K, fused=fused)
        self.layer_scale = LayerScale(dim, layer_scale) if layer_scale is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        return x + self.layer_scale(self.attn(self.norm(x)))
