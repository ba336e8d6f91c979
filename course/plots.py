"""Figures for the course: latency against MACs, and where a model's cost goes.

Every helper returns a :class:`matplotlib.figure.Figure` and never calls ``plt.show``: in a
notebook the returned figure displays itself; in a script, ``fig.savefig("out.png")``. Pass
``ax=`` to draw into an existing Axes (the helper then returns that Axes' figure).
matplotlib is imported on first use, so ``import course.plots`` is free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence, Tuple

if TYPE_CHECKING:  # only for the annotations
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["cost_breakdown", "latency_vs_macs"]

HIGHLIGHT = "tab:red"


def _figure_and_axes(ax: Optional["Axes"], figsize: Tuple[float, float]) -> Tuple["Figure", "Axes"]:
    """``ax`` and its figure, or a new figure with one Axes (no pyplot: no global state)."""
    if ax is not None:
        return ax.figure, ax
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def latency_vs_macs(
    points: Sequence[Tuple[float, float]],
    labels: Optional[Sequence[str]] = None,
    ax: Optional["Axes"] = None,
    highlight: Optional[int] = None,
) -> "Figure":
    """Log-log scatter of measured latency against MACs, one point per model or layer.

    Points on one diagonal run at the same rate (MACs per second); a point above the others'
    trend is slow for its MACs, usually because it is memory-bound or launch-bound.

    Args:
        points: ``(macs, latency_ms)`` pairs: multiply-accumulates (a count) and milliseconds.
        labels: optional text for each point, written next to it.
        ax: draw into this Axes instead of a new figure.
        highlight: index of one point to mark (drawn larger, in red), e.g. the current one.

    Returns:
        The figure. ``ax.collections[0]`` holds all points (its offsets are ``points``);
        a highlighted point is drawn again as ``ax.collections[1]``.
    """
    points = [(float(macs), float(ms)) for macs, ms in points]
    if labels is not None and len(labels) != len(points):
        raise ValueError(f"got {len(labels)} labels for {len(points)} points")
    fig, ax = _figure_and_axes(ax, (5.0, 3.5))
    if points:
        macs, ms = zip(*points)
        ax.scatter(macs, ms, s=24, alpha=0.8)
        _log_axes(ax, macs, ms)
    if highlight is not None:
        x, y = points[highlight]
        ax.scatter([x], [y], s=90, color=HIGHLIGHT, edgecolors="black", zorder=3, label="current")
    for (x, y), text in zip(points, labels or ()):
        ax.annotate(text, (x, y), xytext=(4, 4), textcoords="offset points", fontsize=8)
    ax.set_xlabel("MACs")
    ax.set_ylabel("latency (ms)")
    ax.grid(True, which="both", alpha=0.3)
    return fig


def _log_axes(ax: "Axes", xs: Sequence[float], ys: Sequence[float]) -> None:
    """Log-log axes with plain tick labels (``200M`` MACs, ``0.5`` ms): ticks at 1, 2, 5 x 10^k
    when the data spans under two decades, at powers of ten otherwise."""
    import math

    from matplotlib import ticker

    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis, values, formatter in (
        (ax.xaxis, xs, ticker.EngFormatter(sep="")),
        (ax.yaxis, ys, ticker.StrMethodFormatter("{x:g}")),
    ):
        positive = [v for v in values if v > 0] or [1.0]
        decades = math.log10(max(positive) / min(positive))
        subs = (1.0, 2.0, 5.0) if decades < 2 else (1.0,)
        axis.set_major_locator(ticker.LogLocator(subs=subs, numticks=15))
        axis.set_major_formatter(formatter)
        axis.set_minor_formatter(ticker.NullFormatter())


def cost_breakdown(
    rows: Sequence[dict],
    key: str = "macs",
    top: int = 10,
    ax: Optional["Axes"] = None,
) -> "Figure":
    """Horizontal bars: each module's share (%) of the model's total ``key``, largest on top.

    Args:
        rows: per-module dicts with ``"module"`` and ``key`` (optionally ``"type"``), e.g.
            ``course.cost.count(model, x).rows(depth=1)``. The rows should partition the model
            (as ``rows()`` does at any depth), so the shares sum to 100%.
        key: which quantity to break down: ``"macs"``, ``"params"``, ``"activations"``,
            ``"bytes_read"``, ...
        top: the ``top`` largest modules get a bar each; the rest share one "other" bar.
        ax: draw into this Axes instead of a new figure.

    Returns:
        The figure; the bars' widths are the shares in percent (they sum to 100 when the
        total is not zero). Modules with a zero share get no bar.
    """
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    total = sum(row[key] for row in rows)
    ranked = sorted((row for row in rows if row[key]), key=lambda row: -row[key])
    shown, rest = ranked[:top], ranked[top:]
    names = [f"{row['module']} ({row['type']})" if row.get("type") else str(row["module"]) for row in shown]
    shares = [100.0 * row[key] / total for row in shown]
    if rest:
        names.append(f"other ({len(rest)} modules)")
        shares.append(100.0 * sum(row[key] for row in rest) / total)

    fig, ax = _figure_and_axes(ax, (6.0, 0.9 + 0.32 * max(len(names), 1)))
    bars = ax.barh(range(len(names)), shares, color="tab:blue")
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()  # largest on top
    ax.bar_label(bars, [f"{share:.1f}%" for share in shares], padding=2, fontsize=8)
    ax.set_xlim(0, 1.15 * max(shares, default=100.0))  # room for the labels
    ax.set_xlabel(f"share of {key} (%)")
    if not shares:
        ax.set_title(f"no {key} to break down", fontsize=9)
    return fig
