"""Honest latency of one forward call: warm-up, many timed calls, median and spread.

:func:`measure` is built on :class:`torch.utils.benchmark.Timer` (the timer PyTorch's own
benchmarks use) and adds what a course explorer needs:

* a **time budget**: a widget can ask for an answer in 0.3 s, and gets it;
* **synchronisation** of the device that runs the model (CUDA and MPS kernels are
  asynchronous: without a sync you time the launch, not the work);
* a **thread count** that is set for the measurement and always restored;
* the result as a small value, :class:`Timing`: median, inter-quartile range, calls timed.

>>> import torch
>>> timing = measure(torch.nn.Conv2d(16, 16, 3, padding=1), torch.randn(1, 16, 32, 32), budget_s=0.1)
>>> timing.runs >= 1
True
"""

from __future__ import annotations

import math
import os
import platform
import time
import timeit
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
from torch import nn
import logging

# Importing torch.utils.benchmark pulls in torch.utils.cpp_extension, which logs a warning about
# CUDA_HOME on machines without a CUDA toolkit; it is irrelevant to timing, keep it off the notebook.
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
from torch.utils import benchmark  # noqa: E402

__all__ = ["Timing", "environment", "measure"]

NOISY = 0.1  # a timing is "noisy" when IQR / median exceeds this
BLOCKS = 20  # aim for this many timed blocks in the budget (the median needs a few samples)
WARMUP_SHARE = 0.25  # at most this share of the budget goes to warm-up (always >= 1 call)
_UNITS = (("s", 1.0), ("ms", 1e3), ("µs", 1e6), ("ns", 1e9))  # for printing


@dataclass(frozen=True)
class Timing:
    """The measured latency of one call.

    Attributes:
        median_s: median time of one call, in seconds.
        iqr_s: inter-quartile range (75th - 25th percentile) of the per-call times, in seconds.
        runs: calls timed in total (warm-up excluded, unless the first call alone took the
            whole budget and is the only sample).
        device: where the calls ran, e.g. ``"cpu"``, ``"cuda:0"``, ``"mps"``.
        threads: CPU threads PyTorch used (``torch.get_num_threads()`` during the measurement).
    """

    median_s: float
    iqr_s: float
    runs: int
    device: str
    threads: int

    @property
    def noisy(self) -> bool:
        """``True`` when the spread is over 10% of the median: rerun, or close other programs."""
        return self.iqr_s > NOISY * self.median_s

    @property
    def median_ms(self) -> float:
        return self.median_s * 1e3

    @property
    def iqr_ms(self) -> float:
        return self.iqr_s * 1e3

    def as_dict(self) -> dict:
        """Plain values (seconds and milliseconds) for tables and JSON."""
        return {
            "median_s": self.median_s,
            "iqr_s": self.iqr_s,
            "median_ms": self.median_ms,
            "iqr_ms": self.iqr_ms,
            "runs": self.runs,
            "device": self.device,
            "threads": self.threads,
            "noisy": self.noisy,
        }

    def __str__(self) -> str:
        # One unit for both numbers, chosen by the median; the IQR gets the median's decimals.
        unit, scale = next((u, s) for u, s in _UNITS if self.median_s >= 1 / s or u == "ns")
        median, iqr = self.median_s * scale, self.iqr_s * scale
        decimals = max(0, 2 - math.floor(math.log10(median))) if median > 0 else 2
        runs = f"{self.runs} run" + ("s" if self.runs != 1 else "")
        threads = f"{self.threads} thread" + ("s" if self.threads != 1 else "")
        noisy = ", noisy" if self.noisy else ""
        return (
            f"{median:.{decimals}f} {unit} ± {iqr:.{decimals}f} "
            f"(IQR, {runs}, {self.device}, {threads}{noisy})"
        )


class _BlockTimer(benchmark.Timer):
    """A ``Timer`` whose block size (calls per timed block) is given instead of searched for.

    ``blocked_autorange`` normally grows the block 1, 10, 100, ... calls until the timer's own
    overhead is negligible; that search alone can take several times a widget's budget. Our
    warm-up already knows the time of one call, so :func:`measure` picks the block itself.
    (If a future PyTorch drops this hook, ``blocked_autorange`` searches again: still correct,
    only less punctual.)
    """

    def __init__(self, *args: Any, number: int, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._number = number

    def _estimate_block_size(self, min_run_time: float) -> int:
        return self._number


def measure(
    model_or_fn: Callable[..., Any],
    *inputs: Any,
    device: Optional[str | torch.device] = None,
    threads: Optional[int] = None,
    budget_s: float = 1.0,
    warmup: int = 10,
    min_runs: int = 1,
) -> Timing:
    """Time ``model_or_fn(*inputs)`` under ``torch.inference_mode()``.

    Steps: (1) warm-up: up to ``warmup`` untimed calls, stopped early once a quarter of the
    budget is spent (always at least one call: the first call pays for allocations and kernel
    selection); (2) from the warm-up's time per call, a block size that fits about 20 blocks in
    what is left of the budget; (3) ``Timer.blocked_autorange`` times blocks until the budget is
    used. The budget is overrun by at most one block when calls are fast (a block is about a
    twentieth of the budget), and by at most one call when calls are slow. When the very first
    call takes the whole budget, it is the only sample (``runs == 1``, ``iqr_s == 0``): a call
    that slow hardly suffers from a cold start, and a second one would double the wait.

    Args:
        model_or_fn: an ``nn.Module`` or any callable.
        *inputs: its positional inputs, e.g. a ``(B, N, H, W)`` tensor.
        device: ``None`` runs where the inputs (else the module's parameters) already are;
            ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"mps"`` first moves the module (in place,
            like ``module.to``) and the tensor inputs there.
        threads: CPU threads for the measurement (``torch.set_num_threads``); the previous
            value is restored afterwards, also when the call raises. ``None`` keeps the current.
        budget_s: wall-clock seconds the whole measurement may take, warm-up included.
        warmup: at most this many warm-up calls before timing (at least one is always made:
            it also tells how long a call takes).
        min_runs: at least this many timed calls, even when that overruns the budget.

    Returns:
        A :class:`Timing` (median and IQR of the per-call time, calls timed, device, threads).

    Raises:
        ValueError: for an unknown or unavailable device, or a non-positive budget or count.
    """
    if not budget_s > 0:
        raise ValueError(f"budget_s must be positive, got {budget_s!r}")
    if warmup < 0 or min_runs < 1:
        raise ValueError(f"need warmup >= 0 and min_runs >= 1, got warmup={warmup}, min_runs={min_runs}")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be a positive integer, got {threads!r}")

    target = _resolve_device(device, model_or_fn, inputs)
    if device is not None:
        if isinstance(model_or_fn, nn.Module):
            model_or_fn.to(target)
        inputs = tuple(x.to(target) if isinstance(x, torch.Tensor) else x for x in inputs)
    clock = _clock(target)

    previous_threads = torch.get_num_threads()
    start = time.perf_counter()
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        used_threads = torch.get_num_threads()
        with torch.inference_mode():
            warm = _warm_up(model_or_fn, inputs, clock, warmup, deadline=start + WARMUP_SHARE * budget_s)
            remaining = start + budget_s - time.perf_counter()
            if remaining <= 0 and len(warm) == 1 and min_runs == 1:
                # One call took the whole budget: let it be the measurement. A call that slow
                # hardly suffers from a cold start, and a second one would double the wait.
                return Timing(median_s=warm[0], iqr_s=0.0, runs=1, device=str(target), threads=used_threads)
            steady = sorted(warm[1:] or warm)  # the first call pays one-time costs
            per_call = max(steady[len(steady) // 2], 1e-9)
            affordable = int(remaining / per_call)  # calls that still fit in the budget

            def timed(number: int, min_run_time: float) -> benchmark.Measurement:
                timer = _BlockTimer(
                    stmt="fn(*inputs)",
                    globals={"fn": model_or_fn, "inputs": inputs},
                    timer=clock,
                    num_threads=used_threads,  # Timer's default would be 1 thread
                    number=number,
                )
                return timer.blocked_autorange(min_run_time=min_run_time)

            if affordable <= min_runs:  # budget spent: the promised minimum, as one block
                parts = [timed(min_runs, 0.0)]
            else:
                number = max(1, affordable // BLOCKS)
                # The loop stops once it has run for min_run_time, so it ends within one block.
                parts = [timed(number, remaining - number * per_call)]
            runs = sum(len(m.raw_times) * m.number_per_run for m in parts)
            if runs < min_runs:  # calls were slower than the warm-up said: top up
                parts.append(timed(min_runs - runs, 0.0))
                runs = min_runs
    finally:
        torch.set_num_threads(previous_threads)

    merged = benchmark.Measurement.merge(parts)[0]  # per-call times of every block
    return Timing(median_s=merged.median, iqr_s=merged.iqr, runs=runs, device=str(target), threads=used_threads)


def _warm_up(fn: Callable, inputs: tuple, clock: Callable[[], float], calls: int, deadline: float) -> list:
    """Call ``fn(*inputs)`` up to ``calls`` times (at least once) until ``deadline``.

    Returns the seconds each call took.
    """
    times = []
    while not times or (len(times) < calls and time.perf_counter() < deadline):
        begin = clock()
        fn(*inputs)
        times.append(clock() - begin)
    return times


def _clock(device: torch.device) -> Callable[[], float]:
    """A timer for ``device``: waits for the device's queued work, then reads the wall clock.

    (``torch.utils.benchmark``'s default timer syncs "the" accelerator in recent PyTorch and
    only CUDA in older ones; this one syncs exactly the device being measured, MPS included,
    and nothing when measuring the CPU.)
    """
    if device.type == "cuda":

        def clock() -> float:
            torch.cuda.synchronize(device)
            return timeit.default_timer()

        return clock
    if device.type == "mps":

        def clock() -> float:
            torch.mps.synchronize()
            return timeit.default_timer()

        return clock
    return timeit.default_timer


def _resolve_device(device: Optional[str | torch.device], fn: Any, inputs: tuple) -> torch.device:
    """The device to measure on; ``ValueError`` for a name that is unknown or unavailable here."""
    if device is None:
        for x in inputs:
            if isinstance(x, torch.Tensor):
                return x.device
        if isinstance(fn, nn.Module):
            for tensor in list(fn.parameters()) + list(fn.buffers()):
                return tensor.device
        return torch.device("cpu")
    try:
        target = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'mps'") from exc
    if target.type == "cpu":
        return target
    if target.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} is not available here: torch.cuda.is_available() is False")
        if target.index is not None and target.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} is not available here: {torch.cuda.device_count()} CUDA device(s)")
        return target
    if target.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"device {device!r} is not available here: torch.backends.mps.is_available() is False")
        return target
    raise ValueError(f"device {device!r} is not supported; use 'cpu', 'cuda' or 'mps'")


def environment(device: Optional[str | torch.device] = None) -> dict:
    """What a timing depends on, for stamping results: versions, processor, device, threads.

    ``device`` (default: ``"cuda"`` when available, else ``"mps"`` when available, else
    ``"cpu"``) selects which device's name is reported.
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    target = _resolve_device(device, None, ())
    if target.type == "cuda":
        device_name = torch.cuda.get_device_name(target)
    elif target.type == "mps":
        device_name = f"Apple MPS ({platform.machine()})"
    else:
        device_name = _cpu_name()
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(target),
        "device_name": device_name,
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
    }


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
