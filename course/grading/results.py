"""What grading produces: the grade of each exercise, of each submission, and what went wrong.

Cells are named as JupyterLab names them, "Cell 36" for the 36th cell of the notebook
(markdown cells included, counted from 1): :func:`cell_label` writes it, and
:attr:`Problem.cell` holds that number.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import List, Optional


def cell_label(index: int) -> str:
    """How a learner finds the cell at position ``index`` (0-based) of a notebook: ``"Cell 36"``."""
    return f"Cell {index + 1}"


@dataclass
class Problem:
    """Something that went wrong while running a submission.

    Attributes:
        kind: for a cell that raised, the exception's name (``"ZeroDivisionError"``) or the
            grader's name for what happened (``"DeadKernelError"``, ``"MemoryLimit"``,
            ``"UnreadableNotebook"``, ``"NotANotebook"``, ``"WrongKernel"``, ``"GraderError"``);
            for a time limit, which one: ``"cell"``, ``"notebook"`` or ``"probe"``.
        message: one line for the report.
        cell: JupyterLab's number of the cell (1-based, in the submitted notebook), if any.
        exercise: the exercise id in the cell's metadata, if any.
        part: the cell's part (``"solution"``, ``"check"``) or ``"probe"``, if any.
        seconds: the limit that was hit (time limits only).
    """

    kind: str
    message: str
    cell: Optional[int] = None
    exercise: Optional[str] = None
    part: Optional[str] = None
    seconds: Optional[float] = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Problem":
        return cls(**{f.name: data.get(f.name) for f in fields(cls)})

    @property
    def where(self) -> str:
        """``"Cell 4"`` or ``"notebook"``."""
        return f"Cell {self.cell}" if self.cell is not None else "notebook"


@dataclass
class ExerciseResult:
    """The grade of one exercise in one submission."""

    id: str
    title: str
    points: int
    max_points: int
    message: str

    @property
    def passed(self) -> bool:
        return self.points == self.max_points and self.max_points > 0

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}


@dataclass
class SubmissionResult:
    """The grade of one submission, with what went wrong while running it.

    ``errors``: cells that raised (and files that could not be graded). ``timeouts``: cells,
    the value probe or the whole notebook cut by a time limit. ``notes``: anything else worth
    telling the grader (e.g. which cells stopped at an exercise's unattempted stub).
    """

    submission: str
    name: str
    total: int = 0
    max_points: int = 0
    exercises: List[ExerciseResult] = field(default_factory=list)
    errors: List[Problem] = field(default_factory=list)
    timeouts: List[Problem] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    kernel_python: Optional[str] = None
    sandboxed: Optional[bool] = None
    duration_s: float = 0.0
    out_dir: Optional[str] = None
    student: Optional[str] = None
    sha256: Optional[str] = None
    resumed: bool = False
    tampered: bool = False

    def exercise(self, exercise_id: str) -> ExerciseResult:
        """The result for one exercise id."""
        for result in self.exercises:
            if result.id == exercise_id:
                return result
        raise KeyError(exercise_id)

    def to_dict(self) -> dict:
        """JSON-able form (the content of ``report.json``)."""
        return {
            "submission": self.submission,
            "name": self.name,
            "total": self.total,
            "max": self.max_points,
            "exercises": [e.to_dict() for e in self.exercises],
            "errors": [e.to_dict() for e in self.errors],
            "timeouts": [t.to_dict() for t in self.timeouts],
            "notes": self.notes,
            "kernel_python": self.kernel_python,
            "sandboxed": self.sandboxed,
            "duration_s": round(self.duration_s, 2),
            "student": self.student or self.name,
            "sha256": self.sha256,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "SubmissionResult":
        """The inverse of :meth:`to_dict` (a stored ``report.json``)."""
        result = cls(submission=data["submission"], name=data["name"], total=int(data["total"]),
                     max_points=int(data["max"]), notes=list(data.get("notes", [])),
                     errors=[Problem.from_dict(e) for e in data.get("errors", [])],
                     timeouts=[Problem.from_dict(t) for t in data.get("timeouts", [])],
                     kernel_python=data.get("kernel_python"), sandboxed=data.get("sandboxed"),
                     duration_s=float(data.get("duration_s", 0)), student=data.get("student"),
                     sha256=data.get("sha256"))
        result.exercises = [ExerciseResult(e["id"], e["title"], int(e["points"]), int(e["max_points"]), e["message"])
                            for e in data.get("exercises", [])]
        return result


class GraderTampered(RuntimeError):
    """The grader's own code changed on disk while grading (see :func:`course.grading.batch.course_fingerprint`)."""
