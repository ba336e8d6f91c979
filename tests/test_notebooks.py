"""Every solution notebook runs top to bottom headless with FAST=True (papermill).

nbval (the stored deterministic outputs) runs on the same notebooks from the Makefile's pytest
call (``--nbval-lax solutions``); the release drift check is in test_release.py.
"""

import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("notebook", SOLUTIONS, ids=lambda p: p.stem)
def test_solution_notebook_runs_headless_fast(notebook, tmp_path):
    papermill = pytest.importorskip("papermill")
    import nbformat

    out = tmp_path / notebook.name
    start = time.perf_counter()
    papermill.execute_notebook(
        str(notebook),
        str(out),
        parameters={"FAST": True},
        kernel_name="python3",
        cwd=str(notebook.parent),
        execution_timeout=300,  # per cell: a stalled cell fails the test instead of hanging CI
        progress_bar=False,
    )
    elapsed = time.perf_counter() - start
    executed = nbformat.read(out, as_version=4)
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    # The solutions pass their own checks.
    checks = [c for c in executed.cells if c.get("metadata", {}).get("course", {}).get("part") == "check"]
    assert checks, "a chapter has graded exercises"
    for cell in checks:
        text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        assert "passed" in text, text
    print(f"{notebook.name}: {elapsed:.1f} s with FAST=True")


def test_every_solution_notebook_has_a_fast_parameter():
    import nbformat

    assert SOLUTIONS, "solutions/ holds the chapter notebooks"
    for path in SOLUTIONS:
        nb = nbformat.read(path, as_version=4)
        params = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(params) == 1 and "FAST = False" in params[0].source, path.name
