"""Closed-form costs of single layers.

Every function here returns a :class:`Cost` and never builds or runs a model, so explorers can
call them on every slider move. The symbols follow the course:

* ``H, W``  input height and width,        ``H', W'`` output height and width
* ``N``     input channels,                ``M``      output channels
* ``K``     kernel size (square),          ``G``      groups
* ``B``     batch size

Conventions (the same as the counter in :mod:`course.cost.counter`):

* ``macs`` counts multiply-accumulates; ``flops = 2 * macs`` (papers that write "FLOPs" usually
  mean MACs; see Chapter 1).
* A bias add is not a MAC: it is charged to ``elementwise`` (one operation per output element).
* ``bytes_read`` counts every tensor the operator reads once (input, weight, bias) and
  ``bytes_written`` its output, at ``bytes_per_element`` (4 for float32).
* ``activations`` is the number of output elements.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Tuple

from course.checks import require_divides, require_positive


@dataclass(frozen=True)
class Cost:
    """What one operation (or a sum of operations) costs.

    Attributes:
        macs: multiply-accumulates.
        params: learnable parameters.
        activations: output elements (for a sum: all outputs produced).
        bytes_read: bytes read from memory (inputs, weights, bias), each tensor once.
        bytes_written: bytes written (outputs).
        elementwise: element-wise operations (bias adds, activations, norms, ...), not MACs.
        out_shape: shape of the output, ``(B, M, H', W')`` for a conv; ``()`` for a sum.
    """

    macs: int = 0
    params: int = 0
    activations: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    elementwise: int = 0
    out_shape: Tuple[int, ...] = field(default=())

    @property
    def flops(self) -> int:
        """Floating-point operations counted the papers' way: ``2 * macs``."""
        return 2 * self.macs

    @property
    def bytes_moved(self) -> int:
        """``bytes_read + bytes_written``."""
        return self.bytes_read + self.bytes_written

    @property
    def arithmetic_intensity(self) -> float:
        """MACs per byte moved (0 when nothing moves)."""
        return self.macs / self.bytes_moved if self.bytes_moved else 0.0

    def __add__(self, other: "Cost") -> "Cost":
        if not isinstance(other, Cost):
            return NotImplemented
        return Cost(
            macs=self.macs + other.macs,
            params=self.params + other.params,
            activations=self.activations + other.activations,
            bytes_read=self.bytes_read + other.bytes_read,
            bytes_written=self.bytes_written + other.bytes_written,
            elementwise=self.elementwise + other.elementwise,
            out_shape=other.out_shape,
        )

    def __radd__(self, other):
        # Lets ``sum(costs)`` start from 0.
        if other == 0:
            return self
        return NotImplemented

    def scaled(self, factor: int) -> "Cost":
        """The cost of running this operation ``factor`` times (weights counted once)."""
        return replace(
            self,
            macs=self.macs * factor,
            activations=self.activations * factor,
            bytes_read=self.bytes_read * factor,
            bytes_written=self.bytes_written * factor,
            elementwise=self.elementwise * factor,
        )

    def as_dict(self) -> dict:
        """Plain values, ``flops`` included, for tables and JSON."""
        return {
            "macs": self.macs,
            "flops": self.flops,
            "params": self.params,
            "activations": self.activations,
            "bytes_read": self.bytes_read,
            "bytes_written": self.bytes_written,
            "elementwise": self.elementwise,
            "out_shape": tuple(self.out_shape),
        }


def conv_output_size(size: int, K: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Output length of a convolution along one axis.

    ``size' = floor((size + 2*padding - dilation*(K - 1) - 1) / stride) + 1``

    Raises:
        ValueError: when the (dilated) kernel does not fit in the padded input.
    """
    require_positive(size=size, K=K, stride=stride, dilation=dilation)
    if not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding must be a non-negative integer, got {padding!r}")
    span = dilation * (K - 1) + 1
    if size + 2 * padding < span:
        raise ValueError(
            f"kernel does not fit: the dilated kernel spans {span} pixels but the padded input "
            f"is only {size + 2 * padding} (size={size}, padding={padding})"
        )
    return (size + 2 * padding - span) // stride + 1


def same_padding(K: int, dilation: int = 1) -> int:
    """Padding that keeps ``H' = H`` at stride 1 for an odd kernel: ``dilation * (K - 1) // 2``."""
    return dilation * (K - 1) // 2


def conv2d(
    H: int,
    W: int,
    N: int,
    M: int,
    K: int,
    stride: int = 1,
    padding: int | None = None,
    dilation: int = 1,
    groups: int = 1,
    bias: bool = True,
    batch: int = 1,
    bytes_per_element: int = 4,
) -> Cost:
    """Cost of ``nn.Conv2d(N, M, K, stride, padding, dilation, groups, bias)`` on a ``(B, N, H, W)`` input.

    With ``G = groups``:

    * params  ``= K² · (N/G) · M  (+ M bias)``
    * MACs    ``= B · H' · W' · K² · (N/G) · M``
    * output  ``(B, M, H', W')`` with ``H', W'`` from :func:`conv_output_size`
    * elementwise ``= B · M · H' · W'`` when there is a bias (the bias add), else 0

    ``padding=None`` means "same" padding for odd kernels (:func:`same_padding`).

    Raises:
        ValueError: naming the parameter, for non-positive sizes, channels not divisible by
            ``groups``, or a kernel that does not fit.
    """
    require_positive(H=H, W=W, N=N, M=M, K=K, batch=batch)
    require_divides("groups", groups, N=N, M=M)
    if padding is None:
        padding = same_padding(K, dilation)
    H_out = conv_output_size(H, K, stride, padding, dilation)
    W_out = conv_output_size(W, K, stride, padding, dilation)
    weight = K * K * (N // groups) * M
    bias_params = M if bias else 0
    outputs = batch * M * H_out * W_out
    inputs = batch * N * H * W
    return Cost(
        macs=outputs * K * K * (N // groups),
        params=weight + bias_params,
        activations=outputs,
        bytes_read=(inputs + weight + bias_params) * bytes_per_element,
        bytes_written=outputs * bytes_per_element,
        elementwise=outputs if bias else 0,
        out_shape=(batch, M, H_out, W_out),
    )


def linear(
    in_features: int,
    out_features: int,
    bias: bool = True,
    tokens: int = 1,
    batch: int = 1,
    bytes_per_element: int = 4,
) -> Cost:
    """Cost of ``nn.Linear(in_features, out_features, bias)`` on ``batch · tokens`` rows.

    With ``N = in_features``, ``M = out_features`` and ``T = batch · tokens`` rows:

    * params ``= N · M (+ M bias)``
    * MACs   ``= T · N · M``
    * output ``(batch, tokens, M)`` (``(batch, M)`` when ``tokens == 1``)
    * elementwise ``= T · M`` when there is a bias, else 0
    """
    require_positive(in_features=in_features, out_features=out_features, tokens=tokens, batch=batch)
    rows = batch * tokens
    weight = in_features * out_features
    bias_params = out_features if bias else 0
    outputs = rows * out_features
    out_shape = (batch, out_features) if tokens == 1 else (batch, tokens, out_features)
    return Cost(
        macs=rows * in_features * out_features,
        params=weight + bias_params,
        activations=outputs,
        bytes_read=(rows * in_features + weight + bias_params) * bytes_per_element,
        bytes_written=outputs * bytes_per_element,
        elementwise=outputs if bias else 0,
        out_shape=out_shape,
    )
