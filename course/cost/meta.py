"""Running a model on *meta* tensors: shapes and dtypes, no storage, no arithmetic.

The counter's default pass. Costs depend only on shapes, so a meta pass gives the same
numbers as a real one, needs no activation memory, and counts a ViT at 1024x1024 in a moment.

Two things make it exact and fast:

* every stand-in keeps what PyTorch looks at when it picks a decomposition (shape, dtype,
  strides, ``requires_grad``: a Linear on a strided 3-D input folds into one ``mm`` only when
  its weight requires grad), and the attention and RNN calls charged as a whole get their
  outputs laid out as the CPU kernels lay them out (:func:`attention_output`,
  :func:`rnn_outputs`);
* the common operators are answered from their inputs' shapes and strides
  (:mod:`course.cost.shapes`) rather than by PyTorch's meta kernels, many of which are
  Python reference code slower than the real kernel on a small model.
"""

from __future__ import annotations

import weakref
from contextlib import contextmanager
from functools import partial
from typing import Dict, Iterable, Tuple

import torch
from torch import nn
from torch.utils._pytree import tree_map

from course.cost.shapes import contiguous_strides, empty_like

META = torch.device("meta")

#: id(real tensor) -> (weak reference to it, its meta stand-in). Counting a model again, as an
#: explorer does on every slider move, reuses the stand-ins; an entry goes with its tensor.
_META_TWINS: Dict[int, tuple] = {}


def _stand_in(tensor: torch.Tensor) -> torch.Tensor:
    """A meta tensor with ``tensor``'s shape, dtype, strides and ``requires_grad``."""
    meta = torch.empty_strided(tensor.shape, tensor.stride(), dtype=tensor.dtype, device=META)
    if tensor.requires_grad:
        meta.requires_grad_(True)
    return meta


def _forget(key: int, _ref) -> None:
    _META_TWINS.pop(key, None)


def _meta_twin(tensor: torch.Tensor) -> torch.Tensor:
    entry = _META_TWINS.get(id(tensor))
    if entry is not None and entry[0]() is tensor:
        meta = entry[1]
        if (meta.shape == tensor.shape and meta.dtype == tensor.dtype and meta.requires_grad == tensor.requires_grad
                and meta.stride() == tensor.stride()):
            return meta
    meta = _stand_in(tensor)
    if isinstance(tensor, nn.Parameter):
        meta = nn.Parameter(meta, requires_grad=tensor.requires_grad)
    key = id(tensor)
    _META_TWINS[key] = (weakref.ref(tensor, partial(_forget, key)), meta)
    return meta


@contextmanager
def tensors_on_meta(entries: Iterable[tuple]):
    """Temporarily replace each ``table[key]`` of ``entries`` ``(table, key, tensor)`` (a
    module's ``_parameters`` or ``_buffers``) by the tensor's meta stand-in.

    Nothing is copied; the real tensors are put back afterwards, also on error. A tensor
    shared by several modules stays shared (one stand-in per tensor).
    """
    entries = list(entries)
    try:
        for table, key, tensor in entries:
            table[key] = _meta_twin(tensor)
        yield
    finally:
        for table, key, tensor in entries:
            table[key] = tensor


def weights_on_meta(modules: Iterable[nn.Module]):
    """Temporarily replace every parameter and buffer of ``modules`` by a meta tensor."""
    return tensors_on_meta((table, key, tensor) for module in modules
                           for table in (module._parameters, module._buffers)
                           for key, tensor in table.items() if tensor is not None)


def to_meta(tree):
    """Every tensor in a (nested) structure replaced by a meta tensor of the same shape,
    dtype, strides and ``requires_grad``; a tensor passed twice gets one stand-in."""
    made: Dict[int, torch.Tensor] = {}

    def convert(value):
        if not isinstance(value, torch.Tensor):
            return value
        meta = made.get(id(value))
        if meta is None:
            meta = made[id(value)] = _stand_in(value)
        return meta

    return tree_map(convert, tree)


# --- attention ---------------------------------------------------------------------------------

def _empty(shape, dtype) -> torch.Tensor:
    return torch.empty_strided(shape, contiguous_strides(tuple(shape)), dtype=dtype, device=META)


_FUSED_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)


def uses_fused_kernel(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                      enable_gqa=False, **_) -> bool:
    """Whether ``F.scaled_dot_product_attention`` on CPU runs its fused (flash) kernel.

    PyTorch 2.14's CPU conditions (``sdp_utils_cpp``), checked from shapes alone: the flash
    backend enabled (``torch.backends.cuda.flash_sdp_enabled()``, which CPU obeys too); no
    dropout; 3-D or 4-D query, key and value (3-D ones run as one batch of ``B`` heads); equal
    batch and head counts (key/value heads may divide the query's with ``enable_gqa``); equal
    head dims; non-empty sequences; unit stride in the last dimension of Q, K and V; a float
    dtype; and a mask of 2 dims, or of 4 dims broadcastable over batch and heads, whose last
    two dims are (L or 1, S or 1) (3-D inputs: a 3-D mask counts as 4-D). So a 3-D mask on 4-D inputs sends it to the
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
        if attn_mask.requires_grad or len(mask) not in (2, 4):
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
        like = empty_like(query)
        return like if like is not None else torch.empty_like(query, device=META)
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
