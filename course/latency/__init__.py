"""Honest timing: ``measure(model, *inputs)`` -> :class:`Timing` (median ± IQR), under a budget.

>>> from course.latency import measure, environment
"""

from course.latency.timing import Timing, environment, measure

__all__ = ["Timing", "environment", "measure"]
