"""Leaf modules a meta pass charges without running their ``forward``.

The most common leaves of vision models (``nn.Conv2d``, ``nn.BatchNorm2d``, activations,
``nn.Identity``, eval-mode ``nn.Dropout``) each make exactly one ATen call, or none. For
these, the counter builds that call (operator and arguments, as PyTorch would dispatch it)
and charges it directly: same record, same result tensor, without the Python of the
module's ``forward`` and ``torch.nn.functional`` and a trip through the dispatcher, which
on a small CNN are much of the cost of a meta pass.

Only exact classes qualify (a subclass may override ``forward``), and only for the inputs
the shape rules answer; anything else runs ``forward`` as usual. ``tests/test_count_meta.py``
checks leaf by leaf that the shortcut gives the records a dispatched call gives.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

aten = torch.ops.aten

#: Returned for modules whose forward is the identity at inference (no operator at all).
PASS_THROUGH = object()


def _conv2d(module: nn.Conv2d) -> Optional[tuple]:
    if module.padding_mode != "zeros" or isinstance(module.padding, str):
        return None  # F.pad first, or 'same' padding: several operators
    stride, padding, dilation = list(module.stride), list(module.padding), list(module.dilation)
    params, groups = module._parameters, module.groups

    def arguments(x):
        if x.dim() != 4:
            return None  # unbatched: aten.conv2d adds and drops a batch dim
        return x, params["weight"], params["bias"], stride, padding, dilation, False, [0, 0], groups

    return aten.convolution.default, arguments


def _batch_norm2d(module: nn.BatchNorm2d) -> Optional[tuple]:
    if not module.track_running_stats or module.running_mean is None or module.running_var is None:
        return None  # batch statistics even at inference
    params, buffers, eps = module._parameters, module._buffers, module.eps
    momentum = 0.0 if module.momentum is None else module.momentum

    def arguments(x):
        if x.dim() != 4:
            return None
        return x, params["weight"], params["bias"], buffers["running_mean"], buffers["running_var"], False, momentum, eps

    return aten.native_batch_norm.default, arguments


def _just_x(x):
    return (x,)


def _activation(functional, inplace_functional):
    def leaf(module) -> tuple:
        return (inplace_functional if getattr(module, "inplace", False) else functional), _just_x

    return leaf


def _hardtanh(module) -> tuple:
    low, high = float(module.min_val), float(module.max_val)
    return (aten.hardtanh_.default if module.inplace else aten.hardtanh.default), lambda x: (x, low, high)


def _gelu(module: nn.GELU) -> Optional[tuple]:
    return None if module.approximate != "none" else (aten.gelu.default, _just_x)


def _pass_through(module):
    return PASS_THROUGH


def _dropout(module: nn.Dropout):
    return PASS_THROUGH  # count() runs every module in eval mode: dropout is the identity


_LEAVES = {
    nn.Conv2d: _conv2d,
    nn.BatchNorm2d: _batch_norm2d,
    nn.ReLU: _activation(aten.relu.default, aten.relu_.default),
    nn.SiLU: _activation(aten.silu.default, aten.silu_.default),
    nn.Hardswish: _activation(aten.hardswish.default, aten.hardswish_.default),
    nn.Hardsigmoid: _activation(aten.hardsigmoid.default, aten.hardsigmoid_.default),
    nn.Sigmoid: _activation(aten.sigmoid.default, aten.sigmoid_.default),
    nn.Tanh: _activation(aten.tanh.default, aten.tanh_.default),
    nn.ReLU6: _hardtanh,
    nn.Hardtanh: _hardtanh,
    nn.GELU: _gelu,
    nn.Identity: _pass_through,
    nn.Dropout: _dropout,
}


def leaf_call(module: nn.Module):
    """For a leaf module counted in eval mode: ``(ATen overload, arguments(x))``, the one call
    its ``forward(x)`` makes (``arguments`` returns ``None`` for inputs it does not take);
    :data:`PASS_THROUGH` for the identity; ``None``: run the forward.

    ``None`` for any class but the exact ones listed, and for a module whose ``forward`` was
    replaced on the instance.
    """
    make = _LEAVES.get(type(module))
    if make is None or "forward" in module.__dict__ or module._forward_hooks or module._forward_pre_hooks:
        return None
    return make(module)
