"""The course's measurement policy: the one place that says how every latency is measured.

Numbers compare across chapters only when they are measured the same way. Every timing in the
course (:func:`course.latency.measure`, :func:`course.latency.measure_interleaved`, the
explorers, sweeps, tables, the roofline and the capstone) takes its defaults from here:

* **threads**: 1 by default, so a number from Chapter 2 compares with one from Chapter 8 (on a
  shared machine, two OpenMP threads can stall for tens of ms). A chapter that studies threads
  passes them explicitly; :func:`course.latency.environment` prints the threads the following
  measurements use.
* **samples**: at least :attr:`Policy.min_samples` (5) timed samples, never one, even when that
  overruns the budget. A sample is one timed block of calls (several calls when one call is
  short, so the clock's resolution does not matter); the result is their median and IQR.
* **warm-up**: untimed calls first (at least one: the first call pays for allocation and kernel
  selection), up to :attr:`Policy.warmup_calls`, stopped once :attr:`Policy.warmup_share` of the
  budget is spent.
* **re-measure**: when the IQR exceeds :attr:`Policy.noisy` (10%) of the median, measure once more
  within an extra budget (:attr:`Policy.remeasure_share` of the first) and keep the steadier
  result (the lower IQR / median). The re-measurement aims for fewer, longer samples
  (:attr:`Policy.remeasure_samples`, several calls each where calls are short enough), which
  average out per-call jitter (a page fault, a timer interrupt) instead of sampling it again.
* **noisy**: a result that is still noisy keeps ``Timing.noisy == True``, and every display of it
  (printout, table, widget, plot) says so.

Change the policy for a whole notebook with :func:`set_policy` (the parameters cell's
``THREADS``), or for a block of code with :func:`using`::

    from course.latency import policy
    policy.set_policy(threads=THREADS)
    with policy.using(budget_s=0.1):
        ...

>>> current().threads, current().min_samples
(1, 5)
>>> with using(threads=2):
...     current().threads
2
>>> current().threads
1
"""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional

__all__ = ["Policy", "current", "resolve_threads", "set_policy", "threads_set", "using"]


@dataclass(frozen=True)
class Policy:
    """How the course measures a latency (see the module docstring for the why of each field).

    Attributes:
        threads: CPU threads (``torch.set_num_threads``) for a measurement that does not name them.
        min_samples: timed samples at least, even over budget (>= 2: a spread needs two).
        target_samples: samples a measurement aims for within its budget (calls per sample are
            chosen from the warm-up's time per call).
        budget_s: seconds a measurement may take when its caller gives no budget (warm-up included).
        warmup_calls: untimed calls at most before timing (at least one is always made).
        warmup_share: share of the budget the warm-up may use.
        noisy: a timing is noisy when ``IQR / median`` exceeds this.
        remeasure_share: the re-measurement's budget as a share of the first (0: never re-measure).
        remeasure_samples: samples the re-measurement aims for (fewer than ``target_samples``:
            longer samples; never fewer than ``min_samples``).
    """

    threads: int = 1
    min_samples: int = 5
    target_samples: int = 20
    budget_s: float = 1.0
    warmup_calls: int = 10
    warmup_share: float = 0.25
    noisy: float = 0.1
    remeasure_share: float = 1.0
    remeasure_samples: int = 5

    def __post_init__(self) -> None:
        def positive_int(name: str, low: int) -> None:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")

        positive_int("threads", 1)
        positive_int("min_samples", 2)
        positive_int("target_samples", 2)
        positive_int("warmup_calls", 1)
        positive_int("remeasure_samples", 2)
        if not self.budget_s > 0:
            raise ValueError(f"budget_s must be positive, got {self.budget_s!r}")
        if not 0 < self.warmup_share < 1:
            raise ValueError(f"warmup_share must be in (0, 1), got {self.warmup_share!r}")
        if not self.noisy > 0:
            raise ValueError(f"noisy must be positive, got {self.noisy!r}")
        if not self.remeasure_share >= 0:
            raise ValueError(f"remeasure_share must be >= 0, got {self.remeasure_share!r}")

    def describe(self) -> str:
        """One line for printouts, e.g. ``"1 thread; >= 5 samples after warm-up; median ± IQR;
        re-measured once when IQR > 10% of the median"``."""
        threads = f"{self.threads} thread" + ("s" if self.threads != 1 else "")
        remeasure = (f"re-measured once when IQR > {100 * self.noisy:.0f}% of the median"
                     if self.remeasure_share > 0 else f"noisy when IQR > {100 * self.noisy:.0f}% of the median")
        return f"{threads}; >= {self.min_samples} samples after warm-up; median ± IQR; {remeasure}"


_current = Policy()


def current() -> Policy:
    """The policy in force (the course default, :class:`Policy`, unless changed)."""
    return _current


def set_policy(**changes) -> Policy:
    """Change fields of the policy in force for the rest of the session; returns the new policy.

    ``set_policy(threads=2)`` makes every later measurement that names no threads use 2.
    ``set_policy()`` with no arguments restores the course defaults.

    Raises:
        ValueError: for an unknown field or a bad value (naming it).
    """
    global _current
    _current = _replace(Policy() if not changes else _current, changes)
    return _current


@contextmanager
def using(**changes) -> Iterator[Policy]:
    """Within the ``with`` block the policy has ``changes``; the previous one is restored after
    (also when the block raises)."""
    global _current
    previous = _current
    _current = _replace(previous, changes)
    try:
        yield _current
    finally:
        _current = previous


def _replace(policy: Policy, changes: dict) -> Policy:
    unknown = set(changes) - {f.name for f in dataclasses.fields(Policy)}
    if unknown:
        raise ValueError(f"unknown policy field(s) {sorted(unknown)}; the fields are "
                         f"{[f.name for f in dataclasses.fields(Policy)]}")
    return dataclasses.replace(policy, **changes)


def resolve_threads(threads: Optional[int]) -> int:
    """``threads`` when given (a positive int), else the policy's.

    Raises:
        ValueError: when ``threads`` is not a positive integer.
    """
    if threads is None:
        return current().threads
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    return threads


@contextmanager
def threads_set(threads: Optional[int]) -> Iterator[int]:
    """Set ``torch.set_num_threads`` (``None``: the policy's) for the block; restore the previous
    count afterwards, also when the block raises. Yields the count in force."""
    import torch

    wanted = resolve_threads(threads)
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(wanted)
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)
