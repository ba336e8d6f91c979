"""One way to show a table: HTML in Jupyter, aligned text elsewhere, every cell formatted the
course's way.

A notebook prints a table with one call::

    from course.tables import show
    show(rows, ["model", ("macs", "MACs"), ("eager", "eager latency")], title="On this device")

``rows`` are dicts (or dataclass instances, or sequences with ``columns`` as headers). Each
value is formatted by its type unless the column says otherwise:

* a :class:`course.latency.Timing` -> ``"12.3 ms ± 0.4 ms"``, and ``"(noisy)"`` when it is noisy
  (the row is marked, and a note under the table says what noisy means);
* a :class:`course.latency.Speedup` -> ``"3.10x (IQR 2.95-3.24x)"``;
* an int -> ``"1,234,567"``; a float -> three significant digits, never ``1e+03``;
* ``None`` -> ``"—"``; a bool -> ``"yes"`` / ``"no"``; a shape -> ``"(1, 64, 56, 56)"``.

A column's format can be a format spec (``".2f"``, ``",d"``, ``".1%"``), a callable, or one of
the course's names: ``"time"`` (seconds, via :func:`course.latency.format_time`), ``"ms"`` (a
float in milliseconds), ``"x"`` (a ratio: ``3.1x``), ``"%"`` (a fraction: ``12.3%``),
``"pct"`` (already in percent), ``"M"`` / ``"G"`` (millions / billions).

>>> print(table([{"layer": "conv", "macs": 115605504, "ms": 1.5}], [("layer", "layer"), ("macs", "MACs"), ("ms", "latency", "ms")]))
layer         MACs  latency
-----  -----------  -------
conv   115,605,504  1.50 ms
"""

from __future__ import annotations

import dataclasses
import html
import math
from dataclasses import dataclass, field
from typing import Any, Callable, List, Mapping, Optional, Sequence, Tuple, Union

__all__ = ["Column", "Table", "format_value", "show", "table"]

NOISY_NOTE = "noisy: the IQR is over 10% of the median even after re-measuring; rerun on a quieter machine"
_RED = "#c62828"


@dataclass(frozen=True)
class Column:
    """One column: the row key it reads, its header, its format and alignment.

    Attributes:
        key: dict key (or attribute name, or index for sequence rows).
        header: shown above the column (default: ``key``).
        fmt: ``None`` (by the value's type), a format spec, a callable ``value -> str``, or one of
            ``"time" "ms" "x" "%" "pct" "M" "G"`` (see the module docstring).
        align: ``"left"``, ``"right"``, or ``None`` (right for numbers and times, left for text).
    """

    key: Any
    header: Optional[str] = None
    fmt: Union[None, str, Callable[[Any], str]] = None
    align: Optional[str] = None

    @property
    def title(self) -> str:
        return str(self.key) if self.header is None else self.header


ColumnSpec = Union[str, int, Tuple, Column]


def _number(value: float) -> str:
    """Three significant digits without exponents for everyday magnitudes."""
    if value == 0 or math.isnan(value) or math.isinf(value):
        return "0" if value == 0 else str(value)
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 1e-3:
        decimals = max(0, 2 - math.floor(math.log10(magnitude)))
        return f"{value:.{decimals}f}"
    return f"{value:.2e}"


def format_value(value: Any, fmt: Union[None, str, Callable[[Any], str]] = None) -> str:
    """One cell's text (see the module docstring for the rules)."""
    from course.latency import Speedup, Timing, format_time

    if callable(fmt):
        return fmt(value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, Timing):
        if fmt == "median":
            return format_time(value.median_s) + (" (noisy)" if value.noisy else "")
        return value.short()
    if isinstance(value, Speedup):
        return str(value)
    if fmt == "time":
        return format_time(value)
    if fmt == "ms":
        return format_time(value / 1e3)
    if fmt == "x":
        return f"{value:.2f}x" if abs(value) < 10 else f"{value:.1f}x"
    if fmt == "%":
        return f"{100 * value:.1f}%"
    if fmt == "pct":
        return f"{value:.1f}%"
    if fmt == "M":
        return f"{value / 1e6:,.2f} M"
    if fmt == "G":
        return f"{value / 1e9:,.3f} G"
    if fmt:
        return format(value, fmt)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, (tuple, list)) or type(value).__name__ == "Size":
        return str(tuple(value))
    return str(value)


def _noisy(value: Any) -> bool:
    """Whether ``value`` is a noisy :class:`~course.latency.Timing` or :class:`~course.latency.Speedup`."""
    return (hasattr(value, "median_s") or type(value).__name__ == "Speedup") and bool(getattr(value, "noisy", False))


def _get(row: Any, key: Any) -> Any:
    if isinstance(row, Mapping):
        return row.get(key)
    if isinstance(row, (list, tuple)):
        return row[key] if isinstance(key, int) and key < len(row) else None
    return getattr(row, key, None)


def _as_column(spec: ColumnSpec, index: int, sequence_rows: bool) -> Column:
    if isinstance(spec, Column):
        return spec
    if isinstance(spec, tuple):
        if not 1 <= len(spec) <= 4:
            raise ValueError(f"a column is 'key', (key, header), (key, header, fmt) or (key, header, fmt, align); got {spec!r}")
        return Column(*spec)
    if sequence_rows and isinstance(spec, str):
        return Column(index, spec)  # rows are sequences: the spec is the header of column ``index``
    return Column(spec)


@dataclass(repr=False)
class Table:
    """A formatted table: ``str(table)`` is aligned text, ``table._repr_html_()`` its HTML.

    Attributes:
        headers: the column titles; ``cells``: the formatted text, one list per row;
        right: right-alignment per column; ``noisy_rows``: indices of rows with a noisy timing;
        title: shown above; ``notes``: lines shown below (the noisy note is added when needed).
    """

    headers: List[str]
    cells: List[List[str]]
    right: List[bool]
    noisy_rows: List[int] = field(default_factory=list)
    title: str = ""
    notes: List[str] = field(default_factory=list)

    def _all_notes(self) -> List[str]:
        return list(self.notes) + ([NOISY_NOTE] if self.noisy_rows else [])

    def __str__(self) -> str:
        widths = [max([len(h)] + [len(row[i]) for row in self.cells]) for i, h in enumerate(self.headers)]

        def line(values):
            parts = [v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, self.right)]
            return "  ".join(parts).rstrip()

        lines = ([self.title] if self.title else []) + [line(self.headers), "  ".join("-" * w for w in widths)]
        lines += [line(row) for row in self.cells]
        return "\n".join(lines + self._all_notes())

    __repr__ = __str__  # Jupyter's text/plain form (what nbval compares)

    def markdown(self) -> str:
        """The table in Markdown (for benchmark reports and issue notes)."""
        lines = ["| " + " | ".join(self.headers) + " |",
                 "|" + "|".join("---:" if r else "---" for r in self.right) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in self.cells]
        notes = [f"\n{n}" for n in self._all_notes()]
        return (f"**{self.title}**\n\n" if self.title else "") + "\n".join(lines) + "".join(notes)

    def _repr_html_(self) -> str:
        cell = "padding:1px 8px"
        head = "".join(f'<th style="{cell};text-align:{"right" if r else "left"}">{html.escape(h)}</th>'
                       for h, r in zip(self.headers, self.right))
        body = []
        for i, row in enumerate(self.cells):
            style = f' style="color:{_RED}" title="noisy: rerun on a quieter machine"' if i in self.noisy_rows else ""
            tds = "".join(f'<td style="{cell};text-align:{"right" if r else "left"}">{html.escape(v)}</td>'
                          for v, r in zip(row, self.right))
            body.append(f"<tr{style}>{tds}</tr>")
        title = f"<p><b>{html.escape(self.title)}</b></p>" if self.title else ""
        notes = "".join(f'<p style="font-size:90%{";color:" + _RED if n == NOISY_NOTE else ""}">{html.escape(n)}</p>'
                        for n in self._all_notes())
        return f"{title}<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{notes}"


def table(
    rows: Sequence[Any],
    columns: Optional[Sequence[ColumnSpec]] = None,
    title: str = "",
    notes: Sequence[str] = (),
) -> Table:
    """Build a :class:`Table` from ``rows`` (dicts, dataclass instances or sequences).

    Args:
        rows: one item per row.
        columns: what to show, in order; each ``"key"``, ``(key, header)``,
            ``(key, header, fmt)``, ``(key, header, fmt, align)`` or a :class:`Column`. With
            sequence rows, plain strings are the headers of columns 0, 1, ...; ``None``: every
            key of the first row (dicts, dataclasses).
        title: a line above the table; ``notes``: lines below it (e.g. the environment).

    Raises:
        ValueError: for a malformed column, or sequence rows without ``columns``.
    """
    rows = list(rows)
    sequence_rows = bool(rows) and isinstance(rows[0], (list, tuple))
    if columns is None:
        if not rows:
            columns = []
        elif isinstance(rows[0], Mapping):
            columns = list(rows[0])
        elif dataclasses.is_dataclass(rows[0]):
            columns = [f.name for f in dataclasses.fields(rows[0])]
        else:
            raise ValueError("sequence rows need columns (their headers)")
    cols = [_as_column(spec, i, sequence_rows) for i, spec in enumerate(columns)]
    cells, noisy_rows = [], []
    numeric = [True] * len(cols)
    for index, row in enumerate(rows):
        values = [_get(row, c.key) for c in cols]
        cells.append([format_value(v, c.fmt) for v, c in zip(values, cols)])
        for i, v in enumerate(values):
            if v is not None and (isinstance(v, str) or isinstance(v, bool)
                                  or not (isinstance(v, (int, float)) or hasattr(v, "median_s")
                                          or type(v).__name__ == "Speedup")):
                numeric[i] = False
        if any(_noisy(v) for v in values):
            noisy_rows.append(index)
    right = [c.align == "right" if c.align else numeric[i] for i, c in enumerate(cols)]
    return Table([c.title for c in cols], cells, right, noisy_rows, title, list(notes))


def show(
    rows: Sequence[Any],
    columns: Optional[Sequence[ColumnSpec]] = None,
    title: str = "",
    notes: Sequence[str] = (),
) -> None:
    """Show a table (see :func:`table` for the arguments): rendered HTML in Jupyter (with the
    aligned text as its plain-text form, which nbval compares), printed text elsewhere."""
    t = table(rows, columns, title, notes)
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:  # pragma: no cover - IPython is a dependency
        shell = None
    if shell is not None and getattr(shell, "kernel", None) is not None:
        from IPython.display import display

        display(t)
    else:
        print(t)
