"""One generic explorer: controls -> rebuild -> cost (formula vs counter) -> latency -> plot.

Each chapter configures :class:`Explorer` with its own controls and builder, in its chapter
module (``course.chapters.ch01.conv_explorer`` is Chapter 1's). In a notebook, the explorer
displays itself::

    explorer = ch01.conv_explorer()
    explorer            # sliders and dropdowns, cost table, latency, plot

and it can be driven from code (tests, scripts), with no browser::

    result = explorer.set(H=112, groups=4)
    result.formula.macs, result.counted.macs, result.timing

Latencies follow the course's measurement policy (:mod:`course.latency.policy`: threads, at
least five samples, one re-measurement when noisy); a result that stays noisy is marked in the
latency line and drawn hollow in the plot. ipywidgets and matplotlib are imported when the
first explorer is built.
"""

from __future__ import annotations

import html
import io
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import torch
from torch import nn

from course import latency, plots
from course.cost import Cost, CostReport, conv2d, count
from course.latency import Timing, format_time
from course.tables import format_value

__all__ = ["Explorer", "ExplorerResult"]

Config = Dict[str, Any]
Build = Callable[[Config], Tuple[nn.Module, tuple]]

_RED = "#c62828"
_MISMATCH_BG = "#ffd7d7"


@dataclass(frozen=True)
class ExplorerResult:
    """What one update of an :class:`Explorer` produced.

    Attributes:
        config: the control values, ``{name: value}``.
        formula: the closed-form cost, or ``None`` (no formula, or the configuration is invalid).
        counted: the counter's report on the built module, or ``None`` on an error.
        timing: the measured latency, or ``None`` (cost-only explorer, or an error).
        error: the message shown for an invalid configuration, else ``None``.
        update_s: wall-clock seconds the whole update took (rebuild, count, measure, draw).
    """

    config: Config
    formula: Optional[Cost]
    counted: Optional[CostReport]
    timing: Optional[Timing]
    error: Optional[str]
    update_s: float


def _control(name: str, spec: Any):
    """An ipywidgets control for one spec (see :class:`Explorer`)."""
    import ipywidgets as widgets

    if isinstance(spec, tuple) and len(spec) == 4 and all(isinstance(v, int) for v in spec):
        low, high, step, default = spec
        return widgets.IntSlider(
            value=default, min=low, max=high, step=step, description=name, continuous_update=False
        )
    if isinstance(spec, list) and spec:
        spec = {"options": spec, "default": spec[0]}
    if isinstance(spec, dict) and spec.get("options"):
        options = list(spec["options"])
        default = spec.get("default", options[0])
        if default not in options:
            raise ValueError(f"control {name!r}: default {default!r} is not one of {options}")
        return widgets.Dropdown(options=options, value=default, description=name)
    raise ValueError(
        f"control {name!r}: expected (min, max, step, default) ints, a non-empty list of options, "
        f"or {{'options': [...], 'default': value}}; got {spec!r}"
    )


#: The rows of the cost table: (label, Cost field).
QUANTITIES = (
    ("MACs", "macs"),
    ("FLOPs (2·MACs)", "flops"),
    ("params", "params"),
    ("activations", "activations"),
    ("bytes read", "bytes_read"),
    ("bytes written", "bytes_written"),
    ("output shape", "out_shape"),
)


class Explorer:
    """Controls -> ``build(config)`` -> cost table, measured latency and a latency-vs-MACs plot.

    On every change of a control the explorer rebuilds the module, compares the closed-form
    ``formula(config)`` with what :func:`course.cost.count` counts on the real module (a
    mismatch is highlighted in red), measures the latency with
    :func:`course.latency.measure` by the course's policy (once per configuration: revisits
    come from a cache, except a noisy result, which a revisit measures again, keeping the
    steadier), and adds the configuration to the plot (IQR error bars; a noisy point hollow). A configuration that ``formula`` or ``build`` rejects
    with a ``ValueError`` (or that fails to run, ``RuntimeError``) shows the message in red.

    Args:
        controls: ``{name: spec}`` in display order. A spec is
            ``(min, max, step, default)`` (ints) for a slider (it updates on release);
            ``[a, b, ...]`` for a dropdown starting at ``a``;
            ``{"options": [a, b, ...], "default": b}`` for a dropdown starting at ``b``.
        build: ``build(config) -> (module, inputs)`` with ``inputs`` a tuple, e.g.
            ``(torch.randn(1, N, H, W),)``. Seed the inputs: outputs should be reproducible.
        formula: optional ``formula(config) -> course.cost.Cost``, the closed form to check.
        measure: ``False`` for a cost-only explorer (no timing, no plot; fast).
        budget_s: seconds each new configuration's latency measurement may take.
        title: shown above the controls.
        compare: the :class:`~course.cost.Cost` fields the formula defines, which the table
            checks against the counter (default: all of them); e.g. ``("macs", "params")`` for
            a closed form that does not model bytes. Other rows show the counter alone.
        threads: CPU threads for the measurements (``None``: the course policy's, 1).

    Attributes:
        widget: the ipywidgets container (what the notebook displays).
        controls: ``{name: ipywidgets control}``.
        result: the latest :class:`ExplorerResult`.
        timings: the cache, ``{config key: (MACs, Timing)}`` in visiting order.
        figure: the matplotlib figure of the plot (``None`` until the first measurement).
    """

    def __init__(
        self,
        controls: Dict[str, Any],
        build: Build,
        formula: Optional[Callable[[Config], Cost]] = None,
        measure: bool = True,
        budget_s: float = 0.3,
        title: str = "Explorer",
        compare: Sequence[str] = tuple(attr for _, attr in QUANTITIES),
        threads: Optional[int] = None,
    ):
        import ipywidgets as widgets

        known = [attr for _, attr in QUANTITIES]
        unknown = [attr for attr in compare if attr not in known]
        if unknown:
            raise ValueError(f"compare: unknown field(s) {unknown}; the table's fields are {known}")
        self.build = build
        self.formula = formula
        self.compare = tuple(compare)
        self.measures_latency = measure
        self.budget_s = budget_s
        self.threads = threads
        self.controls = {name: _control(name, spec) for name, spec in controls.items()}
        self.timings: Dict[tuple, Tuple[int, Timing]] = {}
        self.figure = None
        self.result: Optional[ExplorerResult] = None
        self._holding = False  # True while set() assigns several values: one update at the end

        self._table = widgets.HTML()
        self._latency = widgets.HTML()
        # Hidden until the first plot: an Image without a value shows a broken-image icon.
        self._plot = widgets.Image(format="png", layout=widgets.Layout(max_width="520px", display="none"))
        outputs = [widgets.VBox([self._table, self._latency])]
        if measure:
            outputs.append(self._plot)
        self.widget = widgets.VBox(
            [
                widgets.HTML(f"<h4>{html.escape(title)}</h4>"),
                widgets.HBox(list(self.controls.values()), layout=widgets.Layout(flex_flow="row wrap")),
                widgets.HBox(outputs),
            ]
        )
        for control in self.controls.values():
            control.observe(self._on_change, names="value")
        self._update()

    # --- driving it -------------------------------------------------------------------------
    @property
    def config(self) -> Config:
        """The current control values, ``{name: value}``."""
        return {name: control.value for name, control in self.controls.items()}

    @property
    def matches(self) -> Optional[bool]:
        """Whether the formula agrees with the counter on every compared field (None: nothing to compare)."""
        r = self.result
        if r is None or r.formula is None or r.counted is None:
            return None
        total = r.counted.total
        return all(getattr(r.formula, attr) == getattr(total, attr) for attr in self.compare)

    def set(self, **values: Any) -> ExplorerResult:
        """Set controls from code (as if moved by hand), update once, return :attr:`result`.

        Raises:
            ValueError: for an unknown control, a value outside a slider's range, or a value
                that is not one of a dropdown's options.
        """
        for name, value in values.items():
            self._check(name, value)
        changed = False
        self._holding = True
        try:
            for name, value in values.items():
                changed |= self.controls[name].value != value
                self.controls[name].value = value
        finally:
            self._holding = False
        if changed:
            self._update()
        return self.result

    def _check(self, name: str, value: Any) -> None:
        if name not in self.controls:
            raise ValueError(f"unknown control {name!r}; the controls are {list(self.controls)}")
        control = self.controls[name]
        if hasattr(control, "options"):
            if value not in control.options:
                raise ValueError(f"{name}={value!r} is not one of {list(control.options)}")
        elif not (control.min <= value <= control.max):
            raise ValueError(f"{name}={value!r} is outside the slider's range [{control.min}, {control.max}]")

    def _on_change(self, change: dict) -> None:
        if not self._holding:
            self._update()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    # --- one update -------------------------------------------------------------------------
    def _update(self) -> None:
        """Rebuild, count, measure (or reuse the cached timing) and redraw; sets :attr:`result`."""
        start = time.perf_counter()
        config = self.config
        formula = counted = timing = error = None
        try:
            if self.formula is not None:
                formula = self.formula(config)  # rejects invalid configurations before building
            module, inputs = self.build(config)
            counted = count(module, *inputs)
            if self.measures_latency:
                key = tuple(sorted(config.items()))
                cached = self.timings.get(key)
                if cached is None or cached[1].noisy:
                    fresh = latency.measure(module, *inputs, threads=self.threads, budget_s=self.budget_s)
                    if cached is not None and cached[1].relative_spread <= fresh.relative_spread:
                        fresh = cached[1]
                    self.timings[key] = (counted.macs, fresh)
                timing = self.timings[key][1]
        except (ValueError, RuntimeError) as exc:
            formula = counted = timing = None
            error = str(exc)

        self._table.value = self._table_html(formula, counted, error, self.compare)
        self._latency.value = self._latency_html(counted, timing)
        if timing is not None:
            self._draw(current=list(self.timings).index(key))
        self.result = ExplorerResult(config, formula, counted, timing, error, time.perf_counter() - start)

    @staticmethod
    def _table_html(formula: Optional[Cost], counted: Optional[CostReport], error: Optional[str],
                    compare: Sequence[str]) -> str:
        if error is not None:
            return f'<p style="color:{_RED}"><b>Invalid configuration:</b> {html.escape(error)}</p>'
        total = counted.total
        cell = 'style="padding:1px 8px;text-align:right"'
        head = f"<th {cell}></th>" + (f"<th {cell}>formula</th>" if formula is not None else "") + f"<th {cell}>counted</th>"
        lines = []
        for label, attr in QUANTITIES:
            counted_value = getattr(total, attr)
            cells = [label]
            style = ""
            if formula is not None and attr not in compare:
                cells.append("")
            elif formula is not None:
                formula_value = getattr(formula, attr)
                cells.append(_fmt(formula_value))
                if formula_value != counted_value:
                    style = f' style="background:{_MISMATCH_BG};color:{_RED}" title="formula and counter disagree"'
                    cells[0] = f"≠ {label}"
            cells.append(_fmt(counted_value))
            lines.append(f"<tr{style}>" + "".join(f"<td {cell}>{html.escape(c)}</td>" for c in cells) + "</tr>")
        return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"

    @staticmethod
    def _latency_html(counted: Optional[CostReport], timing: Optional[Timing]) -> str:
        if timing is None:
            return ""
        rate = counted.macs / timing.median_s / 1e9
        spread = f"{format_time(timing.median_s)} ± {format_time(timing.iqr_s, like=timing.median_s)}"
        noisy = ""
        if timing.noisy:
            noisy = (f'<br><span style="color:{_RED}"><b>noisy</b>: the IQR is {100 * timing.relative_spread:.0f}% '
                     "of the median even after re-measuring; close other programs, then come back to this "
                     "setting to measure it again</span>")
        return (
            f"<p><b>latency</b> {html.escape(spread)} "
            f"(IQR, {_plural(timing.samples, 'sample')}, {html.escape(timing.device)}, "
            f"{_plural(timing.threads, 'thread')})<br>"
            f"<b>achieved</b> {format_value(rate)} GMAC/s{noisy}</p>"
        )

    def _draw(self, current: int) -> None:
        """Redraw MACs vs latency for every configuration visited, ``current`` highlighted."""
        if self.figure is None:
            from matplotlib.figure import Figure

            self.figure = Figure(figsize=(5.2, 3.4), dpi=90, layout="constrained")
            self.figure.add_subplot()
        ax = self.figure.axes[0]
        ax.clear()
        points = [(macs, timing) for macs, timing in self.timings.values()]
        plots.latency_vs_macs(points, ax=ax, highlight=current)
        ax.set_title("every configuration visited (red: current)", fontsize=9)
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png")
        self._plot.value = buffer.getvalue()
        self._plot.layout.display = None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("s" if n != 1 else "")


def _fmt(value: Any) -> str:
    """Exact integers with thousands separators; shapes as ``(1, 64, 56, 56)``."""
    if isinstance(value, int):
        return f"{value:,}"
    return str(tuple(value)) if isinstance(value, (tuple, list, torch.Size)) else str(value)
