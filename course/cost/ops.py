"""How the counter charges each ATen operator.

Three kinds of operator, looked up by the operator's name (``aten.addmm.default`` -> ``addmm``;
in-place ``relu_`` is charged like ``relu``):

* **MAC operators** (conv, matrix products, attention): multiply-accumulates from the shapes.
* **Element-wise operators**, with a stated charge per element (:data:`ELEMENTWISE_CHARGE`):
  arithmetic and activations 1 per output element, batch norm 2 (scale and shift, statistics
  folded), layer/group norm 5 (mean, variance, subtract, divide, affine), softmax 5 (max,
  subtract, exp, sum, divide) and pooling one per element of each window read.
* **Free operators**: views and data movement (reshape, permute, cat, copy, pad, ...): no
  arithmetic; data movement still counts its bytes (:data:`MOVES_DATA`), views count none.

Anything else is *uncounted*: the report lists it with its call count, never a silent zero.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, Sequence

import torch

# --- element-wise charges ------------------------------------------------------------------

#: Operations per output element for plain arithmetic, comparisons and activations.
ARITHMETIC_CHARGE = 1
#: Operations per element for batch norm at inference (x * a + b with folded statistics).
BATCH_NORM_CHARGE = 2
#: Operations per element for layer norm and group norm (mean, variance, subtract, divide, affine).
LAYER_NORM_CHARGE = 5
#: Operations per element for softmax (max, subtract, exp, sum, divide).
SOFTMAX_CHARGE = 5

_ARITHMETIC = """
    add sub rsub mul div neg abs sign reciprocal sqrt rsqrt exp exp2 expm1 log log2 log1p pow
    relu relu6 leaky_relu hardtanh clamp clamp_min clamp_max threshold elu selu celu gelu silu
    mish sigmoid tanh hardswish hardsigmoid softplus erf sin cos floor ceil round trunc frac
    maximum minimum where masked_fill lerp addcmul addcdiv
    eq ne lt le gt ge logical_and logical_or logical_not logical_xor bitwise_and bitwise_or
""".split()

#: Charge per element, and which elements: ``"out"`` (output) or ``"in"`` (first input).
ELEMENTWISE_CHARGE: Dict[str, tuple] = {name: (ARITHMETIC_CHARGE, "out") for name in _ARITHMETIC}
ELEMENTWISE_CHARGE.update(
    {
        "native_batch_norm": (BATCH_NORM_CHARGE, "out"),
        "_native_batch_norm_legit": (BATCH_NORM_CHARGE, "out"),
        "_native_batch_norm_legit_no_training": (BATCH_NORM_CHARGE, "out"),
        "native_layer_norm": (LAYER_NORM_CHARGE, "out"),
        "native_group_norm": (LAYER_NORM_CHARGE, "out"),
        "_softmax": (SOFTMAX_CHARGE, "in"),
        "_safe_softmax": (SOFTMAX_CHARGE, "in"),
        "softmax": (SOFTMAX_CHARGE, "in"),
        "_log_softmax": (SOFTMAX_CHARGE, "in"),
        "log_softmax": (SOFTMAX_CHARGE, "in"),
        # Reductions and global pooling: every input element is combined once.
        "sum": (1, "in"),
        "mean": (1, "in"),
        "amax": (1, "in"),
        "amin": (1, "in"),
        "var": (2, "in"),
        "var_mean": (3, "in"),
        "std": (2, "in"),
        "_adaptive_avg_pool2d": (1, "in"),
        "adaptive_max_pool2d": (1, "in"),
        "upsample_nearest2d": (1, "out"),
        "upsample_bilinear2d": (4, "out"),
    }
)

#: Windowed pooling: charged ``kernel area`` per output element (each window read once).
WINDOW_POOLING = {"max_pool2d_with_indices", "max_pool2d", "avg_pool2d", "max_pool1d", "avg_pool1d"}

#: No arithmetic, and no bytes: results share the input's memory (or create fresh tensors).
VIEWS = set(
    """
    view _unsafe_view reshape t transpose permute expand unsqueeze squeeze flatten unflatten
    slice select split split_with_sizes chunk unbind as_strided alias detach lift_fresh
    lift_fresh_copy numpy_T _reshape_alias view_as real imag narrow
    empty empty_like empty_strided zeros zeros_like ones ones_like full full_like new_empty
    new_zeros new_ones new_full arange scalar_tensor randn rand randint randn_like rand_like
    normal uniform bernoulli fill zero _local_scalar_dense sym_size sym_stride sym_numel
    dropout native_dropout _assert_async resolve_conj resolve_neg
    """.split()
)

#: No arithmetic, but they read and write memory (their bytes are counted).
MOVES_DATA = set(
    """
    clone copy _to_copy contiguous cat stack constant_pad_nd reflection_pad2d replication_pad2d
    roll index index_select gather scatter repeat flip _unsafe_index expand_copy
    """.split()
)


#: Operators whose extra outputs are statistics kept for the backward pass: only the first
#: output is written at inference.
FIRST_OUTPUT_ONLY = {
    "native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training",
    "native_layer_norm", "native_group_norm",
}


def _prod(values: Sequence[int]) -> int:
    return math.prod(int(v) for v in values)


def _conv_macs(args, out) -> tuple:
    x, weight, bias = args[0], args[1], args[2]
    transposed = bool(args[6]) if len(args) > 6 else False
    kernel = _prod(weight.shape[2:])
    if transposed:  # weight (N, M/G, k...): every input element meets M/G * k^2 weights
        macs = x.numel() * weight.shape[1] * kernel
    else:  # weight (M, N/G, k...): every output element sums N/G * k^2 products
        macs = out.numel() * weight.shape[1] * kernel
    return macs, (out.numel() if bias is not None else 0)


def _mm_macs(args, out) -> tuple:  # (n, k) @ (k, m)
    a, b = args[0], args[1]
    return a.shape[0] * a.shape[1] * b.shape[1], 0


def _addmm_macs(args, out) -> tuple:  # bias + (n, k) @ (k, m)
    a, b = args[1], args[2]
    return a.shape[0] * a.shape[1] * b.shape[1], out.numel()


def _bmm_macs(args, out) -> tuple:  # (b, n, k) @ (b, k, m)
    a, b = args[0], args[1]
    return a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2], 0


def _baddbmm_macs(args, out) -> tuple:
    a, b = args[1], args[2]
    return a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2], out.numel()


def _mv_macs(args, out) -> tuple:  # (n, k) @ (k,)
    return args[0].numel(), 0


def _dot_macs(args, out) -> tuple:
    return args[0].numel(), 0


def _linear_macs(args, out) -> tuple:  # x (..., k) @ W^T (k, m)
    x, weight = args[0], args[1]
    bias = args[2] if len(args) > 2 else None
    return (x.numel() // weight.shape[-1]) * weight.numel(), (out.numel() if bias is not None else 0)


def _attention_macs(args, out) -> tuple:
    """``softmax(Q Kᵀ / sqrt(E)) V`` for Q (..., L, E), K (..., S, E), V (..., S, Ev).

    MACs ``= batch · L · S · (E + Ev)``: exactly what the explicit ``Q @ Kᵀ`` and ``A @ V``
    matmuls cost. Element-wise: the scale and the softmax on the ``batch · L · S`` scores.
    """
    q, k, v = args[0], args[1], args[2]
    batch = _prod(q.shape[:-2])
    L, E = q.shape[-2], q.shape[-1]
    S, Ev = k.shape[-2], v.shape[-1]
    scores = batch * L * S
    return scores * (E + Ev), scores * (ARITHMETIC_CHARGE + SOFTMAX_CHARGE)


#: The fused attention kernels (their extra outputs, e.g. log-sum-exp, are for the backward pass).
ATTENTION_KERNELS = {
    "scaled_dot_product_attention",
    "_scaled_dot_product_flash_attention_for_cpu",
    "_scaled_dot_product_flash_attention",
    "_scaled_dot_product_efficient_attention",
    "_scaled_dot_product_cudnn_attention",
    "_scaled_dot_product_fused_attention_overrideable",
    "_flash_attention_forward",
    "_efficient_attention_forward",
}
FIRST_OUTPUT_ONLY |= ATTENTION_KERNELS

#: MAC operators: name -> function(args, first output) -> (MACs, element-wise ops).
MAC_OPS: Dict[str, Callable] = {
    "convolution": _conv_macs,
    "_convolution": _conv_macs,
    "mm": _mm_macs,
    "addmm": _addmm_macs,
    "bmm": _bmm_macs,
    "baddbmm": _baddbmm_macs,
    "mv": _mv_macs,
    "dot": _dot_macs,
    "vdot": _dot_macs,
    "linear": _linear_macs,
}
MAC_OPS.update(dict.fromkeys(ATTENTION_KERNELS, _attention_macs))


def op_name(func) -> str:
    """``aten.relu_.default`` -> ``relu``: in-place variants are charged like their originals."""
    name = func.overloadpacket.__name__
    if name.endswith("_") and is_counted(name[:-1]):
        return name[:-1]
    return name


def elementwise_ops(name: str, args, out) -> int:
    """Element-wise operations an operator named ``name`` performs (0 if it is not one)."""
    if name in WINDOW_POOLING:
        kernel = args[1] if len(args) > 1 else None
        kernel = [kernel] if isinstance(kernel, int) else list(kernel or [1])
        if len(kernel) == 1:
            kernel = kernel * 2 if name.endswith("2d") else kernel
        return out.numel() * _prod(kernel)
    charge, which = ELEMENTWISE_CHARGE[name]
    if which == "in" and isinstance(args[0], torch.Tensor):
        return charge * args[0].numel()
    return charge * out.numel()


def is_counted(name: str) -> bool:
    """Whether the counter knows how to charge operator ``name``."""
    return (
        name in MAC_OPS
        or name in ELEMENTWISE_CHARGE
        or name in WINDOW_POOLING
        or name in VIEWS
        or name in MOVES_DATA
    )
