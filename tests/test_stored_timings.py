"""The timings stored in the solution notebooks are results by the course's own policy: none is
flagged noisy, none rests on fewer than five samples (issue 11). The stored outputs are what a
learner reads before running anything and what the site publishes; re-execute a notebook on a
quiet machine (``scripts/execute_solutions.py --attempts 3 solutions/NN_*.ipynb``) when this fails."""

from pathlib import Path

import nbformat
import pytest

from course.latency.stored import stored_timing_problems

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "solutions").glob("*.ipynb"))


def test_the_checker_finds_noisy_and_short_timings():
    out = nbformat.v4.new_output("stream", name="stdout", text="conv: 12.3 ms ± 2.1 ms (noisy)\n"
                                 "dw: 1.2 ms ± 0.0 ms (IQR, 1 sample, cpu, 1 thread)\n"
                                 "pw: 1.0 ms ± 0.0 ms (IQR, 7 samples, cpu, 1 thread)\n"
                                 "se: 52.4 ms ± 0.0 (IQR, 1 run)\n")
    html = nbformat.v4.new_output("display_data", data={"text/html": "<td>2.0 ms (noisy)</td>"})
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("noisy (noisy)"),
                                         nbformat.v4.new_code_cell("x", outputs=[out, html])])
    assert stored_timing_problems(nb) == ["Cell 2: noisy: conv: 12.3 ms ± 2.1 ms (noisy)",
                                          "Cell 2: (IQR, 1 sample (< 5)", "Cell 2: (IQR, 1 run (< 5)",
                                          "Cell 2: noisy: <td>2.0 ms (noisy)</td>"]
    steady = nbformat.v4.new_output("stream", name="stdout", text="pw: 1.0 ms ± 0.0 ms (IQR, 7 samples)\n")
    assert stored_timing_problems(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x", outputs=[steady])])) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_stored_timings_are_steady_and_from_five_samples(path):
    problems = stored_timing_problems(nbformat.read(str(path), as_version=4))
    assert not problems, f"{path.name}: re-execute on a quiet machine:\n" + "\n".join(problems)
