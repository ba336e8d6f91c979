"""The site's front page, written from the README (its introduction and its chapter table).

The README stays the one place where the chapters are described: :func:`chapter_rows` reads its
``## Chapters`` table (columns ``#``, ``Notebook``, ``What it teaches``) and
:func:`index_markdown` writes the front page with a link to each chapter page. A notebook in
``solutions/`` that the table does not list still gets its page and a row (without a
description), so a new chapter appears on the site before its README line is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, Sequence

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


@dataclass(frozen=True)
class Chapter:
    """One chapter page: ``stem`` (``01_convolution_cost``), its number, title and description."""

    stem: str
    number: str
    title: str
    description: str = ""


def _section(markdown: str, heading: str) -> List[str]:
    """The lines under ``## heading`` up to the next heading of the same or a higher level."""
    lines, inside, level = [], False, 0
    for line in markdown.splitlines():
        match = _HEADING.match(line)
        if match and inside and len(match.group(1)) <= level:
            break
        if inside:
            lines.append(line)
        elif match and match.group(2).strip().lower() == heading.lower():
            inside, level = True, len(match.group(1))
    return lines


def _cells(row: str) -> List[str]:
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


def chapter_rows(readme: str) -> Dict[str, Dict[str, str]]:
    """``{notebook stem: {"number": ..., "description": ...}}`` from the README's chapter table.

    Raises:
        ValueError: when the README has no ``## Chapters`` table with a ``Notebook`` column.
    """
    table = [line for line in _section(readme, "Chapters") if line.strip().startswith("|")]
    if len(table) < 2:
        raise ValueError("README.md: no table under '## Chapters'")
    header = [cell.lower() for cell in _cells(table[0])]
    if "notebook" not in header:
        raise ValueError(f"README.md: the chapter table has no 'Notebook' column (columns: {header})")
    notebook, number = header.index("notebook"), header.index("#") if "#" in header else None
    described = [i for i in range(len(header)) if i not in (notebook, number)]
    rows = {}
    for line in table[2:]:  # table[1] is the |---| rule
        cells = _cells(line)
        stem = cells[notebook].strip("`").removesuffix(".ipynb")
        rows[stem] = {
            "number": cells[number] if number is not None else "",
            "description": " ".join(cells[i] for i in described if i < len(cells)),
        }
    return rows


def introduction(readme: str) -> str:
    """The README's first heading and the paragraphs under it, up to the next heading."""
    lines = readme.splitlines()
    start = next((i for i, line in enumerate(lines) if _HEADING.match(line)), 0)
    end = next((i for i in range(start + 1, len(lines)) if _HEADING.match(lines[i])), len(lines))
    return "\n".join(lines[start:end]).strip()


def index_markdown(readme: str, chapters: Sequence[Chapter], variant: str) -> str:
    """The front page (MyST Markdown): introduction, edition note, chapter table, hidden toctree."""
    edition = (
        "This is the **student edition**: each exercise shows the stub you replace, not its "
        "solution. Instructors build the edition with solutions with `make site-instructor`."
        if variant == "student"
        else "This is the **instructor edition**: the exercises show their solutions. "
        "Share the student edition (`make site`) with learners."
    )
    rows = "\n".join(
        f"| {c.number} | [{c.title}]({c.stem}.ipynb) | {c.description} |" for c in chapters
    )
    toctree = "\n".join(c.stem for c in chapters)
    return f"""{introduction(readme)}

Each chapter below is a notebook, shown here as it was executed when the course was checked:
its formulas, tables, figures and measurements (taken on the machine that ran it). The
explorers are pictures of their last state; they are live when you run the notebooks yourself
in JupyterLab (`make lab`), where every number is recomputed and re-measured on your device.

{edition}

## Chapters

| # | Chapter | What it teaches |
|---|---------|-----------------|
{rows}

```{{toctree}}
:hidden:
:maxdepth: 2

{toctree}
```
"""
