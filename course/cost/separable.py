"""Closed-form costs of the cheap convolutions of Chapter 2 (blocks in :mod:`course.blocks.conv`).

Every function returns a :class:`~course.cost.formulas.Cost` and builds no model. Symbols:
``H, W`` input size, ``H', W'`` output size, ``N`` input channels, ``M`` output channels,
``K`` kernel size, ``G`` groups, ``B`` batch.

=====================  =========================  ===========================
operation              MACs                       params (no bias, no norm)
=====================  =========================  ===========================
standard ``K x K``     ``H'W' K² N M``            ``K² N M``
group (``G``)          ``H'W' K² (N/G) M``        ``K² (N/G) M``
depthwise              ``H'W' K² N``              ``K² N``
pointwise ``1 x 1``    ``H W N M``                ``N M``
separable (dw + pw)    ``H'W' N (K² + M)``        ``N (K² + M)``
=====================  =========================  ===========================

so separable / standard ``= (K² + M) / (K² M) = 1/M + 1/K²`` (:func:`separable_ratio`).

The single convolutions are :func:`course.cost.formulas.conv2d` with fixed arguments, so they
agree with the counter on every field. The composite blocks (:func:`separable_conv`,
:func:`fire`) add their parts; their ``elementwise`` also charges batch norm (2 per element)
and activations (1 per element) as the counter does, while ``activations`` and bytes count
the convolutions only.
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

from course.checks import require_divides, require_positive
from course.cost.formulas import Cost, conv2d

__all__ = ["depthwise_conv", "fire", "group_conv", "pointwise_conv", "separable_conv", "separable_ratio"]

#: Element-wise operations per element of inference batch norm (scale and shift), as the counter.
BATCH_NORM_OPS = 2
#: Element-wise operations per element of ReLU / ReLU6, as the counter.
ACTIVATION_OPS = 1


def group_conv(
    H: int,
    W: int,
    N: int,
    M: int,
    K: int,
    G: int,
    stride: int = 1,
    bias: bool = False,
    batch: int = 1,
) -> Cost:
    """``K x K`` group conv with ``G`` groups, "same" padding ``K // 2``.

    MACs ``= B H' W' K² (N/G) M``; params ``= K² (N/G) M (+ M)``: the dense conv's cost / G.

    Raises:
        ValueError: naming the parameter, e.g. ``G`` not dividing ``N`` or ``M``.
    """
    require_divides("G", G, N=N, M=M)
    return conv2d(H, W, N, M, K, stride=stride, padding=K // 2, groups=G, bias=bias, batch=batch)


def depthwise_conv(
    H: int,
    W: int,
    N: int,
    K: int = 3,
    stride: int = 1,
    bias: bool = False,
    batch: int = 1,
) -> Cost:
    """``K x K`` depthwise conv (``G = N = M``), "same" padding ``K // 2``.

    MACs ``= B H' W' K² N``; params ``= K² N (+ N)``; output ``(B, N, H', W')``.
    """
    return conv2d(H, W, N, N, K, stride=stride, padding=K // 2, groups=N, bias=bias, batch=batch)


def pointwise_conv(
    H: int,
    W: int,
    N: int,
    M: int,
    bias: bool = False,
    batch: int = 1,
) -> Cost:
    """``1 x 1`` conv ``N -> M``: MACs ``= B H W N M``; params ``= N M (+ M)``."""
    return conv2d(H, W, N, M, 1, padding=0, bias=bias, batch=batch)


def _norm_and_activation(C: int, H: int, W: int, batch: int, batch_norm: bool, activation: bool) -> Cost:
    """Batch norm (``2C`` params: scale and shift) and an activation on ``(B, C, H, W)``."""
    elements = batch * C * H * W
    return Cost(
        params=2 * C if batch_norm else 0,
        elementwise=elements * ((BATCH_NORM_OPS if batch_norm else 0) + (ACTIVATION_OPS if activation else 0)),
    )


def separable_conv(
    H: int,
    W: int,
    N: int,
    M: int,
    K: int = 3,
    stride: int = 1,
    batch_norm: bool = True,
    activation: bool = True,
    batch: int = 1,
) -> Cost:
    """Depthwise-separable conv (:class:`course.blocks.conv.DepthwiseSeparableConv`).

    Depthwise ``K x K`` (stride, no bias) [-> BN -> act] then pointwise ``1 x 1`` at
    ``H' x W'`` [-> BN -> act]:

    * MACs ``= B H' W' N (K² + M)``
    * params ``= K² N + N M`` (+ ``2N + 2M`` with batch norm)
    * elementwise: ``2`` per element for each batch norm, ``1`` per element for each
      activation (on ``N H' W'`` after the depthwise, ``M H' W'`` after the pointwise).

    With ``batch_norm=False, activation=False`` it is exactly the two bare convolutions.
    """
    dw = depthwise_conv(H, W, N, K, stride=stride, batch=batch)
    _, _, H_out, W_out = dw.out_shape
    pw = pointwise_conv(H_out, W_out, N, M, batch=batch)
    extras = (_norm_and_activation(N, H_out, W_out, batch, batch_norm, activation)
              + _norm_and_activation(M, H_out, W_out, batch, batch_norm, activation))
    return replace(dw + pw + extras, out_shape=pw.out_shape)


def fire(
    H: int,
    W: int,
    N: int,
    S: int,
    E1: int,
    E3: int,
    batch: int = 1,
) -> Cost:
    """SqueezeNet's Fire module (:class:`course.blocks.conv.Fire`), convs with biases and ReLUs.

    Squeeze ``1 x 1, N -> S``; expand ``1 x 1, S -> E1`` and ``3 x 3, S -> E3`` (padding 1):

    * MACs ``= B H W (N S + S E1 + 9 S E3)``
    * params ``= N S + S E1 + 9 S E3 + (S + E1 + E3)`` (biases)
    * elementwise ``= 2 B H W (S + E1 + E3)`` (bias adds and ReLUs)
    * output ``(B, E1 + E3, H, W)``; the concatenation moves data but does no arithmetic.
    """
    require_positive(S=S, E1=E1, E3=E3)
    squeeze = conv2d(H, W, N, S, 1, padding=0, bias=True, batch=batch)
    expand1 = conv2d(H, W, S, E1, 1, padding=0, bias=True, batch=batch)
    expand3 = conv2d(H, W, S, E3, 3, padding=1, bias=True, batch=batch)
    relus = Cost(elementwise=batch * H * W * (S + E1 + E3) * ACTIVATION_OPS)
    return replace(squeeze + expand1 + expand3 + relus, out_shape=(batch, E1 + E3, H, W))


def separable_ratio(M: int, K: int) -> Fraction:
    """MACs (and weights) of a separable conv divided by a standard ``K x K`` conv's: ``1/M + 1/K²``.

    ``(H'W' K² N + H'W' N M) / (H'W' K² N M) = 1/M + 1/K²``: ``N`` and the resolution cancel.
    Returned as an exact :class:`~fractions.Fraction` (``float(...)`` for a number).
    """
    require_positive(M=M, K=K)
    return Fraction(1, M) + Fraction(1, K * K)
