"""Where the time of one forward pass goes: a per-module and per-operator profile
(``torch.profiler``), reconciled with the end-to-end time measured without the profiler.

>>> import torch
>>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU())
>>> prof = profile_model(net, torch.randn(1, 3, 32, 32), runs=2, budget_s=0.1)
>>> abs(prof.modules_ms + prof.unattributed_ms - prof.profiled_ms) < 1e-6
True

How it works: every module of the model runs inside a labelled range
(``torch.profiler.record_function``); each forward pass runs inside one more range. A module's
*self* time is its range minus the ranges of the modules it calls, so the self times of all
modules plus what lies outside the model's own range add up to the profiled forward pass
exactly. The profiler itself costs a few microseconds per operator and per range, so the
profiled pass is slower than the unprofiled one; :attr:`Profile.overhead` says by how much,
and :meth:`Profile.reconciles` checks it against a stated tolerance.

Every result carries :func:`stamp` (the environment: processor, threads, versions).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from course.latency.policy import resolve_threads, threads_set
from course.latency.quiet import native_stderr_silenced
from course.latency.timing import Timing, environment, measure
from course.latency.units import format_time

__all__ = ["DirectCall", "ModuleTime", "OperatorTime", "Profile", "op_type", "profile_model", "stamp"]

_RUN = "course.profile::run"
_MOD = "course.profile::m::"

#: The operator types used by profiles and the roofline, in display order.
OP_TYPES = (
    "1x1 conv",
    "depthwise conv",
    "dense conv (KxK)",
    "linear",
    "attention",
    "norm",
    "activation",
    "pooling",
    "other",
)

_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.SiLU, nn.GELU,
                nn.Hardtanh, nn.LeakyReLU, nn.Tanh, nn.Softmax)
_NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm)
_POOLS = (nn.AdaptiveAvgPool2d, nn.AvgPool2d, nn.MaxPool2d, nn.AdaptiveMaxPool2d)


def stamp(device: Optional[str | torch.device] = None, threads: Optional[int] = None) -> dict:
    """The environment a result was measured in: :func:`course.latency.environment` plus the
    thread count actually used and the ONNX Runtime version (when installed)."""
    env = environment(device)
    if threads is not None:
        env["threads"] = threads
    try:
        import onnxruntime

        env["onnxruntime"] = onnxruntime.__version__
    except ImportError:  # pragma: no cover - onnxruntime is a dependency
        env["onnxruntime"] = None
    return env


def op_type(module: nn.Module) -> str:
    """The operator type of a module (:data:`OP_TYPES`), for grouping profile rows.

    ``nn.Conv2d`` is "depthwise conv" when ``groups == in_channels > 1``, "1x1 conv" for a
    1x1 kernel, else "dense conv (KxK)"; attention modules are recognised by name.
    """
    if isinstance(module, nn.Conv2d):
        if module.groups > 1 and module.groups == module.in_channels:
            return "depthwise conv"
        return "1x1 conv" if tuple(module.kernel_size) == (1, 1) else "dense conv (KxK)"
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, nn.MultiheadAttention) or "attention" in type(module).__name__.lower():
        return "attention"
    if isinstance(module, _NORMS):
        return "norm"
    if isinstance(module, _ACTIVATIONS):
        return "activation"
    if isinstance(module, _POOLS):
        return "pooling"
    return "other"


@dataclass(frozen=True)
class DirectCall:
    """An ATen operator a module's ``forward`` calls itself (not inside a sub-module), e.g. the
    residual ``aten::add`` of a block: calls and time per pass (its own time plus the operators
    it calls), in ms."""

    name: str
    calls: int
    ms: float


@dataclass(frozen=True)
class ModuleTime:
    """One module's share of a profiled forward pass (per pass, averaged over the runs).

    Attributes:
        name: the module's name in ``model.named_modules()`` (``""`` is the model itself).
        type: its class name; ``op``: its :func:`op_type`.
        calls: calls per forward pass.
        self_ms: time inside the module but outside its sub-modules, in ms.
        total_ms: time inside the module, sub-modules included, in ms.
        direct: the ATen operators its ``forward`` calls outside its sub-modules (part of
            ``self_ms``; the rest of ``self_ms`` is Python, module calls and hooks).
        leaf: whether the module has no sub-modules.
    """

    name: str
    type: str
    op: str
    calls: int
    self_ms: float
    total_ms: float
    direct: Tuple[DirectCall, ...] = ()
    leaf: bool = True


@dataclass(frozen=True)
class OperatorTime:
    """One ATen operator (``aten::conv2d``...) in a profiled pass: calls and *self* time
    (time not spent in the operators it calls), per pass, in ms."""

    name: str
    calls: int
    self_ms: float


@dataclass(frozen=True)
class Profile:
    """A per-module and per-operator profile, reconciled with the unprofiled time.

    Attributes:
        modules: one :class:`ModuleTime` per module that ran, in first-call order.
        operators: one :class:`OperatorTime` per ATen operator, slowest first.
        profiled_ms: the profiled forward pass (the run's range), per pass, in ms.
        unattributed_ms: part of it outside the model's own range (the run's bookkeeping).
        end_to_end: the unprofiled :class:`Timing` of the same forward pass.
        runs: profiled forward passes averaged.
        environment: :func:`stamp` of the measurement.
    """

    modules: List[ModuleTime]
    operators: List[OperatorTime]
    profiled_ms: float
    unattributed_ms: float
    end_to_end: Timing
    runs: int
    environment: dict = field(default_factory=dict)

    @property
    def modules_ms(self) -> float:
        """Sum of the modules' self times: ``modules_ms + unattributed_ms == profiled_ms``."""
        return sum(m.self_ms for m in self.modules)

    @property
    def operators_ms(self) -> float:
        """Sum of the ATen operators' self times (the rest is Python, module calls, hooks)."""
        return sum(o.self_ms for o in self.operators)

    @property
    def overhead(self) -> float:
        """``profiled / end-to-end - 1``: what profiling added (0.2 = 20% slower)."""
        return self.profiled_ms / self.end_to_end.median_ms - 1.0

    def reconciles(self, tolerance: float = 0.5) -> bool:
        """Whether the profiled pass is within ``tolerance`` (relative) of the unprofiled median.

        The stated default, 50%, leaves room for the profiler's per-operator cost (a few µs
        per range: large for a tiny model of many small layers) and for a shared machine.
        """
        return abs(self.profiled_ms - self.end_to_end.median_ms) <= tolerance * self.end_to_end.median_ms

    def by_type(self) -> Dict[str, float]:
        """Self time per :data:`OP_TYPES` entry, ms per pass (containers' own time is "other")."""
        times: Dict[str, float] = defaultdict(float)
        for m in self.modules:
            times[m.op] += m.self_ms
        return {t: times[t] for t in OP_TYPES if t in times}

    def table(self, top: int = 10) -> str:
        """The ``top`` slowest modules and operators, and the reconciliation, as plain text
        (times through :func:`course.latency.format_time`; a noisy end-to-end time is marked)."""
        from course.tables import table

        def share(ms: float) -> float:
            return 100 * ms / self.profiled_ms

        modules = [{"name": (m.name or "(model)")[:40], "op": m.op, "calls": m.calls, "ms": m.self_ms,
                    "pct": share(m.self_ms)} for m in sorted(self.modules, key=lambda m: -m.self_ms)[:top]]
        operators = [{"name": o.name[:40], "calls": o.calls, "ms": o.self_ms, "pct": share(o.self_ms)}
                     for o in self.operators[:top]]
        lines = [str(table(modules, [("name", "module (self time)"), ("op", "type"), ("calls", "calls"),
                                     ("ms", "time", "ms"), ("pct", "%", "pct")])), "",
                 str(table(operators, [("name", "ATen operator (self time)"), ("calls", "calls"), ("ms", "time", "ms"),
                                       ("pct", "%", "pct")])), ""]
        ms = lambda value: format_time(value / 1e3)  # noqa: E731
        lines += [
            f"profiled forward pass : {ms(self.profiled_ms)} = modules {ms(self.modules_ms)} + outside {ms(self.unattributed_ms)}",
            f"  of which in ATen ops: {ms(self.operators_ms)} ({100 * self.operators_ms / self.profiled_ms:.0f}%; "
            "the rest is Python, module calls, hooks)",
            f"unprofiled (measure)  : {self.end_to_end}  -> profiler overhead {100 * self.overhead:+.0f}%",
        ]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _label_modules(model: nn.Module, device: torch.device):
    """Forward hooks that open a ``record_function`` range around every module's call.

    On CUDA/MPS the hooks also synchronise the device, so that a range holds the module's
    kernels and not only their launch (this adds a sync per module: read shares, not sums).
    """
    from torch.autograd.profiler import record_function

    handles, open_ranges = [], []
    sync = device.type != "cpu"

    def pre(label):
        def hook(module, args):
            if sync:
                _sync(device)
            scope = record_function(label)
            scope.__enter__()
            open_ranges.append(scope)

        return hook

    def post(module, args, output):
        if sync:
            _sync(device)
        open_ranges.pop().__exit__(None, None, None)

    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(pre(_MOD + name)))
        handles.append(module.register_forward_hook(post, always_call=True))
    return handles


def profile_model(
    model: nn.Module,
    x: torch.Tensor,
    runs: int = 5,
    warmup: int = 3,
    threads: Optional[int] = None,
    budget_s: float = 0.5,
) -> Profile:
    """Profile ``model(x)``: self time per module and per ATen operator, plus the unprofiled time.

    Steps: ``warmup`` unprofiled passes; the end-to-end time with :func:`course.latency.measure`
    (``budget_s``); then ``runs`` passes under ``torch.profiler`` (CPU activity), each module
    inside a labelled range. Times are per forward pass (averaged over ``runs``).

    Args:
        model: run in eval mode (restored afterwards) under ``torch.inference_mode``.
        x: the input, e.g. ``(B, 3, H, W)``, on the device to profile.
        runs, warmup: profiled and unprofiled warm-up passes.
        threads: ``torch.set_num_threads`` for the whole measurement (``None``: the course
            policy's, :mod:`course.latency.policy`; restored afterwards).
        budget_s: budget of the end-to-end measurement.

    Returns:
        A :class:`Profile`; ``modules_ms + unattributed_ms == profiled_ms`` by construction.
    """
    from torch.autograd.profiler import record_function
    from torch.profiler import ProfilerActivity, profile

    if runs < 1 or warmup < 0:
        raise ValueError(f"need runs >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}")
    threads = resolve_threads(threads)
    device = x.device
    was_training = model.training
    model.eval()
    try:
        with threads_set(threads) as used, torch.inference_mode():
            for _ in range(warmup):
                model(x)
            end_to_end = measure(model, x, threads=used, budget_s=budget_s, warmup=1)
            handles = _label_modules(model, device)
            try:
                with native_stderr_silenced():
                    with profile(activities=[ProfilerActivity.CPU], record_shapes=False) as prof:
                        for _ in range(runs):
                            with record_function(_RUN):
                                model(x)
                            _sync(device)
            finally:
                for handle in handles:
                    handle.remove()
    finally:
        model.train(was_training)

    types = {name: (type(m).__name__, op_type(m)) for name, m in model.named_modules()}
    leaves = {name for name, m in model.named_modules() if next(m.children(), None) is None}
    self_us: Dict[str, float] = defaultdict(float)
    total_us: Dict[str, float] = defaultdict(float)
    calls: Dict[str, int] = defaultdict(int)
    direct_us: Dict[str, Dict[str, float]] = defaultdict(lambda: defaultdict(float))
    direct_calls: Dict[str, Dict[str, int]] = defaultdict(lambda: defaultdict(int))
    order: List[str] = []
    roots = [e for e in prof.events() if e.name == _RUN]
    if len(roots) != runs:
        raise RuntimeError(f"the profiler recorded {len(roots)} forward passes, expected {runs}")

    def module_ranges(event):
        """The module ranges directly below ``event`` (looking through operator events)."""
        found = []
        for child in event.cpu_children:
            if child.name.startswith(_MOD):
                found.append(child)
            else:
                found.extend(module_ranges(child))
        return found

    def walk(event) -> None:
        name = event.name[len(_MOD):]
        inner = module_ranges(event)
        if name not in calls:
            order.append(name)
        calls[name] += 1
        total_us[name] += event.cpu_time_total
        self_us[name] += event.cpu_time_total - sum(c.cpu_time_total for c in inner)
        for child in event.cpu_children:  # the operators forward() calls itself
            if not child.name.startswith(_MOD):
                direct_us[name][child.name] += child.cpu_time_total - sum(r.cpu_time_total for r in module_ranges(child))
                direct_calls[name][child.name] += 1
        for child in inner:
            walk(child)

    profiled_us = unattributed_us = 0.0
    for root in roots:
        top = module_ranges(root)
        profiled_us += root.cpu_time_total
        unattributed_us += root.cpu_time_total - sum(c.cpu_time_total for c in top)
        for event in top:
            walk(event)

    modules = [
        ModuleTime(name=n, type=types.get(n, ("?", "other"))[0], op=types.get(n, ("?", "other"))[1],
                   calls=calls[n] // runs, self_ms=self_us[n] / runs / 1e3, total_ms=total_us[n] / runs / 1e3,
                   direct=tuple(DirectCall(op, direct_calls[n][op] // runs, us / runs / 1e3)
                                for op, us in direct_us[n].items()),
                   leaf=n in leaves)
        for n in order
    ]
    operators = [
        OperatorTime(name=a.key, calls=a.count // runs, self_ms=a.self_cpu_time_total / runs / 1e3)
        for a in prof.key_averages()
        if not a.key.startswith("course.profile::")
    ]
    operators.sort(key=lambda o: -o.self_ms)
    return Profile(
        modules=modules,
        operators=operators,
        profiled_ms=profiled_us / runs / 1e3,
        unattributed_ms=unattributed_us / runs / 1e3,
        end_to_end=end_to_end,
        runs=runs,
        environment=stamp(device, used),
    )
