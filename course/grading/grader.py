"""Grade submitted notebooks: execute each in a fresh kernel, probe the answers, compare here.

For each submission:

1. read it (an unreadable file scores 0 and the batch goes on);
2. execute a copy cell by cell in a fresh ``python3`` kernel (the grader's own Python), in a
   scratch folder, with ``FAST = True`` injected after the ``parameters`` cell; a failing cell
   is recorded and the next one runs; each cell has a timeout and the whole notebook a
   wall-clock limit (on timeout the kernel is interrupted and grading goes on);
3. find the exercises from cell metadata (``{"course": {"exercise": "1.2", ...}}``), never
   from positions, and run a probe in the same kernel that calls each answer on the cases the
   grader sends and prints the outcomes as JSON between two random markers;
4. grade the outcomes in the grader's process with :func:`course.exercises.grade_outcomes`
   (the notebook's own prints are never trusted);
5. write ``report.json``, Gradescope ``results.json`` and ``junit.xml`` into
   ``out_dir/<submission stem>/``. The submission file and its folder are never written.
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

from course.exercises import REGISTRY, Exercise, get_exercise, grade_outcomes, list_exercises
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
        }


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


def _execute(nb, specs: List[dict], timeout_s: float, cell_timeout_s: float, case_timeout_s: float, fast: bool) -> _Run:
    """Execute ``nb`` in a fresh kernel, then probe the answers named in ``specs``."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

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
            _use_our_python(client, run)
            with client.setup_kernel(cwd=work, env=_kernel_env()):
                stuck = _run_cells(client, run_nb, origin, probe_index, replies, deadline, cell_timeout_s, timeout_s, run)
                if stuck:
                    run.problem = stuck
                    client.shutdown_kernel = "immediate"  # a stuck kernel cannot shut down politely
                else:
                    try:
                        _run_probe(client, run_nb, probe_index, specs, case_timeout_s, replies, run)
                    except DeadKernelError:
                        run.problem = "the kernel died while the grader called the answers"
                        run.errors.append({"cell": None, "exercise": None, "part": "probe",
                                           "type": "DeadKernelError", "message": run.problem})
        except Exception as exc:  # kernel failed to start, zmq trouble, ...
            run.problem = f"the grader could not run the notebook ({type(exc).__name__}: {_clean(exc)})"
        del run_nb.cells[probe_index]  # the probe's slot is not part of the submission
        run.executed = run_nb
    return run


def _use_our_python(client, run: _Run) -> None:
    """Make the kernel run the grader's own Python (so it imports the same ``course``).

    jupyter_client already swaps a kernelspec's bare ``python`` for ``sys.executable``; a
    kernelspec naming another interpreter is pointed back at ours, with a note.
    """
    km = client.create_kernel_manager()
    argv = km.kernel_spec.argv
    if argv and argv[0] not in ("python", "python3") and Path(argv[0]).resolve() != Path(sys.executable).resolve():
        run.notes.append(f"the python3 kernelspec runs {argv[0]}; the grader's {sys.executable} was used instead")
        argv[0] = sys.executable


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
            client.timeout = max(2, int(min(10, cell_timeout_s)))
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


def _read(path: Path):
    import nbformat

    try:
        nb = nbformat.read(str(path), as_version=4)
    except Exception as exc:
        return None, f"could not read the notebook ({type(exc).__name__}: {_clean(exc, 200)})"
    if not isinstance(nb.get("cells"), list):
        return None, "could not read the notebook (no cells)"
    return nb, None


def _notes_for(exercise: Exercise, found: Dict[str, Dict[str, List[int]]], run: _Run) -> List[str]:
    notes = []
    parts = found.get(exercise.id, {})
    solutions = parts.get("solution", [])
    if len(solutions) > 1:
        notes.append(
            f"Note: {len(solutions)} solution cells for exercise {exercise.id} (cells {solutions}); "
            f"the `{exercise.answer}` defined last was graded."
        )
    for error in run.errors:
        if error.get("exercise") == exercise.id and error.get("part") != "check":
            notes.append(f"Note: cell {error['cell']} raised {error['type']}: {error['message']}")
    for timeout in run.timeouts:
        if timeout.get("exercise") == exercise.id:
            notes.append(f"Note: {timeout['message']}.")
        elif timeout.get("kind") == "notebook" and any(
            i >= (timeout.get("cell") or 0) for i in solutions
        ):
            notes.append(f"Note: the notebook's time limit was reached before cell {timeout['cell']}; "
                         "this exercise's cells did not run.")
    return notes


def grade_submission(
    path: PathLike,
    *,
    timeout_s: float = 600,
    cell_timeout_s: float = 120,
    fast: bool = True,
    case_timeout_s: float = 10,
    exercises: Optional[Sequence[str]] = None,
    default_exercises: Sequence[Exercise] = (),
    name: Optional[str] = None,
):
    """Grade one notebook (no files written): returns ``(SubmissionResult, executed notebook or None)``.

    ``exercises``: ids to grade; by default the registered exercises of the chapters found in
    the notebook's metadata (or its ``NN_`` name), else ``default_exercises``.
    """
    path = Path(path)
    start = time.monotonic()
    result = SubmissionResult(submission=str(path), name=name or path.stem)
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
    if read_error:
        run.problem = read_error
        result.errors.append({"cell": None, "exercise": None, "part": None, "type": "UnreadableNotebook", "message": read_error})
    elif not wanted:
        result.notes.append("no exercise cells found in the notebook")
    else:
        specs = [e.spec(case_timeout_s) for e in wanted if e.id in found]
        run = _execute(nb, specs, timeout_s, cell_timeout_s, case_timeout_s, fast)
        result.errors.extend(run.errors)
        result.timeouts.extend(run.timeouts)
        result.notes.extend(run.notes)
        result.kernel_python = run.kernel_python

    for exercise in wanted:
        zero = f"(0/{exercise.points} points)"
        if read_error:
            points, message = 0, f"Exercise {exercise.id}: {read_error} {zero}."
        elif exercise.id not in found:
            points, message = 0, (
                f"Exercise {exercise.id}: its cells are not in the notebook (no cell has "
                f"exercise id {exercise.id} in its metadata; deleted?) {zero}."
            )
        elif run.outcomes is None:
            points, message = 0, f"Exercise {exercise.id} could not be graded: {run.problem} {zero}."
        else:
            points, message = grade_outcomes(exercise, run.outcomes.get(exercise.id, []))
        notes = _notes_for(exercise, found, run) if not read_error else []
        message = "\n".join([message] + notes)
        result.exercises.append(ExerciseResult(exercise.id, exercise.title, points, exercise.points, message))
    result.total = sum(e.points for e in result.exercises)
    if run.problem and not read_error and run.outcomes is None:
        result.notes.append(run.problem)
    result.duration_s = time.monotonic() - start
    return result, run.executed


def expand_submissions(submissions: Union[PathLike, Iterable[PathLike]]) -> List[Path]:
    """The notebooks to grade: each path as given, a folder replaced by its ``*.ipynb`` (sorted)."""
    paths: List[Path] = []
    for item in [submissions] if isinstance(submissions, (str, os.PathLike)) else submissions:
        item = Path(item)
        paths.extend(sorted(item.glob("*.ipynb")) if item.is_dir() else [item])
    return paths


def _unique_names(paths: List[Path]) -> List[str]:
    """One report folder name per path: the stem, with ``-2``, ``-3``... for repeats."""
    names: List[str] = []
    for path in paths:
        name, n = path.stem, 1
        while name in names:
            n += 1
            name = f"{path.stem}-{n}"
        names.append(name)
    return names


def grade(
    submissions: Union[PathLike, Iterable[PathLike]],
    out_dir: PathLike,
    timeout_s: float = 600,
    cell_timeout_s: float = 120,
    fast: bool = True,
    *,
    case_timeout_s: float = 10,
    exercises: Optional[Sequence[str]] = None,
    quiet: bool = False,
) -> List["SubmissionResult"]:
    """Grade a batch of notebooks and write the reports; returns one result per submission.

    Args:
        submissions: notebook paths (a folder stands for its ``*.ipynb``).
        out_dir: reports go to ``out_dir/<submission stem>/``: ``report.json``, Gradescope
            ``results.json``, ``junit.xml`` and the executed copy ``executed.ipynb``.
        timeout_s: wall-clock limit for running one notebook's cells.
        cell_timeout_s: limit for one cell (then the kernel is interrupted and grading goes on).
        fast: inject ``FAST = True`` after the ``parameters`` cell.
        case_timeout_s: limit for one call of a learner's function by the probe.
        exercises: ids to grade in every submission (default: the chapters found in each).
        quiet: do not print the summary table.

    A corrupt file, a crash, a timeout or a missing answer scores 0 for what it affects, with
    the reason in the report; the batch always goes on.
    """
    from course.grading import reports

    paths = expand_submissions(submissions)
    out_dir = Path(out_dir)
    # A corrupt notebook still gets a max score: the chapters the rest of the batch covers.
    batch_ids = set()
    for path in paths:
        nb, _ = _read(path)
        if nb is not None:
            batch_ids.update(find_exercise_cells(nb))
    default = expected_exercises(batch_ids)
    results = []
    for path, name in zip(paths, _unique_names(paths)):
        result, executed = grade_submission(
            path,
            timeout_s=timeout_s,
            cell_timeout_s=cell_timeout_s,
            fast=fast,
            case_timeout_s=case_timeout_s,
            exercises=exercises,
            default_exercises=default,
            name=name,
        )
        target = out_dir / name
        reports.write_reports(result, target, executed=executed)
        result.out_dir = str(target)
        results.append(result)
        if not quiet:
            print(f"graded {path}: {result.total}/{result.max_points}", file=sys.stderr)
    if not quiet:
        print(reports.summary_table(results))
    return results
