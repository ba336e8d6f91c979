"""A counter that runs a model once and charges every ATen operator to the module that ran it.

It works at PyTorch's dispatch level (a ``TorchDispatchMode``, in the spirit of
``torch.utils.flop_counter``), below autograd and below Python-level functions. So a functional
call (``F.conv2d``, ``x @ w``, ``torch.einsum``) is seen as the matrix product it becomes, and
``F.scaled_dot_product_attention`` is seen as its fused kernel — including the CPU one, which
hook-based counters and ``FlopCounterMode`` report as zero.

How each operator is charged is in :mod:`course.cost.ops`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Dict, List

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from course.cost import ops
from course.cost.report import CostReport, OpRecord

ROOT = ""  # the name of the model itself, as in ``model.named_modules()``


class _ModuleStack:
    """Knows which module is running: forward hooks push and pop module names."""

    def __init__(self, model: Any):
        self.names: List[str] = []
        self.types: Dict[str, str] = {}
        self.calls: Dict[str, int] = defaultdict(int)
        self.order: List[str] = []  # first-call order, for readable tables
        self._handles = []
        if isinstance(model, nn.Module):
            for name, module in model.named_modules():
                self.types[name] = type(module).__name__
                self._handles.append(module.register_forward_pre_hook(self._pusher(name)))
                self._handles.append(module.register_forward_hook(self._popper(name), always_call=True))
        else:
            self.types[ROOT] = getattr(model, "__name__", type(model).__name__)

    def _pusher(self, name: str):
        def push(module, args):
            self.names.append(name)
            self.calls[name] += 1
            if self.calls[name] == 1:
                self.order.append(name)

        return push

    def _popper(self, name: str):
        def pop(module, args, output):
            # Pop our own entry even if an inner module raised and never popped its own.
            while self.names and self.names.pop() != name:
                pass

        return pop

    @property
    def current(self) -> str:
        return self.names[-1] if self.names else ROOT

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def _tensors(tree) -> List[torch.Tensor]:
    leaves, _ = tree_flatten(tree)
    return [leaf for leaf in leaves if isinstance(leaf, torch.Tensor)]


def _nbytes(tensors) -> int:
    seen, total = set(), 0
    for tensor in tensors:
        if id(tensor) not in seen:
            seen.add(id(tensor))
            total += tensor.numel() * tensor.element_size()
    return total


class _CountingMode(TorchDispatchMode):
    """Charges each operator that reaches the dispatcher and records it against the module."""

    def __init__(self, stack: _ModuleStack):
        super().__init__()
        self.stack = stack
        self.records: List[OpRecord] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = ops.op_name(func)
        if name in ops.VIEWS:  # free: no arithmetic, no bytes
            return out
        outputs = _tensors(out)
        first = outputs[0] if outputs else None
        macs = elementwise = 0
        counted = True
        if name in ops.MAC_OPS:
            macs, elementwise = ops.MAC_OPS[name](args, first)
        elif name in ops.ELEMENTWISE_CHARGE or name in ops.WINDOW_POOLING:
            elementwise = ops.elementwise_ops(name, args, first)
        elif name not in ops.MOVES_DATA:
            counted = False
        inputs = _tensors((args, kwargs))
        self.records.append(
            OpRecord(
                module=self.stack.current,
                op=name,
                macs=int(macs),
                elementwise=int(elementwise),
                activations=first.numel() if first is not None else 0,
                bytes_read=_nbytes(inputs),
                bytes_written=_nbytes(outputs),
                counted=counted,
            )
        )
        return out


def _params_by_module(model: Any) -> Dict[str, int]:
    """Parameters per owning module; a shared parameter counts once, for its first owner."""
    owned: Dict[str, int] = defaultdict(int)
    if isinstance(model, nn.Module):
        for name, param in model.named_parameters():  # de-duplicates shared parameters
            owner = name.rpartition(".")[0]
            owned[owner] += param.numel()
    return dict(owned)


def count(model: Any, *inputs: Any, **kwargs: Any) -> CostReport:
    """Count what one inference forward pass of ``model(*inputs, **kwargs)`` costs.

    The model runs once, for real, in eval mode under ``torch.no_grad()`` (its ``training``
    flag is restored afterwards), so the numbers are the inference cost and do not depend on
    the mode it was in or on grad being enabled. Every operator is charged to the innermost
    module running when it was called; operators a model calls in its own ``forward`` are
    charged to the model itself (shown as ``(model)``).

    Args:
        model: an ``nn.Module`` (or any callable; then there is no per-module breakdown).
        *inputs: its inputs, e.g. ``torch.randn(1, 3, 224, 224)`` for ``(B, 3, H, W)``.

    Returns:
        A :class:`~course.cost.report.CostReport`: totals (``report.macs``, ``report.params``,
        ...), per-module ``rows(depth)``, per-operator ``by_operator()``, ``uncounted``
        operators with their call counts, and text/HTML tables.

    >>> import torch
    >>> report = count(torch.nn.Conv2d(64, 64, 3, padding=1, bias=False), torch.randn(1, 64, 56, 56))
    >>> report.macs == 56 * 56 * 3 * 3 * 64 * 64
    True
    """
    stack = _ModuleStack(model)
    mode = _CountingMode(stack)
    was_training = getattr(model, "training", None)
    try:
        if was_training:
            model.eval()
        with torch.no_grad(), mode:
            output = model(*inputs, **kwargs)
    finally:
        stack.remove()
        if was_training:
            model.train(True)
    out_tensors = _tensors(output)
    return CostReport(
        records=mode.records,
        params=_params_by_module(model),
        module_types=stack.types,
        module_calls=dict(stack.calls),
        module_order=stack.order,
        out_shape=tuple(out_tensors[0].shape) if out_tensors else (),
    )
