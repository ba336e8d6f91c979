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
