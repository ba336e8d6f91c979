"""The measurement policy driven by a fake clock: deterministic, no real time anywhere.

A :class:`FakeClock` only moves when the fake workload runs: each call advances it by the next
scripted duration. So spikes, noise, minimum samples, the re-measure rule, the budget and the
interleaving order are all checked exactly, on any machine, however busy.
"""

import itertools

import pytest
import torch

from course.latency import (
    Timing,
    describe_speedup,
    environment,
    format_time,
    measure,
    measure_interleaved,
    policy,
    speedup,
)


class FakeClock:
    """Seconds that pass only inside :meth:`work`."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def workload(self, durations, log=None, name=None):
        """A callable whose k-th call lasts ``durations[k]`` (an iterable; the last value repeats),
        or ``durations(now)`` seconds when ``durations`` is a function of the fake time."""
        timed = callable(durations)
        durations = durations if timed else iter(durations)
        last = [None]

        def work(*args):
            if timed:
                last[0] = durations(self.now)
            else:
                try:
                    last[0] = next(durations)
                except StopIteration:
                    pass
            self.now += last[0]
            if log is not None:
                log.append(name)

        return work


@pytest.fixture(autouse=True)
def _restore():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
    policy.set_policy()


def constant(seconds):
    return itertools.repeat(seconds)


# --- the policy itself ------------------------------------------------------------------------


def test_defaults_set_and_using():
    p = policy.current()
    assert (p.threads, p.min_samples, p.noisy) == (1, 5, 0.1)
    assert "1 thread" in p.describe() and "5 samples" in p.describe() and "10%" in p.describe()
    with policy.using(threads=3, budget_s=0.5):
        assert policy.current().threads == 3 and policy.current().budget_s == 0.5
    assert policy.current().threads == 1
    policy.set_policy(threads=2)
    assert policy.current().threads == 2
    policy.set_policy()  # back to the defaults
    assert policy.current() == policy.Policy()


def test_using_restores_after_an_exception():
    with pytest.raises(RuntimeError):
        with policy.using(threads=4):
            raise RuntimeError("boom")
    assert policy.current().threads == 1


@pytest.mark.parametrize("changes, name", [
    (dict(threads=0), "threads"), (dict(min_samples=1), "min_samples"), (dict(budget_s=0), "budget_s"),
    (dict(noisy=0), "noisy"), (dict(warmup_share=1.5), "warmup_share"), (dict(speed=2), "unknown"),
])
def test_bad_policy_values_name_the_field(changes, name):
    with pytest.raises(ValueError, match=name):
        policy.set_policy(**changes)


# --- measure ------------------------------------------------------------------------------------


def test_never_a_single_sample_even_far_over_budget():
    clock = FakeClock()
    timing = measure(clock.workload(constant(2.0)), budget_s=0.1, clock=clock)
    assert timing.samples == 5 and timing.runs == 5  # one call per sample: slow calls
    assert timing.median_s == 2.0 and timing.iqr_s == 0.0 and not timing.noisy
    assert clock.now == pytest.approx(2.0 * 6)  # one warm-up call, five samples, no re-measure


def test_fast_calls_fill_the_budget_with_about_twenty_samples():
    clock = FakeClock()
    timing = measure(clock.workload(constant(1e-4)), budget_s=1.0, clock=clock)
    assert 20 <= timing.samples <= 22
    assert timing.runs == timing.samples * (timing.runs // timing.samples)  # equal blocks
    assert timing.runs // timing.samples > 1  # several calls per sample when calls are short
    assert timing.median_s == pytest.approx(1e-4)
    # The budget is overrun by at most one sample (a twentieth of it).
    assert clock.now <= 1.0 + 1.0 / 20 + 1e-9


def test_a_spike_does_not_move_the_median():
    clock = FakeClock()
    durations = [1e-3] * 11 + [0.5] + [1e-3] * 10_000  # warm-up, then one 500 ms stall
    timing = measure(clock.workload(durations), budget_s=0.1, warmup=1, clock=clock)
    assert timing.median_s == pytest.approx(1e-3)
    assert not timing.noisy and timing.attempts == 1


def test_noisy_first_attempt_is_measured_again_and_the_steadier_kept():
    clock = FakeClock()
    # One warm-up call, then alternating 1 ms / 3 ms calls (one call per sample: IQR/median = 1)
    # for the whole first attempt (10 samples: 20 ms), then steady 2 ms calls.
    noisy = [1e-3, 3e-3] * 5
    timing = measure(clock.workload([1e-3] + noisy + [2e-3] * 10_000), budget_s=0.02, warmup=1, clock=clock)
    assert timing.attempts == 2
    assert timing.median_s == pytest.approx(2e-3) and timing.iqr_s == pytest.approx(0.0)
    assert not timing.noisy


def test_still_noisy_after_the_remeasure_says_so():
    clock = FakeClock()
    timing = measure(clock.workload(itertools.cycle([1e-3, 3e-3])), budget_s=0.05, clock=clock)
    assert timing.attempts == 2 and timing.noisy
    text = str(timing)
    assert "NOISY" in text and "% of the median" in text
    assert timing.short().endswith("(noisy)")
    # The re-measure is bounded: first budget + an equal extra budget + one sample each.
    assert clock.now <= 2 * 0.05 + 2 * 3e-3 + 1e-9


def test_remeasure_takes_longer_samples_that_average_out_per_call_jitter():
    clock = FakeClock()
    # Every 4th call takes 5 ms, the others 1 ms: one call per sample shows the jitter
    # (IQR/median 1.0); the re-measure's samples of 4 calls each see 2 ms every time.
    timing = measure(clock.workload(itertools.cycle([1e-3, 1e-3, 1e-3, 5e-3])), budget_s=0.0205, warmup=1,
                     clock=clock)
    assert timing.attempts == 2 and not timing.noisy
    assert timing.median_s == pytest.approx(2e-3) and timing.runs == 4 * timing.samples
    assert timing.samples >= policy.current().min_samples


def test_remeasure_can_be_switched_off():
    clock = FakeClock()
    with policy.using(remeasure_share=0):
        timing = measure(clock.workload(itertools.cycle([1e-3, 3e-3])), budget_s=0.05, clock=clock)
    assert timing.attempts == 1 and timing.noisy


def test_min_samples_and_warmup_arguments():
    clock = FakeClock()
    calls = []
    work = clock.workload(constant(1.0))
    measure(lambda: calls.append(1) or work(), budget_s=0.5, warmup=3, min_samples=7, clock=clock)
    assert len(calls) == 1 + 7  # the warm-up stops at the budget's quarter after one call
    with pytest.raises(ValueError, match="min_samples"):
        measure(work, min_samples=1, clock=clock)
    with pytest.raises(ValueError, match="budget_s"):
        measure(work, budget_s=0, clock=clock)


def test_threads_come_from_the_policy_and_are_restored():
    clock = FakeClock()
    torch.set_num_threads(2)
    seen = []
    work = clock.workload(constant(1e-3))
    timing = measure(lambda: seen.append(torch.get_num_threads()) or work(), budget_s=0.01, clock=clock)
    assert set(seen) == {1} and timing.threads == 1
    assert torch.get_num_threads() == 2
    with policy.using(threads=3):
        seen.clear()
        assert measure(lambda: seen.append(torch.get_num_threads()) or work(), budget_s=0.01, clock=clock).threads == 3
        assert set(seen) == {3}
    assert torch.get_num_threads() == 2


def _calls_of_a_noisy_measurement():
    clock = FakeClock()
    calls = []
    work = clock.workload(itertools.cycle([1e-3, 3e-3]))
    timing = measure(lambda: calls.append(1) or work(), budget_s=0.02, clock=clock)
    assert timing.attempts == 2
    return len(calls)


@pytest.mark.parametrize("where", ["warm-up", "first samples", "re-measure"])
def test_threads_restored_when_the_call_raises(where):
    total = _calls_of_a_noisy_measurement()
    fail_at = {"warm-up": 0, "first samples": 5, "re-measure": total - 1}[where]
    clock = FakeClock()
    torch.set_num_threads(2)
    count = itertools.count()
    work = clock.workload(itertools.cycle([1e-3, 3e-3]))

    def flaky():
        if next(count) == fail_at:
            raise RuntimeError("boom")
        work()

    with pytest.raises(RuntimeError, match="boom"):
        measure(flaky, budget_s=0.02, threads=1, clock=clock)
    assert torch.get_num_threads() == 2


# --- measure_interleaved and speedup ---------------------------------------------------------------


def test_interleaved_rounds_alternate_and_rotate():
    clock = FakeClock()
    log = []
    cases = {name: (clock.workload(constant(1.0), log, name), ()) for name in "ABC"}
    result = measure_interleaved(cases, budget_s=0.1, warmup=1, clock=clock)
    assert list(result) == ["A", "B", "C"]
    warm, rounds = log[:3], log[3:]
    assert warm == ["A", "B", "C"]
    assert len(rounds) == 3 * 5  # slow calls: the five rounds the policy requires
    assert rounds == list("ABC" "BCA" "CAB" "ABC" "BCA")  # each round starts one later
    assert all(t.samples == 5 and t.group == result["A"].group for t in result.values())


def test_a_load_spike_hits_both_sides_and_cancels_in_the_paired_ratio():
    clock = FakeClock()
    slow_round = 3  # in that round everything takes 10 times longer
    a = [1e-3] + [1e-3 * (10 if i == slow_round else 1) for i in range(100)]
    b = [3e-3] + [3e-3 * (10 if i == slow_round else 1) for i in range(100)]
    with policy.using(target_samples=5):
        result = measure_interleaved({"a": (clock.workload(a), ()), "b": (clock.workload(b), ())},
                                     budget_s=0.02, warmup=1, clock=clock)
    ta, tb = result["a"], result["b"]
    assert ta.times_s[slow_round] == pytest.approx(1e-2) and tb.times_s[slow_round] == pytest.approx(3e-2)
    s = speedup(ta, tb)
    assert s.paired and s.clear
    assert s.value == pytest.approx(3.0) and s.low == pytest.approx(3.0) and s.high == pytest.approx(3.0)


def test_interleaved_remeasures_all_sides_together():
    clock = FakeClock()
    budget = 0.04
    # Noisy until the first attempt's budget is spent, steady afterwards.
    flip = itertools.cycle([1e-3, 3e-3])
    noisy = clock.workload(lambda now: next(flip) if now < budget else 2e-3)
    steady = clock.workload(constant(1e-3))
    result = measure_interleaved({"noisy": (noisy, ()), "steady": (steady, ())}, budget_s=budget, warmup=1,
                                 clock=clock)
    assert {t.attempts for t in result.values()} == {2}
    assert len({t.group for t in result.values()}) == 1  # both from the same (kept) attempt
    assert not result["noisy"].noisy and result["noisy"].median_s == pytest.approx(2e-3)


def test_interleaved_threads_restored_and_bad_cases():
    torch.set_num_threads(2)
    clock = FakeClock()

    def broken():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        measure_interleaved({"x": (broken, ())}, clock=clock)
    assert torch.get_num_threads() == 2
    with pytest.raises(ValueError, match="cases"):
        measure_interleaved({"x": (clock.workload(constant(1.0)), "not a tuple")}, clock=clock)
    with pytest.raises(ValueError, match="at least one"):
        measure_interleaved({})


def test_speedup_unpaired_is_conservative_and_sentences_follow_the_numbers():
    fast = Timing(1e-3, 0.1e-3, 20, "cpu", 1)
    slow = Timing(3e-3, 0.2e-3, 20, "cpu", 1)
    s = speedup(fast, slow)
    assert not s.paired and s.value == pytest.approx(3.0)
    assert s.low == pytest.approx(2.9e-3 / 1.05e-3) and s.high == pytest.approx(3.1e-3 / 0.95e-3)
    assert describe_speedup("separable", fast, "standard", slow, 1e6, 8.4e6) == (
        "On this device, separable is 3.0x faster than standard (IQR 2.76-3.26x) for 8.4x fewer MACs.")
    assert describe_speedup("standard", slow, "separable", fast).startswith(
        "On this device, standard is 3.0x slower than separable")
    same = Timing(1.02e-3, 0.1e-3, 20, "cpu", 1)
    assert describe_speedup("A", fast, "B", same, 1, 2).startswith(
        "On this device, A and B take the same time within the noise (time ratio ")
    assert describe_speedup("A", fast, "B", same, 1, 2).endswith("although A does 2.0x fewer MACs.")
    assert describe_speedup("A", fast, "B", same, 5, 5).endswith("for the same MACs.")
    # Close to 1x the work ratio is a percentage: "1.0x more MACs" would say nothing.
    assert describe_speedup("A", fast, "B", same, 1.03, 1).endswith("although A does 3% more MACs.")
    assert describe_speedup("separable", fast, "standard", slow, 1, 1.08).endswith("for 8% fewer MACs.")
    assert describe_speedup("separable", fast, "standard", slow, 1, 1.1).endswith("for 1.1x fewer MACs.")
    # A clear speed-up under 1.1x keeps two decimals ("1.0x faster" would contradict itself).
    slightly = Timing(1.04e-3, 0.01e-3, 20, "cpu", 1)
    steady = Timing(1e-3, 0.01e-3, 20, "cpu", 1)
    assert describe_speedup("A", steady, "B", slightly).startswith("On this device, A is 1.04x faster than B")
    noisy = Timing(3e-3, 1e-3, 20, "cpu", 1)
    assert describe_speedup("A", fast, "B", noisy).endswith("(noisy: rerun on a quieter machine)")


# --- what is shown ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seconds, text", [
    (1.234e-3, "1.23 ms"), (1.0, "1.00 s"), (1000e-3, "1.00 s"), (0.9996, "1.00 s"), (999.4e-6, "999 µs"),
    (52.4e-9, "52.4 ns"), (0.5e-9, "0.500 ns"), (12.34, "12.3 s"), (1600e-3, "1.60 s"), (0.0, "0 s"),
    (None, "—"), (float("nan"), "—"),
])
def test_format_time_three_significant_digits(seconds, text):
    assert format_time(seconds) == text


def test_format_time_spread_in_the_medians_unit():
    assert format_time(0.4e-3, like=12.3e-3) == "0.4 ms"
    assert format_time(0.04e-3, like=1.23e-3) == "0.04 ms"
    assert format_time(0.004e-3, like=1.23e-3) == "0.004 ms"  # never rounds a spread to zero
    assert format_time(150e-3, like=1.6) == "0.15 s"


def test_timing_str_shows_units_samples_and_noise():
    steady = Timing(12.3e-3, 0.4e-3, 25, "cpu", 1)
    assert str(steady) == "12.3 ms ± 0.4 ms (IQR, 25 samples, cpu, 1 thread)"
    blocks = Timing(1.234e-3, 0.04e-3, 2000, "cpu", 2, samples=20)
    assert str(blocks) == "1.23 ms ± 0.04 ms (IQR, 20 samples, 2,000 calls, cpu, 2 threads)"
    noisy = Timing(1.6, 0.3, 5, "cuda:0", 1)
    assert str(noisy).startswith("1.60 s ± 0.30 s (IQR, 5 samples, cuda:0, 1 thread) NOISY")
    assert "19% of the median" in str(noisy)
    assert noisy.as_dict()["noisy"] is True and steady.as_dict()["samples"] == 25


def test_environment_names_the_threads_the_measurements_use():
    torch.set_num_threads(2)
    assert environment()["threads"] == 1  # the policy's, not torch's current 2
    with policy.using(threads=3):
        env = environment()
        assert env["threads"] == 3 and "3 threads" in str(env)
    assert environment(threads=4)["threads"] == 4
    assert environment("cpu")["device"] == "cpu"
    assert "policy" in environment() and "measurements below: 1 thread" in str(environment())
