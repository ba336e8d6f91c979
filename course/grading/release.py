"""Release: turn solution notebooks into student notebooks.

``solutions/NN_topic.ipynb`` -> ``notebooks/NN_topic.ipynb``: every region between
``### BEGIN SOLUTION`` and ``### END SOLUTION`` (nbgrader's markers) becomes one line, at the
marker's indentation. Inside a function (or method) it raises when the function is called::

    raise NotImplementedError("Exercise 1.2: replace this line with your solution")

Anywhere else (a value answer: ``heaviest_conv = None`` then the region) it does nothing, so
"Run All" goes on and the check cell says "not attempted"::

    # Exercise 1.4: replace this line with your answer

(``pass  # Exercise ...`` inside an indented block). A released exercise cell must still define
the exercise's answer name (``heaviest_conv = None`` before the markers), or release fails.

Model answers to the "Questions to answer for yourself" live in markdown cells between a line
``<!-- BEGIN ANSWER -->`` and a line ``<!-- END ANSWER -->`` (HTML comments: JupyterLab shows
nothing of them in the solution notebook). The student copy replaces each such region by one
line (:data:`ANSWER_STUB`) saying where the answer is, so a learner can think first and check
after.

Outputs and execution counts are cleared and machine-dependent metadata is dropped, so the
same solutions give the same bytes on every machine and every run.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import List, Optional, Set, Union

from course.grading.files import write_atomic

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
STUB = 'raise NotImplementedError("Exercise {id}: replace this line with your solution")'
VALUE_STUB = "# Exercise {id}: replace this line with your answer"
ANSWER_BEGIN = "<!-- BEGIN ANSWER -->"
ANSWER_END = "<!-- END ANSWER -->"
ANSWER_STUB = "*Model answer: in the solution notebook (`solutions/{notebook}`); answer for yourself first.*"

#: Cell metadata keys written by tools at run time (kept out of student copies).
VOLATILE_CELL_METADATA = ("execution", "ExecuteTime", "papermill", "collapsed", "scrolled", "jupyter")
#: Notebook metadata kept in student copies; everything else (widget state, papermill, ...) goes.
KEPT_NOTEBOOK_METADATA = ("kernelspec", "language_info", "course", "title", "authors")

PathLike = Union[str, os.PathLike]


class ReleaseError(ValueError):
    """A solution notebook cannot be released (unbalanced markers, a solution cell without markers, ...)."""


def _function_lines(source: str) -> Optional[Set[int]]:
    """Line numbers (1-based) inside a ``def`` of ``source``; None if it does not parse."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    lines: Set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines.update(range(node.lineno + 1, (node.end_lineno or node.lineno) + 1))
    return lines


def _stub(exercise_id: str, indent: str, line: int, in_function: Optional[Set[int]]) -> str:
    if in_function is None or line in in_function:
        return indent + STUB.format(id=exercise_id)
    stub = VALUE_STUB.format(id=exercise_id)
    return indent + (stub if not indent else "pass  " + stub)


def _replace_regions(source: str, begin: str, end: str, stub, where: str, region: str) -> str:
    """Replace each region of ``source`` from a line ``begin`` to a line ``end`` (markers
    included) by ``stub(indent, line_number)`` (a line without its newline).

    Raises:
        ReleaseError: on a ``begin`` without ``end``, an ``end`` without ``begin`` or nested
            regions; the message starts with ``where`` and calls the region ``region``.
    """
    out: List[str] = []
    begin_line: Optional[int] = None
    for number, line in enumerate(source.splitlines(keepends=True), start=1):
        marker = line.strip()
        if marker == begin:
            if begin_line is not None:
                raise ReleaseError(
                    f"{where}: '{begin}' at line {number} inside the {region} opened at line {begin_line} "
                    f"(missing '{end}')"
                )
            begin_line = number
            indent = line[: len(line) - len(line.lstrip())]
            out.append(stub(indent, number) + ("\n" if line.endswith("\n") else ""))
        elif marker == end:
            if begin_line is None:
                raise ReleaseError(f"{where}: '{end}' at line {number} without a '{begin}' before it")
            begin_line = None
        elif begin_line is None:
            out.append(line)
    if begin_line is not None:
        raise ReleaseError(f"{where}: '{begin}' at line {begin_line} has no matching '{end}'")
    text = "".join(out)
    if not source.endswith("\n") and text.endswith("\n"):
        text = text[:-1]
    return text


def strip_solution(source: str, exercise_id: str, where: str = "cell") -> str:
    """Replace each marked solution region of ``source`` by a stub, keeping its indentation: a
    ``raise NotImplementedError`` inside a function (or method), a line that does nothing
    elsewhere (see the module docstring).

    Raises:
        ReleaseError: on a ``BEGIN`` without ``END``, an ``END`` without ``BEGIN`` or nested
            regions; the message starts with ``where``.
    """
    in_function = _function_lines(source)
    return _replace_regions(source, BEGIN, END, lambda indent, line: _stub(exercise_id, indent, line, in_function),
                            where, "region")


def strip_answers(source: str, notebook: str, where: str = "cell") -> str:
    """Replace each ``<!-- BEGIN ANSWER -->`` ... ``<!-- END ANSWER -->`` region of a markdown
    cell's ``source`` (markers included) by one line pointing to ``solutions/<notebook>``.

    Raises:
        ReleaseError: on unbalanced or nested markers; the message starts with ``where``.
    """
    return _replace_regions(source, ANSWER_BEGIN, ANSWER_END, lambda indent, line: ANSWER_STUB.format(notebook=notebook),
                            where, "answer")


def _has_markers(source: str) -> bool:
    return any(line.strip() in (BEGIN, END) for line in source.splitlines())


def _has_answer_markers(source: str) -> bool:
    return any(line.strip() in (ANSWER_BEGIN, ANSWER_END) for line in source.splitlines())


def _check_defines_answer(source: str, exercise_id: str, where: str) -> None:
    """A released cell of a registered exercise must still bind the answer's name (so the check
    cell after it says "not attempted" instead of raising ``NameError``)."""
    from course.exercises import REGISTRY

    exercise = REGISTRY.get(str(exercise_id))
    if exercise is None:
        return
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return
    bound = set()
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(stmt.name)
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            bound |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    if exercise.answer not in bound:
        raise ReleaseError(
            f"{where}: the student copy does not define `{exercise.answer}` (the check would raise NameError): "
            f"put the definition line outside the solution markers (e.g. `{exercise.answer} = None` before them)"
        )


def release_notebook(nb, name: str = "notebook"):
    """Return the student copy of a solution notebook (an ``nbformat`` node; ``nb`` is not changed).

    ``name`` is used in error messages (usually the notebook's path).
    """
    import copy

    import nbformat

    student = copy.deepcopy(nb)
    student.nbformat, student.nbformat_minor = 4, max(int(nb.get("nbformat_minor", 5)), 5)
    metadata = {k: v for k, v in nb.get("metadata", {}).items() if k in KEPT_NOTEBOOK_METADATA}
    if "language_info" in metadata:  # its version and codemirror mode vary between machines
        metadata["language_info"] = {"name": metadata["language_info"].get("name", "python")}
    student.metadata = nbformat.from_dict(metadata)

    seen_ids = set()
    for index, cell in enumerate(student.cells):
        cell_id = cell.get("id")
        if not cell_id or cell_id in seen_ids:
            cell_id = f"cell-{index}"
        seen_ids.add(cell_id)
        cell["id"] = cell_id
        for key in VOLATILE_CELL_METADATA:
            cell.metadata.pop(key, None)
        course = cell.metadata.get("course", {})
        exercise_id = course.get("exercise") if isinstance(course, dict) else None
        where = f"{name}, Cell {index + 1}" + (f" (exercise {exercise_id})" if exercise_id else "")
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            if _has_markers(cell.source):
                if not exercise_id:
                    raise ReleaseError(
                        f"{where}: has solution markers but no 'course.exercise' id in its metadata"
                    )
                cell.source = strip_solution(cell.source, exercise_id, where)
                if isinstance(course, dict) and course.get("part") == "solution":
                    _check_defines_answer(cell.source, exercise_id, where)
            elif isinstance(course, dict) and course.get("part") == "solution":
                raise ReleaseError(
                    f"{where}: a solution cell without '{BEGIN}' / '{END}' markers "
                    "(the student copy would contain the solution)"
                )
        elif _has_markers(cell.source):
            raise ReleaseError(f"{where}: solution markers in a {cell.cell_type} cell (only code cells are released)")
        if _has_answer_markers(cell.source):
            if cell.cell_type != "markdown":
                raise ReleaseError(
                    f"{where}: model-answer markers in a {cell.cell_type} cell (answers go in markdown cells)"
                )
            cell.source = strip_answers(cell.source, Path(name).name, where)
    try:
        nbformat.validate(student)
    except nbformat.ValidationError as exc:
        raise ReleaseError(f"{name}: the student copy is not a valid notebook: {exc.message}") from exc
    return student


def render(path: PathLike) -> str:
    """The exact text ``release`` writes for the solution notebook at ``path``."""
    import nbformat

    path = Path(path)
    try:
        nb = nbformat.read(str(path), as_version=4)
    except Exception as exc:
        raise ReleaseError(f"{path}: cannot read the notebook ({type(exc).__name__}: {exc})") from exc
    text = nbformat.writes(release_notebook(nb, name=str(path)))
    return text if text.endswith("\n") else text + "\n"  # as nbformat.write does


def _sources(source_dir: PathLike) -> List[Path]:
    return sorted(p for p in Path(source_dir).glob("*.ipynb") if p.is_file())


def release(source_dir: PathLike = "solutions", dest_dir: PathLike = "notebooks") -> List[Path]:
    """Write the student copy of every ``source_dir/*.ipynb`` into ``dest_dir``.

    All notebooks are rendered before any is written, so an error leaves ``dest_dir`` as it
    was. Returns the written paths (sorted).

    Raises:
        FileNotFoundError: when ``source_dir`` does not exist.
        ReleaseError: naming the notebook and cell, on unbalanced markers or a solution cell
            without markers.
    """
    source_dir, dest_dir = Path(source_dir), Path(dest_dir)
    if not source_dir.is_dir():
        raise FileNotFoundError(f"no solutions folder: {source_dir}")
    rendered = [(dest_dir / src.name, render(src)) for src in _sources(source_dir)]
    for dest, text in rendered:
        write_atomic(dest, text)
    return [dest for dest, _ in rendered]


def check_release(source_dir: PathLike = "solutions", dest_dir: PathLike = "notebooks") -> List[str]:
    """What differs between ``dest_dir`` and what ``release`` would write: an empty list when in sync.

    Each problem is one line (a missing or stale student notebook). Notebooks in
    ``dest_dir`` without a solution are not reported.
    """
    problems = []
    for src in _sources(source_dir):
        dest = Path(dest_dir) / src.name
        expected = render(src)
        if not dest.exists():
            problems.append(f"{dest}: missing (run `course release`)")
        elif dest.read_text(encoding="utf-8") != expected:
            problems.append(f"{dest}: differs from the release of {src} (run `course release`)")
    return problems
