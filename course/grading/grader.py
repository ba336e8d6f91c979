"""Grade submitted notebooks: run each in a fresh kernel, call the answers in fresh processes, compare here.

For each submission:

1. read it: a file that is not a notebook, is empty or corrupt, or was written for another
   kernel scores 0 with the reason, and the batch goes on;
2. find the exercises from cell metadata (``{"course": {"exercise": "1.2", ...}}``), never
   from positions;
3. *function* exercises: build a program from the notebook's source with only what the answer
   needs (its own cells, plus the imports, ``def``s, classes and constants of other cells it
   uses) and call it on the grader's cases in a fresh, memory- and time-limited Python process
   (:mod:`course.grading.replay`); nothing else the notebook does runs there;
4. execute a copy of the notebook cell by cell in a fresh ``python3`` kernel (the grader's own
   Python, under a memory limit, in a scratch folder, with ``FAST = True`` injected after the
   ``parameters`` cell); a failing cell is recorded and the next one runs; each cell has a
   timeout and the whole notebook a wall-clock limit; then read the *value* answers (data the
   notebook computed) from that kernel;
5. grade all outcomes in the grader's process with :func:`course.exercises.grade_outcomes`
   (the notebook's own prints and checks are never trusted);
6. write ``report.json``, Gradescope ``results.json``, ``junit.xml``, ``feedback.md`` and the
   executed copy into ``out_dir/<name>/``, each atomically. The submission file and its folder
   are never written.

See ``docs/grading.md`` for the threat model: what this protects against and what it does not.
"""

from __future__ import annotations

import copy
import json
import os
import re
import secrets
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Union

from course.exercises import REGISTRY, VALUE, Exercise, get_exercise, grade_outcomes, list_exercises
from course.exercises.core import collect_outcomes

PathLike = Union[str, os.PathLike]

_TIMEOUT_ENAME = "CourseCellTimeout"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass
class ExerciseResult:
    """The grade of one exercise in one submission."""

    id: str
    title: str
    points: int
    max_points: int
    message: str

    @property
    def passed(self) -> bool:
        return self.points == self.max_points and self.max_points > 0

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}


@dataclass
class SubmissionResult:
    """The grade of one submission, with what went wrong while running it.

    ``errors``: cells that raised (``cell`` is the index in the submitted notebook,
    ``exercise`` its exercise id or ``None``). ``timeouts``: cells (or the probe, or the whole
    notebook) cut by a time limit. ``notes``: anything else worth telling the grader.
    """

    submission: str
    name: str
    total: int = 0
    max_points: int = 0
    exercises: List[ExerciseResult] = field(default_factory=list)
    errors: List[dict] = field(default_factory=list)
    timeouts: List[dict] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    kernel_python: Optional[str] = None
    duration_s: float = 0.0
    out_dir: Optional[str] = None
    student: Optional[str] = None
    sha256: Optional[str] = None
    resumed: bool = False
    tampered: bool = False

    def exercise(self, exercise_id: str) -> ExerciseResult:
        """The result for one exercise id."""
        for result in self.exercises:
            if result.id == exercise_id:
                return result
        raise KeyError(exercise_id)

    def to_dict(self) -> dict:
        """JSON-able form (the content of ``report.json``)."""
        return {
            "submission": self.submission,
            "name": self.name,
            "total": self.total,
            "max": self.max_points,
            "exercises": [e.to_dict() for e in self.exercises],
            "errors": self.errors,
            "timeouts": self.timeouts,
            "notes": self.notes,
            "kernel_python": self.kernel_python,
            "duration_s": round(self.duration_s, 2),
            "student": self.student or self.name,
            "sha256": self.sha256,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "SubmissionResult":
        """The inverse of :meth:`to_dict` (a stored ``report.json``)."""
        result = cls(submission=data["submission"], name=data["name"], total=int(data["total"]),
                     max_points=int(data["max"]), errors=list(data.get("errors", [])),
                     timeouts=list(data.get("timeouts", [])), notes=list(data.get("notes", [])),
                     kernel_python=data.get("kernel_python"), duration_s=float(data.get("duration_s", 0)),
                     student=data.get("student"), sha256=data.get("sha256"))
        result.exercises = [ExerciseResult(e["id"], e["title"], int(e["points"]), int(e["max_points"]), e["message"])
                            for e in data.get("exercises", [])]
        return result


# --- finding exercises ------------------------------------------------------------------------


def find_exercise_cells(nb) -> Dict[str, Dict[str, List[int]]]:
    """Exercise ids found in cell metadata: ``{"1.2": {"solution": [7], "check": [8]}, ...}``.

    Cell indices are positions in ``nb`` (for reports only; grading never depends on them).
    """
    found: Dict[str, Dict[str, List[int]]] = {}
    for index, cell in enumerate(nb.get("cells", [])):
        meta = cell.get("metadata", {}).get("course")
        if not isinstance(meta, dict) or not meta.get("exercise"):
            continue
        parts = found.setdefault(str(meta["exercise"]), {})
        parts.setdefault(str(meta.get("part", "other")), []).append(index)
    return found


def _chapter_of(exercise_id: str) -> Optional[int]:
    head = str(exercise_id).split(".")[0]
    return int(head) if head.isdigit() else None


def _chapter_from_name(path: Path) -> Optional[int]:
    match = re.match(r"(\d+)_", path.name)
    return int(match.group(1)) if match else None


def expected_exercises(found_ids: Iterable[str], path: Optional[Path] = None) -> List[Exercise]:
    """The exercises a submission should contain: every registered exercise of each chapter
    seen in its metadata (or named by an ``NN_`` file-name prefix)."""
    chapters = {c for c in (_chapter_of(i) for i in found_ids) if c is not None}
    if path is not None and _chapter_from_name(path) is not None:
        chapters.add(_chapter_from_name(path))
    return [e for c in sorted(chapters) for e in list_exercises(c)]


# --- running a notebook -----------------------------------------------------------------------


@dataclass
class _Run:
    errors: List[dict] = field(default_factory=list)
    timeouts: List[dict] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    outcomes: Optional[Dict[str, list]] = None
    problem: Optional[str] = None  # why there are no outcomes
    kernel_python: Optional[str] = None
    executed: object = None
    memory_exceeded: bool = False


def _clean(text, limit: int = 500) -> str:
    text = _ANSI.sub("", str(text))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _probe_source(specs: List[dict], marker: str) -> str:
    """A cell that runs ``collect_outcomes`` on each answer and prints JSON between markers.

    It runs in a fresh namespace (so a learner's ``list = ...`` or ``json = ...`` cannot break
    it) and reads the answers from the notebook's globals.
    """
    import inspect
    import textwrap

    body = textwrap.dedent(inspect.getsource(collect_outcomes))
    main = f'''
def _main():
    import json, sys
    specs = json.loads({json.dumps(specs)!r})
    result = {{"python": sys.executable, "outcomes": {{}}}}
    for spec in specs:
        if spec["answer"] in USER_NS:
            outcomes = collect_outcomes(
                USER_NS[spec["answer"]], spec["kind"], spec["cases"], spec["case_timeout_s"]
            )
        else:
            outcomes = [{{"status": "missing", "detail": "the notebook never defines it"}}]
        result["outcomes"][spec["id"]] = outcomes
    text = json.dumps(result, default=repr)
    sys.stdout.write({marker!r} + text + {marker!r} + "\\n")
    sys.stdout.flush()


_main()
'''
    code = body + main
    b = "_course_builtins_" + re.sub(r"\W", "", marker)[-12:]
    return (
        f"import builtins as {b}\n"
        f"{b}.exec({code!r}, {{'__builtins__': {b}, '__name__': 'course_probe', "
        f"'USER_NS': {b}.globals()}})\n"
        f"del {b}\n"
    )


def _kernel_env() -> Dict[str, str]:
    """The grader's environment, with the folder holding this ``course`` package first on
    ``PYTHONPATH`` so the kernel imports the same course library."""
    import course

    root = str(Path(course.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    env.setdefault("MPLBACKEND", "Agg")
    return env


def _prepare(nb, fast: bool):
    """A copy to execute (outputs cleared, ``FAST = True`` injected) and its cell -> original index map."""
    import nbformat

    run_nb = copy.deepcopy(nb)
    origin: List[Optional[int]] = list(range(len(run_nb.cells)))
    for cell in run_nb.cells:
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    if fast:
        where = next(
            (i + 1 for i, c in enumerate(run_nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])),
            0,
        )
        injected = nbformat.v4.new_code_cell(
            "# Parameters injected by the grader\nFAST = True", metadata={"tags": ["injected-parameters"]}
        )
        run_nb.cells.insert(where, injected)
        origin.insert(where, None)
    return run_nb, origin


def _execute(nb, specs: List[dict], timeout_s: float, cell_timeout_s: float, case_timeout_s: float, fast: bool,
             memory_mb: Optional[float] = None) -> _Run:
    """Execute ``nb`` in a fresh kernel (under the memory limit), then read the value answers in ``specs``."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    from course.grading.isolation import MemoryWatch

    run = _Run()
    run_nb, origin = _prepare(nb, fast)
    run_nb.cells.append(nbformat.v4.new_code_cell("pass"))  # slot for the probe
    probe_index = len(run_nb.cells) - 1
    replies: Dict[int, dict] = {}

    def on_executed(cell, cell_index, execute_reply):
        replies[cell_index] = execute_reply or {}

    deadline = time.monotonic() + timeout_s
    with tempfile.TemporaryDirectory(prefix="course-grade-") as work:
        client = NotebookClient(
            run_nb,
            kernel_name="python3",
            timeout=max(1, int(cell_timeout_s)),
            startup_timeout=60,
            interrupt_on_timeout=True,
            error_on_timeout={"ename": _TIMEOUT_ENAME, "evalue": "timed out", "traceback": []},
            allow_errors=True,
            record_timing=False,
            iopub_timeout=2,
            resources={"metadata": {"path": work}},
            on_cell_executed=on_executed,
        )
        try:
            _use_our_python(client, run, memory_mb)
            with client.setup_kernel(cwd=work, env=_kernel_env()):
                pid = getattr(getattr(client.km, "provisioner", None), "pid", None)
                watch = MemoryWatch(pid, memory_mb) if pid else MemoryWatch(0, None)
                with watch:
                    try:
                        stuck = _run_cells(client, run_nb, origin, probe_index, replies, deadline, cell_timeout_s,
                                           timeout_s, run)
                        if stuck:
                            run.problem = stuck
                            client.shutdown_kernel = "immediate"  # a stuck kernel cannot shut down politely
                        else:
                            try:
                                _run_probe(client, run_nb, probe_index, specs, case_timeout_s, replies, run)
                            except DeadKernelError:
                                run.problem = "the kernel died while the grader read the answers"
                                run.errors.append({"cell": None, "exercise": None, "part": "probe",
                                                   "type": "DeadKernelError", "message": run.problem})
                    finally:
                        if watch.exceeded:
                            run.memory_exceeded = True
                            _explain_memory(run, watch.reason)
                            client.shutdown_kernel = "immediate"
        except Exception as exc:  # kernel failed to start, zmq trouble, ...
            run.problem = f"the grader could not run the notebook ({type(exc).__name__}: {_clean(exc)})"
        del run_nb.cells[probe_index]  # the probe's slot is not part of the submission
        run.executed = run_nb
    return run


def _explain_memory(run: "_Run", reason: str) -> None:
    """Reword the dead-kernel entries a memory kill caused."""
    for entry in run.errors:
        if entry.get("type") == "DeadKernelError":
            entry["type"] = "MemoryLimit"
            entry["message"] = f"{entry['message']}: {reason}"
    if run.problem and "died" in run.problem:
        run.problem = f"{run.problem} ({reason})"
    elif not any(e.get("type") == "MemoryLimit" for e in run.errors):
        run.errors.append({"cell": None, "exercise": None, "part": None, "type": "MemoryLimit", "message": reason})


def _use_our_python(client, run: _Run, memory_mb: Optional[float] = None) -> None:
    """Make the kernel run the grader's own Python (so it imports the same ``course``), started
    under the memory ceiling of :func:`course.grading.isolation.limited_argv`.

    A kernelspec naming another interpreter is pointed back at ours, with a note.
    """
    from course.grading.isolation import limited_argv

    km = client.create_kernel_manager()
    argv = km.kernel_spec.argv
    if argv and argv[0] not in ("python", "python3", sys.executable) and Path(argv[0]).resolve() != Path(sys.executable).resolve():
        run.notes.append(f"the python3 kernelspec runs {argv[0]}; the grader's {sys.executable} was used instead")
    if argv:
        argv[0] = sys.executable
        km.kernel_spec.argv = limited_argv(argv, memory_mb)


def _run_cells(client, run_nb, origin, probe_index, replies, deadline, cell_timeout_s, timeout_s, run) -> Optional[str]:
    """Execute the notebook's cells one by one; returns a reason when the kernel is stuck or dead."""
    import nbformat
    from nbclient.exceptions import DeadKernelError

    for index in range(probe_index):
        cell = run_nb.cells[index]
        if cell.get("cell_type") != "code" or not cell.get("source", "").strip():
            continue
        remaining = deadline - time.monotonic()
        if remaining < 1:
            left = sum(1 for c in run_nb.cells[index:probe_index] if c.get("cell_type") == "code")
            run.timeouts.append({"cell": origin[index], "exercise": None, "part": None, "kind": "notebook",
                                 "seconds": timeout_s,
                                 "message": f"notebook time limit ({timeout_s:g} s) reached: {left} code cells not run"})
            break
        limit = max(1, int(min(cell_timeout_s, remaining)))
        client.timeout = limit
        meta = cell.get("metadata", {}).get("course", {})
        meta = meta if isinstance(meta, dict) else {}
        where = {"cell": origin[index], "exercise": meta.get("exercise"), "part": meta.get("part")}
        try:
            client.execute_cell(cell, index)
        except DeadKernelError:
            message = f"the kernel died while running cell {origin[index]}"
            run.errors.append({**where, "type": "DeadKernelError", "message": message})
            return message
        content = replies.get(index, {}).get("content", {})
        if content.get("status") == "error" and content.get("ename") == _TIMEOUT_ENAME:
            if limit < cell_timeout_s:
                message = f"cell {origin[index]} was interrupted when the notebook's time limit ran out"
            else:
                message = f"cell {origin[index]} ran over {limit} s and was interrupted"
            run.timeouts.append({**where, "kind": "cell", "seconds": limit, "message": message})
            # Is the kernel back? If the interrupt did not stop the code, stop here.
            client.timeout = max(10, int(min(30, cell_timeout_s)))  # an import in C may take a while to stop
            run_nb.cells[probe_index] = nbformat.v4.new_code_cell("pass")
            replies.pop(probe_index, None)
            client.execute_cell(run_nb.cells[probe_index], probe_index)
            alive = replies.get(probe_index, {}).get("content", {})
            if alive.get("ename") == _TIMEOUT_ENAME:
                return f"the kernel did not stop after cell {origin[index]} was interrupted"
        elif content.get("status") == "error":
            run.errors.append({**where, "type": _clean(content.get("ename"), 100),
                               "message": _clean(content.get("evalue"))})
    return None


def _run_probe(client, run_nb, probe_index, specs, case_timeout_s, replies, run) -> None:
    """Run the probe cell and parse its JSON (into ``run.outcomes``) or say why not (``run.problem``)."""
    import nbformat

    if not specs:
        run.outcomes = {}
        return
    marker = f"<<course-probe-{secrets.token_hex(16)}>>"
    cell = nbformat.v4.new_code_cell(_probe_source(specs, marker))
    run_nb.cells[probe_index] = cell
    n_cases = sum(max(1, len(s["cases"])) for s in specs)
    limit = int(30 + n_cases * (case_timeout_s or 0))
    client.timeout = limit
    replies.pop(probe_index, None)
    client.execute_cell(cell, probe_index)
    content = replies.get(probe_index, {}).get("content", {})
    if content.get("ename") == _TIMEOUT_ENAME:
        run.timeouts.append({"cell": None, "exercise": None, "part": "probe", "kind": "probe", "seconds": limit,
                             "message": f"the grader's probe ran over {limit} s"})
        run.problem = f"the answers did not return within {limit} s"
        return
    if content.get("status") == "error":
        run.problem = f"the grader's probe failed ({_clean(content.get('ename'))}: {_clean(content.get('evalue'))})"
        return
    text = "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream" and o.get("name") == "stdout")
    match = re.search(re.escape(marker) + r"(.*?)" + re.escape(marker), text, re.DOTALL)
    if not match:
        run.problem = "the grader's probe printed no result (was sys.stdout replaced?)"
        return
    try:
        data = json.loads(match.group(1))
        outcomes = data["outcomes"]
        if not isinstance(outcomes, dict) or not all(isinstance(v, list) for v in outcomes.values()):
            raise ValueError("outcomes must map ids to lists")
    except (ValueError, KeyError, TypeError):
        run.problem = "the grader's probe printed a malformed result"
        return
    run.outcomes = outcomes
    run.kernel_python = data.get("python")


# --- grading ----------------------------------------------------------------------------------

#: Kernel languages the grader runs (a notebook written for another kernel scores zero).
PYTHON_LANGUAGES = ("python", "python3", "ipython", "ipython3")


def _read(path: Path):
    """``(notebook, None)`` or ``(None, why it cannot be graded)``."""
    import nbformat

    if not path.is_file():
        return None, "not a regular file"
    if path.suffix.lower() != ".ipynb":
        return None, f"not a notebook (a {path.suffix or 'file without extension'}; submit the .ipynb file)"
    try:
        if path.stat().st_size == 0:
            return None, "the file is empty"
        nb = nbformat.read(str(path), as_version=4)
    except Exception as exc:
        return None, f"could not read the notebook ({type(exc).__name__}: {_clean(exc, 200)})"
    if not isinstance(nb.get("cells"), list):
        return None, "could not read the notebook (no cells)"
    meta = nb.get("metadata", {}) or {}
    spec = meta.get("kernelspec", {}) if isinstance(meta.get("kernelspec"), dict) else {}
    info = meta.get("language_info", {}) if isinstance(meta.get("language_info"), dict) else {}
    language = str(spec.get("language") or info.get("name") or "python").lower()
    if language not in PYTHON_LANGUAGES:
        kernel = spec.get("display_name") or spec.get("name") or language
        return None, f"a notebook for the {kernel} kernel ({language}); the course's exercises are Python"
    return nb, None


def _notes_for(exercise: Exercise, found: Dict[str, Dict[str, List[int]]], run: _Run) -> List[str]:
    notes = []
    solutions = found.get(exercise.id, {}).get("solution", [])
    if exercise.kind == VALUE and len(solutions) > 1:
        notes.append(
            f"Note: {len(solutions)} solution cells for exercise {exercise.id} (cells {solutions}); "
            f"the `{exercise.answer}` the notebook held at the end was graded."
        )
    for error in run.errors:
        if error.get("exercise") == exercise.id and error.get("part") != "check":
            notes.append(f"Note: in the notebook run, cell {error['cell']} raised {error['type']}: {error['message']}")
    for timeout in run.timeouts:
        if timeout.get("exercise") == exercise.id:
            notes.append(f"Note: {timeout['message']}.")
        elif exercise.kind == VALUE and timeout.get("kind") == "notebook" and any(
            i >= (timeout.get("cell") or 0) for i in solutions
        ):
            notes.append(f"Note: the notebook's time limit was reached before cell {timeout['cell']}; "
                         "this exercise's cells did not run.")
    return notes


def _file_sha256(path: Path) -> Optional[str]:
    import hashlib

    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def grade_submission(
    path: PathLike,
    *,
    timeout_s: float = 600,
    cell_timeout_s: float = 120,
    fast: bool = True,
    case_timeout_s: float = 10,
    memory_mb: Optional[float] = 4096,
    exercises: Optional[Sequence[str]] = None,
    default_exercises: Sequence[Exercise] = (),
    name: Optional[str] = None,
    student: Optional[str] = None,
):
    """Grade one notebook (no files written): returns ``(SubmissionResult, executed notebook or None)``.

    Function exercises are called in a fresh process that runs only their code (see
    :mod:`course.grading.replay`); value exercises are read from the notebook's own kernel
    after all its cells ran. ``exercises``: ids to grade; by default the registered exercises of
    the chapters found in the notebook's metadata (or its ``NN_`` name), else
    ``default_exercises``.
    """
    from course.grading import replay

    path = Path(path)
    start = time.monotonic()
    result = SubmissionResult(submission=str(path), name=name or path.stem, student=student or name or path.stem)
    result.sha256 = _file_sha256(path)
    nb, read_error = _read(path)
    found = find_exercise_cells(nb) if nb is not None else {}
    if exercises is not None:
        wanted = [get_exercise(i) for i in exercises]
    else:
        wanted = expected_exercises(found, path) or list(default_exercises)
    for unknown in sorted(set(found) - set(REGISTRY)):
        result.notes.append(f"cells tagged with unknown exercise id {unknown!r} were ignored")
    result.max_points = sum(e.points for e in wanted)

    run = _Run()
    outcomes: Dict[str, list] = {}
    problems: Dict[str, str] = {}
    extra_notes: Dict[str, List[str]] = {}
    if read_error:
        run.problem = read_error
        kind = "NotANotebook" if read_error.startswith(("not a", "the file is empty")) else "UnreadableNotebook"
        if "kernel" in read_error:
            kind = "WrongKernel"
        result.errors.append({"cell": None, "exercise": None, "part": None, "type": kind, "message": read_error})
    elif not wanted:
        result.notes.append("no exercise cells found in the notebook")
    else:
        env = _kernel_env()
        value_specs = []
        for exercise in wanted:
            if exercise.kind == VALUE:
                if exercise.id in found or any(exercise.answer in replay.defined_names(c.get("source", ""))
                                               for c in nb.cells if c.get("cell_type") == "code"):
                    value_specs.append(exercise.spec(case_timeout_s))
                continue
            solutions = found.get(exercise.id, {}).get("solution", [])
            selection = replay.select(nb, exercise.id, exercise.answer, solutions)
            extra_notes[exercise.id] = selection.notes
            if selection.problem:
                if exercise.id not in found:
                    continue  # reported below as "not in the notebook"
                outcomes[exercise.id] = [{"status": "missing", "detail": selection.problem}]
                continue
            with tempfile.TemporaryDirectory(prefix="course-probe-") as work:
                got, problem = replay.probe_function(
                    selection, exercise.answer, exercise.kind, exercise.case_args(),
                    case_timeout_s=case_timeout_s, memory_mb=memory_mb, cwd=work, env=env,
                    define_timeout_s=max(cell_timeout_s * len(selection.cells), 10),
                )
            if problem:
                problems[exercise.id] = f"calling `{exercise.answer}` in a fresh process failed: {problem}"
            else:
                outcomes[exercise.id] = got
        run = _execute(nb, value_specs, timeout_s, cell_timeout_s, case_timeout_s, fast, memory_mb)
        result.errors.extend(run.errors)
        result.timeouts.extend(run.timeouts)
        result.notes.extend(run.notes)
        result.kernel_python = run.kernel_python
        if run.outcomes is not None:
            outcomes.update({k: v for k, v in run.outcomes.items()})
        else:
            for spec in value_specs:
                problems.setdefault(spec["id"], run.problem or "the notebook's kernel gave no answer")

    for exercise in wanted:
        zero = f"(0/{exercise.points} points)"
        if read_error:
            points, message = 0, f"Exercise {exercise.id}: {read_error} {zero}."
        elif exercise.id in outcomes:
            points, message = grade_outcomes(exercise, outcomes[exercise.id])
        elif exercise.id in problems:
            points, message = 0, f"Exercise {exercise.id} could not be graded: {problems[exercise.id]} {zero}."
        else:
            points, message = 0, (
                f"Exercise {exercise.id}: its cells are not in the notebook (no cell has "
                f"exercise id {exercise.id} in its metadata; deleted?) {zero}."
            )
        notes = (extra_notes.get(exercise.id, []) + _notes_for(exercise, found, run)) if not read_error else []
        message = "\n".join([message] + notes)
        result.exercises.append(ExerciseResult(exercise.id, exercise.title, points, exercise.points, message))
    result.total = sum(e.points for e in result.exercises)
    if run.problem and not read_error and run.outcomes is None and run.problem not in result.notes:
        result.notes.append(run.problem)
    result.duration_s = time.monotonic() - start
    return result, run.executed


def expand_submissions(submissions: Union[PathLike, Iterable[PathLike]]) -> List[Path]:
    """The files to grade: each path as given; a folder stands for the files in it and in its
    sub-folders (one level: ``subs/alice/01_x.ipynb``), hidden files and folders excepted,
    sorted. Files that are not notebooks are kept (they are reported and score zero)."""
    paths: List[Path] = []
    for item in [submissions] if isinstance(submissions, (str, os.PathLike)) else submissions:
        item = Path(item)
        if not item.is_dir():
            paths.append(item)
            continue
        for child in sorted(item.iterdir()):
            if child.name.startswith((".", "_")) and child.is_dir() or child.name.startswith("."):
                continue
            if child.is_dir():
                paths.extend(p for p in sorted(child.iterdir()) if p.is_file() and not p.name.startswith("."))
            elif child.is_file():
                paths.append(child)
    return paths


def _student_of(path: Path, roots: Sequence[Path]) -> Optional[str]:
    """The sub-folder name when ``path`` sits one level inside a given folder (``subs/alice/x``)."""
    for root in roots:
        try:
            rel = path.relative_to(root)
        except ValueError:
            continue
        if len(rel.parts) == 2:
            return rel.parts[0]
    return None


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "submission"


def _unique_names(paths: List[Path], roots: Sequence[Path] = ()) -> List[str]:
    """One report folder name per path: the stem (``alice__01_x`` for ``subs/alice/01_x.ipynb``),
    with ``-2``, ``-3``... for repeats."""
    names: List[str] = []
    for path in paths:
        student = _student_of(path, roots)
        base = _safe(f"{student}__{path.stem}" if student else path.stem)
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base}-{n}"
        names.append(name)
    return names


def _grade_and_write(job: dict) -> "SubmissionResult":
    """Grade one submission and write its reports (runs in a worker process with ``--jobs``)."""
    from course.grading import reports

    default = [get_exercise(i) for i in job.pop("default_ids")]
    target = Path(job.pop("target"))
    result, executed = grade_submission(default_exercises=default, **job)
    result.out_dir = str(target)
    reports.write_reports(result, target, executed=executed)
    return result


def _already_graded(target: Path, path: Path, exercises) -> Optional["SubmissionResult"]:
    """The stored result when ``target`` holds a complete report of this very file, else None."""
    try:
        data = json.loads((target / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not data.get("complete") or data.get("sha256") != _file_sha256(path):
        return None
    if exercises is not None and [e.get("id") for e in data.get("exercises", [])] != list(exercises):
        return None
    try:
        result = SubmissionResult.from_dict(data)
    except (KeyError, TypeError, ValueError):
        return None
    result.out_dir = str(target)
    result.resumed = True
    return result


#: The files of ``course`` that decide a grade and are watched during a batch: the grader and
#: the comparison of answers. (The chapters' exercise definitions and ``course.cost`` are not
#: watched: they change while the course is written; see docs/grading.md.)
TRUSTED_FILES = ("grading/*.py", "exercises/core.py", "exercises/__init__.py", "__init__.py")


def course_fingerprint() -> Dict[str, str]:
    """sha256 of the files in :data:`TRUSTED_FILES`, to detect a submission that rewrites the
    grader's code on disk while a batch runs."""
    import hashlib

    import course

    root = Path(course.__file__).resolve().parent
    files = [p for pattern in TRUSTED_FILES for p in sorted(root.glob(pattern))]
    out = {}
    for path in files:
        try:
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            out[str(path.relative_to(root))] = "unreadable"
    return out


def _changed(before: Dict[str, str]) -> List[str]:
    """Trusted files changed or removed since ``before`` (new files are not the grader's)."""
    now = course_fingerprint()
    return sorted(name for name, digest in before.items() if now.get(name) != digest)


def grade(
    submissions: Union[PathLike, Iterable[PathLike]],
    out_dir: PathLike,
    timeout_s: float = 600,
    cell_timeout_s: float = 120,
    fast: bool = True,
    *,
    case_timeout_s: float = 10,
    memory_mb: Optional[float] = 4096,
    exercises: Optional[Sequence[str]] = None,
    jobs: int = 1,
    force: bool = False,
    quiet: bool = False,
) -> List["SubmissionResult"]:
    """Grade a batch of notebooks and write the reports; returns one result per submission.

    Args:
        submissions: notebook paths (a folder stands for its files, see :func:`expand_submissions`).
        out_dir: per submission ``out_dir/<name>/``: ``report.json``, Gradescope
            ``results.json``, ``junit.xml``, ``feedback.md`` and the executed copy
            ``executed.ipynb``; per batch ``gradebook.csv``, ``summary.md`` and ``summary.json``.
        timeout_s: wall-clock limit for running one notebook's cells.
        cell_timeout_s: limit for one cell (then the kernel is interrupted and grading goes on).
        fast: inject ``FAST = True`` after the ``parameters`` cell.
        case_timeout_s: limit for one call of a learner's function.
        memory_mb: memory limit of the kernel and of each probe process (None: no limit).
        exercises: ids to grade in every submission (default: the chapters found in each).
        jobs: submissions graded at the same time (worker processes).
        force: re-grade submissions that already have a complete report of the same file
            (by default they are skipped, so an interrupted batch resumes where it stopped).
        quiet: do not print progress and the summary table.

    A corrupt file, a crash, a timeout or a missing answer scores 0 for what it affects, with
    the reason in the report; the batch always goes on.
    """
    from course.grading import reports

    given = [submissions] if isinstance(submissions, (str, os.PathLike)) else list(submissions)
    roots = [Path(p) for p in given if Path(p).is_dir()]
    paths = expand_submissions(given)
    out_dir = Path(out_dir)
    # A corrupt notebook still gets a max score: the chapters the rest of the batch covers.
    batch_ids = set()
    for path in paths:
        nb, _ = _read(path)
        if nb is not None:
            batch_ids.update(find_exercise_cells(nb))
    chapters = {c for c in (_chapter_from_name(p) for p in paths) if c is not None}
    default_ids = sorted({e.id for e in expected_exercises(batch_ids)} | {e.id for c in chapters for e in list_exercises(c)},
                         key=lambda i: [int(x) if x.isdigit() else x for x in i.split(".")])
    fingerprint = course_fingerprint()
    names = _unique_names(paths, roots)
    results: Dict[int, SubmissionResult] = {}
    todo = []
    for index, (path, name) in enumerate(zip(paths, names)):
        target = out_dir / name
        done = None if force else _already_graded(target, path, exercises)
        if done is not None:
            results[index] = done
            if not quiet:
                print(f"already graded {path}: {done.total}/{done.max_points} (use --force to re-grade)", file=sys.stderr)
            continue
        todo.append((index, {
            "path": str(path), "timeout_s": timeout_s, "cell_timeout_s": cell_timeout_s, "fast": fast,
            "case_timeout_s": case_timeout_s, "memory_mb": memory_mb, "exercises": exercises,
            "default_ids": default_ids, "name": name, "student": _student_of(path, roots) or name,
            "target": str(target),
        }))

    def finished(index: int, result: SubmissionResult) -> None:
        results[index] = result
        if not quiet:
            print(f"graded {result.submission}: {result.total}/{result.max_points} ({result.duration_s:.1f} s)",
                  file=sys.stderr)

    tampered: List[str] = []
    if jobs <= 1 or len(todo) <= 1:
        for index, job in todo:
            result = _grade_and_write(dict(job))
            finished(index, result)
            tampered = _changed(fingerprint)
            if tampered:
                _stop_tampered(result, reports, quiet)
                break
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed
        from concurrent.futures.process import BrokenProcessPool

        jobs_by_index = dict(todo)
        retry = []  # jobs lost with a broken pool (a worker killed from outside): graded again here
        context = multiprocessing.get_context("spawn")  # no fork of a process that ran torch
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            futures = {pool.submit(_grade_and_write, dict(job)): index for index, job in todo}
            for future in as_completed(futures):
                index = futures[future]
                if future.cancelled():
                    continue
                try:
                    result = future.result()
                except BrokenProcessPool:
                    retry.append(index)
                    continue
                except Exception as exc:  # the grader failed on this submission: the batch goes on
                    job = jobs_by_index[index]
                    result = SubmissionResult(submission=job["path"], name=job["name"], student=job["student"])
                    result.errors.append({"cell": None, "exercise": None, "part": None, "type": "GraderError",
                                          "message": f"the grader failed ({type(exc).__name__}: {_clean(exc)})"})
                    result.out_dir = job["target"]
                    reports.write_reports(result, Path(job["target"]))
                finished(index, result)
                if not tampered:
                    tampered = _changed(fingerprint)
                    if tampered:
                        _stop_tampered(result, reports, quiet)
                        for other in futures:
                            other.cancel()
        for index in sorted(retry) if not tampered else []:
            if not quiet:
                print(f"the worker pool broke; grading {jobs_by_index[index]['path']} in the main process", file=sys.stderr)
            result = _grade_and_write(dict(jobs_by_index[index]))
            finished(index, result)
            tampered = _changed(fingerprint)
            if tampered:
                _stop_tampered(result, reports, quiet)
                break
    ordered = [results[i] for i in sorted(results)]
    for result in ordered:  # a submission may have written over reports already written
        if not result.resumed and result.out_dir and not result.tampered:
            _restore_reports(result, reports)
    reports.write_batch(ordered, out_dir)
    if tampered:
        raise GraderTampered(
            f"the grader's code changed on disk during grading ({', '.join(tampered)}; a submission wrote into "
            "it?); the batch was stopped: restore the course code and re-run with --force"
        )
    if not quiet:
        print(reports.summary_table(ordered))
    return ordered


def _restore_reports(result: "SubmissionResult", reports) -> None:
    """Rewrite a submission's report files if they no longer hold what the grader wrote."""
    target = Path(result.out_dir)
    expected = {"report.json": reports.report_json(result), "results.json": reports.gradescope_json(result),
                "junit.xml": reports.junit_xml(result), "feedback.md": reports.feedback_markdown(result)}
    for name, text in expected.items():
        try:
            same = (target / name).read_text(encoding="utf-8") == text
        except (OSError, UnicodeDecodeError):
            same = False
        if not same:
            note = "report files of this submission were changed during the batch (by a submission?) and rewritten"
            if note not in result.notes:
                result.notes.append(note)
            reports.write_reports(result, target)
            return


class GraderTampered(RuntimeError):
    """The grader's own code changed on disk while grading (see :func:`course_fingerprint`)."""


def _stop_tampered(result: "SubmissionResult", reports, quiet: bool) -> None:
    result.notes.append("the course package changed on disk while this submission was graded; "
                        "its grade is not trusted")
    result.total = 0
    result.tampered = True
    reports.write_reports(result, Path(result.out_dir), complete=False)
    if not quiet:
        print(f"STOP: the course code changed on disk while grading {result.submission}", file=sys.stderr)
