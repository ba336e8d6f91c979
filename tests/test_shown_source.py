"""The library code a solution notebook shows (``show_source``) is stored as the library has it now.

A block's source shown in a stored output goes stale when the block changes and the notebook is
not re-executed; the learner would then read code that is not the tested code. Each stored
``show_source(...)`` output is compared with what the same call gives now.
"""

import importlib
import re
from pathlib import Path

import nbformat
import pytest

from course.source import show_source

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "solutions").glob("*.ipynb"))
HEADER = re.compile(r"# (course(?:\.\w+)+)\s+\(")


def shown_cells(path):
    """(JupyterLab cell number, source, stored text/plain) of each cell that shows library code."""
    nb = nbformat.read(str(path), as_version=4)
    for number, cell in enumerate(nb.cells, start=1):
        if cell.cell_type != "code" or "show_source(" not in cell.source:
            continue
        for output in cell.get("outputs", []):
            text = output.get("data", {}).get("text/plain", "")
            if HEADER.match(text):
                yield number, cell.source, text


CALL = re.compile(r"show_source\((\w+)(?:,[^()]*)?\)")


def current(source: str, text: str) -> list:
    """What the cell's ``show_source(...)`` calls of the object named in ``text``'s header print now."""
    qualified = HEADER.match(text).group(1)
    module_name, name = qualified.rsplit(".", 1)
    obj = getattr(importlib.import_module(module_name), name)
    calls = [m.group(0) for m in CALL.finditer(source) if m.group(1) == name]
    assert calls, f"no show_source({name}...) call in the cell: {source!r}"
    return [str(eval(call, {"show_source": show_source, name: obj})) for call in calls]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_stored_source_is_the_library_source(path):
    stale = [f"Cell {number}: {text.splitlines()[0]}" for number, source, text in shown_cells(path)
             if text not in current(source, text)]
    assert not stale, f"{path.name}: re-execute (scripts/execute_solutions.py): stale source in\n" + "\n".join(stale)


def test_the_notebooks_show_library_code():
    assert sum(1 for path in NOTEBOOKS for _ in shown_cells(path)) >= 10
