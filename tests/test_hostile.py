"""Hostile and broken submissions: each is generated here, graded in one batch (``--jobs 2``),
and must get exactly its expected score, with a clear message, while the batch goes on.

The table of cases (name, what it does, expected points per exercise) is :data:`CASES`; the
test prints it with the scores obtained (``pytest -s``). Chapter 1's exercises: 1.1 (2 points),
1.2 (3) are functions, 1.3 (3) is a module, 1.4 (2) is a value.
"""

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from course.exercises import get_exercise
from course.grading import Limits, find_exercise_cells, grade, release_notebook

from ch01_answers import CONV_COST, FULL, IM2COL, OUTPUT_SIZE, POINTS, chapter1_notebook  # tests/ is on sys.path

# What a cheater would like the grader to see: the right outcomes, computed by the course.
FORGED = '''
import json, sys, builtins
fake = {"outcomes": {i: [{"status": "ok", "value": None}] for i in ("1.1", "1.2", "1.3", "1.4")}}
print(json.dumps(fake))
'''


def chapter1(answers=None, checks=False):
    """A Chapter 1 solution notebook (``answers``: id -> solution cell source; ``checks``: with
    check cells, which import torch in the kernel: slow, so only where a case needs them)."""
    return chapter1_notebook(answers, checks, import_check=True)


def stub():
    return release_notebook(chapter1(checks=True))  # a stub's check returns before importing torch


def solution_cell(nb, exercise_id):
    return nb.cells[find_exercise_cells(nb)[exercise_id]["solution"][0]]


def with_cells(nb, *sources, at=None):
    """``nb`` with code cells added (at position ``at``, default: the end)."""
    for k, source in enumerate(sources):
        cell = new_code_cell(source)
        if at is None:
            nb.cells.append(cell)
        else:
            nb.cells.insert(at + k, cell)
    return nb


def drop(nb, exercise_id):
    nb.cells = [c for c in nb.cells if c.metadata.get("course", {}).get("exercise") != exercise_id]
    return nb


def expect(**zeros):
    """Expected points: full marks except the ids given (as ``e1_1=0``)."""
    out = dict(POINTS)
    for key, value in zeros.items():
        out[key[1:].replace("_", ".")] = value
    return out


ZERO = {i: 0 for i in POINTS}


def hard_coded(exercise_id: str) -> str:
    """A solution cell that returns the right result for every case `check` shows, looked up in a
    table, and the first one's for any other input."""
    e = get_exercise(exercise_id)
    table = {tuple(case.values()): value for case, value in zip(e.cases, e.expected())}
    first = e.expected()[0]
    params = ", ".join(e.cases[0])
    return (f"TABLE = {table!r}\n\ndef {e.answer}({params}):\n"
            f"    return TABLE.get(({params},), {first!r})\n")


def build(folder: Path, out: Path):
    """Write every case into ``folder``; return ``{file name: (description, expected, message bits)}``."""
    cases = {}

    def nb_case(name, description, nb, expected, *bits):
        nbformat.write(nb, folder / f"{name}.ipynb")
        cases[f"{name}.ipynb"] = (description, expected, bits)

    def file_case(name, description, data, *bits):
        (folder / name).write_bytes(data)
        cases[name] = (description, dict(ZERO), bits)

    nb_case("correct", "every answer right", chapter1(), dict(POINTS), "1.2 passed")
    nb_case("stub", "the student copy as released", stub(), dict(ZERO), "not attempted yet")
    # --- faking the grade ---
    nb_case("redefines_check", "stubs + its own check() that prints 'passed'",
            with_cells(stub(), "def check(*a, **k):\n    print('Exercise passed (all points)')\n    return True",
                       at=3), dict(ZERO), "not attempted yet")
    nb_case("prints_passed", "stubs + prints every 'passed' message",
            with_cells(stub(), "\n".join(f"print('Exercise {i} passed: 8/8 cases ({p} points)')"
                                         for i, p in POINTS.items())), dict(ZERO), "not attempted yet")
    nb_case("patches_course", "stubs + monkeypatches course's checks and references in memory",
            with_cells(stub(), "import course.exercises.core as c, course.exercises.ch01 as m\n"
                               "c.grade_outcomes = lambda e, o: (e.points, 'passed')\n"
                               "c.collect_outcomes = lambda *a, **k: [{'status': 'ok', 'value': 0}]\n"
                               "c.compare_values = lambda *a, **k: None\n"
                               "m._ref_conv_cost = lambda **k: None\n"
                               "heaviest_conv = None"), dict(ZERO), "not attempted yet")
    nb_case("forges_probe", "stubs + hijacks stdout/json/builtins.exec to forge the probe's report",
            with_cells(stub(), FORGED + "import builtins, io\n_exec = builtins.exec\n"
                               "def fake_exec(code, *a, **k):\n    print(json.dumps(fake))\n"
                               "builtins.exec = fake_exec\njson.dumps = lambda *a, **k: json.JSONEncoder().encode(fake)\n"
                               "class Out(io.StringIO):\n    def write(self, s):\n"
                               "        return sys.__stdout__.write(json.JSONEncoder().encode(fake))\n"
                               "sys.stdout = Out()"), dict(ZERO), "not attempted yet")
    forged_report = {"submission": "x", "name": "stub", "total": 9, "max": 9, "exercises": [], "complete": True}
    cheat = stub()
    solution_cell(cheat, "1.1").source = OUTPUT_SIZE.replace("    ### BEGIN SOLUTION\n", "").replace("    ### END SOLUTION\n", "")
    nb_case("writes_reports", "1.1 right, the rest stubs; writes forged reports into the output folder",
            with_cells(cheat, f"import json, os\nfor name in ('stub', 'writes_reports'):\n"
                       f"    d = os.path.join({str(out)!r}, name)\n    os.makedirs(d, exist_ok=True)\n"
                       f"    for f in ('report.json', 'results.json'):\n"
                       f"        open(os.path.join(d, f), 'w').write(json.dumps({forged_report!r}))"),
            {"1.1": 2, "1.2": 0, "1.3": 0, "1.4": 0}, "1.1 passed")
    nb_case("hard_coded", "conv_cost looks its results up in a table of the cases `check` shows",
            chapter1({"1.2": hard_coded("1.2")}), expect(e1_2=0), "failed on a hidden case", "8/8 cases pass")
    # --- kernels that die, hang, exit or blow memory ---
    nb_case("sys_exit", "a cell calls sys.exit() mid-notebook", with_cells(chapter1(), "import sys\nsys.exit(3)", at=3),
            dict(POINTS))
    nb_case("kernel_dies", "os._exit(1) before the exercises: functions graded alone, the value lost",
            with_cells(chapter1(), "import os\nos._exit(1)", at=3), expect(e1_4=0), "the kernel died")
    nb_case("exits_at_end", "the last cell kills its kernel (no value can be read)",
            with_cells(chapter1(), "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"), expect(e1_4=0),
            "the kernel died")
    nb_case("hangs", "a cell that swallows the interrupt (kernel stuck)",
            with_cells(chapter1(), "import time\nwhile True:\n    try:\n        time.sleep(10)\n"
                                   "    except KeyboardInterrupt:\n        pass", at=3), expect(e1_4=0),
            "did not stop after Cell 4")
    nb_case("endless_loop", "a cell loops forever (interrupted, the rest runs)",
            with_cells(chapter1(), "while True:\n    pass", at=3), dict(POINTS))
    nb_case("memory_error", "allocates 6 GB in a cell (hits the memory ceiling: MemoryError, kernel lives)",
            with_cells(chapter1(), "hog = [bytearray(512 * 1024 * 1024) for _ in range(12)]", at=3), dict(POINTS))
    nb_case("oom_killed", "fills 3 GB of shared memory (over the RSS limit: the kernel is killed)",
            with_cells(chapter1(), "import mmap\nm = mmap.mmap(-1, 3 * 1024 ** 3)\nchunk = b'x' * 2 ** 26\n"
                                   "for _ in range(48):\n    m.write(chunk)", at=3), expect(e1_4=0),
            "memory limit exceeded")
    # --- cells moved around ---
    dup = chapter1()
    wrong_first = solution_cell(dup, "1.2")
    dup.cells.insert(dup.cells.index(wrong_first), new_code_cell(CONV_COST.replace("(N // groups)", "N"),
                                                               metadata=dict(wrong_first.metadata)))
    nb_case("duplicated_wrong_then_right", "1.2 cell duplicated: a wrong one, then the right one", dup, dict(POINTS),
            "2 solution cells")
    dup2 = chapter1()
    first = solution_cell(dup2, "1.2")
    dup2.cells.insert(dup2.cells.index(first) + 1, new_code_cell(CONV_COST.replace("(N // groups)", "N"),
                                                                 metadata=dict(first.metadata)))
    nb_case("duplicated_right_then_wrong", "1.2 cell duplicated: right, then a wrong one run last", dup2,
            expect(e1_2=0), "2 solution cells", "divide by the groups")
    nb_case("deleted", "the 1.3 cells deleted", drop(chapter1(), "1.3"), expect(e1_3=0), "not in the notebook")
    rev = chapter1()
    head, body = rev.cells[:3], rev.cells[3:]
    starts = [k for k, c in enumerate(body) if c.cell_type == "markdown"] + [len(body)]
    rev.cells = head + [c for a, b in reversed(list(zip(starts, starts[1:]))) for c in body[a:b]]
    nb_case("reordered", "exercises in reverse order", rev, dict(POINTS))
    merged = drop(chapter1({"1.1": OUTPUT_SIZE + "\n\n" + CONV_COST}), "1.2")
    nb_case("merged", "1.2's function written in 1.1's cell, 1.2's cells deleted", merged, dict(POINTS),
            "no cell carries this exercise's id")
    retag = chapter1()
    cell_12, cell_13 = solution_cell(retag, "1.2"), solution_cell(retag, "1.3")
    cell_12.metadata["course"]["exercise"], cell_13.metadata["course"]["exercise"] = "1.3", "1.2"
    nb_case("retagged", "the 1.2 and 1.3 solution cells carry each other's ids", retag, dict(POINTS),
            "does not define it")
    nb_case("renamed", "conv_cost renamed conv_costs", chapter1({"1.2": CONV_COST.replace("def conv_cost(", "def conv_costs(")}),
            expect(e1_2=0), "defines `conv_costs` instead")
    # --- answers that are wrong in instructive ways ---
    nb_case("missing_import", "Im2colConv2d uses math without importing it",
            chapter1({"1.3": IM2COL.replace("H_out = (", "H_out = math.floor(")}), expect(e1_3=0),
            "NameError: name 'math' is not defined")
    nb_case("import_elsewhere", "math imported in another cell, used in 1.1",
            with_cells(chapter1({"1.1": OUTPUT_SIZE.replace(
                "return (size + 2 * padding - span) // stride + 1",
                "return math.floor((size + 2 * padding - span) / stride) + 1")}), "import math", at=2), dict(POINTS))
    nb_case("helper_elsewhere", "conv_cost calls a helper and a constant defined in other cells",
            with_cells(chapter1({"1.2": CONV_COST.replace("weight = K * K", "weight = ONE * K * K").replace(
                "H_out = (H + 2 * padding - K) // stride + 1", "H_out = out_size(H, K, stride, padding)")}),
                "ONE = 1\ndef out_size(n, K, stride, padding):\n    return (n + 2 * padding - K) // stride + 1\n"
                "print('plain statements here never run in the probe')\nimport os\nos._exit(0)", at=2),
            expect(e1_4=0))
    nb_case("float_not_int", "conv_output_size divides with / (returns floats)",
            chapter1({"1.1": OUTPUT_SIZE.replace("// stride", "/ stride")}), expect(e1_1=0), "got a float")
    nb_case("string_answer", "Im2colConv2d.forward returns a str",
            chapter1({"1.3": IM2COL.replace("return out.view(", "return 'high' or out.view(")}), expect(e1_3=0),
            "return one tensor")
    nb_case("list_and_numpy", "conv_cost returns a list of numpy ints (accepted)",
            chapter1({"1.2": CONV_COST.replace("    return H_out * W_out * weight, weight + (M if bias else 0)",
                                               "    import numpy as np\n"
                                               "    return [np.int64(H_out * W_out * weight), np.int64(weight + (M if bias else 0))]")}),
            dict(POINTS))
    nb_case("slow_answer", "conv_cost sleeps 60 s per call", chapter1({"1.2": CONV_COST.replace(
        "    H_out =", "    import time\n    time.sleep(60)\n    H_out =", 1)}), expect(e1_2=0), "did not return within")
    nb_case("mutates", "conv_output_size rewrites the course's cases in memory and keeps state between calls",
            chapter1({"1.1": "import course.exercises.ch01 as m\n"
                             "def conv_output_size(size, K, stride, padding, dilation, _seen=[]):\n"
                             "    for case in m._OUTPUT_SIZE_CASES:\n        case['size'] = 0\n"
                             "    _seen.append(size)\n    return len(_seen)\n"}), expect(e1_1=0), "First failing case")
    nb_case("exits_when_called", "Im2colConv2d.forward calls os._exit(0) (only its own exercise is lost)",
            chapter1({"1.3": IM2COL.replace("        B, _, H, W =", "        import os\n        os._exit(0)\n        B, _, H, W =")},
                     checks=False), expect(e1_3=0), "exited")
    nb_case("raises_systemexit", "conv_output_size raises SystemExit", chapter1({"1.1": OUTPUT_SIZE.replace(
        "    span =", "    raise SystemExit(1)\n    span =")}), expect(e1_1=0), "raised SystemExit")
    nb_case("recursion", "conv_cost recurses forever", chapter1({"1.2": CONV_COST.replace(
        "    H_out =", "    return conv_cost(H, W, N, M, K, stride, padding, groups, bias)\n    H_out =", 1)}),
            expect(e1_2=0), "RecursionError")
    nb_case("syntax_error", "a syntax error in the 1.1 cell", chapter1({"1.1": OUTPUT_SIZE.replace("return (", "return ((")}),
            expect(e1_1=0), "SyntaxError")
    nb_case("cell_magic", "1.3 cell starts with %%time and prints a lot",
            chapter1({"1.3": "%%time\nprint('x' * 100000)\n" + IM2COL}), dict(POINTS))
    nb_case("value_wrong_type", "heaviest_conv = 3", chapter1({"1.4": "heaviest_conv = 3\n"}), expect(e1_4=0),
            "not a str")
    nb_case("value_from_state", "heaviest_conv computed in an earlier plain cell",
            with_cells(chapter1({"1.4": "heaviest_conv = top\n"}), "names = ['layer1.0.conv1', 'conv1']\ntop = names[-1]",
                       at=3), dict(POINTS))
    nb_case("plants_modules", "writes json.py and sitecustomize.py into its working folder",
            with_cells(chapter1(), "for m in ('json.py', 'sitecustomize.py', 'course.py'):\n"
                                   "    open(m, 'w').write('raise SystemExit(7)')", at=3), dict(POINTS))
    # --- files that are not Chapter 1 notebooks ---
    file_case("essay.txt", "a text file, not a notebook", b"My answers are in my head.", "not a notebook")
    file_case("solution.py", "a Python script", OUTPUT_SIZE.encode(), "not a notebook")
    file_case("corrupt.ipynb", "corrupt JSON", b'{"cells": [', "could not read the notebook")
    file_case("empty.ipynb", "an empty file", b"", "the file is empty")
    file_case("not_cells.ipynb", "valid JSON, not a notebook", b'{"cells": 5}', "could not read the notebook")
    r_nb = chapter1()
    r_nb.metadata["kernelspec"] = {"name": "ir", "display_name": "R", "language": "R"}
    r_nb.metadata["language_info"] = {"name": "R"}
    nbformat.write(r_nb, folder / "r_kernel.ipynb")
    cases["r_kernel.ipynb"] = ("a notebook of the R kernel", dict(ZERO), ("R kernel",))
    nb_case("no_exercises", "a notebook without exercise cells", new_notebook(cells=[new_code_cell("1 + 1")]),
            dict(ZERO), "not in the notebook")
    return cases


def snapshot(folder: Path):
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


LIMITS = Limits(notebook_s=300, cell_s=20, case_s=10, memory_mb=1536)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    out = tmp_path_factory.mktemp("hostile-grades")
    cases = build(folder, out)
    before = snapshot(folder)
    # Limits far from what the cells do (instant, or endless), so a busy machine grades the same.
    results = grade(folder, out, LIMITS, jobs=2, quiet=True)
    by_file = {Path(r.submission).name: r for r in results}
    return {"cases": cases, "results": by_file, "folder": folder, "before": before, "out": out}


@pytest.mark.slow
def test_at_least_30_cases(hostile):
    assert len(hostile["cases"]) >= 30
    assert sorted(hostile["results"]) == sorted(hostile["cases"])


@pytest.mark.slow
def test_every_case_gets_its_expected_score(hostile):
    rows, wrong = [], []
    for name, (description, expected, bits) in hostile["cases"].items():
        result = hostile["results"][name]
        got = {e.id: e.points for e in result.exercises}
        rows.append((name, description, sum(expected.values()), result.total))
        if got != expected or result.max_points != FULL:
            wrong.append(f"{name}: expected {expected}, got {got} (max {result.max_points})\n"
                         + "\n".join(e.message for e in result.exercises))
    print("\nhostile-submission table (case | what it does | expected | got):")
    for name, description, want, got in rows:
        print(f"| {name} | {description} | {want}/{FULL} | {got}/{FULL} |")
    assert not wrong, "\n\n".join(wrong)


@pytest.mark.slow
def test_every_case_explains_itself(hostile):
    missing = []
    for name, (_, _, bits) in hostile["cases"].items():
        result = hostile["results"][name]
        text = "\n".join([e.message for e in result.exercises] + [json.dumps([p.to_dict() for p in result.errors])]
                         + result.notes)
        missing += [f"{name}: {bit!r} not in:\n{text}" for bit in bits if bit not in text]
    assert not missing, "\n\n".join(missing)


@pytest.mark.slow
def test_memory_and_kernel_deaths_are_reported(hostile):
    results = hostile["results"]
    assert any(e.kind == "MemoryLimit" for e in results["oom_killed.ipynb"].errors)
    assert any(e.kind == "MemoryError" for e in results["memory_error.ipynb"].errors)
    assert [t.kind for t in results["endless_loop.ipynb"].timeouts] == ["cell"]
    assert results["kernel_dies.ipynb"].errors[0].kind == "DeadKernelError"


@pytest.mark.slow
def test_forged_reports_are_overwritten(hostile):
    for name, total in (("stub", 0), ("writes_reports", 2)):
        report = json.loads((hostile["out"] / name / "report.json").read_text())
        gradescope = json.loads((hostile["out"] / name / "results.json").read_text())
        assert report["total"] == total and gradescope["score"] == total
        assert report["complete"] is True


@pytest.mark.slow
def test_submission_folder_is_untouched(hostile):
    assert snapshot(hostile["folder"]) == hostile["before"]


@pytest.mark.slow
def test_gradebook_has_one_row_per_submission(hostile):
    import csv

    rows = list(csv.DictReader((hostile["out"] / "gradebook.csv").open()))
    assert len(rows) == len(hostile["cases"])
    assert list(rows[0]) == ["student", *POINTS, "total"]  # what an LMS imports: every other column is a grade
    by_student = {row["student"]: row for row in rows}
    assert by_student["correct"]["total"] == str(FULL) and by_student["correct"]["1.2"] == "3"
    assert by_student["essay"]["total"] == "0"
    summary = json.loads((hostile["out"] / "summary.json").read_text())
    assert summary["max_points"] == POINTS
