"""Grade one submitted notebook (no file written): :func:`grade_submission`.

1. Read it: a file that is not a notebook, is empty or corrupt, or was written for another
   kernel scores 0 with the reason.
2. Find the exercises from cell metadata (``{"course": {"exercise": "1.2", ...}}``), never
   from positions.
3. Answers that are called (functions, modules, designs): build a program from the notebook's
   source with only what the answer needs and call it on the public and hidden cases in a
   fresh, limited, sandboxed process (:mod:`course.grading.replay`).
4. Run the notebook in a fresh kernel and read the *value* answers from it
   (:mod:`course.grading.kernel`).
5. Grade every outcome in the grader's process with :func:`course.exercises.grade_outcomes`
   (the notebook's own prints and checks are never trusted).

See ``docs/grading.md`` for the threat model.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Union

from course.exercises import REGISTRY, VALUE, Exercise, get_exercise, grade_outcomes, list_exercises
from course.grading.files import sha256_of
from course.grading.kernel import KernelRun, clean, kernel_env, run_notebook
from course.grading.limits import Limits
from course.grading.results import ExerciseResult, Problem, SubmissionResult
from course.grading.sandbox import Sandbox

PathLike = Union[str, os.PathLike]

#: Kernel languages the grader runs (a notebook written for another kernel scores zero).
PYTHON_LANGUAGES = ("python", "python3", "ipython", "ipython3")


def find_exercise_cells(nb) -> Dict[str, Dict[str, List[int]]]:
    """Exercise ids found in cell metadata: ``{"1.2": {"solution": [7], "check": [8]}, ...}``.

    Values are cell positions in ``nb`` (0-based; reports name them with :func:`cell_label`).
    """
    found: Dict[str, Dict[str, List[int]]] = {}
    for index, cell in enumerate(nb.get("cells", [])):
        meta = cell.get("metadata", {}).get("course")
        if not isinstance(meta, dict) or not meta.get("exercise"):
            continue
        parts = found.setdefault(str(meta["exercise"]), {})
        parts.setdefault(str(meta.get("part", "other")), []).append(index)
    return found


def chapter_of(exercise_id: str) -> Optional[int]:
    """The chapter of an exercise id ("1.2" -> 1), or None."""
    head = str(exercise_id).split(".")[0]
    return int(head) if head.isdigit() else None


def chapter_from_name(path: Path) -> Optional[int]:
    """The chapter an ``NN_`` file-name prefix names (``01_convolution_cost.ipynb`` -> 1), or None."""
    match = re.match(r"(\d+)_", path.name)
    return int(match.group(1)) if match else None


def expected_exercises(found_ids: Iterable[str], path: Optional[Path] = None) -> List[Exercise]:
    """The exercises a submission should contain: every registered exercise of each chapter
    seen in its metadata (or named by an ``NN_`` file-name prefix)."""
    chapters = {c for c in (chapter_of(i) for i in found_ids) if c is not None}
    if path is not None and chapter_from_name(path) is not None:
        chapters.add(chapter_from_name(path))
    return [e for c in sorted(chapters) for e in list_exercises(c)]


def read_notebook(path: Path):
    """``(notebook, None)`` or ``(None, why it cannot be graded)``."""
    import nbformat

    if not path.is_file():
        return None, "not a regular file"
    if path.suffix.lower() != ".ipynb":
        return None, f"not a notebook (a {path.suffix or 'file without extension'}; submit the .ipynb file)"
    try:
        if path.stat().st_size == 0:
            return None, "the file is empty"
        nb = nbformat.read(str(path), as_version=4)
    except Exception as exc:
        return None, f"could not read the notebook ({type(exc).__name__}: {clean(exc, 200)})"
    if not isinstance(nb.get("cells"), list):
        return None, "could not read the notebook (no cells)"
    meta = nb.get("metadata", {}) or {}
    spec = meta.get("kernelspec", {}) if isinstance(meta.get("kernelspec"), dict) else {}
    info = meta.get("language_info", {}) if isinstance(meta.get("language_info"), dict) else {}
    language = str(spec.get("language") or info.get("name") or "python").lower()
    if language not in PYTHON_LANGUAGES:
        kernel = spec.get("display_name") or spec.get("name") or language
        return None, f"a notebook for the {kernel} kernel ({language}); the course's exercises are Python"
    return nb, None


def _unreadable(reason: str) -> Problem:
    kind = "NotANotebook" if reason.startswith(("not a", "the file is empty")) else "UnreadableNotebook"
    if "kernel" in reason:
        kind = "WrongKernel"
    return Problem(kind, reason)


def _notes_for(exercise: Exercise, found: Dict[str, Dict[str, List[int]]], run: KernelRun) -> List[str]:
    """Notes on one exercise from the notebook run: its cells' errors and time limits."""
    notes = []
    solutions = found.get(exercise.id, {}).get("solution", [])
    if exercise.kind == VALUE and len(solutions) > 1:
        cells = ", ".join(str(i + 1) for i in solutions)
        notes.append(f"Note: {len(solutions)} solution cells for exercise {exercise.id} (Cells {cells}); "
                     f"the `{exercise.answer}` the notebook held at the end was graded.")
    for error in run.errors:
        if error.exercise == exercise.id and error.part != "check":
            notes.append(f"Note: in the notebook run, {error.where} raised {error.kind}: {error.message}")
    for timeout in run.timeouts:
        if timeout.exercise == exercise.id:
            notes.append(f"Note: {timeout.message}.")
        elif exercise.kind == VALUE and timeout.kind == "notebook" and any(
            i + 1 >= (timeout.cell or 0) for i in solutions
        ):
            notes.append(f"Note: the notebook's time limit was reached before {timeout.where}; "
                         "this exercise's cells did not run.")
    return notes


def _stub_notes(stubs: Dict[str, List[int]]) -> List[str]:
    return [f"exercise {exercise_id} not attempted: Cell{'s' if len(cells) > 1 else ''} "
            f"{', '.join(map(str, cells))} stopped at its stub" for exercise_id, cells in sorted(stubs.items())]


def submission_seed(sha256: Optional[str]) -> Optional[int]:
    """The per-submission seed of the drawn hidden cases: from the file's sha256 (the same file
    gets the same cases, another file other ones)."""
    return int(sha256[:16], 16) if sha256 else None


def grade_submission(
    path: PathLike,
    limits: Limits = Limits(),
    *,
    fast: bool = True,
    hidden: bool = True,
    sandbox: Optional[Sandbox] = None,
    exercises: Optional[Sequence[str]] = None,
    default_exercises: Sequence[Exercise] = (),
    name: Optional[str] = None,
    student: Optional[str] = None,
):
    """Grade one notebook (no files written): returns ``(SubmissionResult, executed notebook or None)``.

    Called answers (functions, modules, designs) run in a fresh process that runs only their
    code (:mod:`course.grading.replay`), on the public cases and (``hidden``) the hidden ones;
    value answers are read from the notebook's own kernel after all its cells ran
    (:mod:`course.grading.kernel`). ``sandbox``: run both inside bubblewrap. ``exercises``: ids
    to grade; by default the registered exercises of the chapters found in the notebook's
    metadata (or its ``NN_`` name), else ``default_exercises``.
    """
    from course.grading import replay

    path = Path(path)
    start = time.monotonic()
    result = SubmissionResult(submission=str(path), name=name or path.stem, student=student or name or path.stem)
    result.sha256 = sha256_of(path)
    result.sandboxed = sandbox is not None
    nb, read_error = read_notebook(path)
    found = find_exercise_cells(nb) if nb is not None else {}
    if exercises is not None:
        wanted = [get_exercise(i) for i in exercises]
    else:
        wanted = expected_exercises(found, path) or list(default_exercises)
    for unknown in sorted(set(found) - set(REGISTRY)):
        result.notes.append(f"cells tagged with unknown exercise id {unknown!r} were ignored")
    result.max_points = sum(e.points for e in wanted)

    run = KernelRun()
    outcomes: Dict[str, list] = {}
    problems: Dict[str, str] = {}
    extra_notes: Dict[str, List[str]] = {}
    cases = {e.id: e.grading_cases(submission_seed(result.sha256), hidden=hidden) for e in wanted}
    if read_error:
        run.problem = read_error
        result.errors.append(_unreadable(read_error))
    elif not wanted:
        result.notes.append("no exercise cells found in the notebook")
    else:
        env = kernel_env()
        value_specs = []
        for exercise in wanted:
            if exercise.kind == VALUE:
                if exercise.id in found or any(exercise.answer in replay.defined_names(c.get("source", ""))
                                               for c in nb.cells if c.get("cell_type") == "code"):
                    value_specs.append(exercise.spec(limits.case_timeout(exercise)))
                continue
            selection = replay.select(nb, exercise.id, exercise.answer, found.get(exercise.id, {}).get("solution", []))
            extra_notes[exercise.id] = selection.notes
            if selection.problem:
                if exercise.id in found:  # else: reported below as "not in the notebook"
                    outcomes[exercise.id] = [{"status": "missing", "detail": selection.problem}]
                continue
            with tempfile.TemporaryDirectory(prefix="course-answer-") as work:
                got, problem = replay.probe_function(
                    selection, exercise.spec(limits.case_timeout(exercise), cases[exercise.id]),
                    memory_mb=limits.memory_mb, cwd=work, env=env, sandbox=sandbox,
                    define_timeout_s=max(limits.cell_s * len(selection.cells), 10),
                )
            if problem:
                problems[exercise.id] = f"calling `{exercise.answer}` in a fresh process failed: {problem}"
            else:
                outcomes[exercise.id] = got
        run = run_notebook(nb, value_specs, limits, fast=fast, sandbox=sandbox)
        result.errors.extend(run.errors)
        result.timeouts.extend(run.timeouts)
        result.notes.extend(run.notes + _stub_notes(run.stubs))
        result.kernel_python = run.kernel_python
        if run.outcomes is not None:
            outcomes.update(run.outcomes)
        else:
            for spec in value_specs:
                problems.setdefault(spec["id"], run.problem or "the notebook's kernel gave no answer")

    for exercise in wanted:
        zero = f"(0/{exercise.points} points)"
        if read_error:
            points, message = 0, f"Exercise {exercise.id}: {read_error} {zero}."
        elif exercise.id in outcomes:
            points, message = grade_outcomes(exercise, outcomes[exercise.id], cases[exercise.id])
        elif exercise.id in problems:
            points, message = 0, f"Exercise {exercise.id} could not be graded: {problems[exercise.id]} {zero}."
        else:
            points, message = 0, (
                f"Exercise {exercise.id}: its cells are not in the notebook (no cell has "
                f"exercise id {exercise.id} in its metadata; deleted?) {zero}."
            )
        notes = (extra_notes.get(exercise.id, []) + _notes_for(exercise, found, run)) if not read_error else []
        message = "\n".join([message] + notes)
        result.exercises.append(ExerciseResult(exercise.id, exercise.title, points, exercise.points, message))
    result.total = sum(e.points for e in result.exercises)
    if run.problem and not read_error and run.outcomes is None and run.problem not in result.notes:
        result.notes.append(run.problem)
    result.duration_s = time.monotonic() - start
    return result, run.executed
