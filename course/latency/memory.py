"""Peak memory of one call: what the allocator saw, and what the tensors needed.

* :func:`peak_memory_bytes`: the peak memory one call allocates on its device (CUDA: the
  caching allocator's statistics; CPU: the profiler's memory events).
* :func:`peak_activation_bytes`: the peak of live tensor bytes during one forward pass, counted
  at the dispatcher (deterministic and device-independent).
"""

from __future__ import annotations

import weakref
from typing import Any, Dict, Optional

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from course.latency.quiet import native_stderr_silenced

__all__ = ["peak_activation_bytes", "peak_memory_bytes"]


def peak_memory_bytes(fn, *inputs, device: Optional[str] = None) -> int:
    """Peak bytes allocated *during* one call ``fn(*inputs)`` (under ``torch.no_grad()``), above
    what was allocated before it (inputs and weights are not counted).

    * CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` (exact, the
      caching allocator's own bookkeeping).
    * CPU (and other devices): :mod:`torch.profiler` with ``profile_memory=True``. Every
      operator event carries the bytes it allocated net of what it freed (its own, without
      its children's); free events outside operators are ``[memory]`` events. Sorting them by
      start time and taking the running sum's maximum gives the peak. Memory that an
      operator allocates and frees inside itself (a temporary workspace) is invisible.

    ``device`` defaults to the first tensor input's device.
    """
    if device is None:
        device = next((str(x.device) for x in inputs if isinstance(x, torch.Tensor)), "cpu")
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        base = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        with torch.no_grad():
            fn(*inputs)
        torch.cuda.synchronize(dev)
        return int(torch.cuda.max_memory_allocated(dev) - base)

    from torch.profiler import ProfilerActivity, profile

    with native_stderr_silenced(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof, torch.no_grad():
        fn(*inputs)
    events = sorted(prof.events(), key=lambda e: e.time_range.start)
    current = peak = 0
    for event in events:
        current += event.self_cpu_memory_usage
        peak = max(peak, current)
    return int(peak)


class _PeakTracker(TorchDispatchMode):
    """Adds the bytes of each new tensor storage an operator returns; subtracts them when the
    last tensor object holding the storage is garbage-collected."""

    def __init__(self):
        super().__init__()
        self.live: Dict[int, int] = {}  # storage data_ptr -> bytes
        self.holders: Dict[int, int] = {}  # storage data_ptr -> tensor objects still alive
        self.current = self.peak = 0

    def _release(self, ptr: int) -> None:
        self.holders[ptr] -= 1
        if self.holders[ptr] == 0:
            self.current -= self.live.pop(ptr)
            del self.holders[ptr]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        input_ids = {id(t) for t in inputs}
        input_ptrs = {t.untyped_storage().data_ptr() for t in inputs if t.device.type != "meta"}
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor) or id(t) in input_ids or t.device.type == "meta":
                continue  # in-place ops return their input: nothing new
            storage = t.untyped_storage()
            ptr = storage.data_ptr()
            if ptr == 0:
                continue
            if ptr not in self.live:
                if ptr in input_ptrs:
                    continue  # a view of an input or a weight (reshape, transpose): no new memory
                self.live[ptr] = storage.nbytes()
                self.holders[ptr] = 0
                self.current += storage.nbytes()
                self.peak = max(self.peak, self.current)
            self.holders[ptr] += 1
            weakref.finalize(t, self._release, ptr)
        return out


@torch.no_grad()
def peak_activation_bytes(model: nn.Module, *inputs: Any) -> int:
    """Peak bytes of tensors created during one forward pass and alive at the same time.

    Method: a dispatch-level tracker (like the course's cost counter) that adds a storage's
    bytes when an operator returns a new tensor and subtracts them when the last tensor object
    holding it is freed. Inputs and weights are not counted (they exist before the call); the
    output is. Deterministic and device-independent (it counts tensors, not allocator blocks);
    the allocator's own peak (``torch.cuda.max_memory_allocated`` on CUDA) adds its rounding
    and caching on top.

    For ``a = conv(x); b = conv(x); a + b`` it is 3 output tensors (``a``, ``b`` and the sum
    alive together); for ``relu_(conv(x))`` it is 1.
    """
    tracker = _PeakTracker()
    with tracker:
        output = model(*inputs)
    del output
    return tracker.peak
