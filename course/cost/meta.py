"""Running a model on *meta* tensors: shapes and dtypes, no storage, no arithmetic.

The counter's default pass. Costs depend only on shapes, so a meta pass gives the same
numbers as a real one, needs no activation memory, and counts a ViT at 1024x1024 in a moment.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterable, Optional

import torch
from torch import nn
from torch.utils._pytree import tree_map
from torch.utils.weak import WeakIdKeyDictionary


#: real tensor -> its meta stand-in, kept while the real tensor lives (counting a model again,
#: as an explorer does on every slider move, reuses them).
_META_TWINS = WeakIdKeyDictionary()


def _meta_twin(tensor: torch.Tensor) -> torch.Tensor:
    meta = _META_TWINS.get(tensor)
    if meta is None or meta.shape != tensor.shape or meta.dtype != tensor.dtype:
        meta = torch.empty_like(tensor, device="meta")
        if isinstance(tensor, nn.Parameter):
            meta = nn.Parameter(meta, requires_grad=False)
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
            for name, tensor in list(table.items()):
                if tensor is not None:
                    saved.append((table, name, tensor))
                    table[name] = _meta_twin(tensor)
    try:
        yield
    finally:
        for table, name, tensor in saved:
            table[name] = tensor


def to_meta(tree):
    """Every tensor in a (nested) structure replaced by a meta tensor of the same shape and dtype."""
    return tree_map(lambda t: torch.empty_like(t, device="meta") if isinstance(t, torch.Tensor) else t, tree)


# Operators whose output has the shape, dtype and layout of their (first) input. PyTorch's own
# meta implementations of several of them run Python reference code (up to 1 ms a call);
# answering directly keeps a meta pass faster than a real one.
_SAME_AS_INPUT = set(
    """
    relu relu6 leaky_relu hardtanh clamp clamp_min clamp_max threshold elu selu celu gelu silu
    mish sigmoid tanh hardswish hardsigmoid softplus erf neg abs exp sqrt rsqrt reciprocal sin cos
    add sub mul div
    """.split()
)


def shape_only(name: str, func, args: tuple, kwargs: dict) -> Optional[Any]:
    """The result of ``func(*args, **kwargs)`` on meta tensors, where it is known from the inputs.

    Returns ``None`` when the shortcut does not apply (then the caller runs the meta kernel).
    Applies to element-wise operators whose tensor operands all have the first one's shape and
    dtype, and to inference-mode batch/layer norm.
    """
    x = args[0] if args else None
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        return None
    if name in _SAME_AS_INPUT:
        others = [a for a in list(args[1:]) + list(kwargs.values()) if isinstance(a, torch.Tensor)]
        if any(o.shape != x.shape or o.dtype != x.dtype for o in others):
            return None  # broadcasting or type promotion: let the meta kernel decide
        inplace = func.overloadpacket.__name__.endswith("_")
        return x if inplace else torch.empty_like(x)
    if name in ("native_batch_norm", "_native_batch_norm_legit_no_training") and not (
        name == "native_batch_norm" and args[5]  # training=True: let the kernel handle it
    ):
        stats = torch.empty((0,), dtype=x.dtype, device=x.device)
        return torch.empty_like(x), stats, stats.clone()
    if name == "native_layer_norm":  # its output is always contiguous
        normalized = len(args[1])
        stats = torch.empty(tuple(x.shape[: x.dim() - normalized]) + (1,) * normalized, dtype=x.dtype, device=x.device)
        return torch.empty(x.shape, dtype=x.dtype, device=x.device), stats, stats.clone()
    return None


def attention_output(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, fused: bool) -> torch.Tensor:
    """The meta output of ``scaled_dot_product_attention``, laid out as the real kernel lays it out.

    The fused kernels (CPU flash, CUDA flash and memory-efficient) write ``(B, L, heads, Ev)``
    and return it transposed to ``(B, heads, L, Ev)``; the math fallback returns a contiguous
    tensor. The layout matters: ``out.transpose(1, 2).reshape(...)`` is free after a fused
    kernel and a copy after the fallback.
    """
    shape = tuple(query.shape[:-1]) + (value.shape[-1],)
    if fused and query.dim() == 4:
        B, heads, L, Ev = shape
        return torch.empty((B, L, heads, Ev), dtype=query.dtype, device="meta").transpose(1, 2)
    return torch.empty(shape, dtype=query.dtype, device="meta")


def uses_fused_kernel(query, key, value, attn_mask=None, dropout_p=0.0, **_) -> bool:
    """Whether PyTorch's CPU dispatch would pick its fused (flash) kernel for these arguments.

    The main conditions of ``sdp_utils_cpp``: 4-D inputs, equal head dims for Q, K and V, no
    dropout, unit stride in the last dimension.
    """
    tensors = (query, key, value)
    return (
        all(t.dim() == 4 for t in tensors)
        and query.shape[-1] == key.shape[-1] == value.shape[-1]
        and not dropout_p
        and all(t.stride(-1) == 1 for t in tensors)
        and (attn_mask is None or attn_mask.dim() <= 4)
    )
