"""Closed-form costs of the bottleneck blocks of Chapter 4 (``course.blocks.bottleneck``).

Each block's cost is the sum of its operators' costs, charged exactly as the counter
(:func:`course.cost.count`) charges them, so formula and counter agree on every field
(MACs, parameters, element-wise work, activations, bytes). Float32, batch ``B``.

Per operator, with ``n`` the elements of the tensor it produces:

* conv: :func:`course.cost.conv2d` (bias-free convs, except the SE's two 1x1 convs);
* batch norm (inference): ``2·n`` element-wise (scale and shift), ``2·C`` parameters; it
  reads the input and its four ``C``-vectors and writes the output;
* activation (ReLU, ReLU6, hard-swish, sigmoid, hard-sigmoid): ``n`` element-wise;
* global average (SE squeeze): one addition per *input* element;
* SE scale ``x · s`` and residual add: ``n`` element-wise.

MACs in short (``H', W'`` after the stride, ``R`` the SE width):

* ResNet bottleneck: ``H W N mid + H'W' 9 mid² + H'W' mid M (+ H'W' N M projection)``
* inverted residual: ``H W N mid + H'W' K² mid + H'W' mid M (+ 2 mid R with SE)``
"""

from __future__ import annotations

from course.checks import check_inverted_residual, make_divisible, mbconv_se_width, require_positive, require_stride
from course.cost.formulas import Cost, conv2d, conv_output_size

__all__ = [
    "batch_norm",
    "inverted_residual",
    "mbconv",
    "mobilenetv3_block",
    "pointwise",
    "resnet_bottleneck",
    "se_width",
    "squeeze_excite",
]

_BYTES = 4  # float32


def batch_norm(H: int, W: int, C: int, batch: int = 1) -> Cost:
    """Inference-time ``BatchNorm2d(C)`` on ``(B, C, H, W)``: ``2·B·C·H·W`` element-wise, ``2·C`` params."""
    require_positive(H=H, W=W, C=C, batch=batch)
    n = batch * C * H * W
    return Cost(
        params=2 * C,
        activations=n,
        bytes_read=(n + 4 * C) * _BYTES,  # input, weight, bias, running mean and variance
        bytes_written=n * _BYTES,
        elementwise=2 * n,
        out_shape=(batch, C, H, W),
    )


def _elementwise(shape, inputs: int = 1, extra_read: int = 0) -> Cost:
    """One operation per output element of ``shape``, reading ``inputs`` such tensors (+ ``extra_read`` elements)."""
    n = 1
    for s in shape:
        n *= s
    return Cost(
        activations=n,
        bytes_read=(inputs * n + extra_read) * _BYTES,
        bytes_written=n * _BYTES,
        elementwise=n,
        out_shape=tuple(shape),
    )


def pointwise(H: int, W: int, N: int, M: int, batch: int = 1) -> Cost:
    """A bias-free 1x1 conv: ``H·W·N·M`` MACs (:func:`course.cost.conv2d` with ``K = 1``)."""
    return conv2d(H, W, N, M, 1, bias=False, batch=batch)


def _conv_bn_act(H, W, N, M, K, stride=1, groups=1, act=True, batch=1) -> Cost:
    conv = conv2d(H, W, N, M, K, stride=stride, padding=K // 2, groups=groups, bias=False, batch=batch)
    _, _, H_out, W_out = conv.out_shape
    cost = conv + batch_norm(H_out, W_out, M, batch)
    return cost + _elementwise(conv.out_shape) if act else cost


def squeeze_excite(H: int, W: int, C: int, R: int, batch: int = 1) -> Cost:
    """Squeeze-and-excitation on ``(B, C, H, W)`` with squeeze width ``R``.

    * MACs ``= B · 2 · C · R`` (two 1x1 convs on the pooled ``(B, C, 1, 1)`` vector)
    * params ``= 2 · C · R + R + C`` (weights and biases)
    * element-wise: ``B·C·H·W`` (average) + ``R + C`` (biases) + ``R + C`` (activation,
      gate) + ``B·C·H·W`` (scale), per image
    """
    require_positive(H=H, W=W, C=C, R=R, batch=batch)
    x = (batch, C, H, W)
    n = batch * C * H * W
    squeeze = Cost(
        activations=batch * C, bytes_read=n * _BYTES, bytes_written=batch * C * _BYTES,
        elementwise=n, out_shape=(batch, C, 1, 1),
    )
    reduce = conv2d(1, 1, C, R, 1, bias=True, batch=batch)
    expand = conv2d(1, 1, R, C, 1, bias=True, batch=batch)
    scale = _elementwise(x, inputs=1, extra_read=batch * C)  # x (B, C, H, W) times s (B, C, 1, 1)
    return squeeze + reduce + _elementwise((batch, R, 1, 1)) + expand + _elementwise((batch, C, 1, 1)) + scale


def inverted_residual(
    H: int,
    W: int,
    N: int,
    M: int,
    mid: int,
    K: int = 3,
    stride: int = 1,
    R: int = 0,
    batch: int = 1,
) -> Cost:
    """Cost of :class:`course.blocks.bottleneck.InvertedResidual` on ``(B, N, H, W)``.

    * MACs ``= B·[H·W·N·mid (expand, none when mid == N) + H'·W'·K²·mid (depthwise)
      + 2·mid·R (SE) + H'·W'·mid·M (project)]``
    * params ``= N·mid + 2·mid + K²·mid + 2·mid + (2·mid·R + R + mid) + mid·M + 2·M``
    * plus the element-wise work of three batch norms, two activations, the SE and the
      residual add (when ``stride == 1`` and ``N == M``).
    """
    require_positive(H=H, W=W, batch=batch)
    check_inverted_residual(N, M, mid, K, stride, R)
    cost = Cost()
    if mid != N:
        cost = cost + _conv_bn_act(H, W, N, mid, 1, batch=batch)
    depthwise = _conv_bn_act(H, W, mid, mid, K, stride, groups=mid, batch=batch)
    cost = cost + depthwise
    _, _, H_out, W_out = depthwise.out_shape
    if R:
        cost = cost + squeeze_excite(H_out, W_out, mid, R, batch)
    cost = cost + _conv_bn_act(H_out, W_out, mid, M, 1, act=False, batch=batch)
    if stride == 1 and N == M:
        cost = cost + _elementwise((batch, M, H_out, W_out), inputs=2)
    return cost


def mbconv(
    H: int,
    W: int,
    N: int,
    M: int,
    expansion: int = 6,
    K: int = 3,
    stride: int = 1,
    se_ratio: float = 0.0,
    batch: int = 1,
) -> Cost:
    """Cost of :class:`course.blocks.bottleneck.MBConv`: :func:`inverted_residual` with
    ``mid = expansion·N`` and ``R = int(se_ratio·N)``."""
    R = mbconv_se_width(N, expansion, se_ratio)
    return inverted_residual(H, W, N, M, expansion * N, K, stride, R, batch)


def mobilenetv3_block(
    H: int,
    W: int,
    N: int,
    M: int,
    mid: int,
    K: int = 3,
    stride: int = 1,
    se: bool = False,
    batch: int = 1,
) -> Cost:
    """Cost of :class:`course.blocks.bottleneck.MobileNetV3Block`: :func:`inverted_residual`
    with ``R = se_width(mid)`` (``make_divisible(mid / 4)``) when ``se``. Hard-swish and
    ReLU cost the same here (one operation per element)."""
    require_positive(mid=mid)
    return inverted_residual(H, W, N, M, mid, K, stride, se_width(mid) if se else 0, batch)


def se_width(mid: int, divisor: int = 8) -> int:
    """MobileNetV3's SE width: ``mid / 4`` rounded to a multiple of 8, never below 90% of it
    (:func:`course.checks.make_divisible`, the rule the block uses too)."""
    return make_divisible(mid / 4, divisor)


def resnet_bottleneck(
    H: int,
    W: int,
    N: int,
    mid: int,
    stride: int = 1,
    expansion: int = 4,
    batch: int = 1,
) -> Cost:
    """Cost of :class:`course.blocks.bottleneck.ResNetBottleneck` (``M = expansion·mid``).

    * MACs ``= B·[H·W·N·mid + H'·W'·9·mid² + H'·W'·mid·M (+ H'·W'·N·M projection)]``
    * params ``= N·mid + 9·mid² + mid·M + 2·(2·mid + M) (+ N·M + 2·M projection)``
    * plus three (four) batch norms, three ReLUs and the residual add.
    """
    require_positive(H=H, W=W, N=N, mid=mid, expansion=expansion, batch=batch)
    require_stride(stride)
    M = mid * expansion
    H_out, W_out = conv_output_size(H, 3, stride, 1), conv_output_size(W, 3, stride, 1)
    out = (batch, M, H_out, W_out)
    cost = _conv_bn_act(H, W, N, mid, 1, batch=batch)
    cost = cost + _conv_bn_act(H, W, mid, mid, 3, stride, batch=batch)
    cost = cost + _conv_bn_act(H_out, W_out, mid, M, 1, act=False, batch=batch)
    if stride != 1 or N != M:
        cost = cost + _conv_bn_act(H, W, N, M, 1, stride, act=False, batch=batch)
    return cost + _elementwise(out, inputs=2) + _elementwise(out)
