"""Run a submission's notebook in a fresh kernel, then read its *value* answers with a probe.

The kernel is the grader's own Python (so it imports the same ``course``), started under the
memory ceiling of :mod:`course.grading.isolation`, in an empty scratch folder, inside the
bubblewrap sandbox when one is given (:mod:`course.grading.sandbox`). A copy of the notebook
runs cell by cell with ``FAST = True`` injected after its ``parameters`` cell: a failing cell is
recorded and the next one runs; each cell has a time limit and all cells together another,
counted from the moment the kernel is ready. Then a probe cell, run in a fresh namespace,
reports the value answers between random markers; nothing else the notebook prints is read.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from course.exercises.outcomes import collect_outcomes
from course.grading.limits import Limits
from course.grading.results import Problem, cell_label
from course.grading.sandbox import Sandbox

TIMEOUT_ENAME = "CourseCellTimeout"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
#: What an unattempted exercise's stub raises (see :data:`course.grading.release.STUB`).
_STUB = re.compile(r"Exercise (\S+): replace this line with your (?:solution|answer)")


def clean(text, limit: int = 500) -> str:
    """``text`` without terminal colour codes, cut to ``limit`` characters."""
    text = _ANSI.sub("", str(text))
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class KernelRun:
    """What running a notebook gave: problems, the value answers' outcomes, the executed copy.

    ``stubs``: exercise id -> JupyterLab numbers of the cells that stopped at its unattempted
    stub (``NotImplementedError("Exercise 1.2: replace this line ...")``): not errors.
    """

    errors: List[Problem] = field(default_factory=list)
    timeouts: List[Problem] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    stubs: Dict[str, List[int]] = field(default_factory=dict)
    outcomes: Optional[Dict[str, list]] = None
    problem: Optional[str] = None  # why there are no outcomes
    kernel_python: Optional[str] = None
    executed: object = None
    memory_exceeded: bool = False


def probe_source(specs: List[dict], marker: str) -> str:
    """A cell that runs ``collect_outcomes`` on each value answer and prints JSON between markers.

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


def kernel_env() -> Dict[str, str]:
    """The grader's environment, with the folder holding this ``course`` package first on
    ``PYTHONPATH`` so the kernel imports the same course library (the sandbox keeps only
    a few of these variables: :meth:`course.grading.sandbox.Sandbox.env`)."""
    from course.grading.sandbox import course_root

    env = dict(os.environ)
    root = str(course_root())
    env["PYTHONPATH"] = os.pathsep.join([root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    env.setdefault("MPLBACKEND", "Agg")
    return env


def prepare(nb, fast: bool):
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


def run_notebook(nb, specs: List[dict], limits: Limits, *, fast: bool = True,
                 sandbox: Optional[Sandbox] = None) -> KernelRun:
    """Execute ``nb`` in a fresh kernel under ``limits`` (in ``sandbox`` when given), then read
    the value answers in ``specs`` (:meth:`course.exercises.Exercise.spec`)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    from course.grading.isolation import MemoryWatch

    run = KernelRun()
    run_nb, origin = prepare(nb, fast)
    run_nb.cells.append(nbformat.v4.new_code_cell("pass"))  # slot for the probe
    probe_index = len(run_nb.cells) - 1
    replies: Dict[int, dict] = {}

    def on_executed(cell, cell_index, execute_reply):
        replies[cell_index] = execute_reply or {}

    with tempfile.TemporaryDirectory(prefix="course-grade-") as work, \
            tempfile.TemporaryDirectory(prefix="course-kernel-") as runtime:
        if sandbox is not None:
            _seed_caches(work)
        client = NotebookClient(
            run_nb,
            kernel_name="python3",
            timeout=max(1, int(limits.cell_s)),
            startup_timeout=120,
            interrupt_on_timeout=True,
            error_on_timeout={"ename": TIMEOUT_ENAME, "evalue": "timed out", "traceback": []},
            allow_errors=True,
            record_timing=False,
            iopub_timeout=2,
            resources={"metadata": {"path": work}},
            on_cell_executed=on_executed,
        )
        try:
            env = kernel_env()
            _configure_kernel(client, run, limits.memory_mb, sandbox, work, runtime, env)
            with client.setup_kernel(cwd=work, env=env):
                deadline = time.monotonic() + limits.notebook_s  # from the moment the kernel is ready
                pid = getattr(getattr(client.km, "provisioner", None), "pid", None)
                watch = MemoryWatch(pid, limits.memory_mb) if pid else MemoryWatch(0, None)
                with watch:
                    try:
                        stuck = _run_cells(client, run_nb, origin, probe_index, replies, deadline, limits, run)
                        if stuck:
                            run.problem = stuck
                            client.shutdown_kernel = "immediate"  # a stuck kernel cannot shut down politely
                        else:
                            try:
                                _run_probe(client, run_nb, probe_index, specs, replies, run)
                            except DeadKernelError:
                                run.problem = "the kernel died while the grader read the answers"
                                run.errors.append(Problem("DeadKernelError", run.problem, part="probe"))
                    finally:
                        if watch.exceeded:
                            run.memory_exceeded = True
                            _explain_memory(run, watch.reason)
                            client.shutdown_kernel = "immediate"
        except Exception as exc:  # kernel failed to start, zmq trouble, ...
            run.problem = f"the grader could not run the notebook ({type(exc).__name__}: {clean(exc)})"
        del run_nb.cells[probe_index]  # the probe's slot is not part of the submission
        run.executed = run_nb
    return run


def _seed_caches(work: str) -> None:
    """Copy the grader's matplotlib font list into the scratch folder (the sandboxed kernel's
    ``MPLCONFIGDIR``), so ``import matplotlib`` does not rebuild it in every kernel."""
    cache = Path(os.environ.get("MPLCONFIGDIR") or Path.home() / ".cache" / "matplotlib")
    try:
        fonts = sorted(cache.glob("fontlist-*.json"))
    except OSError:
        return
    if fonts:
        target = Path(work) / ".config" / "matplotlib"
        target.mkdir(parents=True, exist_ok=True)
        for path in fonts:
            try:
                (target / path.name).write_bytes(path.read_bytes())
            except OSError:
                pass


def _explain_memory(run: KernelRun, reason: str) -> None:
    """Reword the dead-kernel entries a memory kill caused."""
    for entry in run.errors:
        if entry.kind == "DeadKernelError":
            entry.kind = "MemoryLimit"
            entry.message = f"{entry.message}: {reason}"
    if run.problem and "died" in run.problem:
        run.problem = f"{run.problem} ({reason})"
    elif not any(e.kind == "MemoryLimit" for e in run.errors):
        run.errors.append(Problem("MemoryLimit", reason))


def _configure_kernel(client, run: KernelRun, memory_mb: Optional[float], sandbox: Optional[Sandbox],
                      work: str, runtime: str, env: Dict[str, str]) -> None:
    """Make the kernel run the grader's own Python (so it imports the same ``course``), started
    under the memory ceiling of :func:`course.grading.isolation.limited_argv`, and inside
    ``sandbox`` when given (then it talks over Unix sockets in ``runtime`` and is interrupted
    by a message).

    A kernelspec naming another interpreter is pointed back at ours, with a note.
    """
    from course.grading.isolation import limited_argv

    km = client.create_kernel_manager()
    argv = km.kernel_spec.argv
    if argv and argv[0] not in ("python", "python3", sys.executable) and Path(argv[0]).resolve() != Path(sys.executable).resolve():
        run.notes.append(f"the python3 kernelspec runs {argv[0]}; the grader's {sys.executable} was used instead")
    if not argv:
        return
    argv[0] = sys.executable
    argv = limited_argv(argv, memory_mb)
    if sandbox is not None:
        km.transport = "ipc"  # no network inside: Unix sockets in a folder both sides see
        km.ip = os.path.join(runtime, "kernel")
        km.connection_file = os.path.join(runtime, "kernel.json")
        km.kernel_spec.interrupt_mode = "message"  # a SIGINT would stop bwrap, not the kernel
        argv = sandbox.wrap(argv, scratch=work, env=env, writable=[runtime], memory_mb=memory_mb)
    km.kernel_spec.argv = argv


def _stub_of(content: dict) -> Optional[str]:
    """The exercise id when a cell's error is an unattempted stub's ``NotImplementedError``."""
    if content.get("ename") != "NotImplementedError":
        return None
    match = _STUB.search(str(content.get("evalue", "")))
    return match.group(1) if match else None


def _run_cells(client, run_nb, origin, probe_index, replies, deadline, limits: Limits, run: KernelRun) -> Optional[str]:
    """Execute the notebook's cells one by one; returns a reason when the kernel is stuck or dead."""
    import nbformat
    from nbclient.exceptions import DeadKernelError

    def out_of_time(index: int, number: Optional[int]) -> None:
        left = sum(1 for c in run_nb.cells[index:probe_index] if c.get("cell_type") == "code")
        run.timeouts.append(Problem("notebook", f"notebook time limit ({limits.notebook_s:g} s) reached: "
                                                f"{left} code cells not run", cell=number, seconds=limits.notebook_s))

    for index in range(probe_index):
        cell = run_nb.cells[index]
        if cell.get("cell_type") != "code" or not cell.get("source", "").strip():
            continue
        number = None if origin[index] is None else origin[index] + 1
        label = cell_label(origin[index]) if origin[index] is not None else "the injected parameters cell"
        remaining = deadline - time.monotonic()
        if remaining < 1:
            out_of_time(index, number)
            break
        by_notebook = remaining < limits.cell_s  # this cell gets what is left of the notebook's time
        limit = max(1, math.ceil(remaining if by_notebook else limits.cell_s))
        client.timeout = limit
        meta = cell.get("metadata", {}).get("course", {})
        meta = meta if isinstance(meta, dict) else {}
        where = dict(cell=number, exercise=meta.get("exercise"), part=meta.get("part"))
        try:
            client.execute_cell(cell, index)
        except DeadKernelError:
            message = f"the kernel died while running {label}"
            run.errors.append(Problem("DeadKernelError", message, **where))
            return message
        content = replies.get(index, {}).get("content", {})
        if content.get("status") == "error" and content.get("ename") == TIMEOUT_ENAME:
            if by_notebook:
                message = f"{label} was interrupted when the notebook's time limit ran out"
            else:
                message = f"{label} ran over {limits.cell_s:g} s and was interrupted"
            run.timeouts.append(Problem("cell", message, seconds=limit, **where))
            # Is the kernel back? If the interrupt did not stop the code, stop here.
            client.timeout = max(10, int(min(30, limits.cell_s)))  # an import in C may take a while to stop
            run_nb.cells[probe_index] = nbformat.v4.new_code_cell("pass")
            replies.pop(probe_index, None)
            client.execute_cell(run_nb.cells[probe_index], probe_index)
            alive = replies.get(probe_index, {}).get("content", {})
            if alive.get("ename") == TIMEOUT_ENAME:
                return f"the kernel did not stop after {label} was interrupted"
            if by_notebook:  # the notebook's time is up: no later cell runs, however fast
                next_code = next((i for i in range(index + 1, probe_index) if run_nb.cells[i].get("cell_type") == "code"), None)
                if next_code is not None:
                    out_of_time(next_code, None if origin[next_code] is None else origin[next_code] + 1)
                break
        elif content.get("status") == "error":
            stub = _stub_of(content)
            if stub is not None and number is not None:
                run.stubs.setdefault(stub, []).append(number)
            else:
                run.errors.append(Problem(clean(content.get("ename"), 100), clean(content.get("evalue")), **where))
    return None


def _run_probe(client, run_nb, probe_index, specs, replies, run: KernelRun) -> None:
    """Run the probe cell and parse its JSON (into ``run.outcomes``) or say why not (``run.problem``)."""
    import nbformat

    if not specs:
        run.outcomes = {}
        return
    marker = f"<<course-probe-{secrets.token_hex(16)}>>"
    cell = nbformat.v4.new_code_cell(probe_source(specs, marker))
    run_nb.cells[probe_index] = cell
    limit = int(30 + sum(max(1, len(s["cases"])) * (s["case_timeout_s"] or 0) for s in specs))
    client.timeout = limit
    replies.pop(probe_index, None)
    client.execute_cell(cell, probe_index)
    content = replies.get(probe_index, {}).get("content", {})
    if content.get("ename") == TIMEOUT_ENAME:
        run.timeouts.append(Problem("probe", f"the grader's probe ran over {limit} s", part="probe", seconds=limit))
        run.problem = f"the answers did not return within {limit} s"
        return
    if content.get("status") == "error":
        run.problem = f"the grader's probe failed ({clean(content.get('ename'))}: {clean(content.get('evalue'))})"
        return
    text = "".join(o.get("text", "") for o in cell.get("outputs", [])
                   if o.get("output_type") == "stream" and o.get("name") == "stdout")
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
