"""Comparing timings honestly: measure the contenders in alternating rounds, and say how many
times faster one is, with its spread.

Two separate measurements of A then B put every load spike of the machine on one side only.
:func:`measure_interleaved` takes one sample of each contender per round (A, B, A, B, ...,
starting each round with the next contender), so a spike hits both; :func:`speedup` turns two
timings into a ratio with an interval; :func:`describe_speedup` writes the sentence a notebook
prints ("On this device, separable is 3.1x faster than standard (IQR 2.9-3.3x) for 8.4x fewer
MACs.") from the measurement, so the words agree with the numbers.

>>> import torch
>>> x = torch.randn(1, 32, 28, 28)
>>> t = measure_interleaved({"1x1": (torch.nn.Conv2d(32, 32, 1), (x,)),
...                          "3x3": (torch.nn.Conv2d(32, 32, 3, padding=1), (x,))}, budget_s=0.2)
>>> sorted(t), t["1x1"].samples == t["3x3"].samples >= 5
(['1x1', '3x3'], True)
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from course.latency import policy as _policy
from course.latency.timing import Clock, Timing, _clock, _quantile, _resolve_device, _typical, _warm_up, calls_per_sample

__all__ = ["Speedup", "clearly_slower", "describe_speedup", "measure_interleaved", "speedup"]

_groups = itertools.count(1)

Case = Tuple[Callable[..., Any], Any]


def measure_interleaved(
    cases: Mapping[str, Case],
    device: Optional[str | torch.device] = None,
    threads: Optional[int] = None,
    budget_s: Optional[float] = None,
    warmup: Optional[int] = None,
    min_samples: Optional[int] = None,
    clock: Optional[Clock] = None,
) -> Dict[str, Timing]:
    """Time several callables in alternating rounds, by the course's policy.

    Each contender is warmed up, gets its own calls per sample (from its warm-up time, so each
    sample of each contender lasts about ``budget / (20 · contenders)``), then every round takes
    one sample of each, in rotated order (round ``r`` starts with contender ``r mod n``), until
    the budget is spent and every contender has ``min_samples`` (5) samples. When any result is
    noisy (IQR > 10% of the median), the rounds run once more within an extra budget, in fewer,
    longer samples (``policy.remeasure_samples``), and the steadier attempt (lower worst IQR/median) is kept for *all* contenders, so they stay paired.

    Args:
        cases: ``{name: (fn, inputs)}``; ``inputs`` a tuple of positional inputs (a single tensor
            is accepted as well). Order is kept in the result.
        device: ``None`` runs where each case's inputs are; else modules and tensors move there.
        threads: CPU threads for all (``None``: the policy's); restored afterwards.
        budget_s: seconds for the whole comparison (``None``: the policy's budget per contender).
        warmup: warm-up calls per contender at most (``None``: the policy's).
        min_samples: samples per contender at least (``None``: the policy's, 5).
        clock: seconds (tests pass a fake one); ``None``: the wall clock after a device sync.

    Returns:
        ``{name: Timing}``; the timings of one call share a ``group`` id and keep their samples in
        round order, so :func:`speedup` pairs them round by round.
    """
    if len(cases) < 1:
        raise ValueError("cases must hold at least one contender")
    p = _policy.current()
    budget_s = p.budget_s * len(cases) if budget_s is None else budget_s
    warmup = p.warmup_calls if warmup is None else warmup
    min_samples = p.min_samples if min_samples is None else min_samples
    if not budget_s > 0:
        raise ValueError(f"budget_s must be positive, got {budget_s!r}")
    if min_samples < 2:
        raise ValueError(f"min_samples must be >= 2 (one sample has no spread), got {min_samples!r}")
    threads = _policy.resolve_threads(threads)

    names = list(cases)
    calls, targets = {}, {}
    for name in names:
        fn, inputs = cases[name]
        if isinstance(inputs, torch.Tensor):
            inputs = (inputs,)
        if not callable(fn) or not isinstance(inputs, tuple):
            raise ValueError(f"cases[{name!r}] must be (callable, tuple of inputs), got {cases[name]!r}")
        target = _resolve_device(device, fn, inputs)
        if device is not None:
            if isinstance(fn, nn.Module):
                fn.to(target)
            inputs = tuple(x.to(target) if isinstance(x, torch.Tensor) else x for x in inputs)
        calls[name] = (lambda f=fn, a=inputs: f(*a))
        targets[name] = target
    clocks = {name: clock or _clock(targets[name]) for name in names}
    timer = clock or _clock(targets[names[0]])

    with _policy.threads_set(threads) as used, torch.inference_mode():
        start = timer()
        per_call = {}
        for name in names:
            share = start + p.warmup_share * budget_s * (names.index(name) + 1) / len(names)
            per_call[name] = _typical(_warm_up(calls[name], clocks[name], max(1, warmup), deadline=share))
        remaining = max(0.0, start + budget_s - timer())
        result = _rounds(names, calls, clocks, timer, per_call, remaining, min_samples, p.target_samples,
                         targets, used, p.noisy, attempts=1)
        if p.remeasure_share > 0 and any(t.noisy for t in result.values()):
            again = _rounds(names, calls, clocks, timer, {n: t.median_s for n, t in result.items()},
                            p.remeasure_share * budget_s, min_samples, max(min_samples, p.remeasure_samples),
                            targets, used, p.noisy, attempts=2)
            worst = lambda timings: max(t.relative_spread for t in timings.values())  # noqa: E731
            kept = again if worst(again) < worst(result) else result
            result = {n: Timing.from_samples(t.times_s, t.runs, t.device, t.threads, attempts=2, group=t.group,
                                             noise_limit=p.noisy) for n, t in kept.items()}
    return result


def _rounds(names, calls, clocks, timer, per_call, seconds, min_samples, target_samples, targets, threads,
            noise_limit, attempts) -> Dict[str, Timing]:
    """Rounds of one sample per contender until ``seconds`` passed and ``min_samples`` rounds ran."""
    number = {n: calls_per_sample(per_call[n], seconds / len(names), target_samples) for n in names}
    times: Dict[str, List[float]] = {n: [] for n in names}
    begin = now = timer()
    round_index = 0
    while round_index < min_samples or now - begin < seconds:
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            clock, call = clocks[name], calls[name]
            t0 = clock()
            for _ in range(number[name]):
                call()
            t1 = clock()
            times[name].append((t1 - t0) / number[name])
        now = timer()
        round_index += 1
    group = next(_groups)
    return {n: Timing.from_samples(times[n], len(times[n]) * number[n], str(targets[n]), threads,
                                   attempts=attempts, group=group, noise_limit=noise_limit) for n in names}


@dataclass(frozen=True)
class Speedup:
    """How many times faster one timing is than another.

    Attributes:
        value: ``slower median / faster median`` as asked: ``speedup(a, b).value`` is how many
            times faster ``a`` is than ``b`` (below 1: ``a`` is slower).
        low, high: its interquartile interval: of the round-by-round ratios when the two were
            measured interleaved (:func:`measure_interleaved`), else the conservative
            ``b.q1 / a.q3`` to ``b.q3 / a.q1``.
        paired: whether ``low``/``high`` come from paired rounds.
        noisy: either timing is noisy.
    """

    value: float
    low: float
    high: float
    paired: bool
    noisy: bool

    @property
    def clear(self) -> bool:
        """Whether the interval lies entirely on one side of 1 (a real difference, not noise)."""
        return self.low > 1.0 or self.high < 1.0

    def __float__(self) -> float:
        return self.value

    def __str__(self) -> str:
        text = f"{self.value:.2f}x (IQR {self.low:.2f}-{self.high:.2f}x)"
        return text + (" (noisy)" if self.noisy else "")


def speedup(a: Timing, b: Timing) -> Speedup:
    """How many times faster ``a`` is than ``b``: ``b.median / a.median``, with an interval.

    When ``a`` and ``b`` come from the same :func:`measure_interleaved` call (same ``group``, same
    number of samples), the interval is the IQR of the per-round ratios ``b_i / a_i`` (a load
    spike in round ``i`` hits both, so it cancels); otherwise it is the conservative
    ``[b.q1 / a.q3, b.q3 / a.q1]``. The interval always contains the value.
    """
    value = b.median_s / a.median_s
    paired = a.group is not None and a.group == b.group and len(a.times_s) == len(b.times_s) > 1
    if paired:
        ratios = sorted(tb / ta for ta, tb in zip(a.times_s, b.times_s))
        low, high = _quantile(ratios, 0.25), _quantile(ratios, 0.75)
    else:
        low, high = b.q1_s / a.q3_s, b.q3_s / a.q1_s if a.q1_s > 0 else math.inf
    return Speedup(value=value, low=min(low, value), high=max(high, value), paired=paired,
                   noisy=a.noisy or b.noisy)


def _times(ratio: float) -> str:
    """``1.04x`` (two decimals under 1.1, where one would print a clear 1.04x as "1.0x"), ``3.1x``, ``26x``."""
    if ratio < 1.1:
        return f"{ratio:.2f}x"
    return f"{ratio:.1f}x" if ratio < 10 else f"{ratio:.0f}x"


def _fewer_or_more(ratio: float) -> str:
    """``ratio`` (> 1) as "3%" below 1.1x (where "1.0x" would say nothing), else as "2.4x"."""
    return f"{100 * (ratio - 1):.0f}%" if ratio < 1.095 else _times(ratio)


def describe_speedup(
    name_a: str,
    a: Timing,
    name_b: str,
    b: Timing,
    work_a: Optional[float] = None,
    work_b: Optional[float] = None,
    work: str = "MACs",
) -> str:
    """The sentence a notebook prints about two measurements, written from them.

    Examples (``a`` the first, ``b`` the second)::

        On this device, separable is 3.1x faster than standard (IQR 2.9-3.3x) for 8.4x fewer MACs.
        On this device, SE is 1.4x slower than no SE (IQR 1.3-1.5x) for the same MACs.
        On this device, A and B take the same time within the noise (time ratio 0.95-1.06x) although A does 2.0x fewer MACs.

    A noisy timing adds "(noisy: rerun on a quieter machine)".

    Args:
        name_a, a, name_b, b: the names and timings.
        work_a, work_b: optional work of each (MACs, FLOPs, bytes ...) for the "for Nx fewer" part.
        work: the word for the work ("MACs").
    """
    s = speedup(a, b)
    phrase = ""
    if work_a is not None and work_b is not None and work_a > 0 and work_b > 0:
        w = work_b / work_a
        if w > 1.005:
            phrase = f"{_fewer_or_more(w)} fewer {work}"
        elif w < 1 / 1.005:
            phrase = f"{_fewer_or_more(1 / w)} more {work}"
        else:
            phrase = f"the same {work}"
    if not s.clear:
        if phrase.startswith("the same"):
            work_note = f" for {phrase}"
        else:
            work_note = f" although {name_a} does {phrase}" if phrase else ""
        text = (f"On this device, {name_a} and {name_b} take the same time within the noise "
                f"(time ratio {1 / s.high:.2f}-{1 / s.low:.2f}x){work_note}.")
    elif s.value >= 1:
        text = (f"On this device, {name_a} is {_times(s.value)} faster than {name_b} "
                f"(IQR {s.low:.2f}-{s.high:.2f}x)" + (f" for {phrase}" if phrase else "") + ".")
    else:
        text = (f"On this device, {name_a} is {_times(1 / s.value)} slower than {name_b} "
                f"(IQR {1 / s.high:.2f}-{1 / s.low:.2f}x)" + (f" for {phrase}" if phrase else "") + ".")
    if s.noisy:
        text += " (noisy: rerun on a quieter machine)"
    return text


def clearly_slower(rounds: Mapping[str, Sequence[float]], baseline: str) -> List[str]:
    """The names whose time is clearly above ``baseline``'s, from paired per-round timings.

    ``rounds[name][i]`` is the time of ``name`` in round ``i`` (the contenders measured in
    alternating rounds, :func:`course.latency.measure_interleaved`). Per round the ratio
    ``r_i = rounds[name][i] / rounds[baseline][i]``; a name is *clearly slower* when the 25th
    percentile of its ``r_i`` (linear interpolation, NumPy's default) is above 1: the whole
    interquartile range of the ratio lies above 1, which a load spike (it hits both sides of a
    round) cannot fake. Returns the names, baseline excluded, sorted.

    Raises:
        ValueError: when ``baseline`` is missing or a list's length differs from the baseline's.
    """
    if baseline not in rounds:
        raise ValueError(f"baseline={baseline!r} is not among {list(rounds)}")
    base = list(rounds[baseline])
    slower = []
    for name, times in rounds.items():
        if name == baseline:
            continue
        if len(times) != len(base) or not base:
            raise ValueError(f"rounds[{name!r}] has {len(times)} times, the baseline {len(base)}: they must pair up")
        ratios = sorted(t / b for t, b in zip(times, base))
        if _quantile(ratios, 0.25) > 1.0:
            slower.append(name)
    return sorted(slower)
