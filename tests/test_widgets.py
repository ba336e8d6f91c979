"""course.widgets: the explorer driven headless (no browser, no kernel)."""

import subprocess
import sys

import ipywidgets as widgets
import numpy as np
import pytest
import torch
from torch import nn

import course.latency
from course.cost import conv2d
from course.latency import Timing
from course.chapters.ch01 import conv_explorer
from course.widgets import Explorer, ExplorerResult


@pytest.fixture
def fake_measure(monkeypatch):
    """Replaces the real timer: instant, and counts its calls (timing is tested elsewhere)."""
    calls = []

    def measure(module, *inputs, threads=None, budget_s=None):
        calls.append(budget_s)
        return Timing(median_s=1e-3 * len(calls), iqr_s=1e-5, runs=10, device="cpu", threads=threads or 1)

    monkeypatch.setattr(course.latency, "measure", measure)
    return calls


def _conv_config(**overrides):
    config = dict(H=56, N=64, M=64, K=3, stride=1, groups=1)
    config.update(overrides)
    return config


def test_defaults_and_exact_macs():
    explorer = conv_explorer(measure=False)
    result = explorer.result
    assert isinstance(result, ExplorerResult)
    assert result.config == _conv_config()
    assert result.formula.macs == result.counted.macs == 56 * 56 * 3 * 3 * 64 * 64 == 115_605_504
    assert result.timing is None and result.error is None and explorer.figure is None

    result = explorer.set(H=32, N=16, M=32, K=3, stride=2, groups=4)
    # H' = (32 + 2*1 - 3) // 2 + 1 = 16; MACs = H'^2 * K^2 * (N/G) * M, against PyTorch's own count.
    from torch.utils.flop_counter import FlopCounterMode

    conv, (x,) = explorer.build(explorer.config)
    with FlopCounterMode(display=False) as flops:
        conv(x)
    expected = conv2d(H=32, W=32, N=16, M=32, K=3, stride=2, padding=1, groups=4, bias=False)
    assert result.formula == expected
    assert result.formula.macs == result.counted.macs == flops.get_total_flops() // 2 == 16 * 16 * 3 * 3 * 4 * 32
    assert result.counted.total.out_shape == (1, 32, 16, 16)
    assert result.counted.params == 3 * 3 * (16 // 4) * 32


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        dict(H=8, N=3, M=16, K=7, stride=2, groups=1),
        dict(H=224, N=32, M=64, K=1, stride=2, groups=32),
        dict(H=40, N=256, M=256, K=5, stride=1, groups=64),  # grouped, not depthwise
        dict(H=16, N=64, M=64, K=3, stride=1, groups=64),  # depthwise
    ],
)
def test_formula_equals_counter(overrides):
    explorer = conv_explorer(measure=False)
    result = explorer.set(**overrides)
    f, c = result.formula, result.counted.total
    assert result.error is None
    for attr in ("macs", "flops", "params", "activations", "bytes_read", "bytes_written", "out_shape"):
        assert getattr(f, attr) == getattr(c, attr), attr
    assert "≠" not in explorer._table.value  # nothing highlighted


def test_invalid_groups_shows_red_error_and_recovers():
    explorer = conv_explorer(measure=False)
    result = explorer.set(N=3, groups=2)
    assert result.error is not None and "groups" in result.error
    assert result.formula is None and result.counted is None and result.timing is None
    table = explorer._table.value
    assert "groups" in table and "color:#c62828" in table
    result = explorer.set(groups=1)
    assert result.error is None and result.counted.macs == 56 * 56 * 9 * 3 * 64


def test_rejected_configuration_is_never_built():
    built = []

    def build(c):
        built.append(dict(c))
        return nn.Conv2d(c["N"], 8, 3, groups=c["G"]), (torch.zeros(1, c["N"], 8, 8),)

    def formula(c):
        return conv2d(H=8, W=8, N=c["N"], M=8, K=3, padding=0, groups=c["G"])

    explorer = Explorer({"N": [8, 6], "G": [1, 4]}, build, formula, measure=False)
    assert len(built) == 1
    result = explorer.set(N=6, G=4)
    assert "groups" in result.error and len(built) == 1  # one update, no build


def test_mismatch_between_formula_and_counter_is_highlighted():
    def build(c):
        return nn.Conv2d(8, 8, 3, padding=1, bias=False), (torch.zeros(1, 8, c["H"], c["H"]),)

    def wrong_formula(c):  # counts a bias the module does not have
        return conv2d(H=c["H"], W=c["H"], N=8, M=8, K=3, bias=True)

    explorer = Explorer({"H": (8, 32, 8, 16)}, build, wrong_formula, measure=False)
    table = explorer._table.value
    assert "≠ params" in table and "≠ MACs" not in table
    assert explorer.result.formula.params != explorer.result.counted.params


def test_cache_hit_on_revisit_and_one_point_per_configuration(fake_measure):
    explorer = conv_explorer(budget_s=0.25)
    assert fake_measure == [0.25]
    first = explorer.result.timing
    explorer.set(H=32)
    explorer.set(K=5)
    assert len(fake_measure) == 3
    again = explorer.set(H=56, K=3)  # back to the defaults: from the cache
    assert len(fake_measure) == 3 and again.timing is first
    explorer.set(N=3, groups=2)  # an error: not measured, not plotted
    assert len(fake_measure) == 3

    ax = explorer.figure.axes[0]
    offsets = ax.collections[0].get_offsets()
    assert len(offsets) == 3 == len(explorer.timings)
    explorer.set(groups=1, N=64)
    current = (explorer.result.counted.macs, explorer.result.timing.median_ms)
    np.testing.assert_allclose(ax.collections[1].get_offsets(), [current])  # highlighted


def test_latency_line_and_rate(fake_measure):
    explorer = conv_explorer()
    text = explorer._latency.value
    assert "1.00 ms ± 0.01 ms (IQR, 10 samples, cpu, 1 thread)" in text and "noisy" not in text
    assert "116 GMAC/s" in text  # 115.6 MMACs in 1 ms
    assert explorer._plot.value[:8] == b"\x89PNG\r\n\x1a\n" and explorer._plot.layout.display is None


def test_no_broken_image_before_the_first_plot():
    explorer = conv_explorer(measure=False)
    assert explorer._plot.layout.display == "none" and explorer._plot.value == b""


def test_noisy_timing_is_marked_in_the_line_and_the_plot(monkeypatch):
    monkeypatch.setattr(course.latency, "measure", lambda m, *i, threads=None, budget_s=None:
                        Timing(median_s=2e-3, iqr_s=0.6e-3, runs=5, device="cpu", threads=1))
    explorer = conv_explorer()
    assert "noisy" in explorer._latency.value and "30% of the median" in explorer._latency.value
    ax = explorer.figure.axes[0]
    faces = ax.collections[0].get_facecolors()
    assert tuple(faces[0][:3]) == (1.0, 1.0, 1.0)  # hollow: a white face
    assert "noisy (rerun)" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_real_measurement_end_to_end():
    explorer = conv_explorer(budget_s=0.05)
    result = explorer.set(H=16, N=16, M=16)
    assert result.timing.samples >= 5 and result.timing.median_s > 0 and result.timing.threads == 1
    assert "GMAC/s" in explorer._latency.value


def test_slider_move_takes_the_same_path():
    explorer = conv_explorer(measure=False)
    explorer.controls["H"].value = 64
    assert explorer.result.config["H"] == 64
    assert explorer.result.counted.macs == 64 * 64 * 9 * 64 * 64


def test_set_updates_once_for_many_values():
    builds = []

    def build(c):
        builds.append(c)
        return nn.Identity(), (torch.zeros(c["a"], c["b"]),)

    explorer = Explorer({"a": (1, 4, 1, 1), "b": [1, 2, 3]}, build, measure=False)
    explorer.set(a=3, b=2)
    assert len(builds) == 2 and builds[-1] == {"a": 3, "b": 2}
    explorer.set(a=3)  # nothing changed: no update
    assert len(builds) == 2


def test_set_rejects_bad_values():
    explorer = conv_explorer(measure=False)
    with pytest.raises(ValueError, match="unknown control"):
        explorer.set(W=32)
    with pytest.raises(ValueError, match="range"):
        explorer.set(H=512)
    with pytest.raises(ValueError, match="not one of"):
        explorer.set(K=4)
    assert explorer.result.config == _conv_config()


def test_controls_from_specs():
    explorer = conv_explorer(measure=False)
    h, n, stride = explorer.controls["H"], explorer.controls["N"], explorer.controls["stride"]
    assert isinstance(h, widgets.IntSlider) and not h.continuous_update
    assert (h.min, h.max, h.step, h.value) == (8, 224, 8, 56)
    assert isinstance(n, widgets.Dropdown) and list(n.options) == [3, 16, 32, 64, 128, 256] and n.value == 64
    assert stride.value == 1  # a plain list starts at its first item
    assert isinstance(explorer.widget, widgets.VBox)
    assert callable(explorer._ipython_display_)
    with pytest.raises(ValueError, match="expected"):
        Explorer({"x": "oops"}, lambda c: (nn.Identity(), (torch.zeros(1),)), measure=False)
    with pytest.raises(ValueError, match="default"):
        Explorer({"x": {"options": [1, 2], "default": 3}}, lambda c: (nn.Identity(), (torch.zeros(1),)))


def test_cost_only_explorer_never_measures(fake_measure):
    explorer = conv_explorer(measure=False)
    results = [explorer.set(H=h) for h in (64, 72, 80)]
    assert fake_measure == [] and all(r.timing is None and r.update_s > 0 for r in results)
    assert explorer.figure is None  # its speed is shown by benchmarks/run.py, never asserted here


def test_import_is_lazy():
    code = (
        "import sys, course.widgets, course.chapters.ch01; "
        "assert 'ipywidgets' not in sys.modules and 'matplotlib' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
