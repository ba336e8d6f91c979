"""Closed-form costs of the ShuffleNet units, and ShuffleNet V2's memory access cost (MAC).

Unit costs follow the counter's conventions (:mod:`course.cost.counter`): MACs of the
convolutions; parameters of the convolutions and BatchNorms (weight and bias, 2 per channel);
``elementwise`` = BatchNorm 2 per element, ReLU and addition 1 per element, average pooling 9
per output element (a 3x3 window); ``activations`` = every output element an operator writes
(views such as the channel split write nothing; the shuffle's copy and the concat do).

Memory access cost (Ma et al., ECCV 2018, Sec. 2): a 1x1 convolution with ``c1`` input and
``c2`` output channels on an ``h x w`` feature map reads its input (``h w c1``) and its weights
(``c1 c2``) and writes its output (``h w c2``)::

    MAC = h w (c1 + c2) + c1 c2          FLOPs  B = h w c1 c2

For fixed ``B``, the AM-GM inequality ``c1 + c2 >= 2 sqrt(c1 c2)`` (equality at ``c1 = c2``)
gives the bound of guideline G1::

    MAC >= 2 sqrt(h w B) + B / (h w)

For a 1x1 group conv with ``g`` groups (guideline G2) the weights shrink to ``c1 c2 / g``, so
at fixed ``B = h w c1 c2 / g`` the MAC grows with ``g``::

    MAC = h w (c1 + c2) + c1 c2 / g = h w c1 + B g / c1 + B / (h w)

MAC values here count elements; multiply by 4 for float32 bytes.
"""

from __future__ import annotations

import math
from typing import Optional

from course.checks import check_shuffle_v1_unit, check_shuffle_v2_unit, require_divides, require_positive
from course.cost.formulas import Cost, conv2d, conv_output_size

__all__ = [
    "group_conv_mac",
    "mac_lower_bound",
    "memory_access_cost",
    "shuffle_v1_unit",
    "shuffle_v1_unit_paper_macs",
    "shuffle_v2_unit",
]

BN_PARAMS = 2  # weight and bias per channel (running statistics are buffers, not parameters)
BN_CHARGE = 2  # element-wise operations per element (scale and shift, statistics folded)
POOL_WINDOW = 9  # 3x3 average pooling reads 9 elements per output


def memory_access_cost(h: int, w: int, c1: int, c2: int) -> int:
    """MAC of a 1x1 conv ``c1 -> c2`` on ``h x w``: ``h w (c1 + c2) + c1 c2`` elements."""
    require_positive(h=h, w=w, c1=c1, c2=c2)
    return h * w * (c1 + c2) + c1 * c2


def mac_lower_bound(h: int, w: int, B: float) -> float:
    """Smallest MAC of a 1x1 conv doing ``B = h w c1 c2`` MACs: ``2 sqrt(h w B) + B / (h w)``.

    Reached at ``c1 = c2 = sqrt(B / (h w))`` (AM-GM: ``c1 + c2 >= 2 sqrt(c1 c2)``).
    """
    require_positive(h=h, w=w)
    if B <= 0:
        raise ValueError(f"B={B!r} must be positive")
    return 2 * math.sqrt(h * w * B) + B / (h * w)


def group_conv_mac(h: int, w: int, c1: int, c2: int, groups: int) -> int:
    """MAC of a 1x1 group conv: ``h w (c1 + c2) + c1 c2 / g`` elements.

    Raises:
        ValueError: naming ``groups`` when it does not divide ``c1`` and ``c2``.
    """
    require_positive(h=h, w=w, c1=c1, c2=c2)
    require_divides("groups", groups, c1=c1, c2=c2)
    return h * w * (c1 + c2) + c1 * c2 // groups


def _bn(C: int, H: int, W: int, batch: int) -> Cost:
    """A BatchNorm2d(C) at inference on (B, C, H, W)."""
    n = batch * C * H * W
    return Cost(params=BN_PARAMS * C, elementwise=BN_CHARGE * n, activations=n)


def _elementwise(n: int, charge: int = 1) -> Cost:
    """An element-wise op (ReLU, add, ...) writing ``n`` elements."""
    return Cost(elementwise=charge * n, activations=n)


def _moves(n: int) -> Cost:
    """A copy (the shuffle's ``contiguous``, a concat) writing ``n`` elements: no arithmetic."""
    return Cost(activations=n)


def _conv(H, W, N, M, K, stride=1, groups=1, batch=1) -> Cost:
    c = conv2d(H, W, N, M, K, stride=stride, padding=K // 2, groups=groups, bias=False, batch=batch)
    # Only MACs, params and outputs: bytes are left to the counter.
    return Cost(macs=c.macs, params=c.params, activations=c.activations)


def shuffle_v1_unit(
    H: int,
    W: int,
    N: int,
    M: int,
    groups: int,
    stride: int = 1,
    bottleneck: Optional[int] = None,
    group_first: bool = True,
    batch: int = 1,
) -> Cost:
    """Cost of :class:`course.blocks.shuffle.ShuffleV1Unit` on a ``(B, N, H, W)`` input.

    With bottleneck ``m`` (default ``M // 4``), ``G`` groups, branch width ``M' = M`` (stride
    1) or ``M - N`` (stride 2) and output ``H' x W'``:

    * MACs ``= H W N m / G1 + H' W' 9 m + H' W' m M' / G`` (``G1 = G``, or 1 when
      ``group_first`` is False); at stride 1 with ``c = N = M`` this is the paper's
      ``h w (2 c m / g + 9 m)`` (:func:`shuffle_v1_unit_paper_macs`).
    * params ``= N m / G1 + 9 m + m M' / G + 2 (2 m + M')`` (convs + BatchNorms).

    Raises:
        ValueError: as the unit does, naming the parameter.
    """
    require_positive(H=H, W=W, batch=batch)
    m, branch, first_groups = check_shuffle_v1_unit(N, M, groups, stride, bottleneck, group_first)
    Ho, Wo = conv_output_size(H, 3, stride, 1), conv_output_size(W, 3, stride, 1)
    cost = _conv(H, W, N, m, 1, groups=first_groups, batch=batch) + _bn(m, H, W, batch)
    cost = cost + _elementwise(batch * m * H * W)  # ReLU
    if first_groups > 1:
        cost = cost + _moves(batch * m * H * W)  # the shuffle's copy
    cost = cost + _conv(H, W, m, m, 3, stride, groups=m, batch=batch) + _bn(m, Ho, Wo, batch)
    cost = cost + _conv(Ho, Wo, m, branch, 1, groups=groups, batch=batch) + _bn(branch, Ho, Wo, batch)
    out = batch * M * Ho * Wo
    if stride == 1:
        cost = cost + _elementwise(out) + _elementwise(out)  # add, ReLU
    else:
        pooled = batch * N * Ho * Wo
        cost = cost + _elementwise(pooled, POOL_WINDOW) + _moves(out) + _elementwise(out)  # pool, concat, ReLU
    return Cost(macs=cost.macs, params=cost.params, activations=cost.activations,
                elementwise=cost.elementwise, out_shape=(batch, M, Ho, Wo))


def shuffle_v1_unit_paper_macs(h: int, w: int, c: int, m: int, g: int) -> int:
    """The paper's cost of a stride-1 ShuffleNet unit: ``h w (2 c m / g + 9 m)`` multiply-adds.

    Zhang et al., CVPR 2018, Sec. 3.3 (``c`` channels, bottleneck ``m``, ``g`` groups).
    """
    require_positive(h=h, w=w, c=c, m=m, g=g)
    if (c * m) % g:
        raise ValueError(f"g={g} must divide the channels c={c} and bottleneck m={m}")
    return h * w * (2 * c * m // g + 9 * m)


def shuffle_v2_unit(
    H: int,
    W: int,
    N: int,
    M: int,
    stride: int = 1,
    batch: int = 1,
) -> Cost:
    """Cost of :class:`course.blocks.shuffle.ShuffleV2Unit` on a ``(B, N, H, W)`` input.

    With ``c = M / 2`` and output ``H' x W'``:

    * stride 1 (``N = M``): MACs ``= H W (2 c² + 9 c)``; params ``= 2 c² + 9 c + 6 c``.
    * stride 2: left ``H' W' (9 N + N c)``, right ``H W N c + H' W' (9 c + c²)``;
      params ``= 9 N + N c + 2 N + 2 c`` (left) ``+ N c + 9 c + c² + 6 c`` (right).

    Raises:
        ValueError: as the unit does, naming the parameter.
    """
    require_positive(H=H, W=W, batch=batch)
    check_shuffle_v2_unit(N, M, stride)
    c = M // 2
    Ho, Wo = conv_output_size(H, 3, stride, 1), conv_output_size(W, 3, stride, 1)
    cost = Cost()
    if stride == 2:  # left branch: depthwise s2 + BN, 1x1 + BN + ReLU
        cost = cost + _conv(H, W, N, N, 3, stride, groups=N, batch=batch) + _bn(N, Ho, Wo, batch)
        cost = cost + _conv(Ho, Wo, N, c, 1, batch=batch) + _bn(c, Ho, Wo, batch) + _elementwise(batch * c * Ho * Wo)
    right_in = c if stride == 1 else N
    cost = cost + _conv(H, W, right_in, c, 1, batch=batch) + _bn(c, H, W, batch) + _elementwise(batch * c * H * W)
    cost = cost + _conv(H, W, c, c, 3, stride, groups=c, batch=batch) + _bn(c, Ho, Wo, batch)
    cost = cost + _conv(Ho, Wo, c, c, 1, batch=batch) + _bn(c, Ho, Wo, batch) + _elementwise(batch * c * Ho * Wo)
    out = batch * M * Ho * Wo
    cost = cost + _moves(out) + _moves(out)  # concat, shuffle's copy
    return Cost(macs=cost.macs, params=cost.params, activations=cost.activations,
                elementwise=cost.elementwise, out_shape=(batch, M, Ho, Wo))
