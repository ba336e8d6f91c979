"""Honest latency of one forward call: warm-up, at least five timed samples, median and spread.

:func:`measure` follows the course's measurement policy (:mod:`course.latency.policy`): threads
fixed (1 unless the caller or the policy says otherwise) and restored afterwards, a warm-up, at
least five timed samples even over budget, and one re-measurement when the result is noisy
(IQR over 10% of the median), keeping the steadier of the two. It adds what a course explorer
needs:

* a **time budget**: a widget can ask for an answer in 0.3 s, and gets it (the five samples
  always come first: the budget is overrun rather than a single sample reported);
* **synchronisation** of the device that runs the model (CUDA and MPS kernels are
  asynchronous: without a sync you time the launch, not the work);
* the result as a small value, :class:`Timing`: median, inter-quartile range, samples, calls,
  device, threads, and whether it is still noisy.

To compare two things ("A is 3x faster than B"), measure them together with
:func:`course.latency.measure_interleaved`, so a load spike hits both.

>>> import torch
>>> timing = measure(torch.nn.Conv2d(16, 16, 3, padding=1), torch.randn(1, 16, 32, 32), budget_s=0.1)
>>> timing.samples >= 5 and timing.threads == 1
True
"""

from __future__ import annotations

import math
import os
import platform
import timeit
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional, Sequence, Tuple

import torch
from torch import nn

from course.latency import policy as _policy
from course.latency.units import format_time

__all__ = ["Timing", "environment", "measure"]

Clock = Callable[[], float]


def _quantile(ordered: Sequence[float], q: float) -> float:
    """The ``q`` quantile of sorted values, linear interpolation (NumPy's default)."""
    position = q * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Timing:
    """The measured latency of one call.

    Attributes:
        median_s: median time of one call over the samples, in seconds.
        iqr_s: inter-quartile range (75th - 25th percentile) of the samples, in seconds.
        runs: calls timed in total (warm-up excluded).
        device: where the calls ran, e.g. ``"cpu"``, ``"cuda:0"``, ``"mps"``.
        threads: CPU threads PyTorch used (``torch.get_num_threads()`` during the measurement).
        samples: timed samples the median and IQR are over (a sample is one timed block of
            ``runs / samples`` calls; default: ``runs``, one call each).
        attempts: 1, or 2 when the first result was noisy and the policy measured again.
        noise_limit: the policy's ``noisy`` threshold when measured (IQR / median).
        times_s: the per-call time of each sample, in the order taken (for plots and paired
            comparisons; not part of equality).
        group: samples taken in the same interleaved rounds share a group id
            (:func:`course.latency.measure_interleaved`), else ``None``.
    """

    median_s: float
    iqr_s: float
    runs: int
    device: str
    threads: int
    samples: Optional[int] = None
    attempts: int = 1
    noise_limit: float = 0.1
    times_s: Tuple[float, ...] = field(default=(), repr=False, compare=False)
    group: Optional[int] = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.samples is None:
            object.__setattr__(self, "samples", self.runs)

    @classmethod
    def from_samples(cls, times_s: Sequence[float], calls: int, device: str, threads: int,
                     attempts: int = 1, group: Optional[int] = None,
                     noise_limit: Optional[float] = None) -> "Timing":
        """Median and IQR of per-call sample times ``times_s`` (``calls`` calls in all)."""
        if not times_s:
            raise ValueError("times_s must hold at least one sample")
        ordered = sorted(times_s)
        return cls(
            median_s=_quantile(ordered, 0.5), iqr_s=_quantile(ordered, 0.75) - _quantile(ordered, 0.25),
            runs=calls, device=str(device), threads=threads, samples=len(ordered), attempts=attempts,
            noise_limit=_policy.current().noisy if noise_limit is None else noise_limit,
            times_s=tuple(times_s), group=group,
        )

    @property
    def relative_spread(self) -> float:
        """``IQR / median`` (0 for a zero median)."""
        return self.iqr_s / self.median_s if self.median_s > 0 else 0.0

    @property
    def noisy(self) -> bool:
        """``True`` when the IQR is over ``noise_limit`` (10%) of the median, or fewer than two
        samples back it: rerun on a quieter machine (close other programs)."""
        return self.relative_spread > self.noise_limit or self.samples < 2

    @property
    def q1_s(self) -> float:
        """25th percentile of the samples (``median - IQR/2`` when the samples are not kept)."""
        return _quantile(sorted(self.times_s), 0.25) if self.times_s else self.median_s - self.iqr_s / 2

    @property
    def q3_s(self) -> float:
        """75th percentile of the samples (``median + IQR/2`` when the samples are not kept)."""
        return _quantile(sorted(self.times_s), 0.75) if self.times_s else self.median_s + self.iqr_s / 2

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
            "samples": self.samples,
            "attempts": self.attempts,
            "device": self.device,
            "threads": self.threads,
            "noisy": self.noisy,
        }

    def short(self) -> str:
        """Median ± IQR with units, and a noisy marker: ``"12.3 ms ± 0.4 ms"``,
        ``"12.3 ms ± 2.1 ms (noisy)"``: for table cells."""
        text = f"{format_time(self.median_s)} ± {format_time(self.iqr_s, like=self.median_s)}"
        return text + (" (noisy)" if self.noisy else "")

    def __str__(self) -> str:
        calls = f", {self.runs:,} calls" if self.runs != self.samples else ""
        threads = f"{self.threads} thread" + ("s" if self.threads != 1 else "")
        text = (f"{format_time(self.median_s)} ± {format_time(self.iqr_s, like=self.median_s)} "
                f"(IQR, {self.samples} sample{'s' if self.samples != 1 else ''}{calls}, {self.device}, {threads})")
        if self.noisy:
            why = (f"IQR is {100 * self.relative_spread:.0f}% of the median" if self.samples >= 2
                   else "a single sample")
            text += f" NOISY: {why}; rerun on a quieter machine"
        return text


def measure(
    model_or_fn: Callable[..., Any],
    *inputs: Any,
    device: Optional[str | torch.device] = None,
    threads: Optional[int] = None,
    budget_s: Optional[float] = None,
    warmup: Optional[int] = None,
    min_samples: Optional[int] = None,
    min_runs: Optional[int] = None,
    clock: Optional[Clock] = None,
) -> Timing:
    """Time ``model_or_fn(*inputs)`` under ``torch.inference_mode()``, by the course's policy.

    Steps (defaults from :func:`course.latency.policy.current`):

    1. warm-up: up to ``warmup`` untimed calls, stopped once a quarter of the budget is spent
       (at least one call: the first pays for allocations and kernel selection);
    2. from the warm-up's time per call, calls per sample so that about 20 samples fit in what
       is left of the budget (one call per sample when calls are slow);
    3. samples until the budget is spent *and* at least ``min_samples`` (5) were taken: the
       budget is overrun by at most one sample when calls are fast, and by the missing samples
       when one call alone takes longer than the budget (never a single sample);
    4. when the IQR exceeds 10% of the median, once more within an extra budget
       (``policy.remeasure_share · budget_s``) in fewer, longer samples (about
       ``policy.remeasure_samples``), keeping the steadier result (lower IQR/median);
       a result still noisy says so (``Timing.noisy``, and its ``str``).

    Args:
        model_or_fn: an ``nn.Module`` or any callable.
        *inputs: its positional inputs, e.g. a ``(B, N, H, W)`` tensor.
        device: ``None`` runs where the inputs (else the module's parameters) already are;
            ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"mps"`` first moves the module (in place,
            like ``module.to``) and the tensor inputs there.
        threads: CPU threads for the measurement (``torch.set_num_threads``); ``None``: the
            policy's (1). The previous count is restored afterwards, also when the call raises.
        budget_s: wall-clock seconds the measurement should take, warm-up included
            (``None``: the policy's, 1 s).
        warmup: at most this many warm-up calls (``None``: the policy's; at least one is made).
        min_samples: timed samples at least, even over budget (``None``: the policy's, 5;
            never fewer than 2).
        min_runs: timed calls at least (an older knob; the samples rule applies as well).
        clock: a function returning seconds (tests pass a fake one); ``None``: the wall clock,
            after synchronising the measured device.

    Returns:
        A :class:`Timing` (median and IQR of the per-call time, samples, calls, device, threads).

    Raises:
        ValueError: for an unknown or unavailable device, a non-positive budget or count.
    """
    p = _policy.current()
    budget_s = p.budget_s if budget_s is None else budget_s
    warmup = p.warmup_calls if warmup is None else warmup
    min_samples = p.min_samples if min_samples is None else min_samples
    if not budget_s > 0:
        raise ValueError(f"budget_s must be positive, got {budget_s!r}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup!r}")
    if min_samples < 2:
        raise ValueError(f"min_samples must be >= 2 (one sample has no spread), got {min_samples!r}")
    if min_runs is not None and min_runs < 1:
        raise ValueError(f"min_runs must be >= 1, got {min_runs!r}")
    threads = _policy.resolve_threads(threads)

    target = _resolve_device(device, model_or_fn, inputs)
    if device is not None:
        if isinstance(model_or_fn, nn.Module):
            model_or_fn.to(target)
        inputs = tuple(x.to(target) if isinstance(x, torch.Tensor) else x for x in inputs)
    clock = clock or _clock(target)

    def call() -> None:
        model_or_fn(*inputs)

    with _policy.threads_set(threads) as used, torch.inference_mode():
        start = clock()
        warm = _warm_up(call, clock, max(1, warmup), deadline=start + p.warmup_share * budget_s)
        per_call = _typical(warm)
        remaining = max(0.0, start + budget_s - clock())
        times, calls = _sample(call, clock, per_call, remaining, min_samples, p.target_samples, min_runs or 0)
        result = Timing.from_samples(times, calls, str(target), used, noise_limit=p.noisy)
        if result.noisy and p.remeasure_share > 0:
            times, calls = _sample(call, clock, result.median_s, p.remeasure_share * budget_s, min_samples,
                                   max(min_samples, p.remeasure_samples), min_runs or 0)
            again = Timing.from_samples(times, calls, str(target), used, attempts=2, noise_limit=p.noisy)
            kept = again if again.relative_spread < result.relative_spread else result
            result = Timing.from_samples(kept.times_s, kept.runs, str(target), used, attempts=2, noise_limit=p.noisy)
    return result


def _typical(times: Sequence[float]) -> float:
    """The time of one call from warm-up times: the median of all but the first (which pays
    one-time costs), or the first alone."""
    steady = sorted(times[1:] or times)
    return max(steady[len(steady) // 2], 1e-9)


def _warm_up(call: Callable[[], None], clock: Clock, calls: int, deadline: float) -> List[float]:
    """Call up to ``calls`` times (at least once) until ``deadline``; the seconds of each call."""
    times: List[float] = []
    now = clock()
    while not times or (len(times) < calls and now < deadline):
        begin = clock()
        call()
        now = clock()
        times.append(now - begin)
    return times


def calls_per_sample(per_call_s: float, seconds: float, target_samples: int) -> int:
    """Calls in one timed sample so that about ``target_samples`` samples fill ``seconds``
    (at least 1)."""
    return max(1, int(seconds / max(per_call_s, 1e-9)) // target_samples)


def _sample(call: Callable[[], None], clock: Clock, per_call: float, seconds: float, min_samples: int,
            target_samples: int, min_calls: int) -> Tuple[List[float], int]:
    """Timed samples of ``number`` calls each until ``seconds`` have passed and at least
    ``min_samples`` samples (and ``min_calls`` calls) were taken.

    Returns ``(per-call time of each sample, calls made)``.
    """
    number = calls_per_sample(per_call, seconds, target_samples)
    times: List[float] = []
    begin = now = clock()
    while len(times) < min_samples or len(times) * number < min_calls or now - begin < seconds:
        t0 = clock()
        for _ in range(number):
            call()
        now = clock()
        times.append((now - t0) / number)
    return times, len(times) * number


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


class Environment(dict):
    """:func:`environment`'s result: a dict whose ``str`` is one readable line."""

    def __str__(self) -> str:
        threads = f"{self['threads']} thread" + ("s" if self["threads"] != 1 else "")
        return (f"{self['device_name']} ({self['device']}, {self['cpu_count']} CPUs) | measurements below: "
                f"{threads} | torch {self['torch']}, Python {self['python']} | policy: {self['policy']}")


def environment(device: Optional[str | torch.device] = None, threads: Optional[int] = None) -> Environment:
    """What a timing depends on, for stamping results: versions, processor, device, and the
    threads the *following* measurements use.

    Args:
        device: whose name is reported (default: :func:`course.latency.default_device`).
        threads: the threads the measurements that follow use (``None``: the policy's, which
            :func:`measure` uses when it is given none), not PyTorch's current default.

    Returns:
        An :class:`Environment` (a dict: ``torch, python, platform, device, device_name, cpu,
        cpu_count, threads, policy``); ``print`` it for one line.
    """
    from course.latency.devices import default_device

    target = _resolve_device(default_device() if device is None else device, None, ())
    if target.type == "cuda":
        device_name = torch.cuda.get_device_name(target)
    elif target.type == "mps":
        device_name = f"Apple MPS ({platform.machine()})"
    else:
        device_name = _cpu_name()
    return Environment(
        torch=torch.__version__,
        python=platform.python_version(),
        platform=platform.platform(),
        device=str(target),
        device_name=device_name,
        cpu=_cpu_name(),
        cpu_count=os.cpu_count(),
        threads=_policy.resolve_threads(threads),
        policy=_policy.current().describe(),
    )


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
