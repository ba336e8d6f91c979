"""Release and grading.

* :func:`release` writes student notebooks (``notebooks/``) from solution notebooks
  (``solutions/``); :func:`check_release` says whether ``notebooks/`` is up to date.
* :func:`grade` grades a batch (:mod:`course.grading.batch`): each submission
  (:mod:`course.grading.submission`) has its called answers replayed in fresh processes
  (:mod:`course.grading.replay`) and its notebook run in a fresh kernel
  (:mod:`course.grading.kernel`), under the limits of :mod:`course.grading.limits` and
  :mod:`course.grading.isolation`, inside a bubblewrap sandbox where it runs
  (:mod:`course.grading.sandbox`); the answers are graded with :mod:`course.exercises` and
  :mod:`course.grading.reports` writes ``report.json``, Gradescope ``results.json``,
  ``junit.xml``, ``feedback.md`` and ``feedback.html`` per submission, ``gradebook.csv`` and a
  summary per batch.

Heavy libraries (nbclient, nbformat, torch) load only when these functions run.
"""

from course.grading.batch import expand_submissions, grade
from course.grading.feedback import feedback_html, feedback_markdown
from course.grading.limits import Limits
from course.grading.release import ReleaseError, check_release, release, release_notebook, strip_answers, strip_solution
from course.grading.reports import gradebook_csv, summary_table, write_batch, write_reports
from course.grading.results import ExerciseResult, GraderTampered, Problem, SubmissionResult, cell_label
from course.grading.sandbox import Sandbox, SandboxUnavailable
from course.grading.submission import find_exercise_cells, grade_submission

__all__ = [
    "ExerciseResult",
    "GraderTampered",
    "Limits",
    "Problem",
    "ReleaseError",
    "Sandbox",
    "SandboxUnavailable",
    "SubmissionResult",
    "cell_label",
    "check_release",
    "expand_submissions",
    "feedback_html",
    "feedback_markdown",
    "find_exercise_cells",
    "grade",
    "grade_submission",
    "gradebook_csv",
    "release",
    "release_notebook",
    "strip_answers",
    "strip_solution",
    "summary_table",
    "write_batch",
    "write_reports",
]
