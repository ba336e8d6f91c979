"""course.plots: the figures' data (never pixels)."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from course.cost import count
from course.plots import cost_breakdown, latency_vs_macs

POINTS = [(1.2e8, 3.5), (4.6e8, 9.0), (1.8e9, 30.0)]


def test_latency_vs_macs_scatter_holds_the_points():
    fig = latency_vs_macs(POINTS, labels=["a", "b", "c"])
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.collections[0].get_offsets(), POINTS)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert [t.get_text() for t in ax.texts] == ["a", "b", "c"]
    assert "MACs" in ax.get_xlabel() and "ms" in ax.get_ylabel()


def test_latency_vs_macs_highlight_and_existing_axes():
    fig = Figure()
    ax = fig.add_subplot()
    assert latency_vs_macs(POINTS, ax=ax, highlight=1) is fig
    assert len(ax.collections) == 2
    np.testing.assert_allclose(ax.collections[1].get_offsets(), [POINTS[1]])


def test_latency_vs_macs_edge_cases():
    assert len(latency_vs_macs([]).axes[0].collections) == 0
    np.testing.assert_allclose(latency_vs_macs([(1e6, 0.1)]).axes[0].collections[0].get_offsets(), [(1e6, 0.1)])
    with pytest.raises(ValueError, match="labels"):
        latency_vs_macs(POINTS, labels=["only one"])


def _rows():
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.Conv2d(32, 32, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 10),
    )
    return count(model, torch.randn(1, 3, 16, 16)).rows()


def test_cost_breakdown_shares_sum_to_100_largest_first():
    rows = _rows()
    ax = cost_breakdown(rows).axes[0]
    widths = [bar.get_width() for bar in ax.patches]
    assert sum(widths) == pytest.approx(100.0)
    assert widths == sorted(widths, reverse=True)
    with_macs = [r for r in rows if r["macs"]]
    assert len(widths) == len(with_macs)  # zero-MAC modules (ReLU, Flatten) get no bar
    biggest = max(with_macs, key=lambda r: r["macs"])
    assert widths[0] == pytest.approx(100.0 * biggest["macs"] / sum(r["macs"] for r in rows))
    assert ax.get_yticklabels()[0].get_text().startswith(biggest["module"])


def test_cost_breakdown_top_groups_the_rest():
    rows = [{"module": m, "type": "Conv2d", "macs": v} for m, v in [("a", 50), ("b", 30), ("c", 15), ("d", 5)]]
    ax = cost_breakdown(rows, top=2).axes[0]
    np.testing.assert_allclose([bar.get_width() for bar in ax.patches], [50, 30, 20])
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["a (Conv2d)", "b (Conv2d)", "other (2 modules)"]


def test_cost_breakdown_other_keys_and_empty():
    rows = _rows()
    ax = cost_breakdown(rows, key="params").axes[0]
    assert sum(bar.get_width() for bar in ax.patches) == pytest.approx(100.0)
    assert "params" in ax.get_xlabel()
    assert len(cost_breakdown([{"module": "relu", "macs": 0}]).axes[0].patches) == 0


def test_no_pyplot_state_and_lazy_matplotlib():
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    latency_vs_macs(POINTS)
    cost_breakdown(_rows())
    assert plt.get_fignums() == before  # library figures never enter pyplot's registry
    code = "import sys, course.plots; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- what the figures teach: reference line, kinds, spread, noise, labels ----------------------

from course.latency import Timing  # noqa: E402
from course.plots import latency_bars, timing_errorbar  # noqa: E402


def _timing(ms, iqr_fraction=0.02, samples=20):
    median = ms / 1e3
    return Timing(median, iqr_fraction * median, samples, "cpu", 1)


def test_slope_one_reference_through_the_median_rate():
    points = [(1e8, 2.0), (4e8, 4.0), (1.6e9, 8.0)]  # 20, 10 and 5 ms per GMAC
    ax = latency_vs_macs(points).axes[0]
    (line,) = ax.lines
    (x0, x1), (y0, y1) = line.get_xdata(), line.get_ydata()
    assert y1 / y0 == pytest.approx(x1 / x0)  # slope 1 on log-log: time proportional to MACs
    assert y0 / x0 == pytest.approx(10.0 / 1e9)  # the median rate: 10 ms per GMAC
    assert any("slope 1" in t.get_text() for t in ax.get_legend().get_texts())
    assert not latency_vs_macs(points, reference=False).axes[0].lines


def test_points_coloured_by_kind_with_a_legend():
    kinds = ["1x1 conv", "depthwise conv", "1x1 conv"]
    ax = latency_vs_macs(POINTS, kinds=kinds).axes[0]
    edges = ax.collections[0].get_edgecolors()
    assert tuple(edges[0]) == tuple(edges[2]) != tuple(edges[1])
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "1x1 conv" in legend and "depthwise conv" in legend
    with pytest.raises(ValueError, match="kinds"):
        latency_vs_macs(POINTS, kinds=["only one"])


def test_timings_give_iqr_error_bars_and_hollow_noisy_points():
    points = [(1e8, _timing(2.0)), (4e8, _timing(4.0, 0.3)), (1.6e9, _timing(40.0))]
    ax = latency_vs_macs(points).axes[0]
    np.testing.assert_allclose(ax.collections[0].get_offsets(), [(1e8, 2.0), (4e8, 4.0), (1.6e9, 40.0)])
    faces = ax.collections[0].get_facecolors()
    assert tuple(faces[1][:3]) == (1.0, 1.0, 1.0) and tuple(faces[0][:3]) != (1.0, 1.0, 1.0)
    bars = [c for c in ax.collections[1:] if c.__class__.__name__ == "LineCollection"]
    segments = bars[0].get_segments()
    np.testing.assert_allclose([s[1][1] - s[0][1] for s in segments], [0.04, 1.2, 0.8])  # the IQRs
    assert "noisy (rerun)" in [t.get_text() for t in ax.get_legend().get_texts()]


def _overlap(a, b):
    return not (a.x1 <= b.x0 or b.x1 <= a.x0 or a.y1 <= b.y0 or b.y1 <= a.y0)


def test_labels_do_not_overlap_even_for_crowded_points():
    points = [(1e8 * (1 + 0.01 * i), 2.0 * (1 + 0.01 * i)) for i in range(6)] + [(1e9, 20.0)]
    labels = [f"layer number {i}" for i in range(7)]
    fig = latency_vs_macs(points, labels=labels)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in fig.axes[0].texts]
    assert [t.get_text() for t in fig.axes[0].texts] == labels
    assert not any(_overlap(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_latency_bars_log_axis_iqr_and_ratio():
    names = ["block", "model"]
    series = {"train-time": [_timing(1.0), _timing(60.0)], "deploy-time": [_timing(0.5), _timing(30.0, 0.3)]}
    ax = latency_bars(names, series, ratio=("train-time", "deploy-time")).axes[0]
    assert ax.get_yscale() == "log"
    from matplotlib.container import BarContainer

    train, deploy = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert [b.get_height() for b in train] == pytest.approx([1.0, 60.0])
    assert [t.get_text() for t in ax.texts] == ["2.00x", "2.00x"]
    assert [bar.get_hatch() for bar in deploy] == [None, "//"]  # the noisy one is hatched
    assert "IQR" in ax.get_title()
    with pytest.raises(ValueError, match="series"):
        latency_bars(names, {"a": [1.0]})


def test_timing_errorbar_draws_quartiles():
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    container = timing_errorbar(ax, [1, 2], [_timing(2.0, 0.1), 5.0], label="train")
    np.testing.assert_allclose(np.asarray(container.lines[0].get_ydata(), dtype=float), [2.0, 5.0])
    (bars,) = container.lines[2]
    np.testing.assert_allclose([s[1][1] - s[0][1] for s in bars.get_segments()], [0.2, 0.0], atol=1e-12)
