"""Call a learner's function in a fresh process that runs only the code the answer needs.

Why: code that runs in the notebook's kernel can tamper with anything in that process (patch
``builtins``, ``sys.stdout``, ``json``, the ``course`` modules in memory, the grader's probe).
So a *function* exercise is never called in the notebook's kernel. The grader builds a small
program from the notebook's source:

1. the *definitions* of every other code cell: top-level ``import`` / ``from ... import``,
   ``def``, ``class`` and assignments of literal constants (``EPS = 1e-6``), but only those the
   answer's cells need, found by name, transitively; plain statements (prints, monkeypatches,
   model runs, ``check(...)``) of other cells never run;
2. the exercise's own solution cells, whole, in notebook order;

then runs it in a fresh Python process (:func:`probe_function`) under a time and memory
limit, calls the answer on the grader's cases, and sends back only the outcomes. Whatever the
learner's code does there can only change the outcomes of that one exercise, which its
answer controls anyway; the comparison with the expected values happens in the grader's
process (:func:`course.exercises.grade_outcomes`).

Module and design answers are run by their exercise's runner
(:meth:`course.exercises.Exercise.run_case`), which the process takes from the course package
*before* the learner's code runs. With a sandbox (:mod:`course.grading.sandbox`) the process
sees no network and none of the instructor's files.

IPython syntax (``%magic``, ``!cmd``) is turned into Python by IPython's own transformer;
``get_ipython()`` in the probe returns an object whose methods do nothing.
"""

from __future__ import annotations

import ast
import json
import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Set, Tuple

from course.grading.results import cell_label

if TYPE_CHECKING:  # pragma: no cover
    from course.grading.sandbox import Sandbox


@dataclass
class Selection:
    """The program that defines one answer: ``source``, where it came from, and notes."""

    source: str = ""
    cells: List[int] = field(default_factory=list)  # cells run whole (the answer's cells)
    context_cells: List[int] = field(default_factory=list)  # cells some definitions came from
    notes: List[str] = field(default_factory=list)
    problem: Optional[str] = None  # why there is nothing to call


#: Cell magics whose body is Python the probe may run as such (others: the cell defines nothing).
PYTHON_CELL_MAGICS = ("time", "timeit", "capture", "prun")


def to_python(source: str) -> str:
    """A cell's source as plain Python (IPython magics and shell escapes transformed).

    A cell magic that times or captures Python (``%%time``) is dropped and its body kept; a
    cell in another language (``%%bash``, ``%%html``) becomes an empty program.
    """
    stripped = source.lstrip()
    if stripped.startswith("%%"):
        first, _, body = stripped.partition("\n")
        name = first[2:].split(maxsplit=1)[0] if first[2:].strip() else ""
        source = body if name in PYTHON_CELL_MAGICS else ""
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        return TransformerManager().transform_cell(source)
    except Exception:
        return source


def _parse(source: str) -> Optional[ast.Module]:
    try:
        return ast.parse(to_python(source))
    except (SyntaxError, ValueError):
        return None


def _bound_names(stmt: ast.stmt) -> Set[str]:
    """Names a top-level statement binds in the module namespace."""
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {stmt.name}
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in stmt.names if a.name != "*"}
    targets: List[ast.expr] = []
    if isinstance(stmt, ast.Assign):
        targets = list(stmt.targets)
    elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign)):
        targets = [stmt.target]
    names = set()
    for target in targets:
        for node in ast.walk(target):
            if isinstance(node, ast.Name):
                names.add(node.id)
    return names


def defined_names(source: str) -> Set[str]:
    """Names bound at the top level of a cell (``def``, ``class``, imports, assignments)."""
    tree = _parse(source)
    if tree is None:
        return set()
    names: Set[str] = set()
    for stmt in tree.body:
        names |= _bound_names(stmt)
    return names


def _used_names(node: ast.AST) -> Set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _is_definition(stmt: ast.stmt) -> bool:
    """A statement the probe may re-run from another cell: it only defines names."""
    if isinstance(stmt, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return not (isinstance(stmt, ast.ImportFrom) and any(a.name == "*" for a in stmt.names))
    if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and stmt.value is not None:
        try:
            ast.literal_eval(stmt.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return False
        return all(isinstance(t, ast.Name) for t in (stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]))
    return False


def select(nb, exercise_id: str, answer: str, solution_cells: Sequence[int]) -> Selection:
    """Build the program that defines ``answer`` for exercise ``exercise_id``.

    ``solution_cells``: indices of the cells whose metadata names this exercise as
    ``"solution"``. When none of them defines ``answer`` (a retagged or merged cell), the last
    other cell that does is used, with a note; when no cell defines it, ``problem`` says so
    (naming what the exercise's cells define instead, e.g. a renamed function).
    """
    cells = nb.get("cells", [])
    sel = Selection()
    code = {i: c.get("source", "") for i, c in enumerate(cells) if c.get("cell_type") == "code"}
    own = [i for i in solution_cells if i in code]
    for i in own:
        try:
            ast.parse(to_python(code[i]))
        except SyntaxError as exc:
            sel.problem = f"the exercise's cell ({cell_label(i)}) has a syntax error: {exc.msg} (line {exc.lineno})"
            return sel
        except ValueError as exc:  # null bytes
            sel.problem = f"the exercise's cell ({cell_label(i)}) cannot be parsed: {exc}"
            return sel
    own_defines = [i for i in own if answer in defined_names(code[i])]
    if own_defines:
        chosen = own
    else:
        elsewhere = [i for i in code if i not in own and answer in defined_names(code[i])]
        if not elsewhere:
            names = sorted(set().union(*[defined_names(code[i]) for i in own])) if own else []
            names = [n for n in names if not n.startswith("_")]
            if own and names:
                sel.problem = (
                    f"`{answer}` is not defined: the exercise's cell defines {', '.join(f'`{n}`' for n in names)} "
                    f"instead (renamed? the grader calls `{answer}`)"
                )
            elif own:
                sel.problem = f"`{answer}` is not defined in the exercise's cell"
            else:
                sel.problem = f"no cell defines `{answer}`"
            return sel
        chosen = [elsewhere[-1]]
        meta = cells[chosen[0]].get("metadata", {}).get("course")
        tag = f" (tagged as exercise {meta.get('exercise')})" if isinstance(meta, dict) and meta.get("exercise") else ""
        where = "the exercise's cell does not define it" if own else "no cell carries this exercise's id"
        sel.notes.append(f"Note: {where}; graded the `{answer}` defined in {cell_label(chosen[0])}{tag}.")
    if len(chosen) > 1:
        cells_text = ", ".join(str(i + 1) for i in chosen)
        sel.notes.append(f"Note: {len(chosen)} solution cells (Cells {cells_text}); they ran in order and the last "
                         f"definition of `{answer}` was graded.")

    parsed = {i: _parse(code[i]) for i in code}
    bodies = []
    for i in chosen:
        if parsed[i] is None:
            # Keep it: running it gives the learner Python's own SyntaxError message.
            bodies.append((i, code[i], None))
        else:
            bodies.append((i, to_python(code[i]), parsed[i]))

    # Definitions from other cells, by name, transitively (last binding in notebook order wins).
    providers: Dict[str, Tuple[int, int]] = {}
    stmts: Dict[Tuple[int, int], ast.stmt] = {}
    for i, tree in parsed.items():
        if i in chosen or tree is None:
            continue
        for k, stmt in enumerate(tree.body):
            if _is_definition(stmt):
                stmts[(i, k)] = stmt
                for name in _bound_names(stmt):
                    providers[name] = (i, k)
    wanted: Set[Tuple[int, int]] = set()
    todo = set()
    for _, _, tree in bodies:
        if tree is not None:
            todo |= _used_names(tree)
    seen: Set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        key = providers.get(name)
        if key is not None and key not in wanted:
            wanted.add(key)
            todo |= _used_names(stmts[key])
    context = [ast.unparse(stmts[key]) for key in sorted(wanted)]
    sel.context_cells = sorted({i for i, _ in wanted})
    sel.cells = chosen
    parts = []
    if context:
        parts.append("# definitions from other cells\n" + "\n".join(context))
    parts += [f"# {cell_label(i)}\n{text}" for i, text, _ in bodies]
    sel.source = "\n\n".join(parts) + "\n"
    return sel


# --- the probe process ------------------------------------------------------------------------


def probe_function(
    selection: Selection,
    spec: dict,
    *,
    memory_mb: Optional[float],
    cwd: str,
    env: Dict[str, str],
    sandbox: Optional["Sandbox"] = None,
    define_timeout_s: float = 120,
) -> Tuple[list, Optional[str]]:
    """Run ``selection.source`` in a fresh process (in ``sandbox`` when given) and call the
    answer on the cases of ``spec`` (:meth:`course.exercises.Exercise.spec`).

    Returns ``(outcomes, problem)``: ``outcomes`` as :func:`course.exercises.collect_outcomes`
    makes them (possibly with ``"status": "timeout"`` for cases not reached in time), and
    ``problem`` a reason when the process did not report (killed, exited, out of memory).
    """
    from course.grading.isolation import run_limited

    request = {"source": selection.source, **spec}
    limit = define_timeout_s + (len(spec["cases"]) or 1) * (spec["case_timeout_s"] or 10) + 5
    rc, out, err, problem = run_limited(
        [sys.executable, "-P", "-m", "course.grading.replay"],  # -P: the working folder is not on sys.path
        json.dumps(request).encode(),
        timeout_s=limit,
        memory_mb=memory_mb,
        cwd=cwd,
        env=env,
        sandbox=sandbox,
    )
    text = out.decode("utf-8", "replace").strip()
    if problem is None and text:
        try:
            data = json.loads(text.splitlines()[-1])
            if isinstance(data.get("outcomes"), list):
                return data["outcomes"], None
        except (ValueError, AttributeError):
            pass
    if problem is None:
        tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        problem = f"the process exited (status {rc}) before reporting" + (f": {tail[0][:200]}" if tail[0] else "")
    return [], problem


class _NoIPython:
    """What ``get_ipython()`` returns in the probe: every method does nothing."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def _child_main() -> None:  # pragma: no cover (runs in the probe process; exercised by the tests)
    """Entry point of the probe process: read the request, define, call, report on the real stdout."""
    import builtins

    from course.exercises.outcomes import collect_outcomes

    write, dumps, exit_now = os.write, json.dumps, os._exit
    request = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    call = None
    if request["kind"] in ("module", "design"):  # the runner is taken before the learner's code runs
        from course.exercises import get_exercise

        call = get_exercise(request["id"]).run_case
    report_fd = os.dup(1)
    os.dup2(2, 1)  # the learner's prints go to stderr, never into the report
    sys.stdout = sys.stderr

    def report(outcomes) -> None:
        data = dumps({"outcomes": outcomes}, default=repr).encode()
        while data:
            data = data[write(report_fd, data):]
        exit_now(0)

    namespace = {"__name__": "__main__", "__builtins__": builtins, "get_ipython": _NoIPython}
    try:
        exec(compile(request["source"], "<exercise cell>", "exec"), namespace)
    except KeyboardInterrupt:
        report([{"status": "missing", "detail": "its cell was interrupted"}])
    except BaseException as exc:  # the learner's cell may raise anything, SystemExit included
        if request["answer"] not in namespace:
            message = str(exc).splitlines()[0][:300] if str(exc) else ""
            report([{"status": "missing",
                     "detail": f"its cell raised {type(exc).__name__}: {message}".rstrip(": ")}])
    if request["answer"] not in namespace:
        report([{"status": "missing", "detail": "its cell did not define it"}])
    report(collect_outcomes(namespace[request["answer"]], request["kind"], request["cases"],
                            request["case_timeout_s"], call=call))


if __name__ == "__main__":  # pragma: no cover
    _child_main()
