"""Release: solution notebooks -> student notebooks (stubs, no outputs, same bytes every run)."""

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from course.cli import main
from course.grading import ReleaseError, check_release, find_exercise_cells, release, strip_solution

ROOT = Path(__file__).resolve().parent.parent
STUB = 'raise NotImplementedError("Exercise {}: replace this line with your solution")'
VALUE_STUB = "# Exercise {}: replace this line with your answer"

FUNCTION_CELL = '''def conv_cost(H, W, N, M, K, stride, padding, groups, bias):
    """Return (macs, params)."""
    ### BEGIN SOLUTION
    H_out = (H + 2 * padding - K) // stride + 1
    W_out = (W + 2 * padding - K) // stride + 1
    ### END SOLUTION
    if bias:
        ### BEGIN SOLUTION
        return H_out * W_out * K * K * (N // groups) * M, K * K * (N // groups) * M + M
        ### END SOLUTION
    return 0, 0
'''

VALUE_CELL = '''heaviest_conv = None
### BEGIN SOLUTION
heaviest_conv = "conv1"
### END SOLUTION'''


def solution_notebook(solution_source=FUNCTION_CELL):
    """A small solution notebook with the course's conventions, outputs and volatile metadata."""
    check = new_code_cell('check("1.2", conv_cost)', metadata={"course": {"exercise": "1.2", "part": "check"}})
    check.outputs = [new_output("stream", name="stdout", text="Exercise 1.2 passed: 8/8 cases (3 points)\n")]
    check.execution_count = 7
    solution = new_code_cell(
        solution_source,
        metadata={
            "course": {"exercise": "1.2", "part": "solution"},
            "tags": ["exercise"],
            "execution": {"iopub.execute_input": "2026-01-01T00:00:00"},
            "ExecuteTime": {"end_time": "2026-01-01"},
        },
    )
    solution.execution_count = 6
    cells = [
        new_markdown_cell("# Chapter 1\n\n### BEGIN nothing: markers only count in code cells as whole lines"),
        new_code_cell("FAST = False", metadata={"tags": ["parameters"]}),
        solution,
        check,
        new_code_cell(VALUE_CELL, metadata={"course": {"exercise": "1.4", "part": "solution"}}),
        new_code_cell("print('plain cell')", metadata={"tags": ["nbval-ignore-output"]}),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python", "version": "3.11.7", "codemirror_mode": {"name": "ipython"}}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    nb.metadata["papermill"] = {"duration": 12.3}
    return nb


@pytest.fixture
def solutions(tmp_path):
    src = tmp_path / "solutions"
    src.mkdir()
    nbformat.write(solution_notebook(), src / "01_cost.ipynb")
    return src


def test_markers_replaced_with_indentation_kept():
    out = strip_solution(FUNCTION_CELL, "1.2")
    assert out.splitlines() == [
        "def conv_cost(H, W, N, M, K, stride, padding, groups, bias):",
        '    """Return (macs, params)."""',
        "    " + STUB.format("1.2"),
        "    if bias:",
        "        " + STUB.format("1.2"),
        "    return 0, 0",
    ]
    compile(out, "<stub>", "exec")
    value = strip_solution(VALUE_CELL, "1.4")
    assert value == "heaviest_conv = None\n" + VALUE_STUB.format("1.4")  # no trailing newline, as in the source


STUB_CASES = [
    # (solution source, what the stub line is): inside a function it raises when called; elsewhere it does nothing
    ("def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n", "    " + STUB.format("1.2")),
    ("class M:\n    def forward(self, x):\n        ### BEGIN SOLUTION\n        return x\n        ### END SOLUTION\n",
     "        " + STUB.format("1.2")),
    ("x = None\n### BEGIN SOLUTION\nx = 3\n### END SOLUTION\n", VALUE_STUB.format("1.2")),
    ("x = None\nfor i in range(3):\n    ### BEGIN SOLUTION\n    x = i\n    ### END SOLUTION\n",
     "    pass  " + VALUE_STUB.format("1.2")),
]


@pytest.mark.parametrize("source, stub_line", STUB_CASES)
def test_stub_raises_only_inside_functions(source, stub_line):
    out = strip_solution(source, "1.2")
    assert stub_line in out.splitlines()
    namespace = {}
    exec(compile(out, "<stub>", "exec"), namespace)  # running the released cell never raises


def test_released_value_cells_run_and_check_says_not_attempted(capsys):
    """"Run All" on a student copy goes on past a value exercise: its cell runs, its check says
    "not attempted" (issue 11: exercise 1.4 stopped the run with a traceback)."""
    from course.exercises import check, list_exercises

    values = {e.id: e for e in list_exercises() if e.kind == "value" and e.chapter != 99}  # 99: the examples
    assert values, "the course has value exercises"
    seen = set()
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            meta = cell.metadata.get("course", {})
            if meta.get("exercise") in values and meta.get("part") == "solution":
                exercise = values[meta["exercise"]]
                namespace = {}
                exec(compile(cell.source, f"{path.name}:{exercise.id}", "exec"), namespace)
                result = check(exercise.id, namespace[exercise.answer], quiet=True)
                assert not result.passed and not result.attempted and "not attempted" in result.message
                seen.add(exercise.id)
    assert seen == set(values)


def test_release_refuses_a_cell_whose_copy_would_not_define_the_answer(tmp_path):
    src = tmp_path / "solutions"
    src.mkdir()
    nb = solution_notebook()
    nb.cells[4].source = "### BEGIN SOLUTION\nheaviest_conv = 'conv1'\n### END SOLUTION\n"  # no `= None` before
    nbformat.write(nb, src / "01_x.ipynb")
    with pytest.raises(ReleaseError, match="does not define `heaviest_conv`"):
        release(src, tmp_path / "notebooks")


def test_release_writes_student_copies(solutions, tmp_path):
    dest = tmp_path / "notebooks"
    written = release(solutions, dest)
    assert written == [dest / "01_cost.ipynb"]
    nb = nbformat.read(dest / "01_cost.ipynb", as_version=4)
    nbformat.validate(nb)
    text = (dest / "01_cost.ipynb").read_text()
    assert "BEGIN SOLUTION" not in text and "H_out = " not in text and '"conv1"' not in text
    assert "### BEGIN nothing" in text  # markdown is untouched
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
            compile(cell.source, "<cell>", "exec")
        assert "execution" not in cell.metadata and "ExecuteTime" not in cell.metadata
    assert nb.cells[2].metadata["course"] == {"exercise": "1.2", "part": "solution"}
    assert nb.cells[2].metadata["tags"] == ["exercise"]
    assert nb.cells[1].metadata["tags"] == ["parameters"]
    assert nb.cells[5].metadata["tags"] == ["nbval-ignore-output"]
    assert STUB.format("1.2") in nb.cells[2].source and VALUE_STUB.format("1.4") in nb.cells[4].source
    assert nb.metadata["language_info"] == {"name": "python"}
    assert "widgets" not in nb.metadata and "papermill" not in nb.metadata
    assert nb.metadata["kernelspec"]["name"] == "python3"
    # The solution notebook is untouched.
    assert "H_out = " in (solutions / "01_cost.ipynb").read_text()
    # Exercise ids survive, so grading finds them.
    assert set(find_exercise_cells(nb)) == {"1.2", "1.4"}


def test_release_is_deterministic(solutions, tmp_path):
    first = release(solutions, tmp_path / "a")[0].read_bytes()
    second = release(solutions, tmp_path / "b")[0].read_bytes()
    again = release(solutions, tmp_path / "a")[0].read_bytes()
    assert first == second == again
    assert first.endswith(b"\n")


def test_cell_ids_are_kept_or_derived_from_position(tmp_path):
    nb = solution_notebook()
    ids = [cell.id for cell in nb.cells]
    src = tmp_path / "src"
    src.mkdir()
    nbformat.write(nb, src / "01_x.ipynb")
    out = nbformat.read(release(src, tmp_path / "dst")[0], as_version=4)
    assert [cell.id for cell in out.cells] == ids
    # An old notebook without ids gets ids from the cell positions.
    raw = (src / "01_x.ipynb").read_text().replace('"nbformat_minor": 5', '"nbformat_minor": 4')
    import json

    data = json.loads(raw)
    for cell in data["cells"]:
        del cell["id"]
    (src / "01_x.ipynb").write_text(json.dumps(data))
    out = nbformat.read(release(src, tmp_path / "dst")[0], as_version=4)
    assert [cell.id for cell in out.cells] == [f"cell-{i}" for i in range(len(out.cells))]


@pytest.mark.parametrize(
    "source, problem",
    [
        ("def f():\n    ### BEGIN SOLUTION\n    return 1\n", "'### BEGIN SOLUTION' at line 2 has no matching"),
        ("def f():\n    return 1\n    ### END SOLUTION\n", "'### END SOLUTION' at line 3 without"),
        ("### BEGIN SOLUTION\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n", "at line 2 inside the region"),
        ("def f():\n    return 1\n", "a solution cell without"),
    ],
)
def test_bad_markers_name_notebook_and_cell(tmp_path, source, problem):
    src, dest = tmp_path / "solutions", tmp_path / "notebooks"
    src.mkdir()
    nbformat.write(solution_notebook(source), src / "01_bad.ipynb")
    with pytest.raises(ReleaseError) as info:
        release(src, dest)
    message = str(info.value)
    assert "01_bad.ipynb" in message and "Cell 3 (exercise 1.2)" in message and problem in message
    assert not dest.exists()  # nothing written when a notebook fails


def test_markers_without_exercise_id_are_an_error(tmp_path):
    nb = solution_notebook()
    nb.cells[5].source = "### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n"
    src = tmp_path / "s"
    src.mkdir()
    nbformat.write(nb, src / "01_x.ipynb")
    with pytest.raises(ReleaseError, match="Cell 6: has solution markers but no 'course.exercise'"):
        release(src, tmp_path / "d")


def test_check_release_reports_drift(solutions, tmp_path):
    dest = tmp_path / "notebooks"
    assert check_release(solutions, dest) == [f"{dest / '01_cost.ipynb'}: missing (run `course release`)"]
    release(solutions, dest)
    assert check_release(solutions, dest) == []
    path = dest / "01_cost.ipynb"
    path.write_text(path.read_text().replace("plain cell", "edited by hand"))
    assert "differs from the release" in check_release(solutions, dest)[0]


def test_cli_release(solutions, tmp_path, capsys):
    dest = tmp_path / "notebooks"
    assert main(["release", "--source", str(solutions), "--dest", str(dest)]) == 0
    assert "wrote" in capsys.readouterr().out and (dest / "01_cost.ipynb").exists()
    assert main(["release", "--source", str(solutions), "--dest", str(dest), "--check"]) == 0
    (dest / "01_cost.ipynb").write_text("{}")
    assert main(["release", "--source", str(solutions), "--dest", str(dest), "--check"]) == 1
    assert main(["release", "--source", str(tmp_path / "nope"), "--dest", str(dest)]) == 2
    assert "no such folder" in capsys.readouterr().err
    nbformat.write(solution_notebook("x = 1\n"), solutions / "02_bad.ipynb")
    assert main(["release", "--source", str(solutions), "--dest", str(dest)]) == 1
    assert "02_bad.ipynb, Cell 3" in capsys.readouterr().err


# --- the real course --------------------------------------------------------------------------

REAL_SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
needs_solutions = pytest.mark.skipif(not REAL_SOLUTIONS, reason="no solution notebook in solutions/ yet")


@needs_solutions
def test_student_notebooks_are_up_to_date():
    problems = check_release(ROOT / "solutions", ROOT / "notebooks")
    assert not problems, "notebooks/ is stale; run `course release`:\n" + "\n".join(problems)


@needs_solutions
@pytest.mark.parametrize("path", REAL_SOLUTIONS, ids=lambda p: p.name)
def test_solution_exercises_are_registered(path):
    from course.exercises import REGISTRY, list_exercises

    nb = nbformat.read(path, as_version=4)
    found = find_exercise_cells(nb)
    unknown = sorted(set(found) - set(REGISTRY))
    assert not unknown, f"{path.name}: exercise ids not in course.exercises: {unknown}"
    for exercise_id, parts in found.items():
        assert parts.get("solution") and parts.get("check"), f"{path.name}: exercise {exercise_id} needs a solution and a check cell"
    chapters = {int(i.split(".")[0]) for i in found}
    missing = [e.id for c in chapters for e in list_exercises(c) if e.id not in found]
    assert not missing, f"{path.name}: registered exercises without cells: {missing}"


QUESTIONS = """## Questions to answer for yourself
1. Why does the depthwise conv run below its MACs share?
<!-- BEGIN ANSWER -->
**Model answer.** It reads and writes as many bytes as a dense conv for 1/M of the MACs.
<!-- END ANSWER -->
2. Which layer would you fuse first?
<!-- BEGIN ANSWER -->
Look for the largest time share in your table.
<!-- END ANSWER -->
"""


def test_model_answers_hidden_in_student_copy_kept_in_solution(tmp_path):
    nb = solution_notebook()
    nb.cells.append(new_markdown_cell(QUESTIONS))
    src = tmp_path / "solutions"
    src.mkdir()
    nbformat.write(nb, src / "04_x.ipynb")
    (student_path,) = release(src, tmp_path / "notebooks")
    student = nbformat.read(str(student_path), as_version=4).cells[-1].source
    assert "Model answer." not in student and "largest time share" not in student and "ANSWER" not in student
    pointer = "*Model answer: in the solution notebook (`solutions/04_x.ipynb`); answer for yourself first.*"
    assert student.splitlines() == [
        "## Questions to answer for yourself",
        "1. Why does the depthwise conv run below its MACs share?",
        pointer,
        "2. Which layer would you fuse first?",
        pointer,
    ]
    assert nbformat.read(str(src / "04_x.ipynb"), as_version=4).cells[-1].source == QUESTIONS


@pytest.mark.parametrize(
    "source, problem",
    [
        ("<!-- BEGIN ANSWER -->\nan answer\n", "'<!-- BEGIN ANSWER -->' at line 1 has no matching"),
        ("an answer\n<!-- END ANSWER -->", "'<!-- END ANSWER -->' at line 2 without"),
        ("<!-- BEGIN ANSWER -->\n<!-- BEGIN ANSWER -->\n<!-- END ANSWER -->", "at line 2 inside the answer"),
    ],
)
def test_bad_answer_markers_name_notebook_and_cell(tmp_path, source, problem):
    nb = solution_notebook()
    nb.cells.append(new_markdown_cell(source))
    src = tmp_path / "solutions"
    src.mkdir()
    nbformat.write(nb, src / "04_bad.ipynb")
    with pytest.raises(ReleaseError) as info:
        release(src, tmp_path / "notebooks")
    assert "04_bad.ipynb" in str(info.value) and f"Cell {len(nb.cells)}" in str(info.value)
    assert problem in str(info.value)


def test_answer_markers_in_code_cells_are_an_error(tmp_path):
    nb = solution_notebook()
    nb.cells.append(new_code_cell("<!-- BEGIN ANSWER -->\nx = 1\n<!-- END ANSWER -->"))
    src = tmp_path / "solutions"
    src.mkdir()
    nbformat.write(nb, src / "04_code.ipynb")
    with pytest.raises(ReleaseError, match="model-answer markers in a code cell"):
        release(src, tmp_path / "notebooks")
