"""Release and grading.

* :func:`release` writes student notebooks (``notebooks/``) from solution notebooks
  (``solutions/``); :func:`check_release` says whether ``notebooks/`` is up to date.
* :func:`grade` executes submissions in fresh kernels, checks the answers with
  :mod:`course.exercises` and writes ``report.json``, Gradescope ``results.json`` and
  ``junit.xml`` per submission.

Heavy libraries (nbclient, nbformat, torch) load only when these functions run.
"""

from course.grading.release import ReleaseError, check_release, release, release_notebook, strip_solution
from course.grading.grader import ExerciseResult, SubmissionResult, find_exercise_cells, grade, grade_submission
from course.grading.reports import summary_table, write_reports

__all__ = [
    "ExerciseResult",
    "ReleaseError",
    "SubmissionResult",
    "check_release",
    "find_exercise_cells",
    "grade",
    "grade_submission",
    "release",
    "release_notebook",
    "strip_solution",
    "summary_table",
    "write_reports",
]
