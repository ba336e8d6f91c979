"""Grading: synthetic Chapter 1 submissions run in real kernels, one batch shared by the tests."""

import hashlib
import json
import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell

from course.cli import main
from course.exercises import get_exercise
from course.grading import Limits, Problem, find_exercise_cells, grade, release_notebook

from ch01_answers import CONV_COST, FULL, OUTPUT_SIZE, POINTS, chapter1_notebook  # tests/ is on sys.path


def chapter1(checks=False):
    """A Chapter 1 solution notebook (``checks``: with check cells) whose first cell after the
    parameters fails unless the grader injected ``FAST = True``."""
    return chapter1_notebook(checks=checks, fast_guard=True)


def cell_of(nb, exercise_id):
    return nb.cells[find_exercise_cells(nb)[exercise_id]["solution"][0]]


def submissions(folder: Path):
    """Write the batch: one notebook per behaviour under test."""
    correct = chapter1(checks=True)
    nbformat.write(correct, folder / "correct.ipynb")
    nbformat.write(release_notebook(correct), folder / "stub.ipynb")

    wrong = chapter1()
    cell_of(wrong, "1.2").source = CONV_COST.replace("(N // groups)", "N")  # forgets the groups
    # A learner who shadows builtins and modules must not break the grader's probe.
    wrong.cells.append(new_code_cell("list = [1, 2]\njson = 'x'\nlen = 3\nisinstance = None\nprint = None"))
    nbformat.write(wrong, folder / "one_wrong.ipynb")

    raises = chapter1()
    raises.cells.insert(3, new_code_cell('raise ValueError("an unrelated cell fails")'))
    cell_of(raises, "1.1").source = "x = 1 / 0\n" + OUTPUT_SIZE  # never defines the answer
    raises.cells = [c for c in raises.cells if c.metadata.get("course", {}).get("exercise") != "1.4"]  # deleted
    nbformat.write(raises, folder / "raises.ipynb")

    loops = chapter1()  # the function loops forever on some cases: cut by the case time limit
    cell_of(loops, "1.1").source = OUTPUT_SIZE.replace("    span =", "    while dilation > 1:\n        pass\n    span =")
    nbformat.write(loops, folder / "loops.ipynb")

    old_stub = release_notebook(chapter1())  # released before value stubs stopped raising
    cell_of(old_stub, "1.4").source = 'heaviest_conv = None\nraise NotImplementedError("Exercise 1.4: replace this line with your solution")'
    old_stub.cells.append(new_code_cell("conv_cost(56, 56, 64, 64, 3, 1, 1, 1, False)"))  # calls a stub
    nbformat.write(old_stub, folder / "old_stub.ipynb")

    (folder / "corrupt.ipynb").write_text("{ this is not a notebook")


def snapshot(folder: Path):
    return {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    folder = tmp_path_factory.mktemp("submissions")
    submissions(folder)
    before = snapshot(folder)
    out = tmp_path_factory.mktemp("grades")
    # The check cells import torch in the kernel (seconds on a busy machine): roomy limits.
    results = grade(sorted(folder.glob("*.ipynb")), out, Limits(notebook_s=600, cell_s=300, case_s=10),
                    jobs=2, quiet=True)
    return {"folder": folder, "before": before, "out": out, "results": {r.name: r for r in results}}


def scores(result):
    return {e.id: e.points for e in result.exercises}


@pytest.mark.slow
def test_batch_grades_every_submission(batch):
    assert sorted(batch["results"]) == ["correct", "corrupt", "loops", "old_stub", "one_wrong", "raises", "stub"]
    for result in batch["results"].values():
        assert result.max_points == FULL
        assert [e.id for e in result.exercises] == list(POINTS)


@pytest.mark.slow
def test_correct_submission_gets_full_marks(batch):
    result = batch["results"]["correct"]
    assert result.total == FULL and scores(result) == POINTS
    assert result.errors == [] and result.timeouts == []  # FAST was injected, check cells ran fine
    hidden = len(get_exercise("1.2").grading_cases(seed=0)) - 8
    assert hidden >= 3
    assert result.exercise("1.2").message == f"Exercise 1.2 passed: 8/8 cases and {hidden}/{hidden} hidden cases (3 points)"
    from course.grading.sandbox import probe

    assert result.sandboxed is (probe()[0] is not None)  # on by default where bubblewrap runs
    # The kernel ran the grader's own Python, so it imported the same course package.
    assert os.path.realpath(result.kernel_python) == os.path.realpath(sys.executable)


@pytest.mark.slow
def test_stub_submission_scores_zero_with_a_message_each(batch):
    result = batch["results"]["stub"]
    assert result.total == 0
    for e in result.exercises:
        assert e.points == 0 and "not attempted yet" in e.message, e.message
    assert "still raises NotImplementedError" in result.exercise("1.2").message
    assert result.errors == [] and result.timeouts == []  # "Run All" goes on past every stub


@pytest.mark.slow
def test_a_stub_that_raises_is_not_attempted_not_an_error(batch):
    result = batch["results"]["old_stub"]
    assert result.total == 0 and result.errors == []
    value_cell = find_exercise_cells(nbformat.read(batch["folder"] / "old_stub.ipynb", as_version=4))["1.4"]["solution"][0]
    n_cells = len(nbformat.read(batch["folder"] / "old_stub.ipynb", as_version=4).cells)
    assert result.notes == [f"exercise 1.2 not attempted: Cell {n_cells} stopped at its stub",
                            f"exercise 1.4 not attempted: Cell {value_cell + 1} stopped at its stub"]
    assert "not attempted yet" in result.exercise("1.4").message and "Note:" not in result.exercise("1.4").message


@pytest.mark.slow
def test_one_wrong_exercise_loses_exactly_its_points(batch):
    result = batch["results"]["one_wrong"]
    assert scores(result) == {**POINTS, "1.2": 0}
    assert result.total == FULL - POINTS["1.2"]
    message = result.exercise("1.2").message
    assert "conv_cost(H=" in message and "expected (macs=" in message and "divide by the groups" in message


@pytest.mark.slow
def test_a_raising_cell_does_not_stop_the_rest(batch):
    result = batch["results"]["raises"]
    assert scores(result) == {**POINTS, "1.1": 0, "1.4": 0}
    assert {(e.kind, e.exercise) for e in result.errors} == {("ValueError", None), ("ZeroDivisionError", "1.1")}
    # Cells are named as JupyterLab numbers them (1-based): the inserted cell is the 4th.
    assert next(e for e in result.errors if e.kind == "ValueError").cell == 4
    assert "ZeroDivisionError: division by zero" in result.exercise("1.1").message
    assert "not in the notebook" in result.exercise("1.4").message


@pytest.mark.slow
def test_an_endless_function_is_cut_and_grading_goes_on(batch):
    result = batch["results"]["loops"]
    assert result.timeouts == []  # the notebook's own run never calls it
    assert scores(result) == {**POINTS, "1.1": 0}
    assert "did not return within 10 s" in result.exercise("1.1").message


@pytest.mark.slow
def test_corrupt_file_scores_zero_and_the_batch_goes_on(batch):
    result = batch["results"]["corrupt"]
    assert result.total == 0 and result.max_points == FULL
    assert result.errors[0].kind == "UnreadableNotebook"
    assert all("could not read the notebook" in e.message for e in result.exercises)
    assert (batch["out"] / "corrupt" / "report.json").exists()


@pytest.mark.slow
def test_submission_folder_is_untouched(batch):
    assert snapshot(batch["folder"]) == batch["before"]


@pytest.mark.slow
def test_reports_parse_and_carry_the_scores(batch):
    for name, result in batch["results"].items():
        folder = batch["out"] / name
        assert not list(folder.glob("*.tmp")) and not list(folder.glob(".*"))  # atomic writes leave nothing behind
        assert {p.name for p in folder.iterdir()} >= {"report.json", "results.json", "junit.xml", "feedback.md",
                                                       "feedback.html"}
        report = json.loads((folder / "report.json").read_text())
        assert report["total"] == result.total and report["max"] == FULL
        assert [(e["id"], e["points"], e["max_points"]) for e in report["exercises"]] == [
            (e.id, e.points, e.max_points) for e in result.exercises
        ]
        assert all(e["title"] and e["message"] for e in report["exercises"])

        gradescope = json.loads((folder / "results.json").read_text())
        assert gradescope["score"] == result.total
        assert sum(t["score"] for t in gradescope["tests"]) == result.total
        assert sum(t["max_score"] for t in gradescope["tests"]) == FULL
        assert all({"name", "score", "max_score", "output", "visibility"} <= set(t) for t in gradescope["tests"])

        root = ET.parse(folder / "junit.xml").getroot()
        cases = root.findall(".//testcase")
        assert len(cases) == len(POINTS)
        failed = [c for c in cases if c.find("failure") is not None]
        assert len(failed) == sum(1 for e in result.exercises if not e.passed)
        assert root.find("testsuite").get("failures") == str(len(failed))
    one_wrong = ET.parse(batch["out"] / "one_wrong" / "junit.xml").getroot()
    (failure,) = one_wrong.findall(".//failure")
    assert failure.get("message").startswith("Exercise 1.2 failed")
    # The executed copy is kept for the grader to read; the probe is not part of it.
    executed = nbformat.read(batch["out"] / "correct" / "executed.ipynb", as_version=4)
    assert "course-probe" not in json.dumps(executed)
    assert executed.cells[2].metadata["tags"] == ["injected-parameters"]


@pytest.mark.slow
def test_summary_table(batch):
    from course.grading import summary_table

    table = summary_table(list(batch["results"].values()))
    lines = table.splitlines()
    assert lines[0].split()[:6] == ["submission", "score", "1.1", "1.2", "1.3", "1.4"]
    row = next(line for line in lines if line.startswith("one_wrong "))
    points = [f"{POINTS[e]}/{POINTS[e]}" if e != "1.2" else f"0/{POINTS[e]}" for e in ("1.1", "1.2", "1.3", "1.4")]
    assert row.split()[1:6] == [f"{FULL - POINTS['1.2']}/{FULL}", *points]


@pytest.mark.slow
def test_feedback_html_has_the_markdowns_content_and_no_external_assets(batch):
    from html.parser import HTMLParser

    class Page(HTMLParser):
        def __init__(self):
            super().__init__()
            self.text, self.tags, self.refs = [], [], []

        def handle_starttag(self, tag, attrs):
            self.tags.append(tag)
            self.refs += [value for name, value in attrs if name in ("src", "href", "srcset", "data")]

        def handle_data(self, data):
            self.text.append(data)

    for name, result in batch["results"].items():
        folder = batch["out"] / name
        page = Page()
        page.feed((folder / "feedback.html").read_text())
        text = "".join(page.text)
        assert page.refs == [] and not {"script", "link", "img", "iframe", "object"} & set(page.tags), name
        assert f"Score: {result.total} / {result.max_points}" in text
        for e in result.exercises:  # every line of every message, as in feedback.md
            assert f"Exercise {e.id}: {e.title}" in text
            for line in e.message.splitlines():
                assert line in text, (name, line)
        markdown = (folder / "feedback.md").read_text()
        assert f"**Score: {result.total} / {result.max_points}**" in markdown
        assert all(line in markdown for e in result.exercises for line in e.message.splitlines())


# --- reports (no kernel needed) ---------------------------------------------------------------


def synthetic_results():
    from course.grading import ExerciseResult, SubmissionResult

    hostile = "<script>alert('x')</script> & | pipes"
    a1 = SubmissionResult("subs/alice/01_a.ipynb", "alice__01_a", total=2, max_points=5, student="alice",
                          exercises=[ExerciseResult("1.1", "Size", 2, 2, "Exercise 1.1 passed"),
                                     ExerciseResult("1.2", "Cost", 0, 3, f"Exercise 1.2 failed\n  got {hostile}")],
                          errors=[Problem("ValueError", hostile, cell=4)])
    a2 = SubmissionResult("subs/alice/01_b.ipynb", "alice__01_b", total=3, max_points=5, student="alice",
                          exercises=[ExerciseResult("1.1", "Size", 0, 2, "no"), ExerciseResult("1.2", "Cost", 3, 3, "ok")])
    return [a1, a2], hostile


def test_feedback_html_escapes_what_a_submission_printed():
    from course.grading import feedback_html, feedback_markdown

    (result, _), hostile = synthetic_results()
    page = feedback_html(result)
    assert "<script>" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; | pipes" in page
    assert '<td class="failed">not passed</td>' in page and '<td class="passed">passed</td>' in page
    assert "<li>Cell 4: ValueError: &lt;script&gt;" in page
    markdown = feedback_markdown(result)
    assert "* Cell 4: ValueError: <script>alert('x')</script> & \\| pipes" in markdown


def test_gradebook_is_one_row_per_student_with_a_total():
    from course.grading import gradebook_csv

    results, _ = synthetic_results()
    assert gradebook_csv(results) == "student,1.1,1.2,total\nalice,2,3,5\n"  # best points per exercise


# --- the command line (no kernel needed) ------------------------------------------------------


def test_cli_grade_usage_errors(tmp_path, capsys):
    assert main(["grade", str(tmp_path / "missing.ipynb"), "--out", str(tmp_path / "out")]) == 2
    assert "no such file" in capsys.readouterr().err
    nb = tmp_path / "a.ipynb"
    nb.write_text("{}")
    assert main(["grade", str(nb), "--out", str(tmp_path / "out"), "--timeout", "0"]) == 2
    assert main(["grade", str(nb), "--out", str(tmp_path / "out"), "--exercises", "9.9"]) == 2
    with pytest.raises(SystemExit) as info:
        main(["grade", str(nb)])  # --out is required
    assert info.value.code == 2
    assert not (tmp_path / "out").exists()


def test_cli_grade_of_an_unreadable_file_exits_zero(tmp_path, capsys):
    bad = tmp_path / "subs" / "01_broken.ipynb"  # the NN_ prefix names the chapter
    bad.parent.mkdir()
    bad.write_text("not json")
    assert main(["grade", str(bad.parent), "--out", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "01_broken" / "report.json").read_text())
    assert report["total"] == 0 and report["max"] == FULL
    assert "01_broken" in capsys.readouterr().out  # the summary table


def test_python_dash_m_entry_point():
    import subprocess

    done = subprocess.run([sys.executable, "-m", "course.cli", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "release" in done.stdout and "grade" in done.stdout


# --- time limits and dead kernels -------------------------------------------------------------
# Each limit is far shorter than what the cell does (sleeps of 10 minutes, endless loops) and far
# longer than the cells before it, and the notebook's clock starts once its kernel is ready: the
# outcome does not depend on how fast or busy the machine is (issue 16, item 10).

SLEEP = "import time\ntime.sleep(600)"
HARD_LIMITS = Limits(notebook_s=30, cell_s=12, case_s=10)


@pytest.fixture(scope="module")
def hard_cases(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hard")
    slow = chapter1()
    for i in range(3):
        slow.cells.insert(3 + i, new_code_cell(SLEEP))
    nbformat.write(slow, folder / "slow.ipynb")
    endless = chapter1()
    endless.cells.insert(3, new_code_cell("while True:\n    pass"))
    nbformat.write(endless, folder / "endless.ipynb")
    stubborn = chapter1()  # swallows the grader's interrupt
    stubborn.cells.insert(3, new_code_cell(
        "import time\nwhile True:\n    try:\n        time.sleep(10)\n    except KeyboardInterrupt:\n        pass"))
    nbformat.write(stubborn, folder / "stubborn.ipynb")
    dies = chapter1()
    dies.cells.insert(3, new_code_cell("import os\nos._exit(1)"))
    nbformat.write(dies, folder / "dies.ipynb")
    out = tmp_path_factory.mktemp("hard-grades")
    results = grade(folder, out, HARD_LIMITS, jobs=2, quiet=True)
    return {r.name: r for r in results}


# Function exercises are called in their own process from their cells' code, so they are graded
# whatever happens to the notebook's kernel; the value exercise (1.4) is read from the kernel
# and is lost when the notebook does not get that far.
FUNCTIONS_ONLY = {**POINTS, "1.4": 0}


@pytest.mark.slow
def test_notebook_time_limit(hard_cases):
    result = hard_cases["slow"]
    assert scores(result) == FUNCTIONS_ONLY and result.max_points == FULL
    kinds = [t.kind for t in result.timeouts]
    # The first sleeper is cut by the cell limit; the notebook limit ends the run; in between, the
    # other sleepers are cut by whichever limit comes first (on a busy machine, one less may start).
    assert kinds[0] == "cell" and kinds[-1] == "notebook" and set(kinds[1:-1]) <= {"cell"}, kinds
    assert result.timeouts[0].cell == 4 and result.timeouts[0].message == "Cell 4 ran over 12 s and was interrupted"
    assert "time limit" in result.exercise("1.4").message


@pytest.mark.slow
def test_an_endless_cell_is_interrupted_and_the_rest_runs(hard_cases):
    result = hard_cases["endless"]
    assert scores(result) == POINTS
    assert [(t.kind, t.cell) for t in result.timeouts] == [("cell", 4)]


@pytest.mark.slow
def test_kernel_that_ignores_interrupts(hard_cases):
    result = hard_cases["stubborn"]
    assert scores(result) == FUNCTIONS_ONLY and result.timeouts[0].cell == 4
    assert "did not stop after Cell 4 was interrupted" in result.exercise("1.4").message


@pytest.mark.slow
def test_kernel_that_dies(hard_cases):
    result = hard_cases["dies"]
    assert scores(result) == FUNCTIONS_ONLY
    assert result.errors == [Problem("DeadKernelError", "the kernel died while running Cell 4", cell=4)]
    assert "the kernel died" in result.exercise("1.4").message
