"""Release: turn solution notebooks into student notebooks.

``solutions/NN_topic.ipynb`` -> ``notebooks/NN_topic.ipynb``: every region between
``### BEGIN SOLUTION`` and ``### END SOLUTION`` (nbgrader's markers) becomes one line, at the
marker's indentation::

    raise NotImplementedError("Exercise 1.2: replace this line with your solution")

Outputs and execution counts are cleared and machine-dependent metadata is dropped, so the
same solutions give the same bytes on every machine and every run.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import List, Optional, Union

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
STUB = 'raise NotImplementedError("Exercise {id}: replace this line with your solution")'

#: Cell metadata keys written by tools at run time (kept out of student copies).
VOLATILE_CELL_METADATA = ("execution", "ExecuteTime", "papermill", "collapsed", "scrolled", "jupyter")
#: Notebook metadata kept in student copies; everything else (widget state, papermill, ...) goes.
KEPT_NOTEBOOK_METADATA = ("kernelspec", "language_info", "course", "title", "authors")

PathLike = Union[str, os.PathLike]


class ReleaseError(ValueError):
    """A solution notebook cannot be released (unbalanced markers, a solution cell without markers, ...)."""


def strip_solution(source: str, exercise_id: str, where: str = "cell") -> str:
    """Replace each marked solution region of ``source`` by the stub, keeping its indentation.

    Raises:
        ReleaseError: on a ``BEGIN`` without ``END``, an ``END`` without ``BEGIN`` or nested
            regions; the message starts with ``where``.
    """
    out: List[str] = []
    begin_line: Optional[int] = None
    for number, line in enumerate(source.splitlines(keepends=True), start=1):
        marker = line.strip()
        if marker == BEGIN:
            if begin_line is not None:
                raise ReleaseError(
                    f"{where}: '{BEGIN}' at line {number} inside the region opened at line {begin_line} "
                    f"(missing '{END}')"
                )
            begin_line = number
            indent = line[: len(line) - len(line.lstrip())]
            newline = "\n" if line.endswith("\n") else ""
            out.append(indent + STUB.format(id=exercise_id) + newline)
        elif marker == END:
            if begin_line is None:
                raise ReleaseError(f"{where}: '{END}' at line {number} without a '{BEGIN}' before it")
            begin_line = None
        elif begin_line is None:
            out.append(line)
    if begin_line is not None:
        raise ReleaseError(f"{where}: '{BEGIN}' at line {begin_line} has no matching '{END}'")
    text = "".join(out)
    if not source.endswith("\n") and text.endswith("\n"):
        text = text[:-1]
    return text


def _has_markers(source: str) -> bool:
    return any(line.strip() in (BEGIN, END) for line in source.splitlines())


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
        where = f"{name}, cell {index}" + (f" (exercise {exercise_id})" if exercise_id else "")
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            if _has_markers(cell.source):
                if not exercise_id:
                    raise ReleaseError(
                        f"{where}: has solution markers but no 'course.exercise' id in its metadata"
                    )
                cell.source = strip_solution(cell.source, exercise_id, where)
            elif isinstance(course, dict) and course.get("part") == "solution":
                raise ReleaseError(
                    f"{where}: a solution cell without '{BEGIN}' / '{END}' markers "
                    "(the student copy would contain the solution)"
                )
        elif _has_markers(cell.source):
            raise ReleaseError(f"{where}: solution markers in a {cell.cell_type} cell (only code cells are released)")
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


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: PathLike, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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
