"""Every solution notebook runs top to bottom headless with FAST=True, and passes its own checks.

The checks are read as the objects ``check`` returned (``CheckResult``: passed, points), taken
from the kernel's output history after the run, never from the text the cells printed.
nbval (the stored deterministic outputs) runs on the same notebooks from the Makefile's pytest
call (``--nbval-lax solutions``); the release drift check is in test_release.py.
"""

import json
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))

#: Run after the notebook, in its kernel: every CheckResult its check cells returned (IPython's ``Out``).
CHECK_RESULTS = """
import json as _json
print("<<checks>>" + _json.dumps({_r.exercise: [_r.passed, _r.points, _r.max_points]
                                  for _r in Out.values() if type(_r).__name__ == "CheckResult"}))
"""


@pytest.mark.slow
@pytest.mark.timeout(3600)  # a whole notebook; on a busy 2-core machine a chapter takes several times its quiet time
@pytest.mark.parametrize("notebook", SOLUTIONS, ids=lambda p: p.stem)
def test_solution_notebook_runs_headless_fast(notebook):
    import nbformat
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell

    from course.grading.kernel import prepare
    from course.grading.submission import find_exercise_cells

    nb = nbformat.read(notebook, as_version=4)
    run_nb, _ = prepare(nb, fast=True)  # FAST = True after the parameters cell, as the grader does
    run_nb.cells.append(new_code_cell(CHECK_RESULTS))
    start = time.perf_counter()
    # Per cell: a stalled cell fails the test instead of hanging CI. Wide: a measurement cell of
    # Chapter 7 ran past 300 s beside two busy loops on a loaded 2-core machine.
    NotebookClient(run_nb, kernel_name="python3", timeout=1200, resources={"metadata": {"path": str(notebook.parent)}}).execute()
    elapsed = time.perf_counter() - start
    errors = [o for c in run_nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    text = "".join(o.get("text", "") for o in run_nb.cells[-1].outputs if o.output_type == "stream")
    results = json.loads(text.split("<<checks>>", 1)[1])
    checked = {i for i, parts in find_exercise_cells(nb).items() if "check" in parts}
    assert checked, "a chapter has graded exercises"
    assert set(results) == checked  # every check cell returned its result
    failed = {i: r for i, r in results.items() if not (r[0] and r[1] == r[2] > 0)}
    assert not failed, failed  # the solutions pass their own checks, with full points
    print(f"{notebook.name}: {elapsed:.1f} s with FAST=True")


def test_every_solution_notebook_has_a_fast_parameter():
    import nbformat

    assert SOLUTIONS, "solutions/ holds the chapter notebooks"
    for path in SOLUTIONS:
        nb = nbformat.read(path, as_version=4)
        params = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(params) == 1 and "FAST = False" in params[0].source, path.name
