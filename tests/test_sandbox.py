"""The bubblewrap sandbox of ``course grade`` (issue 15, section 2).

* what code inside the sandbox sees (a Python snippet run the way the grader runs answers);
* the probe's fallback: a one-line warning that says why and how to enable it, and
  ``--sandbox=require`` failing instead (with a fake ``bwrap`` that fails as on Ubuntu 24.04);
* hostile submissions that read ``solutions/``, read a file in the instructor's home, write
  outside their scratch folder, open a network socket, or list other submissions: graded with
  the sandbox, each gets nothing and loses only its own points; graded without it, the same
  notebooks succeed (so these tests can fail). The table (case, expected, got) is printed.

Skipped, with the probe's reason, where bubblewrap cannot run.
"""

import json
import os
import secrets
import shutil
import socket
import sys
import tempfile
import threading
from pathlib import Path

import nbformat
import pytest

from course.cli import main
from course.grading import Limits, grade
from course.grading.isolation import run_limited
from course.grading.sandbox import SandboxUnavailable, choose, course_root, probe

from ch01_answers import CONV_COST, FULL, POINTS  # tests/ is on sys.path
from test_hostile import chapter1, solution_cell

SANDBOX, WHY_NOT = probe()
needs_sandbox = pytest.mark.skipif(SANDBOX is None, reason=f"bubblewrap cannot run here: {WHY_NOT}")
ROOT = Path(__file__).resolve().parents[1]


# --- what the code inside sees ----------------------------------------------------------------

INSIDE = r'''
import json, os, socket, sys
seen = {}
def attempt(name, action):
    try:
        seen[name] = ["ok", repr(action())[:200]]
    except BaseException as exc:
        seen[name] = [type(exc).__name__, str(exc)[:200]]
paths = json.loads(sys.argv[1])
attempt("solutions", lambda: os.listdir(paths["solutions"]))
attempt("home", lambda: open(paths["secret"]).read())
attempt("write_course", lambda: open(os.path.join(paths["course"], "_sandbox_write_test"), "w").write("x"))
attempt("write_scratch", lambda: open("scratch.txt", "w").write("x"))
attempt("network", lambda: socket.create_connection(("127.0.0.1", paths["port"]), timeout=5).close())
attempt("import_course", lambda: __import__("course").__name__)
seen["env_secret"] = os.environ.get("COURSE_TEST_TOKEN_OUTSIDE")
seen["cwd"] = os.getcwd()
print(json.dumps(seen))
'''


class Listener:
    """A TCP server on the grader's loopback that counts the connections it accepts."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self):
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture(scope="module")
def instructor_secret():
    """A file in the instructor's real home folder (removed afterwards)."""
    folder = Path(tempfile.mkdtemp(prefix=".course-sandbox-test-", dir=Path.home()))
    token = secrets.token_hex(16)
    (folder / "secret.txt").write_text(token)
    yield folder / "secret.txt", token
    shutil.rmtree(folder, ignore_errors=True)


@needs_sandbox
def test_inside_the_sandbox_only_scratch_python_and_the_course_are_there(tmp_path, instructor_secret, monkeypatch):
    secret, token = instructor_secret
    listener = Listener()
    monkeypatch.setenv("COURSE_TEST_TOKEN_OUTSIDE", "visible")  # COURSE_* passes: the prefix is allowed
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", token)
    paths = {"solutions": str(ROOT / "solutions"), "secret": str(secret), "course": str(course_root() / "course"),
             "port": listener.port}
    try:
        rc, out, err, problem = run_limited([sys.executable, "-c", INSIDE, json.dumps(paths)], b"", timeout_s=120,
                                            memory_mb=2048, cwd=str(tmp_path), env=dict(os.environ), sandbox=SANDBOX)
    finally:
        listener.close()
    assert rc == 0 and problem is None, err.decode()
    seen = json.loads(out.decode().splitlines()[-1])
    assert seen["solutions"][0] == "FileNotFoundError"
    assert seen["home"][0] == "FileNotFoundError" and token not in json.dumps(seen)
    assert seen["write_course"][0] == "OSError" and "Read-only file system" in seen["write_course"][1]
    assert seen["write_scratch"][0] == "ok" and (tmp_path / "scratch.txt").read_text() == "x"
    assert seen["network"][0] in ("ConnectionRefusedError", "OSError") and listener.accepted == 0
    assert seen["import_course"] == ["ok", "'course'"] and seen["cwd"] == str(tmp_path)
    assert seen["env_secret"] == "visible"
    assert not (course_root() / "course" / "_sandbox_write_test").exists()


def test_the_sandbox_argv_binds_no_home_and_no_repository(tmp_path):
    sandbox, _ = probe()
    if sandbox is None:
        from course.grading.sandbox import Sandbox, _python_paths

        sandbox = Sandbox(bwrap="bwrap", read_only=tuple(_python_paths()), course_root=str(course_root()))
    argv = sandbox.wrap(["python", "-c", "pass"], scratch=str(tmp_path), env={"HOME": "/root", "TOKEN": "x"})
    binds = {argv[i + 1] for i, a in enumerate(argv) if a in ("--bind", "--ro-bind")}
    assert {"--unshare-all", "--clearenv", "--die-with-parent"} <= set(argv)
    assert str(Path.home()) not in binds and str(course_root()) not in binds  # the repository (solutions/) is not
    assert str(course_root() / "course") in binds and str(tmp_path) in binds
    assert "TOKEN" not in argv and argv[argv.index("HOME") + 1] == str(tmp_path)


# --- the probe and its fallback (no bubblewrap needed) ----------------------------------------


@pytest.fixture
def blocked_bwrap(tmp_path, monkeypatch):
    """A ``bwrap`` that fails as it does where user namespaces are blocked (Ubuntu 24.04)."""
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("COURSE_BWRAP", str(fake))
    return fake


def test_where_user_namespaces_are_blocked_grading_warns_once_and_goes_on(blocked_bwrap):
    warnings = []
    assert choose("auto", warn=warnings.append) is None
    (line,) = warnings
    assert "grading without the sandbox" in line and "user namespace" in line
    assert "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0" in line and "--sandbox=require" in line
    with pytest.raises(SandboxUnavailable, match="Permission denied"):
        choose("require")
    assert choose("off") is None


def test_without_bubblewrap_the_warning_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_BWRAP", str(tmp_path / "nowhere" / "bwrap"))
    warnings = []
    assert choose("auto", warn=warnings.append) is None
    assert "apt-get install bubblewrap" in warnings[0]


def test_cli_sandbox_modes(blocked_bwrap, tmp_path, capsys):
    bad = tmp_path / "subs" / "01_x.ipynb"
    bad.parent.mkdir()
    bad.write_text("not json")
    out = tmp_path / "out"
    assert main(["grade", str(bad), "--out", str(out), "--sandbox=require"]) == 1
    err = capsys.readouterr().err
    assert "the sandbox is required but unavailable" in err and not out.exists()
    assert main(["grade", str(bad), "--out", str(out)]) == 0  # auto: a warning, and the batch runs
    err = capsys.readouterr().err
    assert len([line for line in err.splitlines() if "WARNING" in line]) == 1
    assert main(["grade", str(bad), "--out", str(out), "--no-sandbox", "--force"]) == 0
    assert "WARNING" not in capsys.readouterr().err
    report = json.loads((out / "01_x" / "report.json").read_text())
    assert report["sandboxed"] is False and report["max"] == FULL


# --- hostile submissions, graded with and without the sandbox ---------------------------------


def attacks(secret: Path, port: int, subs: Path, token: str):
    """``{name: (what it does, statement)}``: each statement is run at the top of ``conv_cost``
    (the answer process) and before ``heaviest_conv`` is set (the kernel)."""
    course_dir = course_root() / "course"
    return {
        "reads_solutions": ("opens solutions/01_convolution_cost.ipynb",
                            f"open({str(ROOT / 'solutions' / '01_convolution_cost.ipynb')!r}).read()"),
        "reads_home": ("reads a file in the instructor's home", f"open({str(secret)!r}).read()"),
        "writes_outside": ("writes a file into the course package",
                           f"open({str(course_dir)!r} + '/_sandbox_test_{token}_' + WHERE, 'w').write('x')"),
        "opens_socket": ("connects to a server on the grader's loopback",
                         f"__import__('socket').create_connection(('127.0.0.1', {port}), timeout=5).close()"),
        "lists_submissions": ("lists the other submissions", f"__import__('os').listdir({str(subs)!r})"),
    }


def hostile_notebook(statement: str):
    nb = chapter1()
    solution_cell(nb, "1.2").source = CONV_COST.replace(
        "    ### BEGIN SOLUTION\n", f"    ### BEGIN SOLUTION\n    WHERE = 'replay'\n    {statement}\n")
    solution_cell(nb, "1.4").source = f"heaviest_conv = None\nWHERE = 'kernel'\n{statement}\nheaviest_conv = 'conv1'\n"
    return nb


def grade_attacks(tmp_path_factory, secret, sandbox):
    subs = tmp_path_factory.mktemp(f"attacks-{sandbox}")
    token = secrets.token_hex(8)  # names the files the attacks try to write
    listener = Listener()
    try:
        cases = attacks(secret, listener.port, subs, token)
        for name, (_, statement) in cases.items():
            nbformat.write(hostile_notebook(statement), subs / f"{name}.ipynb")
        out = tmp_path_factory.mktemp(f"attack-grades-{sandbox}")
        results = grade(subs, out, Limits(notebook_s=300, cell_s=60, case_s=10), sandbox=sandbox, jobs=2, quiet=True)
    finally:
        listener.close()
    written = sorted(p.name for p in (course_root() / "course").glob(f"_sandbox_test_{token}_*"))
    for path in (course_root() / "course").glob(f"_sandbox_test_{token}_*"):
        path.unlink()
    executed = "".join((out / r.name / "executed.ipynb").read_text() for r in results)
    return {"cases": cases, "results": {r.name: r for r in results}, "accepted": listener.accepted,
            "written": [name.replace(token, "TOKEN") for name in written], "executed": executed}


@pytest.fixture(scope="module")
def attacked(tmp_path_factory, instructor_secret):
    secret, _ = instructor_secret
    return {mode: grade_attacks(tmp_path_factory, secret, mode) for mode in ("require", "off")}


ATTACK_POINTS = {**POINTS, "1.2": 0, "1.4": 0}  # only the attacking answers lose their points
BLOCKED = {"reads_solutions": "FileNotFoundError", "reads_home": "FileNotFoundError", "writes_outside": "OSError",
           "opens_socket": "ConnectionRefusedError", "lists_submissions": "FileNotFoundError"}


@needs_sandbox
@pytest.mark.slow
def test_hostile_submissions_get_nothing_in_the_sandbox(attacked, instructor_secret):
    _, token = instructor_secret
    run = attacked["require"]
    rows, wrong = [], []
    for name, (what, _) in run["cases"].items():
        result = run["results"][name]
        got = {e.id: e.points for e in result.exercises}
        kernel_errors = sorted({e.kind for e in result.errors if e.exercise == "1.4"})
        rows.append(f"| {name} | {what} | {sum(ATTACK_POINTS.values())}/{FULL}, {BLOCKED[name]} | "
                    f"{result.total}/{FULL}, {', '.join(kernel_errors)} |")
        replay_error = f"raised {BLOCKED[name]}"
        if got != ATTACK_POINTS or replay_error not in result.exercise("1.2").message or kernel_errors != [BLOCKED[name]]:
            wrong.append(f"{name}: {got}\n{result.exercise('1.2').message}\n{[e.to_dict() for e in result.errors]}")
        assert result.sandboxed is True
    print("\nsandbox table (case | what it does | expected | got):\n" + "\n".join(rows))
    assert not wrong, "\n\n".join(wrong)
    assert run["accepted"] == 0 and run["written"] == [] and token not in run["executed"]


@needs_sandbox
@pytest.mark.slow
def test_without_the_sandbox_the_same_submissions_succeed(attacked):
    """The attacks are real: with ``--sandbox=off`` each one reaches its target (and scores)."""
    run = attacked["off"]
    assert all(r.total == FULL and r.sandboxed is False for r in run["results"].values()), \
        {n: [e.message for e in r.exercises if not e.passed] for n, r in run["results"].items()}
    assert run["accepted"] >= 2  # the answer process and the kernel both connected
    assert run["written"] == ["_sandbox_test_TOKEN_kernel", "_sandbox_test_TOKEN_replay"]
