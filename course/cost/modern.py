"""Closed-form costs of the 2023-2024 mobile blocks: the UIB, ReLU linear attention, Mobile MQA.

Each function returns a :class:`~course.cost.formulas.Cost` whose ``macs`` and ``params`` equal
what :func:`course.cost.count` charges the matching module of :mod:`course.blocks.uib` or
:mod:`course.blocks.linear_attention` (tested); ``activations`` is the block's output size and
``out_shape`` its output shape. BatchNorm, activations and the layer scale are element-wise
work: no MACs, but parameters (``2·C`` per BatchNorm, ``C`` per layer scale).

Symbols: ``H, W`` the input map (``T = H·W`` tokens), ``N``/``M`` in/out channels, ``C`` the
width of an attention block, ``K`` kernels, ``B`` the batch.
"""

from __future__ import annotations

import math
from typing import Dict, List, Sequence

from course.checks import check_lite_mla, check_mobile_mqa, check_uib, require_positive
from course.cost.attention import global_attention
from course.cost.formulas import Cost, conv2d, conv_output_size

__all__ = [
    "attention_vs_resolution",
    "mobile_mqa",
    "mobile_mqa_block",
    "relu_linear_attention",
    "uib",
    "uib_variants",
]


def _conv(H: int, W: int, N: int, M: int, K: int, stride: int = 1, groups: int = 1, batch: int = 1) -> Cost:
    """A bias-free conv + BatchNorm (:class:`course.blocks.conv.ConvBN`): the conv's MACs, its
    parameters and the BatchNorm's ``2·M``."""
    c = conv2d(H, W, N, M, K, stride=stride, padding=K // 2, groups=groups, bias=False, batch=batch)
    return Cost(macs=c.macs, params=c.params + 2 * M, activations=c.activations, out_shape=c.out_shape)


def uib(
    H: int,
    W: int,
    N: int,
    M: int,
    start_K: int = 0,
    mid_K: int = 3,
    stride: int = 1,
    expansion: float = 4.0,
    layer_scale: bool = False,
    batch: int = 1,
) -> Cost:
    """Cost of :class:`course.blocks.uib.UniversalInvertedBottleneck` on ``(B, N, H, W)``.

    With ``mid = make_divisible(N·expansion)`` (:func:`course.checks.check_uib`, as the block);
    ``H₁`` the size after the start conv (strided only when there is no middle conv), ``H'`` the
    output size::

        MACs   = B·[ H₁W₁·start_K²·N     (start depthwise, when start_K > 0)
                   + H₁W₁·N·mid          (1x1 expand)
                   + H'W'·mid_K²·mid     (middle depthwise, when mid_K > 0)
                   + H'W'·mid·M ]        (1x1 project)
        params = start_K²·N + 2N  +  N·mid + 2·mid  +  mid_K²·mid + 2·mid  +  mid·M + 2M  (+ M layer scale)

    The depthwise convs cost ``K²`` MACs per element, the 1x1 convs ``N`` or ``mid``: on
    ``N·e`` channels the middle conv is ``e`` times dearer than the same conv at the start
    (which is why ConvNeXt-like blocks put it there).
    """
    require_positive(H=H, W=W, batch=batch)
    mid = check_uib(N, M, start_K, mid_K, stride, expansion)
    cost, h, w = Cost(), H, W
    if start_K:
        start = _conv(h, w, N, N, start_K, 1 if mid_K else stride, groups=N, batch=batch)
        cost, (h, w) = cost + start, start.out_shape[2:]
    cost = cost + _conv(h, w, N, mid, 1, batch=batch)
    if mid_K:
        middle = _conv(h, w, mid, mid, mid_K, stride, groups=mid, batch=batch)
        cost, (h, w) = cost + middle, middle.out_shape[2:]
    cost = cost + _conv(h, w, mid, M, 1, batch=batch)
    params = cost.params + (M if layer_scale else 0)
    return Cost(macs=cost.macs, params=params, activations=batch * M * h * w, out_shape=(batch, M, h, w))


def uib_variants(H: int, W: int, N: int, M: int, K: int = 3, stride: int = 1, expansion: float = 4.0,
                 batch: int = 1) -> Dict[str, Cost]:
    """The four UIB variants with kernel ``K`` (ExtraDW: ``K`` for both depthwise convs):
    ``{"inverted_bottleneck", "convnext", "ffn", "extra_dw"} -> Cost``. The FFN has no
    depthwise conv to stride, so it is only defined (and only returned) for ``stride == 1``."""
    kernels = {"inverted_bottleneck": (0, K), "convnext": (K, 0), "ffn": (0, 0), "extra_dw": (K, K)}
    return {name: uib(H, W, N, M, s, m, stride, expansion, batch=batch)
            for name, (s, m) in kernels.items() if stride == 1 or s or m}


def relu_linear_attention(h: int, w: int, C: int, heads: int, scales: Sequence[int] = (5,), batch: int = 1) -> Cost:
    """Cost of :class:`course.blocks.linear_attention.LiteMLA` (EfficientViT) on ``(B, C, h, w)``.

    With ``T = h·w``, ``d = C / heads``, ``D = heads·d = C``, ``S = len(scales)``::

        MACs   = B·[ T·C·3D                          (qkv 1x1 conv)
                   + Σ_s T·3D·(s² + d)               (aggregation: s x s depthwise, per-head 1x1)
                   + 2·heads·(1+S)·T·d·(d+1)         (ReLU(K)ᵀ[V 1] and ReLU(Q)·that)
                   + T·D·(1+S)·C ]                   (projection)
        params = 3·C·D + Σ_s 3D·(s² + d) + D·(1+S)·C + 2C

    Every term is proportional to ``T``: doubling the resolution's side multiplies the cost by
    four, exactly, where softmax attention's ``T²`` term multiplies by sixteen.
    """
    require_positive(h=h, w=w, batch=batch)
    check_lite_mla(C, heads, scales)
    T, d, S = h * w, C // heads, len(scales)
    D = heads * d
    macs = T * C * 3 * D + 2 * heads * (1 + S) * T * d * (d + 1) + T * D * (1 + S) * C
    params = 3 * C * D + D * (1 + S) * C + 2 * C
    for s in scales:
        macs += T * 3 * D * (s * s + d)
        params += 3 * D * (s * s + d)
    return Cost(macs=batch * macs, params=params, activations=batch * C * T, out_shape=(batch, C, h, w))


def mobile_mqa(h: int, w: int, C: int, heads: int = 4, key_dim: int = 64, value_dim: int = 64, kv_stride: int = 1,
               dw_K: int = 3, out_dim: int = 0, batch: int = 1) -> Cost:
    """Cost of :class:`course.blocks.uib.MobileMQA` (multi-query attention) on ``(B, C, h, w)``.

    With ``T = h·w`` queries and ``S = h'·w'`` keys (``h' = ceil(h / kv_stride)``)::

        MACs   = B·[ T·C·heads·key_dim                     (queries: one per head)
                   + 2·S·dw_K²·C                           (strided depthwise convs, when kv_stride > 1)
                   + S·C·(key_dim + value_dim)             (ONE key and ONE value, shared by all heads)
                   + heads·T·S·(key_dim + value_dim)       (scores and weighted sum)
                   + T·heads·value_dim·C_out ]             (output)
        params = C·heads·key_dim + C·(key_dim + value_dim) + heads·value_dim·C_out
                 (+ 2·(dw_K²·C + 2C) for the strided convs and their BatchNorms)

    Multi-head attention would pay ``heads`` times the K and V terms; multi-query pays them once.
    """
    require_positive(h=h, w=w, batch=batch)
    check_mobile_mqa(C, heads, key_dim, value_dim, kv_stride, dw_K)
    out_dim = out_dim or C
    T = h * w
    hs, ws = (conv_output_size(h, dw_K, kv_stride, dw_K // 2), conv_output_size(w, dw_K, kv_stride, dw_K // 2)) \
        if kv_stride > 1 else (h, w)
    S = hs * ws
    macs = T * C * heads * key_dim + S * C * (key_dim + value_dim) + heads * T * S * (key_dim + value_dim) \
        + T * heads * value_dim * out_dim
    params = C * heads * key_dim + C * (key_dim + value_dim) + heads * value_dim * out_dim
    if kv_stride > 1:
        macs += 2 * S * dw_K * dw_K * C
        params += 2 * (dw_K * dw_K * C + 2 * C)
    return Cost(macs=batch * macs, params=params, activations=batch * out_dim * T, out_shape=(batch, out_dim, h, w))


def mobile_mqa_block(h: int, w: int, C: int, heads: int = 4, key_dim: int = 64, value_dim: int = 64,
                     kv_stride: int = 1, dw_K: int = 3, layer_scale: bool = True, batch: int = 1) -> Cost:
    """Cost of :class:`course.blocks.uib.MobileMQABlock`: :func:`mobile_mqa` plus the BatchNorm
    before it (``2C`` params) and the layer scale (``C``); no extra MACs."""
    cost = mobile_mqa(h, w, C, heads, key_dim, value_dim, kv_stride, dw_K, batch=batch)
    return Cost(macs=cost.macs, params=cost.params + 2 * C + (C if layer_scale else 0),
                activations=cost.activations, out_shape=cost.out_shape)


def attention_vs_resolution(resolutions: Sequence[int], C: int, heads: int, stride: int = 16,
                            scales: Sequence[int] = (5,)) -> List[dict]:
    """MACs of softmax attention (:func:`course.cost.attention.global_attention`) and ReLU linear
    attention (:func:`relu_linear_attention`) with width ``C`` on the ``(r / stride)²`` tokens of
    an ``r x r`` input, for each ``r`` in ``resolutions``.

    Returns rows ``{"resolution", "tokens", "softmax_macs", "linear_macs"}``: the first grows as
    ``T²`` for large ``T``, the second as ``T``.
    """
    rows = []
    for r in resolutions:
        require_positive(resolution=r, stride=stride)
        side = math.ceil(r / stride)
        rows.append({
            "resolution": r,
            "tokens": side * side,
            "softmax_macs": global_attention(side, side, C, heads).macs,
            "linear_macs": relu_linear_attention(side, side, C, heads, scales).macs,
        })
    return rows
