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
* **Calls charged as a whole** (the counter sees them above the operators PyTorch picks for
  them): ``F.scaled_dot_product_attention`` (:func:`attention_cost`) and the recurrent layers
  ``nn.LSTM``, ``nn.GRU``, ``nn.RNN`` (:func:`rnn_cost`).

Anything else is *uncounted*: the report lists it with its call count, never a silent zero.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, NamedTuple, Optional, Sequence, Tuple

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
    maximum minimum where masked_fill lerp addcmul addcdiv square remainder fmod atan2 sgn
    hardshrink softshrink prelu _prelu_kernel logit xlogy clip isnan isinf
    eq ne lt le gt ge logical_and logical_or logical_not logical_xor bitwise_and bitwise_or
    bitwise_not bitwise_xor
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
        "max": (1, "in"),  # max(x) and max(x, dim); max(x, y) is element-wise (see elementwise_ops)
        "min": (1, "in"),
        "argmax": (1, "in"),
        "argmin": (1, "in"),
        "prod": (1, "in"),
        "logsumexp": (3, "in"),  # exp, sum, and the max subtracted for stability
        "glu": (2, "out"),  # a * sigmoid(b)
        "cumsum": (1, "in"),  # a running sum: one addition per element
        "cumprod": (1, "in"),
        "linalg_vector_norm": (2, "in"),  # square (or |x|^p) and accumulate each element
        "col2im": (1, "in"),  # F.fold: every column element is added into the image
        "var_mean": (3, "in"),
        "std": (2, "in"),
        "_adaptive_avg_pool2d": (1, "in"),
        "adaptive_max_pool2d": (1, "in"),
        # Resampling: one weighted tap per output element and source pixel it reads.
        "upsample_nearest1d": (1, "out"),
        "upsample_nearest2d": (1, "out"),
        "upsample_nearest3d": (1, "out"),
        "_upsample_nearest_exact2d": (1, "out"),
        "upsample_linear1d": (2, "out"),
        "upsample_bilinear2d": (4, "out"),
        "upsample_bicubic2d": (16, "out"),
        "upsample_trilinear3d": (8, "out"),
        "_adaptive_avg_pool3d": (1, "in"),
        "adaptive_max_pool1d": (1, "in"),
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
    unsafe_split unsafe_split_with_sizes unsafe_chunk unfold diagonal movedim swapaxes
    swapdims expand_as view_as_real view_as_complex
    """.split()
)

#: No arithmetic, but they read and write memory (their bytes are counted).
MOVES_DATA = set(
    """
    clone copy _to_copy contiguous cat stack constant_pad_nd reflection_pad2d replication_pad2d
    roll index index_select gather scatter repeat flip _unsafe_index expand_copy
    im2col tril triu pixel_shuffle pixel_unshuffle channel_shuffle native_channel_shuffle
    repeat_interleave masked_select index_put index_copy slice_scatter
    select_scatter tile reflection_pad1d replication_pad1d reflection_pad3d replication_pad3d
    _pad_circular narrow_copy
    """.split()
)


#: Operators whose extra outputs are statistics kept for the backward pass: only the first
#: output is written at inference.
FIRST_OUTPUT_ONLY = {
    "native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training",
    "native_layer_norm", "native_group_norm",
}


_BINARY_OR_REDUCTION = {"max", "min"}


def _prod(values: Sequence[int]) -> int:
    return math.prod(int(v) for v in values)


def _conv_macs(args, out) -> tuple:
    x, weight, bias = args[0], args[1], args[2]
    transposed = bool(args[6]) if len(args) > 6 else False
    shape = weight.shape
    kernel = shape[2] * shape[3] if len(shape) == 4 else _prod(shape[2:])
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


def attention_cost(query, key, value) -> tuple:
    """(MACs, element-wise ops) of ``scaled_dot_product_attention(query, key, value)``; see below."""
    return _attention_macs((query, key, value), None)


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


#: Element-wise operations per hidden unit and time step of each recurrent cell, after the
#: gate pre-activations: LSTM: 3 sigmoid + 1 tanh gates, c = f*c + i*g (3), h = o*tanh(c) (2);
#: GRU: 2 sigmoid gates, n = tanh(x_n + r*h_n) (3), h = (1 - z)*n + z*h (3); plain RNN: the
#: non-linearity.
RNN_CELL_CHARGE = {"lstm": 9, "gru": 8, "rnn_tanh": 1, "rnn_relu": 1}
#: Gates per hidden unit (rows of W_ih = gates * hidden_size).
RNN_GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}


def rnn_cost(kind: str, tokens: int, weights: Sequence[torch.Tensor], has_biases: bool, layers: int,
             directions: int) -> tuple:
    """(MACs, element-wise ops) of a recurrent layer (``kind``: lstm, gru, rnn_tanh, rnn_relu).

    ``tokens`` = T·B time steps times batch; ``weights``: the layer's flat weights, per layer
    and direction ``W_ih (G·H, I)``, ``W_hh (G·H, P)``, [``b_ih``, ``b_hh``], [``W_hr (P, H)``]
    (G gates, H hidden units, P = ``proj_size`` or H). Every time step multiplies the input
    and the previous hidden state by their matrices (and LSTM's projection), so

        MACs = tokens · Σ_layers,directions (|W_ih| + |W_hh| + |W_hr|)

    Element-wise, per step and direction: the gate pre-activation sums, G·H · (1 + 2 if
    biases), and the cell's own work, :data:`RNN_CELL_CHARGE` · H.
    """
    per_layer = len(weights) // (layers * directions)
    macs = elementwise = 0
    for first in range(0, len(weights), per_layer):
        group = weights[first:first + per_layer]
        w_ih, w_hh = group[0], group[1]
        w_hr = group[4] if per_layer == 5 else (group[2] if per_layer == 3 else None)
        macs += tokens * (w_ih.numel() + w_hh.numel() + (w_hr.numel() if w_hr is not None else 0))
        gate_rows = w_ih.shape[0]
        hidden = gate_rows // RNN_GATES[kind]
        elementwise += tokens * (gate_rows * (1 + 2 * bool(has_biases)) + RNN_CELL_CHARGE[kind] * hidden)
    return macs, elementwise


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
    if name in _BINARY_OR_REDUCTION and len(args) > 1 and isinstance(args[1], torch.Tensor):
        which = "out"  # max(x, y): element-wise, not a reduction
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


# --- one lookup per operator overload ----------------------------------------------------------

VIEW, MOVE, MAC, ELEMENTWISE, UNCOUNTED = "view", "move", "mac", "elementwise", "uncounted"


#: Operators that, on meta tensors, only the decompositions of the calls charged as a whole
#: emit: the math path of ``scaled_dot_product_attention`` (``_safe_softmax``) and the LSTM
#: and GRU cells (``unsafe_split``/``unsafe_chunk``).
WHOLE_CALL_MARKERS = {"_safe_softmax", "unsafe_split", "unsafe_split_with_sizes", "unsafe_chunk"} | ATTENTION_KERNELS


class Rule(NamedTuple):
    """How the counter treats one operator overload (computed once, then looked up)."""

    func: object  # the operator overload
    name: str  # ``op_name(func)``
    kind: str  # VIEW, MOVE, MAC, ELEMENTWISE or UNCOUNTED
    first_output_only: bool  # only the first output is written at inference
    shape: Optional[Callable]  # meta shortcut: (args, kwargs) -> result or None
    call: Callable  # the operator itself (its C++ entry point where PyTorch exposes it)
    marks_whole_call: bool  # name in WHOLE_CALL_MARKERS
    charge: Optional[Callable]  # (args, first output) -> (MACs, element-wise ops), or None: free
    tensor_args: Tuple[int, ...]  # positions of the arguments that may hold a tensor
    tensor_lists: Tuple[int, ...]  # positions of the arguments that hold lists of tensors
    reads: Optional[Callable]  # args -> bytes of the tensors at tensor_args (each once); None: lists


def _tensor_positions(func) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
    singles, lists = [], []
    for i, argument in enumerate(func._schema.arguments):
        kind = str(argument.type)
        if argument.kwarg_only or "Tensor" not in kind:
            continue
        (lists if kind.startswith("List") else singles).append(i)
    return tuple(singles), tuple(lists)


def _reader(singles: Tuple[int, ...], lists: Tuple[int, ...]) -> Optional[Callable]:
    """``args -> bytes`` of the tensors at positions ``singles`` (a tensor passed twice, as in
    ``x * x``, read once); ``None`` for operators that take lists of tensors (``cat``)."""
    if lists:
        return None
    Tensor = torch.Tensor
    if len(singles) == 1:
        (i,) = singles

        def read_one(args) -> int:
            t = args[i] if i < len(args) else None
            return t.nbytes if isinstance(t, Tensor) else 0

        return read_one
    if len(singles) == 2:
        i, j = singles

        def read_two(args) -> int:
            n = len(args)
            a = args[i] if i < n else None
            b = args[j] if j < n else None
            total = a.nbytes if isinstance(a, Tensor) else 0
            return total + b.nbytes if isinstance(b, Tensor) and b is not a else total

        return read_two

    def read(args) -> int:
        n = len(args)
        return distinct_nbytes([args[i] for i in singles if i < n])

    return read


def distinct_nbytes(values) -> int:
    """Bytes of the tensors among ``values`` (other values skipped), each tensor once."""
    total, seen = 0, []
    for t in values:
        if not isinstance(t, torch.Tensor):
            continue  # None, or a Python number given for a Tensor argument
        for other in seen:
            if other is t:
                break
        else:
            seen.append(t)
            total += t.nbytes
    return total


def _charge(name: str) -> Optional[Callable]:
    if name in MAC_OPS:
        return MAC_OPS[name]
    if name in WINDOW_POOLING or name in _BINARY_OR_REDUCTION:
        return lambda args, out: (0, elementwise_ops(name, args, out))
    if name not in ELEMENTWISE_CHARGE:
        return None
    charge, which = ELEMENTWISE_CHARGE[name]
    if which == "out":
        return lambda args, out: (0, charge * out.numel())
    return lambda args, out: (0, charge * (args[0] if isinstance(args[0], torch.Tensor) else out).numel())


#: id(operator overload) -> Rule. (Overloads live as long as the process; their own hash is a
#: Python method, slower than an id.)
_RULES: Dict[int, Rule] = {}


def rule(func) -> Rule:
    """The :class:`Rule` of an ATen operator overload such as ``torch.ops.aten.addmm.default``."""
    found = _RULES.get(id(func))
    if found is None or found.func is not func:
        from course.cost.shapes import shape_rule

        name = op_name(func)
        if name in VIEWS:
            kind = VIEW
        elif name in MAC_OPS:
            kind = MAC
        elif name in ELEMENTWISE_CHARGE or name in WINDOW_POOLING:
            kind = ELEMENTWISE
        elif name in MOVES_DATA:
            kind = MOVE
        else:
            kind = UNCOUNTED
        call = func._op if getattr(func, "_pyobj_dispatcher", None) is None and hasattr(func, "_op") else func
        singles, lists = _tensor_positions(func)
        found = _RULES[id(func)] = Rule(func, name, kind, name in FIRST_OUTPUT_ONLY, shape_rule(func), call,
                                    name in WHOLE_CALL_MARKERS, _charge(name) if kind in (MAC, ELEMENTWISE) else None,
                                    singles, lists, _reader(singles, lists))
    return found
