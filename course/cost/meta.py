"""Running a model on *meta* tensors: shapes and dtypes, no storage, no arithmetic.

The counter's default pass. Costs depend only on shapes, so a meta pass gives the same
numbers as a real one, needs no activation memory, and counts a ViT at 1024x1024 in a moment.

Two things make it exact and fast:

* every stand-in keeps what PyTorch looks at when it picks a decomposition (shape, dtype,
  strides, ``requires_grad``: a Linear on a strided 3-D input folds into one ``mm`` only when
  its weight requires grad), and the attention and RNN calls charged as a whole get their
  outputs laid out as the CPU kernels lay them out (:func:`attention_output`,
  :func:`rnn_outputs`);
* :func:`shape_only` answers the common operators from their inputs' shapes. PyTorch's meta
  kernels for convolution, matrix products, reductions, pooling, padding and broadcasting
  element-wise operators are Python reference code (up to 1 ms a call, more than the real
  kernel on a small model); the answers here are the same tensors (shape, dtype and strides),
  which ``tests/test_count_meta.py`` checks against real kernels.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterable, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.utils._pytree import tree_map
from torch.utils.weak import WeakIdKeyDictionary

META = torch.device("meta")

#: real tensor -> its meta stand-in, kept while the real tensor lives (counting a model again,
#: as an explorer does on every slider move, reuses them).
_META_TWINS = WeakIdKeyDictionary()


def _stand_in(tensor: torch.Tensor) -> torch.Tensor:
    """A meta tensor with ``tensor``'s shape, dtype, strides and ``requires_grad``."""
    meta = torch.empty_strided(tensor.shape, tensor.stride(), dtype=tensor.dtype, device=META)
    if tensor.requires_grad:
        meta.requires_grad_(True)
    return meta


def _meta_twin(tensor: torch.Tensor) -> torch.Tensor:
    meta = _META_TWINS.get(tensor)
    if (meta is None or meta.shape != tensor.shape or meta.dtype != tensor.dtype
            or meta.stride() != tensor.stride() or meta.requires_grad != tensor.requires_grad):
        meta = _stand_in(tensor)
        if isinstance(tensor, nn.Parameter):
            meta = nn.Parameter(meta, requires_grad=tensor.requires_grad)
        _META_TWINS[tensor] = meta
    return meta


@contextmanager
def weights_on_meta(modules: Iterable[nn.Module]):
    """Temporarily replace every parameter and buffer of ``modules`` by a meta tensor.

    Nothing is copied; the real tensors are put back afterwards, also on error. A tensor
    shared by several modules stays shared.
    """
    saved = []
    for module in modules:
        for table in (module._parameters, module._buffers):
            if table:
                for name, tensor in table.items():
                    if tensor is not None:
                        saved.append((table, name, tensor))
    try:
        for table, name, tensor in saved:
            table[name] = _meta_twin(tensor)
        yield
    finally:
        for table, name, tensor in saved:
            table[name] = tensor


def to_meta(tree):
    """Every tensor in a (nested) structure replaced by a meta tensor of the same shape,
    dtype, strides and ``requires_grad``."""
    return tree_map(lambda t: _stand_in(t) if isinstance(t, torch.Tensor) else t, tree)


# --- shapes without meta kernels ------------------------------------------------------------------

_STRIDES: Dict[Tuple[int, ...], Tuple[int, ...]] = {}


def _contiguous_strides(shape: Tuple[int, ...]) -> Tuple[int, ...]:
    strides = _STRIDES.get(shape)
    if strides is None:
        acc, out = 1, []
        for size in reversed(shape):
            out.append(acc)
            acc *= max(size, 1)
        strides = _STRIDES[shape] = tuple(reversed(out))
    return strides


def _plain(t: torch.Tensor) -> bool:
    """Row-major with the strides ``torch.empty`` gives (even on size-1 dimensions).

    Kernels give such inputs row-major outputs; other layouts (channels-last, transposed,
    and tensors whose size-1 dimensions carry other strides, which PyTorch may read as
    channels-last) are left to PyTorch's meta kernels.
    """
    return isinstance(t, torch.Tensor) and t.device.type == "meta" and t.stride() == _contiguous_strides(tuple(t.shape))


def _empty(shape, dtype) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype, device=META)


def _broadcast(a: Tuple[int, ...], b: Tuple[int, ...]) -> Optional[Tuple[int, ...]]:
    if a == b:
        return a
    if len(a) < len(b):
        a, b = b, a
    b = (1,) * (len(a) - len(b)) + b
    out = []
    for x, y in zip(a, b):
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            return None  # not broadcastable: let PyTorch raise
    return tuple(out)


#: Element-wise operators answered from their operands' shapes (output: the broadcast shape,
#: row-major, the first operand's dtype).
ELEMENTWISE = set(
    """
    relu relu6 leaky_relu hardtanh clamp clamp_min clamp_max threshold elu selu celu gelu silu
    mish sigmoid tanh hardswish hardsigmoid softplus erf neg abs exp sqrt rsqrt reciprocal sin cos
    add sub mul div rsub maximum minimum pow log exp2 expm1 log1p sign floor ceil round trunc
    square lerp addcmul addcdiv
    """.split()
)


def _elementwise(args, kwargs, inplace: bool):
    """Out of place: row-major operands of one float dtype (and Python numbers) -> a row-major
    result of the broadcast shape. In place: the first operand itself."""
    x = args[0]
    if not isinstance(x, torch.Tensor) or x.device.type != "meta" or not x.is_floating_point() or kwargs:
        return None  # e.g. pow(2, x), or a tensor made on the CPU inside forward
    shape = tuple(x.shape)
    for other in args[1:]:
        if isinstance(other, torch.Tensor):
            if other.dtype != x.dtype or not (_plain(other) or other.dim() == 0 and other.device.type == "meta"):
                return None  # type promotion or another layout: the meta kernel decides
            if other.shape != x.shape:
                shape = _broadcast(shape, tuple(other.shape))
                if shape is None:
                    return None
        elif other is None or not isinstance(other, (int, float)):
            return None  # a complex number, a string (gelu's approximate): the kernel decides
    if inplace:
        return x if shape == tuple(x.shape) else None
    if not _plain(x) and x.dim():
        return None
    return _empty(shape, x.dtype)


def _conv(args, kwargs):
    x, weight = args[0], args[1]
    stride, padding, dilation, transposed, output_padding, groups = args[3:9]
    if x.dim() != weight.dim() or x.dtype != weight.dtype or not (_plain(x) and _plain(weight)):
        return None
    spatial = []
    for i, size in enumerate(x.shape[2:]):
        K = weight.shape[2 + i]
        if transposed:
            out = (size - 1) * stride[i] - 2 * padding[i] + dilation[i] * (K - 1) + output_padding[i] + 1
        else:
            out = (size + 2 * padding[i] - dilation[i] * (K - 1) - 1) // stride[i] + 1
        if out <= 0:
            return None
        spatial.append(out)
    channels = weight.shape[1] * groups if transposed else weight.shape[0]
    return _empty((x.shape[0], channels, *spatial), x.dtype)


def _matmul(first: int):
    """mm/bmm (first = 0) and addmm/baddbmm (first = 1): a row-major (…, n, m) result."""

    def shape(args, kwargs):
        a, b = args[first], args[first + 1]
        if a.dtype != b.dtype or a.dim() != b.dim() or a.shape[-1] != b.shape[-2]:
            return None
        if a.dim() == 3 and a.shape[0] != b.shape[0]:
            return None
        return _empty((*a.shape[:-1], b.shape[-1]), a.dtype)

    return shape


def _reduced_shape(x: torch.Tensor, dims, keepdim: bool) -> Tuple[int, ...]:
    n = x.dim()
    if dims is None or (isinstance(dims, (list, tuple)) and len(dims) == 0):
        dims = range(n)
    elif isinstance(dims, int):
        dims = (dims,)
    dims = {d % n if n else 0 for d in dims}
    if keepdim:
        return tuple(1 if i in dims else s for i, s in enumerate(x.shape))
    return tuple(s for i, s in enumerate(x.shape) if i not in dims)


def _reduction(args, kwargs):
    """sum/mean/amax/amin/linalg_vector_norm over dims of a row-major input, same dtype."""
    x = args[0]
    if not _plain(x) or not x.is_floating_point() or kwargs.get("dtype") not in (None, x.dtype):
        return None
    return x, args


def _sum_mean(args, kwargs):  # sum.dim_IntList / mean.dim (x, dim, keepdim=False, *, dtype=None)
    if _reduction(args, kwargs) is None or (len(args) > 3 and args[3] not in (None, args[0].dtype)):
        return None
    x = args[0]
    dims = args[1] if len(args) > 1 else kwargs.get("dim")
    keepdim = args[2] if len(args) > 2 else kwargs.get("keepdim", False)
    return _empty(_reduced_shape(x, dims, keepdim), x.dtype)


def _amax(args, kwargs):  # amax/amin (x, dim=[], keepdim=False)
    if _reduction(args, kwargs) is None:
        return None
    x = args[0]
    dims = args[1] if len(args) > 1 else kwargs.get("dim", ())
    keepdim = args[2] if len(args) > 2 else kwargs.get("keepdim", False)
    return _empty(_reduced_shape(x, dims, keepdim), x.dtype)


def _vector_norm(args, kwargs):  # linalg_vector_norm (x, ord=2, dim=None, keepdim=False, *, dtype=None)
    if _reduction(args, kwargs) is None:
        return None
    x = args[0]
    dims = args[2] if len(args) > 2 else kwargs.get("dim")
    keepdim = args[3] if len(args) > 3 else kwargs.get("keepdim", False)
    return _empty(_reduced_shape(x, dims, keepdim), x.dtype)


def _softmax(args, kwargs):  # _softmax / _log_softmax (x, dim, half_to_float), _safe_softmax (x, dim, dtype)
    x = args[0]
    if not _plain(x) or (len(args) > 2 and args[2] not in (False, None, x.dtype)) or kwargs.get("dtype") not in (None, x.dtype):
        return None
    return _empty(tuple(x.shape), x.dtype)


def _same_shape(args, kwargs):
    """Row-major input -> row-major output of the same shape (e.g. softmax, cumsum)."""
    x = args[0]
    if not _plain(x) or kwargs.get("dtype") not in (None, x.dtype):
        return None
    return _empty(tuple(x.shape), x.dtype)


def _batch_norm(args, kwargs):
    # native_batch_norm (x, w, b, mean, var, training, momentum, eps) at inference, and
    # _native_batch_norm_legit_no_training (x, w, b, mean, var, momentum, eps)
    x = args[0]
    if not _plain(x) or (len(args) > 5 and args[5] is True):
        return None
    stats = _empty((0,), x.dtype)
    return _empty(tuple(x.shape), x.dtype), stats, _empty((0,), x.dtype)


def _layer_norm(args, kwargs):  # (x, normalized_shape, weight, bias, eps): always row-major
    x = args[0]
    if x.device.type != "meta":
        return None
    normalized = len(args[1])
    stats_shape = tuple(x.shape[: x.dim() - normalized]) + (1,) * normalized
    return _empty(tuple(x.shape), x.dtype), _empty(stats_shape, x.dtype), _empty(stats_shape, x.dtype)


def _group_norm(args, kwargs):  # (x, weight, bias, N, C, HxW, group, eps)
    x = args[0]
    if not _plain(x):
        return None
    return _empty(tuple(x.shape), x.dtype), _empty((args[3], args[6]), x.dtype), _empty((args[3], args[6]), x.dtype)


def _pool_size(size, K, stride, padding, dilation, ceil_mode):
    span = dilation * (K - 1) + 1
    numerator = size + 2 * padding - span + ((stride - 1) if ceil_mode else 0)
    out = numerator // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def _pair(value, n=2):
    if isinstance(value, int):
        return (value,) * n
    value = tuple(value)
    return value * n if len(value) == 1 else value


def _max_pool2d(args, kwargs):  # (x, kernel, stride=[], padding=0, dilation=1, ceil_mode=False)
    x = args[0]
    if not _plain(x) or x.dim() != 4 or kwargs:
        return None
    K = _pair(args[1])
    stride = _pair(args[2]) if len(args) > 2 and args[2] else K
    padding = _pair(args[3]) if len(args) > 3 else (0, 0)
    dilation = _pair(args[4]) if len(args) > 4 else (1, 1)
    ceil_mode = args[5] if len(args) > 5 else False
    shape = tuple(x.shape[:2]) + tuple(
        _pool_size(x.shape[2 + i], K[i], stride[i], padding[i], dilation[i], ceil_mode) for i in range(2))
    return _empty(shape, x.dtype), _empty(shape, torch.int64)


def _avg_pool2d(args, kwargs):  # (x, kernel, stride=[], padding=0, ceil_mode, count_include_pad, divisor)
    x = args[0]
    if not _plain(x) or x.dim() != 4 or kwargs:
        return None
    K = _pair(args[1])
    stride = _pair(args[2]) if len(args) > 2 and args[2] else K
    padding = _pair(args[3]) if len(args) > 3 else (0, 0)
    ceil_mode = args[4] if len(args) > 4 else False
    shape = tuple(x.shape[:2]) + tuple(
        _pool_size(x.shape[2 + i], K[i], stride[i], padding[i], 1, ceil_mode) for i in range(2))
    return _empty(shape, x.dtype)


def _adaptive_avg_pool2d(args, kwargs):  # (x, output_size)
    x = args[0]
    if not _plain(x) or x.dim() not in (3, 4):
        return None
    return _empty(tuple(x.shape[:-2]) + _pair(args[1]), x.dtype)


def _upsample(args, kwargs):  # upsample_*2d.default (x, output_size, [align_corners,] scales...)
    x = args[0]
    size = args[1]
    if not _plain(x) or not isinstance(size, (list, tuple)) or len(size) != x.dim() - 2:
        return None
    return _empty(tuple(x.shape[:2]) + tuple(size), x.dtype)


def _pad(args, kwargs):  # constant_pad_nd (x, pad, value=0)
    x = args[0]
    pad = args[1]
    if not _plain(x) or len(pad) % 2 or len(pad) // 2 > x.dim():
        return None
    shape = list(x.shape)
    for i in range(len(pad) // 2):
        shape[-1 - i] += pad[2 * i] + pad[2 * i + 1]
        if shape[-1 - i] < 0:
            return None
    return _empty(tuple(shape), x.dtype)


def _cat(args, kwargs):  # (tensors, dim=0)
    tensors = args[0]
    dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
    first = tensors[0] if tensors else None
    if first is None or first.dim() == 0:
        return None
    n = first.dim()
    d = dim % n
    total = 0
    for t in tensors:
        if t.dim() != n or t.dtype != first.dtype or not _plain(t):
            return None
        for i in range(n):
            if i != d and t.shape[i] != first.shape[i]:
                return None
        total += t.shape[d]
    shape = list(first.shape)
    shape[d] = total
    return _empty(tuple(shape), first.dtype)


def _copy_into(args, kwargs):  # copy_(dst, src): dst itself
    dst, src = args[0], args[1]
    if dst.device.type != "meta" or not isinstance(src, torch.Tensor) or _broadcast(tuple(dst.shape), tuple(src.shape)) != tuple(dst.shape):
        return None
    return dst


def _clone(args, kwargs):  # clone(x, memory_format=None): a row-major x stays row-major
    x = args[0]
    if not _plain(x) or kwargs.get("memory_format") not in (None, torch.preserve_format, torch.contiguous_format):
        return None
    return _empty(tuple(x.shape), x.dtype)


#: operator name -> function(args, kwargs) -> the meta result, or None to run the meta kernel.
SHAPE_RULES: Dict[str, Callable] = {
    "convolution": _conv,
    "mm": _matmul(0),
    "bmm": _matmul(0),
    "addmm": _matmul(1),
    "baddbmm": _matmul(1),
    "sum": _sum_mean,
    "mean": _sum_mean,
    "amax": _amax,
    "amin": _amax,
    "linalg_vector_norm": _vector_norm,
    "_softmax": _softmax,
    "_log_softmax": _softmax,
    "_safe_softmax": _softmax,
    "cumsum": _same_shape,
    "native_batch_norm": _batch_norm,
    "_native_batch_norm_legit_no_training": _batch_norm,
    "native_layer_norm": _layer_norm,
    "native_group_norm": _group_norm,
    "max_pool2d_with_indices": _max_pool2d,
    "avg_pool2d": _avg_pool2d,
    "_adaptive_avg_pool2d": _adaptive_avg_pool2d,
    "upsample_nearest2d": _upsample,
    "upsample_bilinear2d": _upsample,
    "upsample_bicubic2d": _upsample,
    "_upsample_nearest_exact2d": _upsample,
    "constant_pad_nd": _pad,
    "cat": _cat,
    "copy": _copy_into,
    "clone": _clone,
}


def shape_rule(name: str, func) -> Optional[Callable]:
    """The function that answers operator ``func`` (named ``name``) on meta tensors, if any.

    Only for the overloads whose arguments the rules read (e.g. ``sum.dim_IntList``, not
    ``sum.default`` with a ``dtype``); ``None`` means PyTorch's meta kernel runs.
    """
    overload = func._overloadname
    if name in ELEMENTWISE:
        if overload in ("Tensor", "default", "Scalar", "Tensor_Scalar", "Scalar_Tensor") and _simple_schema(func):
            inplace = func.overloadpacket.__name__.endswith("_")
            return lambda args, kwargs: _elementwise(args, kwargs, inplace)
        return None
    rule = SHAPE_RULES.get(name)
    if rule is None:
        return None
    allowed = _OVERLOADS.get(name, ("default",))
    return rule if overload in allowed else None


_OVERLOADS = {
    "sum": ("dim_IntList",),
    "mean": ("dim",),
    "cat": ("default",),
    "copy": ("default",),
    "cumsum": ("default",),
}


def _simple_schema(func) -> bool:
    """No ``out=`` argument and every tensor argument read by value."""
    return not any(a.alias_info is not None and a.alias_info.is_write and a.name != "self"
                   for a in func._schema.arguments)


def shape_only(name: str, func, args: tuple, kwargs: dict) -> Optional[Any]:
    """The result of ``func(*args, **kwargs)`` on meta tensors, where it is known from the inputs.

    Returns ``None`` when no rule applies (then the caller runs the meta kernel).
    """
    rule = shape_rule(name, func)
    return rule(args, kwargs) if rule is not None and args and isinstance(args[0], (torch.Tensor, list, tuple)) else None


# --- attention ---------------------------------------------------------------------------------

_FUSED_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)


def uses_fused_kernel(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                      enable_gqa=False, **_) -> bool:
    """Whether ``F.scaled_dot_product_attention`` on CPU runs its fused (flash) kernel.

    PyTorch 2.14's CPU conditions (``sdp_utils_cpp``), checked from shapes alone: the flash
    backend enabled (``torch.backends.cuda.flash_sdp_enabled()``, which CPU obeys too); no
    dropout; 3-D or 4-D query, key and value (3-D ones run as one batch of ``B`` heads); equal
    batch and head counts (key/value heads may divide the query's with ``enable_gqa``); equal
    head dims; non-empty sequences; unit stride in the last dimension; a float dtype; and a
    mask with unit last stride, of 2 dims or of 4 dims broadcastable over batch and heads,
    whose last two dims are (L or 1, S or 1). So a 3-D mask on 4-D inputs sends it to the
    math path. ``tests/test_count_meta.py`` checks this against the kernel PyTorch dispatches.
    """
    if not torch.backends.cuda.flash_sdp_enabled():
        return False
    tensors = (query, key, value)
    dim = query.dim()
    if dropout_p or dim not in (3, 4) or any(t.dim() != dim for t in tensors):
        return False
    if query.dtype not in _FUSED_DTYPES or any(t.dtype != query.dtype for t in tensors):
        return False
    if any(t.stride(-1) != 1 for t in tensors):
        return False
    q, k, v = ((1,) * (4 - dim) + tuple(t.shape) for t in tensors)  # 3-D: one batch
    B, heads, L, E = q
    S = k[2]
    if k[0] != B or v[0] != B or k[1] != v[1]:
        return False
    if k[1] != heads and not (enable_gqa and heads % k[1] == 0):
        return False
    if not (E == k[3] == v[3]) or not (L and S and E):
        return False
    if attn_mask is not None:
        mask = (1,) * (4 - dim) + tuple(attn_mask.shape) if attn_mask.dim() == dim else tuple(attn_mask.shape)
        if attn_mask.requires_grad or attn_mask.stride(-1) != 1 or len(mask) not in (2, 4):
            return False
        if mask[-2] not in (L, 1) or mask[-1] not in (S, 1):
            return False
        if len(mask) == 4 and (mask[0] not in (1, B) or mask[1] not in (1, heads)):
            return False
    return True


def attention_output(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, fused: bool) -> torch.Tensor:
    """The meta output of ``scaled_dot_product_attention``, laid out as the CPU kernel lays it out.

    Shape ``(..., L, Ev)``. The fused CPU kernel (PyTorch 2.14) allocates it like the query
    (``empty_like``: the query's dimension order, dense), so ``out.transpose(1, 2)`` of a
    query made by ``qkv.permute(2, 0, 3, 1, 4)`` is free to reshape; the math path ends in a
    batched matmul and returns a row-major tensor.
    """
    if fused:
        return torch.empty_like(query, device=META)
    return _empty(tuple(query.shape[:-1]) + (value.shape[-1],), query.dtype)


# --- recurrent layers -----------------------------------------------------------------------------

def rnn_outputs(kind: str, input: torch.Tensor, hidden_size: int, out_size: int, layers: int,
                directions: int, batch_first: bool) -> Tuple[torch.Tensor, ...]:
    """The meta outputs of ``torch._VF.lstm/gru/rnn_tanh/rnn_relu`` as the CPU kernels lay them out.

    ``output`` is row-major in time-major order ``(T, B, directions * out_size)``, returned as
    ``(B, T, ...)`` by a transpose when ``batch_first``; ``h_n`` (and LSTM's ``c_n``) are
    row-major ``(layers * directions, B, out_size)`` (``c_n``: ``hidden_size``). ``out_size``
    is LSTM's ``proj_size`` when it has one, else ``hidden_size``.
    """
    T, B = (input.shape[1], input.shape[0]) if batch_first else (input.shape[0], input.shape[1])
    output = _empty((T, B, directions * out_size), input.dtype)
    if batch_first:
        output = output.transpose(0, 1)
    h_n = _empty((layers * directions, B, out_size), input.dtype)
    if kind == "lstm":
        return output, h_n, _empty((layers * directions, B, hidden_size), input.dtype)
    return output, h_n
