"""course.latency.measure on real calls: behaviour only (never absolute times: this machine is
shared). The policy itself (samples, budget, re-measure, interleaving) is driven by a fake clock in
test_latency_policy.py."""

import re

import pytest
import torch
from torch import nn

from course.latency import Timing, environment, measure, measure_interleaved, speedup


@pytest.fixture(autouse=True)
def _restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_sixteen_times_the_macs_measures_slower():
    # 16x the MACs: 32 -> 32 channels vs 128 -> 128, same 3x3 kernel and 32x32 map (~10x the
    # time unloaded). Interleaved rounds: a load spike of this shared machine hits both.
    x_small, x_big = torch.randn(1, 32, 32, 32), torch.randn(1, 128, 32, 32)
    timings = measure_interleaved({
        "small": (nn.Conv2d(32, 32, 3, padding=1, bias=False), (x_small,)),
        "big": (nn.Conv2d(128, 128, 3, padding=1, bias=False), (x_big,)),
    }, budget_s=0.4)
    assert speedup(timings["small"], timings["big"]).value > 3, timings


def test_timing_fields_and_formatting():
    timing = measure(nn.Linear(64, 64), torch.randn(8, 64), budget_s=0.1)
    assert isinstance(timing, Timing)
    assert timing.samples >= 5 and timing.runs >= timing.samples and timing.median_s > 0 and timing.iqr_s >= 0
    assert timing.device == "cpu" and timing.threads == 1  # the policy's
    assert len(timing.times_s) == timing.samples and timing.q1_s <= timing.median_s <= timing.q3_s
    assert timing.median_ms == pytest.approx(timing.median_s * 1e3)
    assert timing.iqr_ms == pytest.approx(timing.iqr_s * 1e3)
    assert timing.noisy == (timing.iqr_s > 0.1 * timing.median_s)
    d = timing.as_dict()
    assert {"median_s", "iqr_s", "median_ms", "iqr_ms", "runs", "samples", "device", "threads", "noisy"} <= set(d)
    unit = r"(s|ms|µs|ns)"
    assert re.fullmatch(rf"[\d.]+ {unit} ± [\d.]+ {unit} \(IQR, \d+ samples(, [\d,]+ calls)?, cpu, 1 thread\)( NOISY.*)?",
                        str(timing)), str(timing)
    with pytest.raises(Exception):
        timing.median_s = 1.0  # frozen


def test_threads_set_during_and_restored_after():
    torch.set_num_threads(2)
    seen = []
    measure(lambda x: seen.append(torch.get_num_threads()) or x, torch.ones(1), threads=1, budget_s=0.05)
    assert set(seen) == {1}
    assert torch.get_num_threads() == 2


def test_threads_restored_after_exception():
    torch.set_num_threads(2)

    def broken(x):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        measure(broken, torch.ones(1), threads=1, budget_s=0.05)
    assert torch.get_num_threads() == 2


def test_runs_under_inference_mode():
    modes = []
    measure(lambda: modes.append(torch.is_inference_mode_enabled()), budget_s=0.02)
    assert modes and all(modes)


def test_function_and_module_both_accepted():
    x = torch.randn(32, 32)
    assert measure(lambda a: a @ a, x, budget_s=0.05).samples >= 5
    assert measure(nn.ReLU(), x, budget_s=0.05).samples >= 5
    assert measure(torch.matmul, x, x, budget_s=0.05).samples >= 5


def test_min_runs_is_honoured_even_over_budget():
    class Clock:  # moves only when the workload runs: 20 ms per call
        now = 0.0

        def __call__(self):
            return self.now

    clock = Clock()

    def work():
        clock.now += 0.02

    assert measure(work, budget_s=0.01, min_runs=8, clock=clock).runs >= 8


def test_device_none_follows_inputs_and_cpu_accepted():
    conv = nn.Conv2d(3, 8, 3)
    assert measure(conv, torch.randn(1, 3, 16, 16), budget_s=0.05).device == "cpu"
    assert measure(conv, torch.randn(1, 3, 16, 16), device="cpu", budget_s=0.05).device == "cpu"
    assert measure(lambda: None, budget_s=0.02).device == "cpu"  # nothing to follow: cpu


@pytest.mark.parametrize("device", ["banana", "tpu", "cuda:99"])
def test_bad_device_raises_value_error(device):
    with pytest.raises(ValueError, match="device"):
        measure(nn.ReLU(), torch.ones(4), device=device, budget_s=0.05)


def test_unavailable_accelerators_raise_value_error():
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="cuda"):
            measure(nn.ReLU(), torch.ones(4), device="cuda", budget_s=0.05)
    if not torch.backends.mps.is_available():
        with pytest.raises(ValueError, match="mps"):
            measure(nn.ReLU(), torch.ones(4), device="mps", budget_s=0.05)


@pytest.mark.parametrize("value", [0, -1.0])
def test_bad_budget_raises(value):
    with pytest.raises(ValueError, match="budget_s"):
        measure(nn.ReLU(), torch.ones(4), budget_s=value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_moves_module_and_inputs():
    conv = nn.Conv2d(16, 16, 3, padding=1)
    timing = measure(conv, torch.randn(1, 16, 32, 32), device="cuda", budget_s=0.2)
    assert timing.device.startswith("cuda") and timing.runs >= 1
    assert next(conv.parameters()).is_cuda


@pytest.mark.skipif(not torch.backends.mps.is_available(), reason="no MPS device")
def test_mps_moves_module_and_inputs():
    conv = nn.Conv2d(16, 16, 3, padding=1)
    timing = measure(conv, torch.randn(1, 16, 32, 32), device="mps", budget_s=0.2)
    assert timing.device == "mps" and timing.runs >= 1


def test_environment_stamp():
    env = environment()
    assert env["torch"] == torch.__version__
    assert env["threads"] == 1  # the threads the following measurements use (the policy's)
    assert env["cpu_count"] >= 1 and env["device_name"]
    assert environment("cpu")["device"] == "cpu"
