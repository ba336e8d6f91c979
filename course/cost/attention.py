"""Closed-form costs of attention and of the other token mixers (Chapters 5 and 6).

Symbols: ``h, w`` the feature map in tokens, ``T = h·w``, ``C`` the embedding dim, ``M`` the
window (``window`` in code), ``R`` the spatial-reduction ratio, ``P`` PVTv2's pooled size,
``B`` the batch. Each function returns a :class:`~course.cost.formulas.Cost` with ``macs``,
``params``, ``activations`` (output elements) and ``out_shape`` filled; the MACs and
parameters agree exactly with :func:`course.cost.count` on the modules of
:mod:`course.blocks.attention` and :mod:`course.blocks.metaformer` (see the tests).

The shapes (``out_shape``) follow the module: ``(B, T, C)`` for the attention modules of
Chapter 5, ``(B, C, h, w)`` for the MetaFormer mixers of Chapter 6.
"""

from __future__ import annotations

import math
from typing import Tuple

from course.checks import require_divides, require_positive
from course.cost.formulas import Cost
from course.mixers import MIXER_NAMES, check_mixer_name

__all__ = [
    "attention_scores_bytes",
    "global_attention",
    "linear_spatial_reduction_attention",
    "mixer",
    "MIXER_NAMES",
    "spatial_reduction_attention",
    "window_attention",
    "window_padding",
]


def _linear_params(n: int, m: int, bias: bool = True) -> int:
    return n * m + (m if bias else 0)


def global_attention(h: int, w: int, C: int, heads: int = 1, qkv_bias: bool = True, batch: int = 1) -> Cost:
    """Multi-head self-attention over all ``T = h·w`` tokens (:class:`~course.blocks.attention.Attention`).

    * MACs ``= B · (4·T·C² + 2·T²·C)``: ``3·T·C²`` for Q, K, V, ``T²·C`` for ``Q Kᵀ``, ``T²·C``
      for ``A V``, ``T·C²`` for the output projection. ``heads`` does not change the MACs.
    * params ``= 4·C² + 4·C`` (``3C`` qkv bias when ``qkv_bias``, ``C`` projection bias).
    """
    require_positive(h=h, w=w, C=C, batch=batch)
    require_divides("heads", heads, C=C)
    T = h * w
    return Cost(
        macs=batch * (4 * T * C * C + 2 * T * T * C),
        params=_linear_params(C, 3 * C, qkv_bias) + _linear_params(C, C),
        activations=batch * T * C,
        out_shape=(batch, T, C),
    )


def window_padding(h: int, w: int, window: int) -> Tuple[int, int, int, int]:
    """``(M_h, M_w, H_p, W_p)``: the window used on an ``h x w`` map and the padded map size.

    The window shrinks to the map on an axis no larger than it (``M_h = min(M, h)``); the map
    is zero-padded to the next multiple of the window: ``H_p = ceil(h / M_h) · M_h``.
    """
    Mh, Mw = min(window, h), min(window, w)
    return Mh, Mw, math.ceil(h / Mh) * Mh, math.ceil(w / Mw) * Mw


def window_attention(h: int, w: int, C: int, heads: int = 1, window: int = 7, qkv_bias: bool = True,
                     batch: int = 1) -> Cost:
    """(Shifted-)window attention (:class:`~course.blocks.attention.WindowAttention` on a map).

    On the padded map ``H_p x W_p`` (see :func:`window_padding`), every token attends to the
    ``M² = M_h·M_w`` tokens of its window (Liu et al. 2021, Eq. 2):

    * MACs ``= B · (4·H_p·W_p·C² + 2·M²·H_p·W_p·C)``: linear in the number of tokens.
    * params ``= 4·C² + 4·C + (2M - 1)²·heads`` (the relative position bias table).

    The shift changes neither: it only moves tokens and adds a mask.
    """
    require_positive(h=h, w=w, C=C, window=window, batch=batch)
    require_divides("heads", heads, C=C)
    Mh, Mw, Hp, Wp = window_padding(h, w, window)
    tokens = Hp * Wp
    return Cost(
        macs=batch * (4 * tokens * C * C + 2 * Mh * Mw * tokens * C),
        params=_linear_params(C, 3 * C, qkv_bias) + _linear_params(C, C) + (2 * window - 1) ** 2 * heads,
        activations=batch * h * w * C,
        out_shape=(batch, h * w, C),
    )


def spatial_reduction_attention(h: int, w: int, C: int, heads: int = 1, sr_ratio: int = 1,
                                qkv_bias: bool = True, batch: int = 1) -> Cost:
    """PVT's spatial-reduction attention (:class:`~course.blocks.attention.SpatialReductionAttention`).

    K and V come from ``h'·w'`` tokens, ``h' = floor(h/R)``, ``w' = floor(w/R)`` (``R = 1``:
    ``h' = h``, no conv):

    * MACs ``= B · (2·T·C² + h'w'·R²·C² + 2·h'w'·C² + 2·T·h'w'·C)``: Q and output projections,
      the ``R x R`` stride-``R`` conv, the K, V projections, ``Q Kᵀ`` and ``A V``. With
      ``h'w' = T/R²``: ``2TC² + TC² + 2TC²/R² + 2T²C/R²``.
    * params ``= 4·C² + 4·C`` ``(+ R²·C² + C`` conv ``+ 2·C`` LayerNorm when ``R > 1)``.

    Raises:
        ValueError: when ``R`` is larger than the map (no token left for K and V).
    """
    require_positive(h=h, w=w, C=C, sr_ratio=sr_ratio, batch=batch)
    require_divides("heads", heads, C=C)
    if sr_ratio > min(h, w):
        raise ValueError(f"sr_ratio={sr_ratio} is larger than the {h} x {w} map: no token left for K and V")
    T = h * w
    reduced = (h // sr_ratio) * (w // sr_ratio)
    macs = 2 * T * C * C + 2 * reduced * C * C + 2 * T * reduced * C
    params = _linear_params(C, C, qkv_bias) + _linear_params(C, 2 * C, qkv_bias) + _linear_params(C, C)
    if sr_ratio > 1:
        macs += reduced * sr_ratio * sr_ratio * C * C
        params += sr_ratio * sr_ratio * C * C + C + 2 * C
    return Cost(macs=batch * macs, params=params, activations=batch * T * C, out_shape=(batch, T, C))


def linear_spatial_reduction_attention(h: int, w: int, C: int, heads: int = 1, pool_size: int = 7,
                                       qkv_bias: bool = True, batch: int = 1) -> Cost:
    """PVTv2's linear SRA: K, V from the map average-pooled to ``P x P``.

    * MACs ``= B · (2·T·C² + P²·C² + 2·P²·C² + 2·T·P²·C)``: Q and output, the 1x1 conv, K and
      V, and the attention, which is linear in ``T``.
    * params ``= 4·C² + 4·C + C² + C`` (1x1 conv) ``+ 2·C`` (LayerNorm).
    """
    require_positive(h=h, w=w, C=C, heads=heads, pool_size=pool_size, batch=batch)
    T, P2 = h * w, pool_size * pool_size
    macs = 2 * T * C * C + P2 * C * C + 2 * P2 * C * C + 2 * T * P2 * C
    params = _linear_params(C, C, qkv_bias) + _linear_params(C, 2 * C, qkv_bias) + _linear_params(C, C) + C * C + C + 2 * C
    return Cost(macs=batch * macs, params=params, activations=batch * T * C, out_shape=(batch, T, C))


def attention_scores_bytes(queries: int, keys: int, heads: int, batch: int = 1, bytes_per_element: int = 4) -> int:
    """Bytes of one ``(B, heads, L, S)`` score matrix ``Q Kᵀ``: ``B·heads·L·S·bytes``.

    The unfused attention keeps it (and its softmax) in memory: at ViT-B/16 on a 1280 x 1280
    input (6400 tokens, 12 heads) one block's scores take ``12 · 6400² · 4`` bytes, about 2 GB.
    """
    require_positive(queries=queries, keys=keys, heads=heads, batch=batch)
    return batch * heads * queries * keys * bytes_per_element


def mixer(name: str, h: int, w: int, C: int, heads: int = 1, sr_ratio: int = 1, window: int = 7,
          kernel: int = 7, batch: int = 1) -> Cost:
    """Cost of the MetaFormer token mixer ``name`` (one of :data:`course.mixers.MIXER_NAMES`)
    on a ``(B, C, h, w)`` map.

    ================  ==========================================  =======================
    name              MACs                                        params
    ================  ==========================================  =======================
    ``attention``     ``4·T·C² + 2·T²·C``                         ``4C² + 4C``
    ``window``        ``4·H_p·W_p·C² + 2·M²·H_p·W_p·C``           ``+ (2M-1)²·heads``
    ``sra``           see :func:`spatial_reduction_attention`
    ``pool``          0 (``9·T·C`` additions)                     0
    ``spatial_mlp``   ``T²·C``                                    ``T² + T``
    ``shift``         0                                           0
    ``dwconv``        ``K²·T·C``                                  ``K²·C + C``
    ``identity``      0                                           0
    ================  ==========================================  =======================
    """
    check_mixer_name(name)
    require_positive(h=h, w=w, C=C, batch=batch)
    T = h * w
    shape = (batch, C, h, w)
    if name == "attention":
        cost = global_attention(h, w, C, heads, batch=batch)
    elif name == "window":
        cost = window_attention(h, w, C, heads, window, batch=batch)
    elif name == "sra":
        cost = spatial_reduction_attention(h, w, C, heads, sr_ratio, batch=batch)
    elif name in ("pool", "shift", "identity"):
        cost = Cost()
    elif name == "spatial_mlp":
        cost = Cost(macs=batch * C * T * T, params=T * T + T)
    else:  # "dwconv"
        cost = Cost(macs=batch * kernel * kernel * T * C, params=kernel * kernel * C + C)
    return Cost(macs=cost.macs, params=cost.params, activations=batch * T * C, out_shape=shape)
