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


#: Every wording the course prints for a noisy result (course/latency, course/tables.py,
#: course/widgets.py, course/chapters/ch01, ch02, ch07, ch08, ch09), and steady look-alikes.
NOISY_LINES = [
    "conv: 12.3 ms ± 2.1 ms (noisy)",
    "speed-up 1.21x (noisy: rerun on a quieter machine)",
    "NOISY: the IQR is 14% of the median",
    '<b>noisy</b>: the IQR is 14% of the median even after re-measuring',
    "int8 static: 0.98x the speed of fp32 (0.121 vs 0.118 ms), 2.9x smaller file (noisy timing).",
    "peak 12.0 GFLOP/s NOISY probe(s): matmul",
    "Per channel, 3 rows. Some timings are noisy: rerun on a quieter machine.",
    "predicted latency of the space: 1.194 to 2.969 ms (24 of 60 block timings noisy)",
    "conv wins (3 of 12 timings noisy: rerun on a quieter machine.)",
]
STEADY_LINES = [
    "predicted latency of the space: 1.194 to 2.969 ms (0 of 60 block timings noisy)",
    "1 thread; >= 5 samples after warm-up; median ± IQR; re-measured once when IQR > 10% of the median",
    "pw: 1.0 ms ± 0.0 ms (IQR, 7 samples, cpu, 1 thread)",
]


@pytest.mark.parametrize("line", NOISY_LINES)
def test_the_checker_knows_every_noisy_wording(line):
    out = nbformat.v4.new_output("stream", name="stdout", text=f"before\n{line}\nafter\n")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x", outputs=[out])])
    assert stored_timing_problems(nb) == [f"Cell 1: noisy: {line[:160]}"]


@pytest.mark.parametrize("line", STEADY_LINES)
def test_the_checker_passes_steady_lines(line):
    out = nbformat.v4.new_output("stream", name="stdout", text=line + "\n")
    assert stored_timing_problems(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x", outputs=[out])])) == []


def test_the_checker_reads_the_saved_widget_state():
    html = '<p><b>latency</b> 12.7 ms ± 1.3 ms (IQR, 6 samples)<br><b>noisy</b>: the IQR is 10% of the median</p>'
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x")])
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {
        "state": {"m1": {"state": {"value": html, "layout": "IPY_MODEL_x"}}}, "version_major": 2}}
    assert stored_timing_problems(nb) == [f"widget state: noisy: {html}"]
    nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]["m1"]["state"]["value"] = "12.7 ms ± 0.3 ms (IQR, 6 samples)"
    assert stored_timing_problems(nb) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_stored_timings_are_steady_and_from_five_samples(path):
    problems = stored_timing_problems(nbformat.read(str(path), as_version=4))
    assert not problems, f"{path.name}: re-execute on a quiet machine:\n" + "\n".join(problems)
