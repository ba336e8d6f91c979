"""Figures for the course: latency against MACs, timings with their spread, speed-ups, and where
a model's cost goes.

Every helper returns a :class:`matplotlib.figure.Figure` and never calls ``plt.show``: in a
notebook the returned figure displays itself; in a script, ``fig.savefig("out.png")``. Pass
``ax=`` to draw into an existing Axes (the helper then returns that Axes' figure).
matplotlib (and adjustText, which keeps labels from overlapping) are imported on first use, so
``import course.plots`` is free.

Measured latencies may be given as plain milliseconds or as :class:`course.latency.Timing`
values; with timings, the figures draw the IQR as error bars and a noisy result as a hollow
marker (the legend says so).
"""

from __future__ import annotations

import math
import statistics
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

if TYPE_CHECKING:  # only for the annotations
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "KIND_COLORS",
    "cost_breakdown",
    "label_points",
    "latency_bars",
    "latency_vs_macs",
    "plain_log_axis",
    "timing_errorbar",
]

HIGHLIGHT = "tab:red"

#: One colour per layer kind (the operator types of :func:`course.latency.op_type`); other
#: kinds get the next colour of matplotlib's cycle.
KIND_COLORS = {
    "1x1 conv": "tab:blue",
    "depthwise conv": "tab:orange",
    "dense conv (KxK)": "tab:green",
    "linear": "tab:purple",
    "attention": "tab:pink",
    "norm": "tab:brown",
    "activation": "tab:red",
    "pooling": "tab:olive",
    "other": "tab:gray",
}
_CYCLE = ("tab:cyan", "tab:olive", "tab:purple", "tab:brown", "tab:pink", "tab:gray", "tab:green", "tab:orange")


def _figure_and_axes(ax: Optional["Axes"], figsize: Tuple[float, float]) -> Tuple["Figure", "Axes"]:
    """``ax`` and its figure, or a new figure with one Axes (no pyplot: no global state)."""
    if ax is not None:
        return ax.figure, ax
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)  # a renderer, for label placement and savefig
    return fig, fig.add_subplot()


def _upper(value: Any) -> float:
    """The top of a bar's error bar: the 75th percentile of a Timing, else the value (ms)."""
    median, quartiles, _ = _ms(value)
    return quartiles[1] if quartiles else median


def _ms(value: Any) -> Tuple[float, Optional[Tuple[float, float]], bool]:
    """``(median ms, (q1 ms, q3 ms) or None, noisy)`` of a Timing or a number of milliseconds."""
    if hasattr(value, "median_s"):
        return value.median_s * 1e3, (value.q1_s * 1e3, value.q3_s * 1e3), bool(value.noisy)
    return float(value), None, False


def kind_colors(kinds: Sequence[str]) -> Dict[str, str]:
    """A colour for each distinct kind: :data:`KIND_COLORS` where it has one, else the next of a cycle."""
    colors: Dict[str, str] = {}
    spare = iter(_CYCLE * 4)
    for kind in kinds:
        if kind not in colors:
            colors[kind] = KIND_COLORS.get(kind) or next(spare)
    return colors


def label_points(ax: "Axes", xs: Sequence[float], ys: Sequence[float], labels: Sequence[str],
                 fontsize: float = 8) -> list:
    """Write ``labels`` next to the points and move them apart so that none overlaps another
    (adjustText, a few hundred iterations at most). Returns the text objects (``ax.texts``)."""
    texts = [ax.text(x, y, str(text), fontsize=fontsize) for x, y, text in zip(xs, ys, labels)]
    if len(texts) > 1:
        from adjustText import adjust_text

        adjust_text(texts, x=list(xs), y=list(ys), ax=ax, iter_lim=500, ensure_inside_axes=True)
    return texts


def plain_log_axis(axis, formatter: str = "g") -> None:
    """Log axis with plain tick labels (``0.5``, ``2``, ``200M``): ticks at 1, 2, 5 x 10^k when
    the data span under two decades, at powers of ten otherwise (``formatter="eng"`` for
    ``200M``-style labels)."""
    from matplotlib import ticker

    low, high = axis.get_view_interval()
    decades = math.log10(high / low) if low > 0 and high > 0 else 3
    subs = (1.0, 2.0, 5.0) if decades < 2 else (1.0,)
    axis.set_major_locator(ticker.LogLocator(subs=subs, numticks=15))
    axis.set_major_formatter(ticker.EngFormatter(sep="") if formatter == "eng" else ticker.StrMethodFormatter("{x:g}"))
    axis.set_minor_formatter(ticker.NullFormatter())


def timing_errorbar(ax: "Axes", xs: Sequence[float], latencies: Sequence[Any], color=None, label=None,
                    marker: str = "o", linestyle: str = "-", scale: float = 1.0):
    """Medians (ms) against ``xs`` joined by a line, with IQR error bars where the latency is a
    :class:`~course.latency.Timing`, and hollow markers for noisy ones.

    ``scale`` multiplies the plotted values (e.g. ``1 / batch`` for ms per image). Returns the
    ``ErrorbarContainer``; ``ax.lines[-?]`` holds the medians.
    """
    values = [_ms(v) for v in latencies]
    ys = [m * scale for m, _, _ in values]
    low = [(m - (q[0] if q else m)) * scale for m, q, _ in values]
    high = [((q[1] if q else m) - m) * scale for m, q, _ in values]
    container = ax.errorbar(xs, ys, yerr=[low, high], color=color, label=label, marker=marker,
                            linestyle=linestyle, capsize=3, markersize=5)
    noisy = [(x, y) for x, y, (_, _, n) in zip(xs, ys, values) if n]
    if noisy:
        ax.scatter(*zip(*noisy), s=60, facecolors="white", edgecolors=container.lines[0].get_color(), zorder=3,
                   label=f"{label} (noisy)" if label else "noisy")
    return container


def latency_vs_macs(
    points: Sequence[Tuple[float, Any]],
    labels: Optional[Sequence[str]] = None,
    ax: Optional["Axes"] = None,
    highlight: Optional[int] = None,
    kinds: Optional[Sequence[str]] = None,
    reference: bool = True,
) -> "Figure":
    """Log-log scatter of measured latency against MACs, one point per model or layer.

    Points on one line of slope 1 run at the same rate (MACs per second). The dashed reference
    line has slope 1 through the median rate of the points: a point above it is slower than
    its MACs predict, usually because it is memory-bound or launch-bound.

    Args:
        points: ``(macs, latency)`` pairs: multiply-accumulates and milliseconds, or a
            :class:`~course.latency.Timing` (then its IQR is drawn as an error bar, and a noisy
            one as a hollow marker).
        labels: optional text for each point, placed so that no two labels overlap.
        ax: draw into this Axes instead of a new figure.
        highlight: index of one point to mark (drawn larger, in red), e.g. the current one.
        kinds: optional layer kind of each point ("1x1 conv", "depthwise conv", ...): one colour
            per kind (:data:`KIND_COLORS`) and a legend.
        reference: draw the slope-1 line through the median rate.

    Returns:
        The figure. ``ax.collections[0]`` holds all points (its offsets are the
        ``(macs, median ms)`` pairs); a highlighted point is drawn again as ``ax.collections[1]``.
    """
    from matplotlib.lines import Line2D

    from course.tables import format_value

    values = [(float(macs), *_ms(latency)) for macs, latency in points]
    if labels is not None and len(labels) != len(values):
        raise ValueError(f"got {len(labels)} labels for {len(values)} points")
    if kinds is not None and len(kinds) != len(values):
        raise ValueError(f"got {len(kinds)} kinds for {len(values)} points")
    fig, ax = _figure_and_axes(ax, (5.6, 3.8))
    handles = []
    if values:
        macs = [v[0] for v in values]
        ms = [v[1] for v in values]
        palette = kind_colors(kinds) if kinds is not None else {}
        colors = [palette[k] for k in kinds] if kinds is not None else ["tab:blue"] * len(values)
        faces = ["white" if v[3] else c for v, c in zip(values, colors)]
        ax.scatter(macs, ms, s=30, facecolors=faces, edgecolors=colors, linewidths=1.2, alpha=0.9, zorder=2)
        ax.set_xscale("log")
        ax.set_yscale("log")
        if highlight is not None:
            ax.scatter([macs[highlight]], [ms[highlight]], s=90, color=HIGHLIGHT, edgecolors="black", zorder=3)
            handles.append(Line2D([], [], marker="o", ls="", color=HIGHLIGHT, mec="black", label="current"))
        spreads = [(i, v[2]) for i, v in enumerate(values) if v[2] is not None]
        if spreads:
            ax.errorbar([macs[i] for i, _ in spreads], [ms[i] for i, _ in spreads],
                        yerr=[[ms[i] - q[0] for i, q in spreads], [q[1] - ms[i] for i, q in spreads]],
                        fmt="none", ecolor="gray", elinewidth=0.8, capsize=2, zorder=1)
        if reference and len(values) > 1 and all(m > 0 for m in macs):
            rate = statistics.median(t / m for m, t in zip(macs, ms))  # ms per MAC
            lo, hi = min(macs) / 1.5, max(macs) * 1.5
            ax.plot([lo, hi], [rate * lo, rate * hi], ls="--", color="gray", lw=1, zorder=0)
            handles.append(Line2D([], [], ls="--", color="gray",
                                  label=f"time ∝ MACs (slope 1, median rate {format_value(1e-6 / rate)} GMAC/s)"))
        for kind, color in palette.items():
            handles.append(Line2D([], [], marker="o", ls="", color=color, label=kind))
        if any(v[3] for v in values):
            handles.append(Line2D([], [], marker="o", ls="", mfc="white", mec="black", label="noisy (rerun)"))
        if len(set(macs)) == 1:  # one point: give the log axes a decade to show
            ax.set_xlim(macs[0] / 3, macs[0] * 3)
        if len(set(ms)) == 1:
            ax.set_ylim(ms[0] / 3, ms[0] * 3)
        _plain_log_axes(ax)
        if labels is not None:
            label_points(ax, macs, ms, labels)
    ax.set_xlabel("MACs")
    ax.set_ylabel("latency (ms)")
    ax.grid(True, which="both", alpha=0.3)
    if handles:
        ax.legend(handles=handles, fontsize=7, loc="upper left")
    return fig


def _plain_log_axes(ax: "Axes") -> None:
    plain_log_axis(ax.xaxis, formatter="eng")
    plain_log_axis(ax.yaxis)


def latency_bars(
    names: Sequence[str],
    series: Dict[str, Sequence[Any]],
    ax: Optional["Axes"] = None,
    log: bool = True,
    ratio: Optional[Tuple[str, str]] = None,
    ylabel: str = "latency (ms)",
) -> "Figure":
    """Grouped bars of measured latency, one group per name, one bar per series, with IQR error
    bars (for :class:`~course.latency.Timing` values) on a log axis by default, so a 1 ms block
    and a 60 ms model share one axis.

    Args:
        names: the groups (x axis).
        series: ``{series label: latencies}``, one latency (ms or Timing) per name.
        ratio: ``(a, b)``: write above each group how many times faster ``b`` is than ``a``
            (:func:`course.latency.speedup` when both are timings: with its IQR interval).
        log: log latency axis.

    Returns:
        The figure; ``ax.containers`` holds one ``BarContainer`` per series (heights = medians).
    """
    fig, ax = _figure_and_axes(ax, (max(5.0, 1.1 * len(names) + 2), 3.4))
    width = 0.8 / max(1, len(series))
    xs = range(len(names))
    noisy_any = False
    for j, (label, latencies) in enumerate(series.items()):
        if len(latencies) != len(names):
            raise ValueError(f"series {label!r} has {len(latencies)} values for {len(names)} names")
        values = [_ms(v) for v in latencies]
        offset = (j - (len(series) - 1) / 2) * width
        heights = [m for m, _, _ in values]
        low = [m - (q[0] if q else m) for m, q, _ in values]
        high = [(q[1] if q else m) - m for m, q, _ in values]
        bars = ax.bar([x + offset for x in xs], heights, width, label=label, yerr=[low, high], capsize=3)
        for bar, (_, _, noisy) in zip(bars, values):
            if noisy:
                noisy_any = True
                bar.set_hatch("//")
    if ratio is not None:
        a, b = ratio
        for x, ta, tb in zip(xs, series[a], series[b]):
            if hasattr(ta, "median_s") and hasattr(tb, "median_s"):
                from course.latency import speedup

                text = f"{speedup(tb, ta).value:.2f}x"
            else:
                text = f"{float(ta) / float(tb):.2f}x"
            top = max(_upper(ta), _upper(tb))
            ax.annotate(text, (x, top), xytext=(0, 3), textcoords="offset points", ha="center", fontsize=8)
    if log:
        ax.set_yscale("log")
        plain_log_axis(ax.yaxis)
    ax.set_xticks(list(xs), names, fontsize=8)
    ax.set_ylabel(ylabel)
    title = "bars: median; error bars: IQR" + ("; hatched: noisy (rerun)" if noisy_any else "")
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=8)
    return fig


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
