"""course.latency's profiling tools: per-module profile, roofline, ONNX Runtime, sweeps.

Behaviour only, never absolute times (this machine is shared). Oracles: the profile's own
construction (self times add up), PyTorch's output for ONNX Runtime, the roofline model's
arithmetic for a known-intensity operation, the thread count before and after.
"""

import dataclasses

import pytest
import torch
from torch import nn

from course.latency import (
    ModuleTime,
    Profile,
    Roofline,
    Timing,
    compare_backends,
    environment,
    export_onnx,
    measure,
    measure_roofline,
    op_type,
    place_layers,
    profile_model,
    stamp,
    sweep,
    sweep_table,
)
from course.latency.roofline import measure_bandwidth, measure_peak

STAMP_KEYS = {"torch", "python", "device", "device_name", "cpu", "cpu_count", "threads", "onnxruntime"}


@pytest.fixture(autouse=True)
def _restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def small_cnn():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    ).eval()


def x_small(batch=1, size=32):
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))


# --- environment stamp ------------------------------------------------------------------------


def test_stamp_extends_environment_with_threads_and_onnxruntime():
    import onnxruntime

    s = stamp("cpu", 3)
    assert STAMP_KEYS <= set(s)
    assert s["threads"] == 3 and s["onnxruntime"] == onnxruntime.__version__
    assert {k: v for k, v in s.items() if k not in ("threads", "onnxruntime")} == {
        k: v for k, v in environment("cpu").items() if k != "threads"
    }


# --- profile --------------------------------------------------------------------------------


def test_profile_reconciles_with_itself_and_end_to_end():
    model, x = small_cnn(), x_small(size=96)
    prof = profile_model(model, x, runs=4, threads=1, budget_s=0.2)
    # By construction: module self times + time outside the model's range = the profiled pass.
    assert prof.modules_ms + prof.unattributed_ms == pytest.approx(prof.profiled_ms, rel=1e-9, abs=1e-9)
    # Every module ran once, in call order; leaves are typed by their operator.
    names = [m.name for m in prof.modules]
    assert names == [n for n, _ in model.named_modules()]
    assert all(m.calls == 1 for m in prof.modules)
    ops = {m.name: m.op for m in prof.modules}
    assert ops["0"] == "dense conv (KxK)" and ops["3"] == "depthwise conv" and ops["6"] == "1x1 conv"
    assert ops["1"] == "norm" and ops["2"] == "activation" and ops["9"] == "linear"
    # The model's own total time is the sum of its children's totals plus its own self time.
    root = prof.modules[0]
    assert root.total_ms == pytest.approx(root.self_ms + sum(m.total_ms for m in prof.modules[1:]), rel=1e-6)
    # ATen operators' self times are part of the profiled time, never more.
    assert 0 < prof.operators_ms <= prof.profiled_ms * (1 + 1e-9)
    assert any(o.name == "aten::linear" or o.name == "aten::addmm" for o in prof.operators)
    # Against the unprofiled time: the comparison itself (a live comparison of two timings would
    # be a timed test; the notebook shows it on the learner's machine).
    e2e = prof.end_to_end
    assert dataclasses.replace(prof, profiled_ms=e2e.median_ms * 1.4).reconciles(0.5)
    assert not dataclasses.replace(prof, profiled_ms=e2e.median_ms * 1.6).reconciles(0.5)
    assert not dataclasses.replace(prof, profiled_ms=e2e.median_ms * 0.4).reconciles(0.5)
    assert e2e.runs >= 1 and prof.profiled_ms > 0
    assert prof.environment["threads"] == 1 and STAMP_KEYS <= set(prof.environment)
    assert sum(prof.by_type().values()) == pytest.approx(prof.modules_ms)
    assert "profiler overhead" in prof.table()


def test_profile_restores_threads_and_mode():
    torch.set_num_threads(2)
    model = small_cnn().train()
    profile_model(model, x_small(), runs=1, warmup=0, threads=1, budget_s=0.05)
    assert torch.get_num_threads() == 2 and model.training
    assert not model[0]._forward_hooks and not model[0]._forward_pre_hooks  # hooks removed
    with pytest.raises(ValueError, match="runs"):
        profile_model(model, x_small(), runs=0)


def test_op_type():
    assert op_type(nn.Conv2d(8, 8, 3, groups=8)) == "depthwise conv"
    assert op_type(nn.Conv2d(8, 8, 3, groups=2)) == "dense conv (KxK)"
    assert op_type(nn.Conv2d(8, 16, 1)) == "1x1 conv"
    assert op_type(nn.LayerNorm(8)) == "norm" and op_type(nn.GELU()) == "activation"
    assert op_type(nn.MultiheadAttention(8, 2)) == "attention" and op_type(nn.Sequential()) == "other"


# --- roofline -------------------------------------------------------------------------------


def test_roofline_model_arithmetic():
    roof = Roofline(peak_gmacs=100.0, bandwidth_gbs=20.0, matmul_n=0, copy_bytes=0)
    assert roof.ridge == 5.0
    assert roof.attainable_gmacs(1.0) == 20.0 and roof.attainable_gmacs(50.0) == 100.0
    assert roof.bound(4.99) == "memory" and roof.bound(5.0) == "compute"
    with pytest.raises(ValueError):
        roof.attainable_gmacs(-1)


@pytest.mark.slow
def test_measured_roofline_is_consistent_with_known_intensity_ops():
    torch.set_num_threads(2)
    roof = measure_roofline(fast=True, threads=1, budget_s=0.3)
    assert roof.peak_gmacs > 0 and roof.bandwidth_gbs > 0
    assert roof.environment["threads"] == 1 and torch.get_num_threads() == 2
    assert roof.copy_bytes == 8 * 4 * 2**20 and roof.matmul_n == 768
    assert roof.ridge == pytest.approx(roof.peak_gmacs / roof.bandwidth_gbs)
    # Known intensities. A large element-wise add reads 2 and writes 1 float32 per element
    # (12 bytes, 1 operation: far left of the ridge), so at the copy's bandwidth it takes 1.5x
    # the copy's time; a matmul of another size runs near the same peak. Best of three for each
    # (on a shared machine other programs only ever add time); factors of 3 for cache effects.
    n = 4 * 2**20
    a, b, out = torch.rand(n), torch.rand(n), torch.empty(n)
    copy_gbs = max(measure_bandwidth(n, threads=1, budget_s=0.2)[0] for _ in range(3))
    add_s = min(measure(lambda: torch.add(a, b, out=out), threads=1, budget_s=0.2).median_s for _ in range(3))
    add_gbs = 12 * n / add_s / 1e9
    assert copy_gbs / 3 < add_gbs < copy_gbs * 3, (copy_gbs, add_gbs)
    assert roof.bound(n / (12 * n)) == "memory"
    peak_768 = max(measure_peak(768, threads=1, budget_s=0.2)[0] for _ in range(3))
    peak_384 = max(measure_peak(384, threads=1, budget_s=0.2)[0] for _ in range(3))
    assert peak_768 / 3 < peak_384 < peak_768 * 3, (peak_768, peak_384)
    # The matmul's own intensity (n^3 MACs over 3 n^2 float32) is far right of the ridge: the
    # peak is a compute roof, the copy a memory roof, as the model assumes.
    assert roof.bound(768**3 / (3 * 4 * 768**2)) == "compute"


def test_bandwidth_and_peak_validate_sizes():
    with pytest.raises(ValueError, match="n must be positive"):
        measure_peak(0)
    with pytest.raises(ValueError, match="numel"):
        measure_bandwidth(0)


def hand_profile(model, x, gmacs: float, gbs: float) -> Profile:
    """A profile built by hand (no clock): each module's self time is its own work at ``gmacs``
    G operations/s plus its own bytes at ``gbs`` GB/s."""
    from course.cost import count

    own = {("" if r["module"] == "(model)" else r["module"]): r for r in count(model, x).rows()}

    def ms(name):
        r = own.get(name)
        if r is None:
            return 0.001
        work, moved = r["macs"] or r["elementwise"], r["bytes_read"] + r["bytes_written"]
        return 1e3 * (work / (gmacs * 1e9) + moved / (gbs * 1e9)) + 0.001

    modules = [ModuleTime(name=n, type=type(m).__name__, op=op_type(m), calls=1, self_ms=ms(n), total_ms=ms(n))
               for n, m in model.named_modules()]
    total = sum(m.self_ms for m in modules)
    return Profile(modules=modules, operators=[], profiled_ms=total, unattributed_ms=0.0,
                   end_to_end=Timing(total / 1e3, 0.0, 5, "cpu", 1), runs=1)


def test_place_layers_uses_counter_intensity_and_profile_time():
    from course.cost import conv2d

    model, x = small_cnn(), x_small(size=48)
    roof = Roofline(peak_gmacs=50.0, bandwidth_gbs=10.0, matmul_n=0, copy_bytes=0)
    prof = hand_profile(model, x, gmacs=25.0, gbs=5.0)  # every layer below both roofs
    points = {p.name: p for p in place_layers(model, x, roof, profile=prof)}
    dense = conv2d(48, 48, 3, 16, 3, bias=False)
    depthwise = conv2d(48, 48, 16, 16, 3, groups=16, bias=False)
    assert points["0"].macs == dense.macs and points["0"].intensity == pytest.approx(dense.arithmetic_intensity)
    assert points["3"].intensity == pytest.approx(depthwise.arithmetic_intensity)
    # Depthwise 3x3: 9 MACs per output element for ~8 bytes moved: ~1.1 MACs/byte < ridge 5.
    assert points["3"].bound == "memory" and points["0"].bound == "compute"
    assert points["2"].macs == 0 and points["2"].work == points["2"].elementwise > 0  # ReLU: element-wise
    kept = roof.including(list(points.values()))  # no layer beat the probes: the same roof
    assert (kept.peak_gmacs, kept.bandwidth_gbs, kept.peak_source) == (50.0, 10.0, "matmul probe")
    for p in points.values():
        assert p.achieved_gmacs == pytest.approx(p.work / (p.time_ms * 1e-3) / 1e9)
        assert p.attainable_gmacs == roof.attainable_gmacs(p.intensity)


def test_roof_is_the_best_rate_observed_and_no_point_sits_above_it():
    from course.chapters.ch08 import roofline_figure

    model, x = small_cnn(), x_small(size=48)
    probes = Roofline(peak_gmacs=2.0, bandwidth_gbs=1.0, matmul_n=2048, copy_bytes=8)  # slow probes
    prof = hand_profile(model, x, gmacs=40.0, gbs=20.0)  # layers far faster than the probes
    points = place_layers(model, x, probes, profile=prof)
    roof = probes.including(points)
    assert roof.peak_gmacs == max(p.achieved_gmacs for p in points) > probes.peak_gmacs
    assert roof.bandwidth_gbs == pytest.approx(max(p.bytes / (p.time_ms * 1e-3) / 1e9 for p in points))
    assert roof.probe_peak_gmacs == 2.0 and roof.probe_bandwidth_gbs == 1.0 and roof.peak_source.startswith("layer ")
    for p in points:
        assert p.achieved_gmacs <= p.attainable_gmacs * (1 + 1e-9), p
        assert p.attainable_gmacs == roof.attainable_gmacs(p.intensity)
        assert p.bound == ("memory" if p.intensity < roof.ridge else "compute")
    ax = roofline_figure(probes, points).axes[0]
    roof_line = ax.lines[0]
    for collection in ax.collections:  # every plotted point is on or under the drawn roof
        for xi, yi in collection.get_offsets():
            assert yi <= roof.attainable_gmacs(xi) * (1 + 1e-9)
    assert max(roof_line.get_ydata()) == pytest.approx(roof.peak_gmacs)
    assert "probes alone (matmul, copy)" in [t.get_text() for t in ax.get_legend().get_texts()]


# --- ONNX Runtime -----------------------------------------------------------------------------


def test_onnxruntime_output_equals_eager_and_threads_restored():
    torch.set_num_threads(2)
    model, x = small_cnn(), x_small(batch=2)
    result = compare_backends(model, x, threads=1, budget_s=0.1)
    assert result.max_abs_diff <= 1e-4 * max(1.0, result.max_abs_output)
    assert result.eager.threads == 1 and result.onnxruntime.threads == 1 and result.threads == 1
    assert torch.get_num_threads() == 2
    assert result.speedup == pytest.approx(result.eager.median_s / result.onnxruntime.median_s)
    assert STAMP_KEYS <= set(result.environment) and result.environment["threads"] == 1
    assert "ONNX Runtime" in str(result)


def test_onnxruntime_matches_a_zoo_model_with_ort_session_threads():
    import numpy as np

    from course.latency import ort_session
    from course.models import create_model

    torch.manual_seed(0)
    model = create_model("mobilenetv3_small_100").eval()
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    onnx_bytes = export_onnx(model, x)
    session = ort_session(onnx_bytes, threads=1)
    assert session.get_session_options().intra_op_num_threads == 1
    y_ort = session.run(None, {"x": x.numpy()})[0]
    with torch.inference_mode():
        y = model(x).numpy()
    assert y.shape == y_ort.shape == (1, 1000)
    np.testing.assert_allclose(y_ort, y, atol=1e-4 * max(1.0, float(np.abs(y).max())), rtol=0)
    with pytest.raises(ValueError, match="device"):
        ort_session(onnx_bytes, device="mps")


# --- sweeps -----------------------------------------------------------------------------------


def test_sweep_grid_stamp_and_restoration():
    torch.set_num_threads(2)
    model = small_cnn()
    rows = sweep(model, (3, 32, 32), threads=(1, 2), batch=(1, 4), channels_last=(False, True), budget_s=0.03)
    assert [(r.threads, r.batch, r.channels_last) for r in rows] == [
        (t, b, c) for t in (1, 2) for b in (1, 4) for c in (False, True)
    ]
    assert all(r.timing.threads == r.threads == r.environment["threads"] for r in rows)
    assert all(STAMP_KEYS <= set(r.environment) for r in rows)
    assert all(r.ms_per_image == pytest.approx(r.ms / r.batch) for r in rows)
    assert torch.get_num_threads() == 2
    assert next(model.parameters()).is_contiguous()  # the model itself stays NCHW
    assert "channels_last" in str(sweep_table(rows)) and "per image" in str(sweep_table(rows))
    for t in (1, 2):  # the settings of one thread count share interleaved rounds
        assert len({r.timing.group for r in rows if r.threads == t}) == 1
    with pytest.raises(ValueError, match="threads"):
        sweep(model, (3, 8, 8), threads=(0,))
    with pytest.raises(ValueError, match="channels_last"):
        sweep(nn.Linear(4, 4), (4,), channels_last=(True,))


def test_profile_lists_the_operators_a_forward_calls_itself():
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(8, 8, 3, padding=1)

        def forward(self, x):
            return self.conv(x) + x  # the add is the container's own operator

    model = nn.Sequential(Residual(), nn.ReLU()).eval()
    prof = profile_model(model, torch.randn(1, 8, 16, 16), runs=2, warmup=1, threads=1, budget_s=0.05)
    by_name = {m.name: m for m in prof.modules}
    block = by_name["0"]
    assert not block.leaf and by_name["0.conv"].leaf and by_name["1"].leaf
    assert [(d.name, d.calls) for d in block.direct] == [("aten::add", 1)]
    assert 0 <= block.direct[0].ms <= block.self_ms + 1e-9  # part of the container's own time
    assert by_name["0.conv"].direct and all(d.name.startswith("aten::") for d in by_name["0.conv"].direct)
