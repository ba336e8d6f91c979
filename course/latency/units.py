"""How the course writes a time: one formatter, three significant digits, a readable unit.

>>> format_time(1.234e-3), format_time(0.9996), format_time(52.4e-9), format_time(2.5)
('1.23 ms', '1.00 s', '52.4 ns', '2.50 s')
>>> format_time(0.4e-3, like=12.3e-3)    # a spread, in the unit and decimals of its median
'0.4 ms'
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

__all__ = ["format_time", "time_unit"]

#: Units from large to small: (name, seconds per unit).
UNITS = (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9))
DIGITS = 3


def time_unit(seconds: float) -> Tuple[str, float, int]:
    """``(unit, seconds per unit, decimals)`` that show ``seconds`` with 3 significant digits and
    a value in [1, 1000) (seconds go above 1000 in "s"; below 1 ns in "ns")."""
    magnitude = abs(seconds)
    for name, scale in UNITS:
        if magnitude == 0 or name == "ns":
            break
        value = magnitude / scale
        # Round first: 0.9996 s is "1.00 s", not "1000 ms".
        if float(f"{value:.{DIGITS}g}") >= 1:
            break
    value = magnitude / scale
    if value == 0:
        return name, scale, 0
    rounded = float(f"{value:.{DIGITS}g}")
    decimals = max(0, DIGITS - 1 - math.floor(math.log10(rounded)))
    return name, scale, decimals


def format_time(seconds: Optional[float], like: Optional[float] = None) -> str:
    """A duration in seconds as text: ns, µs, ms or s, three significant digits.

    Args:
        seconds: the duration (``None`` or NaN prints as "—").
        like: write ``seconds`` in the unit and with the decimals of ``like`` (a spread beside its
            median: ``12.3 ms ± 0.4 ms``); a non-zero spread that would round to zero keeps one
            significant digit (``1.23 ms ± 0.004 ms``).
    """
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "—"
    if isinstance(seconds, float) and math.isinf(seconds):
        return "inf s" if seconds > 0 else "-inf s"
    unit, scale, decimals = time_unit(seconds if like is None or like == 0 else like)
    value = seconds / scale
    if like is not None and value != 0 and round(value, decimals) == 0:
        decimals = max(decimals, -math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f} {unit}"
