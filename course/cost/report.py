"""The counter's result: totals, per-module rows, per-operator totals and tables."""

from __future__ import annotations

import html
from collections import defaultdict
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from course.cost.formulas import Cost

MODEL_LABEL = "(model)"  # how the model's own row (operators in its forward) is shown


class OpRecord(NamedTuple):
    """One operator call, charged to the module that was running."""

    module: str
    op: str
    macs: int = 0
    elementwise: int = 0
    activations: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    counted: bool = True


def human(value: float, unit: str = "") -> str:
    """``4089184256 -> '4.09 G'``: three significant digits with an SI prefix."""
    value = float(value)
    for prefix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}".rstrip() if value != int(value) else f"{int(value)} {unit}".rstrip()


_SUMMED = ("macs", "elementwise", "activations", "bytes_read", "bytes_written")


def _truncate(name: str, depth: Optional[int]) -> str:
    if depth is None or not name:
        return name
    return ".".join(name.split(".")[:depth])


class CostReport:
    """What one forward pass cost, operator by operator and module by module.

    Totals: ``macs``, ``flops`` (= 2·MACs), ``params``, ``elementwise``, ``activations``,
    ``bytes_read``, ``bytes_written``; ``total`` gives them as a :class:`Cost`.
    """

    def __init__(
        self,
        records: Sequence[OpRecord],
        params: Dict[str, int],
        module_types: Dict[str, str],
        module_calls: Dict[str, int],
        module_order: Sequence[str],
        out_shape: Tuple[int, ...] = (),
        notes: Sequence[str] = (),
    ):
        self.records = list(records)
        self._params = dict(params)
        self._types = dict(module_types)
        self._calls = dict(module_calls)
        self._order = list(module_order)
        self.out_shape = tuple(out_shape)
        self.notes = list(notes)  # how the count was made, when it matters (e.g. a real-run fallback)

    # --- totals -----------------------------------------------------------------------------
    @property
    def total(self) -> Cost:
        """All operators together, as a :class:`Cost` (``out_shape`` = the model's output)."""
        sums = {key: sum(getattr(r, key) for r in self.records) for key in _SUMMED}
        return Cost(params=sum(self._params.values()), out_shape=self.out_shape, **sums)

    @property
    def macs(self) -> int:
        return sum(r.macs for r in self.records)

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def params(self) -> int:
        return sum(self._params.values())

    @property
    def elementwise(self) -> int:
        return sum(r.elementwise for r in self.records)

    @property
    def uncounted(self) -> Dict[str, int]:
        """Operators the counter saw but does not know how to charge: name -> calls."""
        calls: Dict[str, int] = defaultdict(int)
        for record in self.records:
            if not record.counted:
                calls[record.op] += 1
        return dict(calls)

    # --- breakdowns ---------------------------------------------------------------------------
    def module_cost(self, name: str) -> Cost:
        """The cost of module ``name`` and everything inside it (``""`` for the whole model)."""
        prefix = name + "."
        inside = [r for r in self.records if not name or r.module == name or r.module.startswith(prefix)]
        params = sum(n for m, n in self._params.items() if not name or m == name or m.startswith(prefix))
        sums = {key: sum(getattr(r, key) for r in inside) for key in _SUMMED}
        return Cost(params=params, **sums)

    def by_operator(self) -> Dict[str, Dict[str, int]]:
        """Per ATen operator, in first-seen order: calls, MACs, element-wise operations,
        activations, bytes read and written, and whether the counter knows how to charge it."""
        table: Dict[str, Dict[str, int]] = {}
        for r in self.records:
            entry = table.get(r.op)
            if entry is None:
                entry = table[r.op] = dict.fromkeys(("calls",) + _SUMMED, 0)
                entry["counted"] = r.counted
            entry["calls"] += 1
            for key in _SUMMED:
                entry[key] += getattr(r, key)
        return table

    def differences(self, other: "CostReport") -> List[str]:
        """Every field where this report and ``other`` differ, one line each; ``[]`` if none.

        Compares the totals (MACs, element-wise operations, parameters, activations, bytes
        read and written, output shape), every per-module row (:meth:`rows`, each module's
        own cost and its calls, in execution order), every per-operator row
        (:meth:`by_operator`), the uncounted operators and the notes. ``assert not
        a.differences(b)`` is how the tests check that a meta pass equals a real one.
        """
        lines: List[str] = []

        def compare(where: str, mine, theirs) -> None:
            if mine != theirs:
                lines.append(f"{where}: {mine!r} != {theirs!r}")

        for key in ("macs", "elementwise", "params", "activations", "bytes_read", "bytes_written", "out_shape"):
            compare(f"total {key}", getattr(self.total, key), getattr(other.total, key))
        for label, mine, theirs in (
            ("module", {r["module"]: r for r in self.rows()}, {r["module"]: r for r in other.rows()}),
            ("operator", self.by_operator(), other.by_operator()),
        ):
            for name in list(mine) + [n for n in theirs if n not in mine]:
                if name not in theirs or name not in mine:
                    lines.append(f"{label} {name!r}: only in {'the first' if name in mine else 'the second'} report")
                    continue
                for key in mine[name]:
                    compare(f"{label} {name!r} {key}", mine[name][key], theirs[name].get(key))
            compare(f"{label} order", list(mine), list(theirs))
        compare("uncounted", self.uncounted, other.uncounted)
        compare("notes", self.notes, other.notes)
        return lines

    def rows(self, depth: Optional[int] = None) -> List[dict]:
        """One dict per module, for tables and plots.

        ``depth=None``: every module that ran an operator or owns parameters, with its *own*
        cost (its children have rows of their own). ``depth=d``: modules grouped to the first
        ``d`` levels of their names (``layer1.0.conv1`` -> ``layer1`` at depth 1), each with
        everything inside. Either way, the rows add up to the totals and ``macs_pct`` sums
        to 100.

        Keys: module, type, calls, macs, flops, macs_pct, params, elementwise, activations,
        bytes_read, bytes_written.
        """
        grouped: Dict[str, Dict[str, int]] = {}

        def entry(name: str) -> Dict[str, int]:
            return grouped.setdefault(name, dict.fromkeys(_SUMMED + ("params",), 0))

        for name in self._order:  # keep execution order
            entry(_truncate(name, depth))
        for r in self.records:
            e = entry(_truncate(r.module, depth))
            for key in _SUMMED:
                e[key] += getattr(r, key)
        for name, n in self._params.items():
            entry(_truncate(name, depth))["params"] += n
        total_macs = self.macs
        rows = []
        for name, e in grouped.items():
            if not any(e.values()):
                continue
            rows.append(
                {
                    "module": name or MODEL_LABEL,
                    "type": self._types.get(name, ""),
                    "calls": self._calls.get(name, 0),
                    "macs": e["macs"],
                    "flops": 2 * e["macs"],
                    "macs_pct": 100.0 * e["macs"] / total_macs if total_macs else 0.0,
                    "params": e["params"],
                    "elementwise": e["elementwise"],
                    "activations": e["activations"],
                    "bytes_read": e["bytes_read"],
                    "bytes_written": e["bytes_written"],
                }
            )
        return rows

    # --- rendering ------------------------------------------------------------------------
    _COLUMNS = (
        ("module", "module"),
        ("type", "type"),
        ("macs", "MACs"),
        ("macs_pct", "% MACs"),
        ("params", "params"),
        ("elementwise", "elem. ops"),
        ("activations", "activations"),
    )

    def _cells(self, row: dict) -> List[str]:
        cells = []
        for key, _ in self._COLUMNS:
            value = row[key]
            if key == "macs_pct":
                cells.append(f"{value:.1f}%")
            elif isinstance(value, int):
                cells.append(human(value))
            else:
                cells.append(str(value))
        return cells

    def _summary_row(self) -> dict:
        total = self.total
        return {
            "module": "total", "type": "", "macs": total.macs, "macs_pct": 100.0 if total.macs else 0.0,
            "params": total.params, "elementwise": total.elementwise, "activations": total.activations,
        }

    def table(self, depth: Optional[int] = 1, top: Optional[int] = None) -> str:
        """A plain-text table of :meth:`rows` (``top``: only the ``top`` rows by MACs)."""
        rows = self.rows(depth)
        if top is not None:
            rows = sorted(rows, key=lambda r: -r["macs"])[:top]
        header = [title for _, title in self._COLUMNS]
        body = [self._cells(r) for r in rows] + [self._cells(self._summary_row())]
        widths = [max(len(line[i]) for line in [header] + body) for i in range(len(header))]

        def fmt(line):
            return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))

        rule = "-" * len(fmt(header))
        lines = [fmt(header), rule] + [fmt(b) for b in body[:-1]] + [rule, fmt(body[-1])]
        lines += self._notes()
        return "\n".join(lines)

    def _notes(self) -> List[str]:
        notes = ["MACs: multiply-accumulates (FLOPs = 2 x MACs). elem. ops: element-wise work, not MACs."]
        notes += [f"Note: {note}" for note in self.notes]
        if self.uncounted:
            listed = ", ".join(f"{op} x{n}" for op, n in sorted(self.uncounted.items()))
            notes.append(f"Not costed (unknown to the counter): {listed}")
        return notes

    def __str__(self) -> str:
        return self.table(depth=1)

    def __repr__(self) -> str:
        return f"<CostReport macs={human(self.macs)} params={human(self.params)} rows={len(self.rows())}>"

    def _repr_html_(self, depth: Optional[int] = 1) -> str:
        head = "".join(f"<th>{html.escape(t)}</th>" for _, t in self._COLUMNS)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in self._cells(r)) + "</tr>"
            for r in self.rows(depth)
        )
        total = "".join(f"<td><b>{html.escape(c)}</b></td>" for c in self._cells(self._summary_row()))
        notes = "".join(f"<p><small>{html.escape(n)}</small></p>" for n in self._notes())
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}<tr>{total}</tr></tbody></table>{notes}"
