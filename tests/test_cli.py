"""The ``course grade`` command as instructors and CI use it: the GitHub Actions workflow's own
command line and the GitHub Classroom tests run here, resume and ``--force``, ``--require``,
per-student gradebooks, usage errors, and the stop when the grader's code changes on disk."""

import csv
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from course.cli import main
from course.grading import grade
from test_hostile import CONV_COST, FULL, POINTS, chapter1, hard_coded, solution_cell

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "grade.yml"
CLASSROOM = ROOT / ".github" / "classroom" / "autograding.json"
BIN = Path(sys.executable).parent


def shell(command: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run a workflow's command line with bash, the venv's ``course`` first on PATH."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def student_repo(tmp_path: Path, wrong: bool = False) -> Path:
    """A student's repository: ``notebooks/01_convolution_cost.ipynb`` (quick synthetic copy)."""
    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    nb = chapter1()
    if wrong:
        solution_cell(nb, "1.2").source = CONV_COST.replace("(N // groups)", "N")
    nbformat.write(nb, repo / "notebooks" / "01_convolution_cost.ipynb")
    return repo


def workflow_command() -> str:
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["grade"]["steps"]
    (step,) = [s for s in steps if s.get("name") == "Grade the notebooks"]
    return step["run"]


def test_workflow_is_the_documented_command():
    command = workflow_command()
    assert shlex.split(command)[:3] == ["course", "grade", "notebooks"]
    assert "--out grades" in command
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["grade"]["steps"]
    assert any("constraints.txt" in s.get("run", "") for s in steps)
    assert any(s.get("uses", "").startswith("actions/upload-artifact") for s in steps)
    # The sandbox: bubblewrap, and the user namespaces ubuntu-24.04 blocks by default.
    sandbox = " ".join(s.get("run", "") for s in steps[: steps.index(next(s for s in steps if s.get("name") == "Grade the notebooks"))])
    assert "apt-get install -y -qq bubblewrap" in sandbox and "apparmor_restrict_unprivileged_userns=0" in sandbox
    readme = (ROOT / "docs" / "grading.md").read_text()
    assert command in readme


@pytest.mark.slow
def test_workflow_command_grades_a_student_repository(tmp_path):
    repo = student_repo(tmp_path, wrong=True)
    before = (repo / "notebooks" / "01_convolution_cost.ipynb").read_bytes()
    done = shell(workflow_command(), repo)
    assert done.returncode == 0, done.stderr
    grades = repo / "grades"
    report = json.loads((grades / "01_convolution_cost" / "report.json").read_text())
    assert report["total"] == FULL - POINTS["1.2"] and report["complete"] is True
    assert {p.name for p in (grades / "01_convolution_cost").iterdir()} >= {
        "report.json", "results.json", "junit.xml", "feedback.md", "feedback.html", "executed.ipynb"}
    (row,) = list(csv.DictReader((grades / "gradebook.csv").open()))
    assert row["student"] == "01_convolution_cost" and row["1.2"] == "0" and row["total"] == str(FULL - 3)
    assert "Grading summary" in (grades / "summary.md").read_text()
    feedback = (grades / "01_convolution_cost" / "feedback.md").read_text()
    assert f"**Score: {FULL - 3} / {FULL}**" in feedback and "divide by the groups" in feedback
    assert (repo / "notebooks" / "01_convolution_cost.ipynb").read_bytes() == before
    assert sorted(p.name for p in (repo / "notebooks").iterdir()) == ["01_convolution_cost.ipynb"]

    # GitHub Classroom's tests: one per exercise; the first grades, the others resume.
    tests = json.loads(CLASSROOM.read_text())["tests"]
    assert sum(t["points"] for t in tests) == FULL
    outcomes = {}
    for test in tests:
        done = shell(test["run"], repo)
        exercise = test["run"].split("--require ")[1].split()[0]
        outcomes[exercise] = done.returncode
        assert "already graded" in done.stderr  # resumed from the workflow's reports
    assert outcomes == {"1.1": 0, "1.2": 1, "1.3": 0, "1.4": 0}


@pytest.mark.slow
def test_resume_force_and_changed_files(tmp_path, capsys):
    repo = student_repo(tmp_path)
    out = tmp_path / "out"
    nb = repo / "notebooks" / "01_convolution_cost.ipynb"
    assert main(["grade", str(nb), "--out", str(out), "--require", "all"]) == 0
    first = (out / "01_convolution_cost" / "report.json").read_text()
    capsys.readouterr()
    assert main(["grade", str(nb), "--out", str(out)]) == 0
    assert "already graded" in capsys.readouterr().err
    assert (out / "01_convolution_cost" / "report.json").read_text() == first
    assert main(["grade", str(nb), "--out", str(out), "--force"]) == 0
    assert "graded " in capsys.readouterr().err
    wrong = chapter1()
    solution_cell(wrong, "1.2").source = CONV_COST.replace("(N // groups)", "N")
    nbformat.write(wrong, nb)  # a new version of the file is graded again
    assert main(["grade", str(nb), "--out", str(out), "--require", "1.1,1.2"]) == 1
    assert "not passed: 01_convolution_cost: exercise 1.2" in capsys.readouterr().err


@pytest.mark.slow
def test_no_hidden_grades_the_shown_cases_only(tmp_path):
    nb = tmp_path / "01_hard_coded.ipynb"
    nbformat.write(chapter1({"1.2": hard_coded("1.2")}), nb)
    for option, points in (([], 0), (["--no-hidden"], 3)):
        out = tmp_path / f"out{len(option)}"
        assert main(["grade", str(nb), "--out", str(out), "--exercises", "1.2", *option]) == 0
        report = json.loads((out / "01_hard_coded" / "report.json").read_text())
        assert report["exercises"][0]["points"] == points, report["exercises"][0]["message"]


def test_folders_of_students_make_one_gradebook_row_each(tmp_path):
    subs = tmp_path / "subs"
    for student in ("alice", "bob"):
        (subs / student).mkdir(parents=True)
        (subs / student / "01_convolution_cost.ipynb").write_text("{ corrupt")
    (subs / "alice" / "notes.txt").write_text("not a notebook")
    (subs / ".hidden").mkdir()
    (subs / ".hidden" / "x.ipynb").write_text("{}")
    out = tmp_path / "out"
    results = grade(subs, out, quiet=True, jobs=2)
    assert sorted(r.name for r in results) == ["alice__01_convolution_cost", "alice__notes", "bob__01_convolution_cost"]
    rows = {row["student"]: row for row in csv.DictReader((out / "gradebook.csv").open())}
    assert sorted(rows) == ["alice", "bob"]
    assert rows["bob"]["total"] == "0" and rows["alice"]["1.2"] == "0"
    assert list(rows["alice"]) == ["student", *POINTS, "total"]
    report = json.loads((out / "alice__notes" / "report.json").read_text())
    assert report["errors"][0]["kind"] == "NotANotebook" and report["max"] == FULL
    feedback = (out / "bob__01_convolution_cost" / "feedback.md").read_text()
    assert "could not read the notebook" in feedback and f"**Score: 0 / {FULL}**" in feedback
    summary = json.loads((out / "summary.json").read_text())
    assert summary["submissions"] == 3 and summary["max_points"] == POINTS
    assert [r["name"] for r in summary["results"] if r["student"] == "alice"] == ["alice__01_convolution_cost", "alice__notes"]


def test_usage_errors(tmp_path, capsys):
    nb = tmp_path / "a.ipynb"
    nb.write_text("{}")
    out = str(tmp_path / "out")
    assert main(["grade", str(nb), "--out", out, "--jobs", "0"]) == 2
    assert main(["grade", str(nb), "--out", out, "--memory", "-1"]) == 2
    assert main(["grade", str(nb), "--out", out, "--require", "9.9"]) == 2
    assert "unknown exercise id(s): 9.9" in capsys.readouterr().err
    assert not Path(out).exists()


def test_a_change_to_the_graders_code_stops_the_batch(tmp_path, monkeypatch, capsys):
    import course.grading.batch as batch

    calls = []

    def changed(before):
        calls.append(before)
        return ["exercises/core.py"]

    monkeypatch.setattr(batch, "changed_files", changed)
    subs = tmp_path / "subs"
    subs.mkdir()
    for name in ("01_a.ipynb", "01_b.ipynb"):
        (subs / name).write_text("not json")
    assert main(["grade", str(subs), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "exercises/core.py" in err and "changed on disk" in err
    report = json.loads((tmp_path / "out" / "01_a" / "report.json").read_text())
    assert report["complete"] is False and "not trusted" in " ".join(report["notes"])
    assert not (tmp_path / "out" / "01_b").exists()  # the batch stopped
    assert "exercises/core.py" in calls[0] or calls[0]  # the fingerprint was taken before grading
