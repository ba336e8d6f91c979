"""A counter that runs a model once and charges every ATen operator to the module that ran it.

It works at PyTorch's dispatch level (a ``TorchDispatchMode``, in the spirit of
``torch.utils.flop_counter``), below autograd and below Python-level functions. So a functional
call (``F.conv2d``, ``x @ w``, ``torch.einsum``) is seen as the matrix product it becomes.
Two kinds of call are charged a level higher, as a whole, because the kernels PyTorch picks
for them hide their arithmetic or differ between a real and a meta pass:
``F.scaled_dot_product_attention`` (its fused CPU kernel is invisible to hook-based counters
and charged zero by ``FlopCounterMode``) and the recurrent layers (on CPU an LSTM runs as one
oneDNN kernel per layer, which ``FlopCounterMode`` also charges zero).

How each operator is charged is in :mod:`course.cost.ops`. The default pass runs on meta
tensors (:mod:`course.cost.meta`); it is kept faster than the forward pass it counts by
answering common operators from shapes (:mod:`course.cost.shapes`), charging common leaf
modules without running them (:mod:`course.cost.leaves`), seeing whole calls through a
``TorchFunctionMode`` only in models that make them, and pausing Python's cyclic garbage
collector for the pass.
"""

from __future__ import annotations

import gc
import weakref
from collections import Counter
from contextlib import contextmanager, nullcontext
from typing import Any, Callable, Dict, List, Tuple

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from course.cost import ops
from course.cost.leaves import PASS_THROUGH, leaf_call
from course.cost.meta import attention_output, rnn_outputs, tensors_on_meta, to_meta, uses_fused_kernel
from course.cost.shapes import LayoutUnknown, has_channels_last
from course.cost.report import CostReport, OpRecord

ROOT = ""  # the name of the model itself, as in ``model.named_modules()``
_MISSING = object()
_SCRIPT_MODULE = torch.jit.ScriptModule


class _ModelTree:
    """What a count needs to know about a model, from one walk over its modules.

    ``modules``: ``list(model.named_modules())`` (same names, same order); ``types``: module
    name -> class name; ``training``: the modules in training mode; ``tensors``: every
    parameter and buffer as ``(table, key, tensor)``, for the meta swap; ``params``: module
    name -> parameters it owns (a shared parameter counts once, for its first owner);
    ``has_rnn``, ``has_mha``: whether an ``nn.RNNBase`` / ``nn.MultiheadAttention`` is inside.
    """

    def __init__(self, model: Any):
        self.modules: List[Tuple[str, nn.Module]] = []
        self.types: Dict[str, str] = {}
        self.training: List[nn.Module] = []
        self.tensors: List[tuple] = []
        self.params: Dict[str, int] = {}
        self.has_rnn = self.has_mha = False
        if not isinstance(model, nn.Module):
            return
        seen, seen_params, stack = set(), set(), [("", model)]
        modules, types, training, tensors, params = self.modules, self.types, self.training, self.tensors, self.params
        special = (nn.RNNBase, nn.MultiheadAttention)
        while stack:
            name, module = stack.pop()
            key = id(module)
            if key in seen:
                continue
            seen.add(key)
            modules.append((name, module))
            types[name] = type(module).__name__
            state = module.__dict__
            if state["training"]:
                training.append(module)
            if isinstance(module, special):
                self.has_rnn = self.has_rnn or isinstance(module, nn.RNNBase)
                self.has_mha = self.has_mha or isinstance(module, nn.MultiheadAttention)
            table = state["_parameters"]
            if table:
                owned = 0
                for tensor_name, param in table.items():
                    if param is not None:
                        tensors.append((table, tensor_name, param))
                        if id(param) not in seen_params:
                            seen_params.add(id(param))
                            owned += param.numel()
                if owned:
                    params[name] = owned
            table = state["_buffers"]
            if table:
                for tensor_name, buffer in table.items():
                    if buffer is not None:
                        tensors.append((table, tensor_name, buffer))
            children = state["_modules"]
            if children:
                prefix = name + "." if name else ""
                for child_name, child in reversed(children.items()):
                    if child is not None:
                        stack.append((prefix + child_name, child))


class _ModuleStack:
    """Knows which module is running.

    Each module's ``forward`` is wrapped for the pass (an entry in the instance's
    ``__dict__``, removed afterwards) to push and pop its name. Unlike forward hooks, this
    leaves ``nn.Module.__call__`` on its fast path, which matters when a small model is
    counted in a few milliseconds.
    """

    def __init__(self, modules, leaves: bool = False):
        self.names: List[str] = []  # the modules running now, innermost last
        self.log: List[str] = []  # every module call, in order
        self.counting = None  # the _CountingMode, for leaves charged without their forward
        self.no_python_dispatch = _NO_PYTHON_DISPATCH()  # one guard per pass, entered per leaf
        self._patched = []
        patched, wrap, wrap_leaf = self._patched, self._wrap, self._wrap_leaf
        try:
            for name, module in modules:
                if isinstance(module, _SCRIPT_MODULE):
                    continue
                state = module.__dict__
                leaf = leaf_call(module) if leaves else None
                patched.append((state, state.get("forward", _MISSING)))
                state["forward"] = wrap(name, module.forward) if leaf is None else wrap_leaf(name, module.forward, leaf)
        except BaseException:
            self.remove()
            raise

    def _wrap_leaf(self, name: str, forward: Callable, leaf) -> Callable:
        """A leaf of :mod:`course.cost.leaves`: its one ATen call charged without running it."""
        names, log, guard = self.names, self.log, self.no_python_dispatch
        if leaf is PASS_THROUGH:
            rule = arguments = None
        else:
            func, arguments = leaf
            rule = ops.rule(func)
            if rule.shape is None:
                return self._wrap(name, forward)

        def counted_leaf(*args, **kwargs):
            log.append(name)
            if len(args) == 1 and not kwargs and isinstance(args[0], torch.Tensor) and args[0].is_meta:
                if rule is None:
                    return args[0]
                op_args = arguments(args[0])
                if op_args is not None:
                    with guard:  # the result is made here, not dispatched
                        out = rule.shape(op_args, _NO_KWARGS)
                    if out is not None:
                        self.counting.charge(rule, op_args, None, out, name)
                        return out[0] if isinstance(out, tuple) else out
            names.append(name)
            try:
                return forward(*args, **kwargs)
            finally:
                names.pop()

        return counted_leaf

    def _wrap(self, name: str, forward: Callable) -> Callable:
        names, log = self.names, self.log

        def counted_forward(*args, **kwargs):
            log.append(name)
            names.append(name)
            try:
                return forward(*args, **kwargs)
            finally:
                names.pop()

        return counted_forward

    @property
    def calls(self) -> Dict[str, int]:
        """Module name -> how many times it ran."""
        return dict(Counter(self.log))

    @property
    def order(self) -> List[str]:
        """Module names in the order they first ran."""
        return list(dict.fromkeys(self.log))

    @property
    def current(self) -> str:
        return self.names[-1] if self.names else ROOT

    def remove(self) -> None:
        for state, forward in self._patched:
            if forward is _MISSING:
                state.pop("forward", None)
            else:
                state["forward"] = forward
        self._patched = []


def _argument_tensors(rule: ops.Rule, args, kwargs) -> list:
    """An operator's arguments that may be tensors (lists of tensors flattened)."""
    n = len(args)
    found = [args[i] for i in rule.tensor_args if i < n]
    for i in rule.tensor_lists:
        if i < n and args[i]:
            found.extend(args[i])
    if kwargs:
        found.extend(kwargs.values())
    return found


def _read_bytes(rule: ops.Rule, args, kwargs) -> int:
    """Bytes of the tensors among an operator's arguments (lists of tensors too, e.g. for
    cat); a tensor passed twice (``x * x``) is read once."""
    if not kwargs and rule.reads is not None:
        return rule.reads(args)  # most operators: no tensor in a list or a keyword
    return ops.distinct_nbytes(_argument_tensors(rule, args, kwargs))


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


class _WholeCallsNeeded(BaseException):
    """Raised by a meta pass without :class:`_WholeCallMode` that meets an attention or RNN.

    A ``BaseException``, so that a model's own ``except Exception`` cannot swallow it.
    """


_RULES, _NO_KWARGS = ops._RULES, {}
_TENSOR = torch.Tensor
_new_record = tuple.__new__  # OpRecord(...) without namedtuple's Python-level __new__
_VIEW, _MOVE, _MAC, _ELEMENTWISE, _UNCOUNTED = ops.VIEW, ops.MOVE, ops.MAC, ops.ELEMENTWISE, ops.UNCOUNTED
_PYTHON_KEYS = torch._C.DispatchKeySet(torch._C.DispatchKey.Python) | torch._C.DispatchKeySet(
    torch._C.DispatchKey.PythonTLSSnapshot)


def _NO_PYTHON_DISPATCH():
    """A context in which operators skip Python modes (ours included): for tensors the counter
    makes itself (results of leaves and whole calls on meta tensors)."""
    return torch._C._ExcludeDispatchKeyGuard(_PYTHON_KEYS)


class _CountingMode(TorchDispatchMode):
    """Charges each operator that reaches the dispatcher and records it against the module.

    ``watch``: the pass runs without :class:`_WholeCallMode` (a meta pass of a model that was
    not seen to need it), and stops at the first operator of :data:`ops.WHOLE_CALL_MARKERS`.
    """

    def __init__(self, stack: _ModuleStack, on_meta: bool, watch: bool = False):
        super().__init__()
        self.stack = stack
        self.on_meta = on_meta
        self.watch = watch
        self.needs_whole_calls = False
        self.paused = False  # set while a call charged as a whole (attention, RNN) runs
        self.records: List[OpRecord] = []

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # Keep __torch_dispatch__ unwrapped (no torch._disable_dynamo frame around each
        # operator): the counter never runs inside torch.compile.
        return False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        rule = _RULES.get(id(func))
        if rule is None or rule.func is not func:
            rule = ops.rule(func)
        if self.watch and rule.marks_whole_call:
            self.needs_whole_calls = True
            raise _WholeCallsNeeded(rule.name)
        out = None
        kind = rule.kind
        if self.on_meta:
            if rule.shape is not None:
                out = rule.shape(args, kwargs or _NO_KWARGS)
            if out is None and kind is not _VIEW and has_channels_last(_argument_tensors(rule, args, kwargs)):
                raise LayoutUnknown(f"{rule.name} on a channels-last tensor: PyTorch's meta kernels do not always "
                                    "lay results out as its CPU kernels do")
        if out is None:
            out = rule.call(*args, **kwargs) if kwargs else rule.call(*args)
        if kind is _VIEW or self.paused:  # views are free: no arithmetic, no bytes
            return out
        name = rule.name
        if kind is _MOVE:
            if name == "copy" and isinstance(args[1], torch.Tensor) and not any(args[1].stride()):
                # ``t[...] = 3`` reaches the dispatcher as fill_ on CPU, as a copy_ from an
                # expanded scalar (all strides 0) on meta tensors: both are a fill (free).
                return out
            if name == "_to_copy" and self.on_meta and args[0].device.type != "meta" and out.dtype == args[0].dtype:
                # A tensor made in ``forward`` on the default device and moved with
                # ``.to(x.device)``: a no-op in the real pass, where x is on that device too.
                return out
        names = self.stack.names
        self.charge(rule, args, kwargs, out, names[-1] if names else ROOT)
        return out

    def charge(self, rule: ops.Rule, args, kwargs, out, module: str) -> None:
        """Record operator ``rule`` called with ``args`` and ``kwargs`` that returned ``out``."""
        if isinstance(out, _TENSOR):
            first = out
            activations, written = out.numel(), out.nbytes
        elif rule.first_output_only and isinstance(out, tuple) and isinstance(out[0], _TENSOR):
            first = out[0]  # batch norm and layer norm: the statistics are for the backward pass
            activations, written = first.numel(), first.nbytes
        else:
            outputs = _tensors(out)
            if rule.first_output_only:
                outputs = outputs[:1]
            first = outputs[0] if outputs else None
            activations = first.numel() if first is not None else 0
            written = ops.distinct_nbytes(outputs)
        charge = rule.charge
        macs, elementwise = charge(args, first) if charge is not None else (0, 0)
        self.records.append(_new_record(OpRecord, (
            module, rule.name, macs, elementwise, activations, _read_bytes(rule, args, kwargs), written,
            rule.kind is not _UNCOUNTED,
        )))

    def record(self, name, inputs, outputs, macs=0, elementwise=0, counted=True) -> None:
        self.records.append(OpRecord(
            self.stack.current, name, int(macs), int(elementwise), outputs[0].numel() if outputs else 0,
            ops.distinct_nbytes(inputs), ops.distinct_nbytes(outputs), counted,
        ))


# --- calls charged as a whole ----------------------------------------------------------------------

_SDPA_ARGS = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")


def _attention(counting: "_CountingMode", func, args, kwargs):
    """``F.scaled_dot_product_attention``, charged once from its arguments.

    PyTorch picks a kernel at run time (fused on CPU and GPU, a decomposition into matmuls and
    softmax on meta tensors and in some CPU cases); charging the call itself gives the same
    numbers whichever it picks. The meta result is laid out as the CPU kernel's
    (:func:`~course.cost.meta.attention_output`).
    """
    bound = dict(zip(_SDPA_ARGS, args), **kwargs)
    query, key, value, mask = bound["query"], bound["key"], bound["value"], bound.get("attn_mask")
    if counting.on_meta:
        with _NO_PYTHON_DISPATCH():
            out = attention_output(query, key, value, fused=uses_fused_kernel(**bound))
    else:
        out = _run_paused(counting, func, args, kwargs)
    macs, elementwise = ops.attention_cost(query, key, value)
    operands = [t for t in (query, key, value, mask) if isinstance(t, torch.Tensor)]
    counting.record("scaled_dot_product_attention", operands, [out], macs, elementwise)
    return out


def _recurrent(kind: str):
    """``torch._VF.lstm/gru/rnn_tanh/rnn_relu`` (what nn.LSTM, nn.GRU, nn.RNN call), charged once.

    On CPU an LSTM runs as oneDNN kernels that no operator-level counter can see into
    (``FlopCounterMode`` charges them nothing); on meta tensors it would unroll into a
    matmul per time step. Charged from the weights' shapes instead (:func:`ops.rnn_cost`).
    """

    def charge(counting: "_CountingMode", func, args, kwargs):
        packed = isinstance(args[3], (list, tuple))  # (data, batch_sizes, hx, weights, ...)
        if packed:
            data, _, hx, weights, has_biases, layers, _, _, bidirectional = args[:9]
            tokens, batch_first = data.shape[0], False
        else:
            data, hx, weights, has_biases, layers, _, _, bidirectional, batch_first = args[:9]
            tokens = data.shape[0] * data.shape[1]
        directions = 2 if bidirectional else 1
        if counting.on_meta:
            if packed:
                raise NotImplementedError("a packed sequence's batch sizes are values, which meta tensors lack")
            per_layer = len(weights) // (layers * directions)
            w_hh = weights[1]
            hidden = w_hh.shape[1] if per_layer not in (3, 5) else weights[per_layer - 1].shape[1]
            out_size = w_hh.shape[1]
            with _NO_PYTHON_DISPATCH():
                out = rnn_outputs(kind, data, hidden, out_size, layers, directions, batch_first)
        else:
            out = _run_paused(counting, func, args, kwargs)
        macs, elementwise = ops.rnn_cost(kind, tokens, weights, has_biases, layers, directions)
        hidden_in = list(hx) if isinstance(hx, (list, tuple)) else [hx]
        counting.record(kind, [data, *hidden_in, *weights], list(out), macs, elementwise)
        return out

    return charge


def _run_paused(counting: "_CountingMode", func, args, kwargs):
    counting.paused = True
    try:
        return func(*args, **kwargs)
    finally:
        counting.paused = False


_VF = torch._C._VariableFunctions
_WHOLE_CALLS: Dict[Any, Callable] = {
    torch._C._nn.scaled_dot_product_attention: _attention,
    _VF.lstm: _recurrent("lstm"),
    _VF.gru: _recurrent("gru"),
    _VF.rnn_tanh: _recurrent("rnn_tanh"),
    _VF.rnn_relu: _recurrent("rnn_relu"),
}


class _WholeCallMode(TorchFunctionMode):
    """Sees the calls of :data:`_WHOLE_CALLS` before PyTorch splits them into operators."""

    def __init__(self, counting: _CountingMode):
        super().__init__()
        self.counting = counting

    def __torch_function__(self, func, types, args=(), kwargs=None):
        charge = _WHOLE_CALLS.get(func)
        if charge is None:
            return func(*args, **kwargs) if kwargs else func(*args)
        return charge(self.counting, func, args, kwargs or {})


MODES = ("auto", "meta", "real")
_MHA_NOTE = "nn.MultiheadAttention's fused inference path does not run on meta tensors:"


def _run(model: Any, tree: _ModelTree, inputs: tuple, kwargs: dict, on_meta: bool, whole_calls: bool = True):
    """One counted forward pass (eval, no grad); returns (records, module stack, output).

    Each module's ``training`` flag is set to False for the pass and restored one by one
    afterwards, so a model with some modules frozen in eval mode keeps them so.
    ``whole_calls=False`` (meta passes only) leaves out :class:`_WholeCallMode`, which slows
    every PyTorch function call a little, and raises :class:`_WholeCallsNeeded` if the model
    turns out to need it.
    """
    if on_meta:
        inputs, kwargs = to_meta(inputs), to_meta(kwargs)
    stack = _ModuleStack(tree.modules, leaves=on_meta)
    mode = stack.counting = _CountingMode(stack, on_meta, watch=not whole_calls)
    try:
        # Set the flag in each module's __dict__ directly: nn.Module.__setattr__ is slow
        # enough to matter when a small model is counted in a few milliseconds.
        for module in tree.training:
            module.__dict__["training"] = False
        with torch.no_grad(), (tensors_on_meta(tree.tensors) if on_meta else nullcontext()), mode, \
                (_WholeCallMode(mode) if whole_calls else nullcontext()):
            output = model(*inputs, **kwargs)
    finally:
        stack.remove()
        for module in tree.training:
            module.__dict__["training"] = True
    if mode.needs_whole_calls:  # the model caught _WholeCallsNeeded itself
        raise _WholeCallsNeeded()
    return mode.records, stack, output


#: Models seen to call attention or an RNN in a meta pass: their next meta passes start with
#: :class:`_WholeCallMode` (a hint only: any model that needs it gets it).
_NEEDS_WHOLE_CALLS = weakref.WeakKeyDictionary()


def _meta_pass(model: Any, tree: _ModelTree, inputs: tuple, kwargs: dict):
    """A meta pass, with :class:`_WholeCallMode` only where the model needs it."""
    if isinstance(model, nn.Module) and not tree.has_rnn and model not in _NEEDS_WHOLE_CALLS:
        try:
            return _run(model, tree, inputs, kwargs, on_meta=True, whole_calls=False)
        except _WholeCallsNeeded:
            _NEEDS_WHOLE_CALLS[model] = True
    return _run(model, tree, inputs, kwargs, on_meta=True, whole_calls=True)


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
    with _collector_paused():
        return _count(model, inputs, kwargs, mode)


@contextmanager
def _collector_paused():
    """Python's cyclic garbage collector paused for one pass (as ``timeit`` does).

    A pass allocates thousands of small objects (records, meta tensors, argument tuples), which
    triggers collections of the whole heap (with torch and timm imported, about 240,000 objects):
    on EfficientViT-M0 (650 operators) they cost about 12% of the pass. Reference counting
    still frees everything at once; cycles wait for the next collection after the pass.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _count(model: Any, inputs: tuple, kwargs: dict, mode: str) -> CostReport:
    """:func:`count` after its argument checks."""
    notes: List[str] = []
    tree = _ModelTree(model)
    if tree.has_mha:
        # Its fused inference path (torch._native_multi_head_attention) refuses meta tensors; the
        # unfused path it takes instead costs the same MACs but other element-wise work and bytes.
        if mode == "auto":
            mode = "real"
            notes.append(_MHA_NOTE + " it was counted with a real forward pass")
        elif mode == "meta":
            notes.append(_MHA_NOTE + " it was counted along its unfused path (same MACs; other element-wise work and bytes)")
    if mode == "real":
        records, stack, output = _run(model, tree, inputs, kwargs, on_meta=False)
    else:
        try:
            records, stack, output = _meta_pass(model, tree, inputs, kwargs)
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
            records, stack, output = _run(model, tree, inputs, kwargs, on_meta=False)
    out_tensors = _tensors(output)
    return CostReport(
        records=records,
        params=tree.params,
        module_types=tree.types,
        module_calls=dict(stack.calls),
        module_order=stack.order,
        out_shape=tuple(out_tensors[0].shape) if out_tensors else (),
        notes=notes,
    )
