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
from contextlib import nullcontext
from typing import Any, Dict, List

import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from course.cost import ops
from course.cost.meta import attention_output, shape_only, to_meta, uses_fused_kernel, weights_on_meta
from course.cost.report import CostReport, OpRecord

ROOT = ""  # the name of the model itself, as in ``model.named_modules()``


class _ModuleStack:
    """Knows which module is running: global forward hooks push and pop module names.

    Two process-wide hooks (removed afterwards) instead of two per module: registering
    hundreds of hooks would cost more than counting a small model.
    """

    def __init__(self, modules):
        self.names: List[str] = []
        self.calls: Dict[str, int] = defaultdict(int)
        self.order: List[str] = []  # first-call order, for readable tables
        self.types: Dict[str, str] = {}
        self._name_of: Dict[int, str] = {}
        self._handles = []
        for name, module in modules:
            self._name_of[id(module)] = name
            self.types[name] = type(module).__name__
        if modules:
            self._handles = [
                register_module_forward_pre_hook(self._push),
                register_module_forward_hook(self._pop, always_call=True),
            ]

    def _push(self, module, args) -> None:
        name = self._name_of.get(id(module))
        if name is not None:  # a module of this model (not one made inside a forward)
            self.names.append(name)
            self.calls[name] += 1
            if self.calls[name] == 1:
                self.order.append(name)

    def _pop(self, module, args, output) -> None:
        name = self._name_of.get(id(module))
        if name is not None:
            # Pop our own entry even if an inner module raised and never popped its own.
            while self.names and self.names.pop() != name:
                pass

    @property
    def current(self) -> str:
        return self.names[-1] if self.names else ROOT

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def _tensors(tree) -> List[torch.Tensor]:
    """The tensors in a (nested) tuple/list/dict of operator arguments or results."""
    if isinstance(tree, torch.Tensor):
        return [tree]
    found: List[torch.Tensor] = []
    items = tree.values() if isinstance(tree, dict) else tree if isinstance(tree, (tuple, list)) else ()
    for item in items:
        if isinstance(item, torch.Tensor):
            found.append(item)
        elif isinstance(item, dict) or (isinstance(item, (tuple, list)) and item and not isinstance(item[0], int)):
            found.extend(_tensors(item))  # (lists of ints, e.g. a conv's stride, hold no tensor)
    return found


def _nbytes(tensors) -> int:
    seen, total = set(), 0
    for tensor in tensors:
        if id(tensor) not in seen:
            seen.add(id(tensor))
            total += tensor.numel() * tensor.element_size()
    return total


class _CountingMode(TorchDispatchMode):
    """Charges each operator that reaches the dispatcher and records it against the module."""

    def __init__(self, stack: _ModuleStack, on_meta: bool):
        super().__init__()
        self.stack = stack
        self.on_meta = on_meta
        self.paused = False  # set while a function charged as a whole (attention) runs
        self.records: List[OpRecord] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = ops.op_name(func)
        out = shape_only(name, func, args, kwargs) if self.on_meta else None
        if out is None:
            out = func(*args, **kwargs)
        if name == "copy" and isinstance(args[1], torch.Tensor) and not any(args[1].stride()):
            # ``t[...] = 3`` reaches the dispatcher as fill_ on CPU, as a copy_ from an expanded
            # scalar (all strides 0) on meta tensors: both are a fill.
            name = "fill"
        if name == "_to_copy" and self.on_meta and args[0].device.type != "meta" and out.dtype == args[0].dtype:
            # A tensor made in ``forward`` on the default device and moved with ``.to(x.device)``:
            # a no-op in the real pass, where x is on that device too.
            name = "view"
        if self.paused or name in ops.VIEWS:  # views are free: no arithmetic, no bytes
            return out
        macs = elementwise = 0
        counted = True
        outputs = _tensors(out)
        first = outputs[0] if outputs else None
        if name in ops.MAC_OPS:
            macs, elementwise = ops.MAC_OPS[name](args, first)
        elif name in ops.ELEMENTWISE_CHARGE or name in ops.WINDOW_POOLING:
            elementwise = ops.elementwise_ops(name, args, first)
        elif name not in ops.MOVES_DATA:
            counted = False
        self.record(name, _tensors((args, kwargs)), outputs[:1] if name in ops.FIRST_OUTPUT_ONLY else outputs,
                    macs, elementwise, counted)
        return out

    def record(self, name, inputs, outputs, macs=0, elementwise=0, counted=True) -> None:
        self.records.append(
            OpRecord(
                module=self.stack.current,
                op=name,
                macs=int(macs),
                elementwise=int(elementwise),
                activations=outputs[0].numel() if outputs else 0,
                bytes_read=_nbytes(inputs),
                bytes_written=_nbytes(outputs),
                counted=counted,
            )
        )


class _AttentionMode(TorchFunctionMode):
    """Charges ``F.scaled_dot_product_attention`` once, from its arguments.

    PyTorch picks a kernel at run time (fused on CPU and GPU, a decomposition into matmuls and
    softmax elsewhere, e.g. on meta tensors); charging the call itself gives the same numbers
    whichever it picks.
    """

    def __init__(self, counting: _CountingMode):
        super().__init__()
        self.counting = counting

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", None) != "scaled_dot_product_attention":
            return func(*args, **kwargs)
        names = ("query", "key", "value", "attn_mask", "dropout_p")
        bound = dict(zip(names, args), **kwargs)
        operands = [bound[n] for n in names[:4] if isinstance(bound.get(n), torch.Tensor)]
        if self.counting.on_meta:
            q, k, v = operands[:3]
            out = attention_output(q, k, v, fused=uses_fused_kernel(**bound))
        else:
            self.counting.paused = True
            try:
                out = func(*args, **kwargs)
            finally:
                self.counting.paused = False
        macs, elementwise = ops.MAC_OPS["scaled_dot_product_attention"](operands, out)
        self.counting.record("scaled_dot_product_attention", _tensors(operands), [out], macs, elementwise)
        return out


def _params_by_module(modules) -> Dict[str, int]:
    """Parameters per owning module; a shared parameter counts once, for its first owner."""
    owned: Dict[str, int] = defaultdict(int)
    seen = set()
    for name, module in modules:
        for param in module._parameters.values():
            if param is not None and id(param) not in seen:
                seen.add(id(param))
                owned[name] += param.numel()
    return dict(owned)


MODES = ("auto", "meta", "real")
_MHA_NOTE = "nn.MultiheadAttention's fused inference path does not run on meta tensors:"


def _run(model: Any, modules, inputs: tuple, kwargs: dict, on_meta: bool):
    """One counted forward pass (eval, no grad); returns (records, module stack, output).

    ``modules`` is ``list(model.named_modules())`` (walked once per count). Each module's
    ``training`` flag is set to False for the pass and restored one by one afterwards, so a
    model with some modules frozen in eval mode keeps them so.
    """
    stack = _ModuleStack(modules)
    mode = _CountingMode(stack, on_meta)
    # Set the flag in each module's __dict__ directly: nn.Module.__setattr__ is slow enough to
    # matter when a small model is counted in a few milliseconds.
    training = [module for _, module in modules if module.training]
    try:
        for module in training:
            module.__dict__["training"] = False
        with torch.no_grad(), (weights_on_meta(m for _, m in modules) if on_meta else nullcontext()), mode, \
                _AttentionMode(mode):
            if on_meta:
                inputs, kwargs = to_meta(inputs), to_meta(kwargs)
            output = model(*inputs, **kwargs)
    finally:
        stack.remove()
        for module in training:
            module.__dict__["training"] = True
    return mode.records, stack, output


def count(model: Any, *inputs: Any, mode: str = "auto", **kwargs: Any) -> CostReport:
    """Count what one inference forward pass of ``model(*inputs, **kwargs)`` costs.

    The model runs once in eval mode under ``torch.no_grad()`` (its ``training`` flag is
    restored afterwards), so the numbers are the inference cost and do not depend on the mode
    it was in or on grad being enabled. Every operator is charged to the innermost module
    running when it was called; operators a model calls in its own ``forward`` are charged to
    the model itself (shown as ``(model)``).

    Costs depend only on shapes, so by default nothing is computed: the weights and inputs
    are swapped for *meta* tensors (shape and dtype, no storage) for the pass, which needs no
    activation memory and counts ViT-B/16 at 1024x1024 in well under a second.

    Args:
        model: an ``nn.Module`` (or any callable; then there is no per-module breakdown).
        *inputs: its inputs, e.g. ``torch.randn(1, 3, 224, 224)`` for ``(B, 3, H, W)``
            (meta tensors are fine: ``torch.empty(1, 3, 1024, 1024, device="meta")``).
        mode: ``"auto"`` (default): a meta pass, and a real pass when the model cannot run on
            meta tensors (control flow that depends on values, tensors made on another device
            inside ``forward``), with the reason in ``report.notes``; ``"meta"``: a meta pass or
            an error; ``"real"``: a real forward pass.

    Returns:
        A :class:`~course.cost.report.CostReport`: totals (``report.macs``, ``report.params``,
        ...), per-module ``rows(depth)``, per-operator ``by_operator()``, ``uncounted``
        operators with their call counts, ``notes``, and text/HTML tables.

    >>> import torch
    >>> report = count(torch.nn.Conv2d(64, 64, 3, padding=1, bias=False), torch.randn(1, 64, 56, 56))
    >>> report.macs == 56 * 56 * 3 * 3 * 64 * 64
    True
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    notes: List[str] = []
    modules = list(model.named_modules()) if isinstance(model, nn.Module) else []
    if any(isinstance(module, nn.MultiheadAttention) for _, module in modules):
        # Its fused inference path (torch._native_multi_head_attention) refuses meta tensors; the
        # unfused path it takes instead costs the same MACs but other element-wise work and bytes.
        if mode == "auto":
            mode = "real"
            notes.append(_MHA_NOTE + " it was counted with a real forward pass")
        elif mode == "meta":
            notes.append(_MHA_NOTE + " it was counted along its unfused path (same MACs; other element-wise work and bytes)")
    if mode == "real":
        records, stack, output = _run(model, modules, inputs, kwargs, on_meta=False)
    else:
        try:
            records, stack, output = _run(model, modules, inputs, kwargs, on_meta=True)
        except Exception as error:  # noqa: BLE001 - any failure of the meta pass falls back
            real_inputs = all(t.device.type != "meta" for t in _tensors((inputs, kwargs)))
            if mode == "meta" or not real_inputs:
                raise RuntimeError(
                    f"the model cannot run on meta tensors ({type(error).__name__}: {error}); "
                    "count it with real inputs and mode='auto' or 'real'"
                ) from error
            notes.append(
                "counted with a real forward pass: the model cannot run on meta tensors "
                f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
            )
            records, stack, output = _run(model, modules, inputs, kwargs, on_meta=False)
    out_tensors = _tensors(output)
    return CostReport(
        records=records,
        params=_params_by_module(modules),
        module_types=stack.types,
        module_calls=dict(stack.calls),
        module_order=stack.order,
        out_shape=tuple(out_tensors[0].shape) if out_tensors else (),
        notes=notes,
    )
