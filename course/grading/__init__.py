"""Release and grading.

* :func:`release` writes student notebooks (``notebooks/``) from solution notebooks
  (``solutions/``); :func:`check_release` says whether ``notebooks/`` is up to date.
* :func:`grade` runs each submission in a fresh kernel, calls its answers in fresh processes
  (:mod:`course.grading.replay`, :mod:`course.grading.isolation`), grades them with
  :mod:`course.exercises` and writes ``report.json``, Gradescope ``results.json``,
  ``junit.xml`` and ``feedback.md`` per submission, ``gradebook.csv`` and a summary per batch.

Heavy libraries (nbclient, nbformat, torch) load only when these functions run.
"""

from course.grading.release import ReleaseError, check_release, release, release_notebook, strip_solution
from course.grading.grader import (
    ExerciseResult,
    GraderTampered,
    SubmissionResult,
    find_exercise_cells,
    grade,
    grade_submission,
)
from course.grading.reports import feedback_markdown, gradebook_csv, summary_table, write_batch, write_reports

__all__ = [
    "ExerciseResult",
    "GraderTampered",
    "ReleaseError",
    "SubmissionResult",
    "check_release",
    "feedback_markdown",
    "find_exercise_cells",
    "grade",
    "grade_submission",
    "gradebook_csv",
    "release",
    "release_notebook",
    "strip_solution",
    "summary_table",
    "write_batch",
    "write_reports",
]
