"""The limits put on a submission's code, in one place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Limits:
    """Time (seconds) and memory (MB) limits of one submission.

    Attributes:
        notebook_s: wall-clock limit for running the notebook's cells (counted from the moment
            its kernel is ready, so a slow kernel start on a busy machine does not eat into it).
        cell_s: limit for one cell; then the kernel is interrupted and the next cell runs.
        case_s: limit for one call of a learner's answer, unless the exercise declares its own
            (:attr:`course.exercises.Exercise.case_timeout_s`, for answers that train a model).
        memory_mb: memory limit of the kernel and of each answer process (None: no limit).
    """

    notebook_s: float = 600
    cell_s: float = 120
    case_s: float = 10
    memory_mb: Optional[float] = 4096

    def __post_init__(self):
        for name in ("notebook_s", "cell_s", "case_s"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value!r}")
        if self.memory_mb is not None and not self.memory_mb > 0:
            raise ValueError(f"memory_mb must be positive or None (no limit), got {self.memory_mb!r}")

    def case_timeout(self, exercise) -> float:
        """Seconds one case of ``exercise`` may take: its own limit if it declares one, else ``case_s``."""
        return float(getattr(exercise, "case_timeout_s", None) or self.case_s)
