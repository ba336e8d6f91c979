"""Every solution notebook has a ``FAST`` parameter, the switch its headless runs turn on.

Where the notebooks run:

* top to bottom with ``FAST = True``, as the grader runs a submission (it injects the value after
  the ``parameters`` cell): ``tests/test_course_grading.py``, which also asserts no cell error,
  full marks for the solution, zero for the student copy and the exact loss for a wrong answer;
* top to bottom as stored (``FAST = False``), with the deterministic outputs compared: nbval, from
  the Makefile's pytest call (``--nbval-lax solutions``);
* the stored timings are checked in ``tests/test_stored_timings.py``, the release drift in
  ``tests/test_release.py``.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))


def test_every_solution_notebook_has_a_fast_parameter():
    import nbformat

    assert SOLUTIONS, "solutions/ holds the chapter notebooks"
    for path in SOLUTIONS:
        nb = nbformat.read(path, as_version=4)
        params = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(params) == 1 and "FAST = False" in params[0].source, path.name
