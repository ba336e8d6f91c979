"""Operator results on meta tensors, from their inputs' shapes and strides alone.

PyTorch's meta kernels for convolution, matrix products, reductions, pooling, padding,
concatenation, advanced indexing, cumulative sums and broadcasting element-wise operators
are Python reference code: up to 1 ms a call, more than the real kernel on a small model. The rules here give the same
tensors (shape, dtype and *strides*, which decide later copies) as PyTorch's CPU kernels:

* element-wise operators: TensorIterator's layout (a fast path when all operands share
  shape and layout; otherwise the output follows the operands' stride order, see
  :func:`elementwise_strides`, memoized: the same layouts recur in every block);
* advanced indexing by integer tensors (``table[:, idx]``, relative-position biases):
  TensorIterator's layout over the input restrided and the index;
* matrix products, reductions, softmax, layer norm, cumulative sums, stacks of row-major
  tensors, matmul's final ``_unsafe_view`` and ``empty`` on meta: a fresh row-major result;
* convolution, batch/group norm, pooling, padding, upsampling, concatenation: row-major
  when the input does not suggest channels-last (``Tensor.suggest_memory_format``).

A rule returns ``None`` where it does not apply (another dtype, a channels-last input, an
argument it does not read); PyTorch's meta kernel then runs. ``tests/test_count_shapes.py``
checks every rule against the CPU kernel on row-major, sliced, transposed, channels-last
and broadcast inputs.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch

META = torch.device("meta")
Shape = Tuple[int, ...]

_STRIDES: Dict[Shape, Shape] = {}


def contiguous_strides(shape: Shape) -> Shape:
    """The strides ``torch.empty(shape)`` gets (row-major; size-0 dims count as 1)."""
    strides = _STRIDES.get(shape)
    if strides is None:
        acc, out = 1, []
        for size in reversed(shape):
            out.append(acc)
            acc *= max(size, 1)
        strides = _STRIDES[shape] = tuple(reversed(out))
    return strides


def _meta(t) -> bool:
    return isinstance(t, torch.Tensor) and t.is_meta


def _empty(shape: Sequence[int], dtype, strides: Optional[Sequence[int]] = None) -> torch.Tensor:
    """A meta tensor (row-major unless ``strides``); ``empty_strided`` is the quickest way."""
    if strides is None:
        strides = contiguous_strides(tuple(shape))
    return torch.empty_strided(shape, strides, dtype=dtype, device=META)


def _channels_last_like(shape: Shape, strides: Shape) -> bool:
    """c10's ``is_channels_last_strides_2d_s4`` / ``_3d_s5``: strides that read as channels-last."""
    if len(shape) == 4:
        order = (1, 3, 2, 0)
    elif len(shape) == 5:
        order = (1, 4, 3, 2, 0)
    else:
        return False
    if strides[1] == 0:
        return False
    low = 0
    for d in order:
        if shape[d] == 0 or strides[d] < low:
            return False
        if d == 0 and low == strides[1]:
            return False
        low = strides[d] * shape[d] if shape[d] > 1 else strides[d]
    return True


def suggests_row_major(t: torch.Tensor, shape: Optional[torch.Size] = None) -> bool:
    """``t.suggest_memory_format() == torch.contiguous_format``; kernels that follow the
    suggested format then write a row-major result. (``shape``: ``t.shape``, if at hand.)"""
    if shape is None:
        shape = t.shape
    if len(shape) == 4 and shape[1] > 1 and shape[2] * shape[3] > 1 and t.is_contiguous():
        return True  # (c10's channels-last test fails at the first spatial dim)
    return not _channels_last_like(tuple(shape), t.stride())


def _channels_last_strides(shape: Shape) -> Shape:
    """The strides ``torch.empty(shape, memory_format=torch.channels_last)`` gets (4-D)."""
    N, C, H, W = (max(size, 1) for size in shape)
    return (H * W * C, 1, W * C, C)


def has_channels_last(tensors) -> bool:
    """Whether a 4-D or 5-D tensor among ``tensors`` suggests a channels-last layout."""
    return any(isinstance(t, torch.Tensor) and t.dim() in (4, 5) and not suggests_row_major(t) for t in tensors)


def _dense(shape: Shape, strides: Shape) -> bool:
    """c10's ``is_non_overlapping_and_dense``."""
    if len(shape) == 1:
        return shape[0] < 2 or strides[0] == 1
    dims = sorted((d for d in range(len(shape)) if shape[d] >= 2), key=lambda d: strides[d])
    expected = 1
    for d in dims:
        if strides[d] != expected:
            return False
        expected *= shape[d]
    return True


def _broadcast(a: Shape, b: Shape) -> Optional[Shape]:
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


def _stride_order(shape: Shape, operand_strides: Sequence[Shape]) -> list:
    """TensorIterator's ``reorder_dimensions``: dims from fastest to slowest moving.

    Operands' strides (0 on broadcast dims) are compared in operand order; the first one
    that orders two dims decides; equal strides put the smaller dim first.
    """
    n = len(shape)
    perm = list(range(n - 1, -1, -1))
    if n == 1:
        return [0]

    def should_swap(d0: int, d1: int) -> int:
        for strides in operand_strides:
            s0, s1 = strides[d0], strides[d1]
            if s0 == 0 or s1 == 0:
                continue
            if s0 < s1:
                return -1
            if s0 > s1:
                return 1
            if shape[d0] > shape[d1]:
                return 1
        return 0

    for i in range(1, n):
        dim1 = i
        for dim0 in range(i - 1, -1, -1):
            comparison = should_swap(perm[dim0], perm[dim1])
            if comparison > 0:
                perm[dim0], perm[dim1] = perm[dim1], perm[dim0]
                dim1 = dim0
            elif comparison < 0:
                break
    return perm


def _strides_from_order(shape: Shape, perm: Sequence[int]) -> Shape:
    if list(perm) == list(range(len(shape) - 1, -1, -1)):
        return contiguous_strides(shape)
    strides = [0] * len(shape)
    acc = 1
    for d in perm:
        strides[d] = acc
        acc *= shape[d]
    return tuple(strides)


def elementwise_strides(shape: Shape, operands: Sequence[torch.Tensor], scalars: bool) -> Optional[Shape]:
    """The strides TensorIterator gives the result of an element-wise operator.

    ``operands``: the tensor inputs, in order; ``scalars``: whether Python numbers are
    operands too (``x * 2.0``: a 0-dim operand, which turns the fast path off). Fast path,
    when every operand has the result's shape: all row-major -> row-major; all channels-last
    -> channels-last; all dense with the same strides -> those strides. Otherwise the result
    is dense in the order of :func:`_stride_order`.
    """
    if len(operands) == 1:
        t = operands[0]
        key = (shape, scalars, t.shape, t.stride())
    elif len(operands) == 2:
        a, b = operands
        key = (shape, scalars, a.shape, a.stride(), b.shape, b.stride())
    else:
        key = (shape, scalars) + tuple(value for t in operands for value in (t.shape, t.stride()))
    strides = _LAYOUTS.get(key, _MISSING)
    if strides is _MISSING:
        if len(_LAYOUTS) >= _LAYOUTS_KEPT:
            _LAYOUTS.clear()
        strides = _LAYOUTS[key] = _elementwise_strides(shape, operands, scalars)
    return strides


#: (result shape, scalars, operand shapes and strides) -> result strides: the same layouts
#: recur in every block of a model; the answer depends on nothing else.
_LAYOUTS: Dict[tuple, Optional[Shape]] = {}
_LAYOUTS_KEPT = 4096
_MISSING = object()


def _elementwise_strides(shape: Shape, operands: Sequence[torch.Tensor], scalars: bool) -> Optional[Shape]:
    if 0 in shape:
        return None
    n = len(shape)
    if not scalars and all(tuple(t.shape) == shape for t in operands):
        if all(t.is_contiguous() for t in operands):
            return contiguous_strides(shape)
        if n == 4 and all(t.is_contiguous(memory_format=torch.channels_last) for t in operands):
            return _channels_last_strides(shape)
        first = operands[0].stride()
        if _dense(shape, first) and all(t.stride() == first for t in operands[1:]):
            return first
    if n == 0:
        return ()
    aligned = []
    for t in operands:
        k = t.dim()
        strides = [0] * (n - k)
        for i, (size, stride) in enumerate(zip(t.shape, t.stride())):
            strides.append(0 if size == 1 and shape[n - k + i] != 1 else stride)
        aligned.append(strides)
    return _strides_from_order(shape, _stride_order(shape, aligned))


# --- the rules ----------------------------------------------------------------------------------

#: Element-wise operators whose Python-number arguments are operands (``x * 2.0``).
BINARY = {"add", "sub", "mul", "div", "rsub", "remainder", "fmod", "atan2", "eq", "ne", "lt", "le", "gt", "ge"}
#: Element-wise operators whose Python-number arguments are parameters (``leaky_relu(x, 0.1)``).
UNARY = set(
    """
    relu relu6 leaky_relu hardtanh clamp clamp_min clamp_max threshold elu selu celu gelu silu
    mish sigmoid tanh hardswish hardsigmoid softplus erf neg abs exp sqrt rsqrt reciprocal sin cos
    log exp2 expm1 log1p sign floor ceil round trunc square pow
    """.split()
)
#: Element-wise operators of several tensors and parameters.
TERNARY = {"maximum", "minimum", "lerp", "addcmul", "addcdiv"}
#: Element-wise operators whose CPU kernel allocates ``empty_like(x)`` (x's own layout)
#: instead of letting TensorIterator choose.
LIKE_INPUT = {"hardtanh"}
ELEMENTWISE = BINARY | UNARY | TERNARY
_COMPARISONS = {"eq", "ne", "lt", "le", "gt", "ge"}


def _elementwise(name: str, inplace: bool):
    scalars_are_operands = name in BINARY
    boolean = name in _COMPARISONS
    like_input = name in LIKE_INPUT

    def rule(args, kwargs):
        x = args[0]
        if not (isinstance(x, torch.Tensor) and x.is_meta) or not x.is_floating_point():
            return None  # e.g. pow(2, x), or a tensor made on the CPU inside forward
        x_shape = x.shape
        shape = x_shape
        operands = [x]
        scalars = False
        for other in args[1:]:
            if isinstance(other, torch.Tensor):
                if other.dtype != x.dtype or not other.is_meta:
                    return None  # type promotion, or a CPU tensor: the meta kernel decides
                operands.append(other)
                other_shape = other.shape
                if other_shape != shape:
                    shape = _broadcast(tuple(shape), tuple(other_shape))
                    if shape is None:
                        return None
            elif other is None and name in UNARY:
                continue  # clamp(x, None, 6): a parameter left out
            elif isinstance(other, bool) or not isinstance(other, (int, float, str)):
                return None  # a complex number, a boolean: the kernel decides
            else:
                scalars = scalars or (scalars_are_operands and not isinstance(other, str))
        if kwargs and any(isinstance(v, torch.Tensor) for v in kwargs.values()):
            return None
        shape = tuple(shape)
        if inplace:
            return x if shape == tuple(x_shape) else None
        if like_input:
            return _empty_like(x)
        strides = elementwise_strides(shape, operands, scalars and len(x_shape) > 0)
        if strides is None:
            return None
        return _empty(shape, torch.bool if boolean else x.dtype, strides)

    return rule


class LayoutUnknown(RuntimeError):
    """The CPU kernel's result layout cannot be told from shapes (a meta pass would guess).

    Raised for channels-last tensors reaching a kernel no rule answers (PyTorch's meta kernels
    lay such results out row-major where its CPU kernels keep them channels-last: reflection
    padding, for one), and by :func:`_conv` where the CPU layout depends on the backend.
    The counter then counts with a real pass, and says so.
    """


def _conv(args, kwargs):
    """convolution(x, w, bias, stride, padding, dilation, transposed, output_padding, groups).

    Row-major, or channels-last when the input or the weight suggests it (PyTorch's meta
    kernel answers row-major there: wrong). Raises :class:`LayoutUnknown` where the CPU
    backends (oneDNN, the slow path, picked by sizes, dtype and thread count) disagree: a
    grouped channels-last convolution with a 1x1 result, transposed or 3-D channels-last ones.
    """
    x, weight = args[0], args[1]
    if not (isinstance(x, torch.Tensor) and x.is_meta and isinstance(weight, torch.Tensor) and weight.is_meta):
        return None
    x_shape, w_shape = x.shape, weight.shape
    n = len(x_shape)
    if n != len(w_shape) or x.dtype != weight.dtype:
        return None
    stride, padding, dilation, transposed, output_padding, groups = args[3:9]
    channels_last = not (suggests_row_major(x, x_shape) and suggests_row_major(weight, w_shape))
    if channels_last and (n != 4 or transposed):
        raise LayoutUnknown("a channels-last 3-D or transposed convolution: its CPU result layout "
                            "depends on the backend PyTorch picks")
    shape = [x_shape[0], w_shape[1] * groups if transposed else w_shape[0]]
    for i in range(n - 2):
        size, K = x_shape[2 + i], w_shape[2 + i]
        if transposed:
            out = (size - 1) * stride[i] - 2 * padding[i] + dilation[i] * (K - 1) + output_padding[i] + 1
        else:
            out = (size + 2 * padding[i] - dilation[i] * (K - 1) - 1) // stride[i] + 1
        if out <= 0:
            return None
        shape.append(out)
    shape = tuple(shape)
    if not channels_last:
        return _empty(shape, x.dtype)
    if groups > 1 and shape[2] * shape[3] == 1:
        raise LayoutUnknown("a grouped channels-last convolution with a 1x1 result: its CPU layout "
                            "depends on the backend PyTorch picks")
    return _empty(shape, x.dtype, _channels_last_strides(shape))


def _matmul(first: int):
    """mm/bmm (first = 0) and addmm/baddbmm (first = 1): a fresh row-major (…, n, m)."""

    def rule(args, kwargs):
        a, b = args[first], args[first + 1]
        if not (_meta(a) and _meta(b)) or a.dtype != b.dtype or a.dim() != b.dim() or a.shape[-1] != b.shape[-2]:
            return None
        if a.dim() == 3 and a.shape[0] != b.shape[0]:
            return None
        return _empty((*a.shape[:-1], b.shape[-1]), a.dtype)

    return rule


def _reduced_shape(x: torch.Tensor, dims, keepdim: bool) -> Shape:
    n = x.dim()
    if dims is None or (isinstance(dims, (list, tuple)) and len(dims) == 0):
        dims = range(n)
    elif isinstance(dims, int):
        dims = (dims,)
    dims = {d % n if n else 0 for d in dims}
    if keepdim:
        return tuple(1 if i in dims else s for i, s in enumerate(x.shape))
    return tuple(s for i, s in enumerate(x.shape) if i not in dims)


def _reduction(dim_at: int, keepdim_at: int):
    """sum/mean/amax/amin/linalg_vector_norm: a fresh row-major result, whatever the input."""

    def rule(args, kwargs):
        x = args[0]
        if not _meta(x) or not x.is_floating_point() or kwargs.get("dtype") not in (None, x.dtype):
            return None
        if len(args) > max(dim_at, keepdim_at) + 1 and args[max(dim_at, keepdim_at) + 1] not in (None, x.dtype):
            return None  # a dtype argument
        dims = args[dim_at] if len(args) > dim_at else kwargs.get("dim")
        keepdim = args[keepdim_at] if len(args) > keepdim_at else kwargs.get("keepdim", False)
        return _empty(_reduced_shape(x, dims, keepdim), x.dtype)

    return rule


def _softmax(args, kwargs):
    """_softmax/_log_softmax (x, dim, half_to_float), _safe_softmax (x, dim, dtype): row-major."""
    x = args[0]
    if not _meta(x) or (len(args) > 2 and args[2] not in (False, None, x.dtype)) or kwargs.get("dtype") not in (None, x.dtype):
        return None
    return _empty(tuple(x.shape), x.dtype)


def _like_suggested(x: torch.Tensor, shape: Shape) -> Optional[torch.Tensor]:
    """A result in the memory format ``x`` suggests: row-major, or channels-last (4-D)."""
    if suggests_row_major(x):
        return _empty(shape, x.dtype)
    return _empty(shape, x.dtype, _channels_last_strides(shape)) if len(shape) == 4 else None


def _following_input(compute_shape: Callable):
    """Kernels whose result follows the input's suggested memory format."""

    def rule(args, kwargs):
        x = args[0]
        if not _meta(x):
            return None
        shape = compute_shape(x, args, kwargs)
        return None if shape is None else _like_suggested(x, shape)

    return rule


_STATS: Dict[object, torch.Tensor] = {}


def _no_stats(dtype) -> torch.Tensor:
    stats = _STATS.get(dtype)
    if stats is None:
        stats = _STATS[dtype] = _empty((0,), dtype)
    return stats


def _batch_norm(args, kwargs):
    """native_batch_norm (x, weight, bias, mean, var, training, momentum, eps)."""
    x = args[0]
    if not _meta(x) or x.dim() < 2:
        return None
    out = _like_suggested(x, tuple(x.shape))
    if out is None:
        return None
    if args[5] is True:  # training: per-channel statistics are returned too
        return out, _empty((x.shape[1],), x.dtype), _empty((x.shape[1],), x.dtype)
    stats = _no_stats(x.dtype)
    return out, stats, stats


def _layer_norm(args, kwargs):
    """native_layer_norm (x, normalized_shape, weight, bias, eps): always row-major."""
    x = args[0]
    if not _meta(x):
        return None
    normalized = len(args[1])
    stats_shape = tuple(x.shape[: x.dim() - normalized]) + (1,) * normalized
    return _empty(tuple(x.shape), x.dtype), _empty(stats_shape, x.dtype), _empty(stats_shape, x.dtype)


def _group_norm(args, kwargs):
    """native_group_norm (x, weight, bias, N, C, HxW, group, eps): row-major or channels-last,
    as the input suggests (PyTorch's meta kernel always answers row-major)."""
    x = args[0]
    if not _meta(x):
        return None
    N, group = args[3], args[6]
    out = _like_suggested(x, tuple(x.shape))
    return None if out is None else (out, _empty((N, group), x.dtype), _empty((N, group), x.dtype))


def _pool_size(size, K, stride, padding, dilation, ceil_mode):
    span = dilation * (K - 1) + 1
    out = (size + 2 * padding - span + ((stride - 1) if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def _pair(value, n=2):
    if isinstance(value, int):
        return (value,) * n
    value = tuple(value)
    return value * n if len(value) == 1 else value


def _pooled(x, args, with_dilation: bool):
    K = _pair(args[1])
    stride = _pair(args[2]) if len(args) > 2 and args[2] else K
    padding = _pair(args[3]) if len(args) > 3 else (0, 0)
    if with_dilation:
        dilation = _pair(args[4]) if len(args) > 4 else (1, 1)
        ceil_mode = args[5] if len(args) > 5 else False
    else:
        dilation, ceil_mode = (1, 1), (args[4] if len(args) > 4 else False)
    sizes = tuple(_pool_size(x.shape[-2 + i], K[i], stride[i], padding[i], dilation[i], ceil_mode) for i in range(2))
    return None if min(sizes) <= 0 else tuple(x.shape[:-2]) + sizes


def _max_pool2d(args, kwargs):  # (x, kernel, stride=[], padding=0, dilation=1, ceil_mode=False)
    x = args[0]
    if kwargs or not _meta(x) or x.dim() != 4:
        return None
    shape = _pooled(x, args, with_dilation=True)
    out = None if shape is None else _like_suggested(x, shape)
    return None if out is None else (out, _empty(shape, torch.int64, out.stride()))


def _avg_pool2d(args, kwargs):  # (x, kernel, stride=[], padding=0, ceil_mode, count_include_pad, divisor)
    x = args[0]
    if kwargs or not _meta(x) or x.dim() != 4:
        return None
    shape = _pooled(x, args, with_dilation=False)
    return None if shape is None else _like_suggested(x, shape)


def _adaptive_shape(x, args, kwargs):  # _adaptive_avg_pool2d (x, output_size)
    return tuple(x.shape[:-2]) + _pair(args[1]) if x.dim() in (3, 4) else None


def _upsample_shape(x, args, kwargs):  # upsample_*.default (x, output_size, ...)
    size = args[1]
    if not isinstance(size, (list, tuple)) or len(size) != x.dim() - 2:
        return None
    return tuple(x.shape[:2]) + tuple(size)


def _pad(args, kwargs):
    """constant_pad_nd (x, pad, value=0): padding gives the memory format x suggests;
    cropping (no positive pad) a copy of the cropped view, dense in x's stride order."""
    x, pad = args[0], args[1]
    if not _meta(x) or len(pad) % 2 or len(pad) // 2 > x.dim():
        return None
    shape = list(x.shape)
    for i in range(len(pad) // 2):
        shape[-1 - i] += pad[2 * i] + pad[2 * i + 1]
        if shape[-1 - i] <= 0:
            return None
    shape = tuple(shape)
    if min(pad) >= 0 and max(pad) > 0:
        return _like_suggested(x, shape)
    if max(pad) <= 0:
        return _empty_like_strided(shape, x.stride(), x.dtype)
    return None  # cropping one side and padding another


def _cat(args, kwargs):
    """cat(tensors, dim=0): row-major as soon as one input suggests it, channels-last when
    all do (ATen's ``compute_output_memory_format``)."""
    tensors = args[0]
    dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
    if not tensors:
        return None
    first = tensors[0]
    if not _meta(first) or first.dim() == 0:
        return None
    n = first.dim()
    d = dim % n
    total = 0
    row_major = False
    for t in tensors:
        if not _meta(t) or t.dim() != n or t.dtype != first.dtype or t.numel() == 0:
            return None
        for i in range(n):
            if i != d and t.shape[i] != first.shape[i]:
                return None
        total += t.shape[d]
        row_major = row_major or suggests_row_major(t)
    shape = list(first.shape)
    shape[d] = total
    if row_major:
        return _empty(tuple(shape), first.dtype)
    return _empty(tuple(shape), first.dtype, _channels_last_strides(tuple(shape))) if n == 4 else None


def _copy_into(args, kwargs):
    """copy_(dst, src): dst itself."""
    dst, src = args[0], args[1]
    if not _meta(dst) or not isinstance(src, torch.Tensor) or _broadcast(tuple(dst.shape), tuple(src.shape)) != tuple(dst.shape):
        return None
    return dst


def empty_like(x: torch.Tensor) -> Optional[torch.Tensor]:
    """``torch.empty_like(x)`` on meta (``None`` for 0-dim or empty x), without its cost."""
    return _empty_like(x)


def _empty_like(x: torch.Tensor) -> Optional[torch.Tensor]:
    """``torch.empty_like(x)``: a dense x's strides, or dense in x's stride order."""
    return _empty_like_strided(tuple(x.shape), x.stride(), x.dtype)


def _empty_like_strided(shape: Shape, strides: Shape, dtype) -> Optional[torch.Tensor]:
    if not shape or 0 in shape:
        return None
    if _dense(shape, strides):
        return _empty(shape, dtype, strides)
    return _empty(shape, dtype, _strides_from_order(shape, _stride_order(shape, [strides])))


def _index(args, kwargs):
    """index(x, indices): ``x[:, idx]``, advanced indexing by one row-major int64 tensor, or
    several of the same shape in adjacent dims (``None`` for the dims not indexed), e.g. a
    table of relative-position biases gathered into an attention map.

    The CPU kernel (``AdvancedIndex``) runs TensorIterator on x restrided (the indexed dims
    replaced by the index's shape, with stride 0) and the index tensors (viewed with size-1
    dims around them); the result takes TensorIterator's layout, as an element-wise result
    does. Declined: masks, other index dtypes or layouts, non-adjacent indexed dims (PyTorch
    moves them to the front first), and layouts where TensorIterator's channels-last or
    same-strides fast paths could apply.
    """
    x, indices = args[0], args[1]
    n = x.dim()
    if not _meta(x) or not indices or len(indices) > n or x.numel() == 0:
        return None
    first = last = replacement = None  # the indexed dims, and the index's shape
    count = 0
    for d, index in enumerate(indices):
        if index is None:
            continue
        if not _meta(index) or index.dtype != torch.int64 or not index.is_contiguous():
            return None  # a mask (its result's size depends on values), or an index to convert
        if replacement is None:
            first, replacement = d, tuple(index.shape)
        elif d != last + 1 or tuple(index.shape) != replacement:
            return None  # not adjacent, or index tensors to broadcast
        last = d
        count += 1
    if replacement is None or not replacement or 0 in replacement:
        return None
    shape, strides = tuple(x.shape), x.stride()
    out_shape = shape[:first] + replacement + shape[last + 1:]
    # Operand strides as TensorIterator sees them: 0 where an operand of size 1 is broadcast.
    src = strides[:first] + (0,) * len(replacement) + strides[last + 1:]
    view_shape = (1,) * first + replacement + (1,) * (n - last - 1)  # index.reshape(...)
    idx = tuple(0 if view_size == 1 and size != 1 else stride
                for view_size, size, stride in zip(view_shape, out_shape, contiguous_strides(view_shape)))
    operands = [src] + [idx] * count
    if all(_row_major_like(out_shape, o) for o in operands):
        return _empty(out_shape, x.dtype)
    if len(out_shape) == 4 and all(_row_major_like(out_shape, o, _channels_last_strides(out_shape)) for o in operands):
        return None  # TensorIterator's channels-last fast path
    if all(o == src for o in operands) and _dense(out_shape, src):
        return None  # the same dense strides everywhere: its third fast path
    return _empty(out_shape, x.dtype, _strides_from_order(out_shape, _stride_order(out_shape, operands)))


def _row_major_like(shape: Shape, strides: Shape, expected: Optional[Shape] = None) -> bool:
    """Whether ``strides`` equal ``expected`` (row-major by default) on every dim of size > 1
    (how ``is_contiguous`` reads them)."""
    expected = expected or contiguous_strides(shape)
    return all(s == e for s, e, size in zip(strides, expected, shape) if size != 1)


def _repeat(args, kwargs):
    """repeat(x, repeats): a fresh row-major tensor."""
    x, repeats = args[0], args[1]
    if not _meta(x) or len(repeats) < x.dim():
        return None
    sizes = (1,) * (len(repeats) - x.dim()) + tuple(x.shape)
    return _empty(tuple(s * r for s, r in zip(sizes, repeats)), x.dtype)


def _clone(args, kwargs):
    """clone(x, memory_format=preserve): like ``empty_like(x)``; ``contiguous_format``: row-major."""
    x = args[0]
    if not _meta(x):
        return None
    memory_format = kwargs.get("memory_format", torch.preserve_format)
    if memory_format is torch.contiguous_format:
        return _empty(tuple(x.shape), x.dtype)
    return _empty_like(x) if memory_format is torch.preserve_format else None


def _im2col(args, kwargs):  # im2col (x, kernel_size, dilation, padding, stride): (B, C·kh·kw, L)
    x = args[0]
    if not _meta(x) or x.dim() not in (3, 4):
        return None
    K, dilation, padding, stride = (_pair(a) for a in args[1:5])
    blocks = [(x.shape[-2 + i] + 2 * padding[i] - dilation[i] * (K[i] - 1) - 1) // stride[i] + 1 for i in range(2)]
    if min(blocks) <= 0:
        return None
    C = x.shape[-3]
    return _empty(tuple(x.shape[:-3]) + (C * K[0] * K[1], blocks[0] * blocks[1]), x.dtype)


def _col2im(args, kwargs):  # col2im (x, output_size, kernel_size, dilation, padding, stride): (B, C, H, W)
    x = args[0]
    if not _meta(x) or x.dim() not in (2, 3):
        return None
    K = _pair(args[2])
    C = x.shape[-2] // (K[0] * K[1])
    return _empty(tuple(x.shape[:-2]) + (C,) + tuple(_pair(args[1])), x.dtype)


def _empty_factory(args, kwargs):
    """empty.memory_format(size, dtype, layout, device, ...) on meta: a row-major tensor (what
    ``F.batch_norm`` makes for its unused reserve, once per call)."""
    if kwargs.get("device") != META or kwargs.get("layout") not in (None, torch.strided) or kwargs.get("pin_memory"):
        return None
    if kwargs.get("memory_format") not in (None, torch.contiguous_format) or len(args) != 1:
        return None
    size = args[0]
    if not all(isinstance(v, int) and v >= 0 for v in size):
        return None
    return _empty(tuple(size), kwargs.get("dtype") or torch.get_default_dtype())


def _unsafe_view(args, kwargs):
    """_unsafe_view(x, size), which matmul puts on its bmm/mm result: for a row-major x, a
    row-major tensor of the new shape (``-1`` resolved)."""
    x, size = args[0], list(args[1])
    if not _meta(x) or not x.is_contiguous() or size.count(-1) > 1:
        return None
    numel = x.numel()
    if -1 in size:
        known = math.prod(v for v in size if v != -1)
        if known == 0 or numel % known:
            return None
        size[size.index(-1)] = numel // known
    if math.prod(size) != numel or min(size, default=0) < 0:
        return None
    return _empty(tuple(size), x.dtype)


def _cumsum(args, kwargs):
    """cumsum(x, dim, dtype=None): a fresh row-major tensor of x's shape, of ``dtype``, else
    x's floating dtype, else int64 (integer and boolean x are summed in int64)."""
    x = args[0]
    if not _meta(x) or x.dim() == 0 or x.is_complex():
        return None
    dtype = kwargs.get("dtype") or (x.dtype if x.is_floating_point() else torch.int64)
    return _empty(tuple(x.shape), dtype)


def _stack(args, kwargs):
    """stack(tensors, dim=0) of row-major tensors of one shape and dtype: row-major."""
    tensors = args[0]
    dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
    if not tensors:
        return None
    first = tensors[0]
    shape = tuple(first.shape) if _meta(first) else None
    for t in tensors:
        if not _meta(t) or tuple(t.shape) != shape or t.dtype != first.dtype or not t.is_contiguous():
            return None
    n = len(shape) + 1
    if not -n <= dim < n:
        return None
    d = dim % n
    return _empty(shape[:d] + (len(tensors),) + shape[d:], first.dtype)


def _arange(args, kwargs):
    """arange(end) / arange(start, end[, step]) on meta: a 1-D row-major tensor."""
    if kwargs.get("device") != META or kwargs.get("layout") not in (None, torch.strided):
        return None
    numbers = list(args)
    if not numbers or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers):
        return None
    start, end, step = (0, numbers[0], 1) if len(numbers) == 1 else (numbers + [1])[:3]
    if step == 0:
        return None
    dtype = kwargs.get("dtype") or (torch.int64 if all(isinstance(v, int) for v in numbers) else torch.get_default_dtype())
    length = max(0, math.ceil((end - start) / step))
    return _empty((length,), dtype)


#: operator name -> (overloads the rule reads, rule(args, kwargs) -> result or None).
SHAPE_RULES: Dict[str, Tuple[Tuple[str, ...], Callable]] = {
    "convolution": (("default",), _conv),
    "mm": (("default",), _matmul(0)),
    "bmm": (("default",), _matmul(0)),
    "addmm": (("default",), _matmul(1)),
    "baddbmm": (("default",), _matmul(1)),
    "sum": (("dim_IntList",), _reduction(1, 2)),
    "mean": (("dim",), _reduction(1, 2)),
    "amax": (("default",), _reduction(1, 2)),
    "amin": (("default",), _reduction(1, 2)),
    "linalg_vector_norm": (("default",), _reduction(2, 3)),
    "_softmax": (("default",), _softmax),
    "_log_softmax": (("default",), _softmax),
    "_safe_softmax": (("default",), _softmax),
    "native_batch_norm": (("default",), _batch_norm),
    "native_layer_norm": (("default",), _layer_norm),
    "native_group_norm": (("default",), _group_norm),
    "max_pool2d_with_indices": (("default",), _max_pool2d),
    "avg_pool2d": (("default",), _avg_pool2d),
    "_adaptive_avg_pool2d": (("default",), _following_input(_adaptive_shape)),
    "upsample_nearest2d": (("default",), _following_input(_upsample_shape)),
    "upsample_bilinear2d": (("default",), _following_input(_upsample_shape)),
    "upsample_bicubic2d": (("default",), _following_input(_upsample_shape)),
    "_upsample_nearest_exact2d": (("default",), _following_input(_upsample_shape)),
    "constant_pad_nd": (("default",), _pad),
    "repeat": (("default",), _repeat),
    "index": (("Tensor",), _index),
    "cat": (("default",), _cat),
    "copy_": (("default",), _copy_into),
    "clone": (("default",), _clone),
    "im2col": (("default",), _im2col),
    "col2im": (("default",), _col2im),
    "arange": (("default", "start", "start_step"), _arange),
    "empty": (("memory_format",), _empty_factory),
    "_unsafe_view": (("default",), _unsafe_view),
    "cumsum": (("default",), _cumsum),
    "stack": (("default",), _stack),
}


def _reads_only(func) -> bool:
    """No argument but ``self`` is written (so no ``out=`` variant)."""
    return not any(a.alias_info is not None and a.alias_info.is_write and a.name != "self"
                   for a in func._schema.arguments)


def shape_rule(func) -> Optional[Callable]:
    """The rule that answers ATen overload ``func`` on meta tensors, or ``None``.

    ``func`` such as ``torch.ops.aten.add.Tensor``; in-place element-wise overloads
    (``add_``) return their first operand.
    """
    packet = func.overloadpacket.__name__
    overload = func._overloadname
    inplace = packet.endswith("_") and packet != "copy_"
    name = packet[:-1] if inplace else packet
    if name in ELEMENTWISE:
        if overload in ("Tensor", "default", "Scalar", "Tensor_Scalar", "Tensor_mode", "other") and _reads_only(func):
            return _elementwise(name, inplace)
        return None
    if inplace or packet not in SHAPE_RULES:
        return None
    overloads, rule = SHAPE_RULES[packet]
    return rule if overload in overloads else None
