"""Build the course website: stage the pages, then run ``sphinx-build -W`` (myst-nb, no execution).

``build_site(root, out, variant)``:

1. stages a source folder: ``index.md`` written from the README (:mod:`course.site.index`) and
   one notebook per ``solutions/NN_*.ipynb``, in file-name order, made fit for the web
   (:func:`course.site.notebooks.site_notebook`: student or instructor, explorers as snapshots);
2. runs Sphinx with the configuration in ``docs/site/conf.py`` (sphinx-book-theme, myst-nb with
   execution off, MathJax served from the site itself), warnings as errors;
3. replaces ``out`` with the result, so a page of a removed chapter never lingers.

Nothing is fetched from the network: the pages load only files of the site.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import List, Optional, Union

from course.site.index import Chapter, chapter_rows, index_markdown

PathLike = Union[str, os.PathLike]
CHAPTER_GLOB = "[0-9][0-9]_*.ipynb"
_TITLE = re.compile(r"^#\s+(.+?)\s*$", re.MULTILINE)
_CHAPTER_PREFIX = re.compile(r"^Chapter\s+\d+\s*[—–:-]\s*")


def chapter_notebooks(solutions: PathLike) -> List[Path]:
    """The chapter notebooks ``NN_topic.ipynb`` of a solutions folder, in chapter order."""
    return sorted(p for p in Path(solutions).glob(CHAPTER_GLOB) if p.is_file())


def notebook_title(nb, name: str = "notebook") -> str:
    """The text of the notebook's first level-1 Markdown heading (the page title).

    Raises:
        ValueError: when no Markdown cell has a ``# Title`` line.
    """
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = _TITLE.search(cell.source)
            if match:
                return match.group(1)
    raise ValueError(f"{name}: no '# Title' heading in a Markdown cell (a page needs a title)")


def stage(root: PathLike, dest: PathLike, variant: str = "student") -> List[Chapter]:
    """Write the Sphinx sources of the site into ``dest``; return the chapters in order."""
    import nbformat

    from course.site.notebooks import site_notebook

    root, dest = Path(root), Path(dest)
    readme = (root / "README.md").read_text(encoding="utf-8")
    described = chapter_rows(readme)
    notebooks = chapter_notebooks(root / "solutions")
    if not notebooks:
        raise FileNotFoundError(f"no chapter notebooks ({CHAPTER_GLOB}) in {root / 'solutions'}")
    stale = sorted(set(described) - {p.stem for p in notebooks})
    if stale:
        raise ValueError(f"README.md lists chapters that solutions/ does not have: {', '.join(stale)}")
    dest.mkdir(parents=True, exist_ok=True)
    chapters = []
    for path in notebooks:
        nb = nbformat.read(str(path), as_version=4)
        title = notebook_title(nb, str(path))
        row = described.get(path.stem, {})
        number = row.get("number") or str(int(path.stem.split("_", 1)[0]))
        chapters.append(Chapter(path.stem, number, _CHAPTER_PREFIX.sub("", title), row.get("description", "")))
        nbformat.write(site_notebook(nb, variant, name=str(path)), str(dest / path.name))
    (dest / "index.md").write_text(index_markdown(readme, chapters, variant), encoding="utf-8")
    return chapters


def sphinx_command(source: PathLike, html: PathLike, doctrees: PathLike, confdir: PathLike, variant: str) -> List[str]:
    """The ``sphinx-build`` command line (warnings are errors; ``-t instructor`` for that edition)."""
    command = [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-q", "-E"]
    command += ["-c", str(confdir), "-d", str(doctrees)]
    if variant == "instructor":
        command += ["-t", "instructor"]
    return command + [str(source), str(html)]


def _replace_tree(new: Path, out: Path) -> None:
    if out.exists():
        if any(out.iterdir()) and not (out / ".buildinfo").exists():
            raise FileExistsError(f"{out} is not empty and is not a site built here: remove it yourself")
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(new), str(out))


def build_site(
    root: PathLike = ".",
    out: PathLike = "build/site",
    variant: str = "student",
    env: Optional[dict] = None,
) -> List[Chapter]:
    """Build the ``variant`` edition of the site from ``root`` into ``out``; return its chapters.

    Raises:
        subprocess.CalledProcessError: when Sphinx fails (a warning counts: ``-W``); its
            messages are on stderr.
    """
    root, out = Path(root).resolve(), Path(out).resolve()
    confdir = root / "docs" / "site"
    out.parent.mkdir(parents=True, exist_ok=True)
    # Next to `out`, so the finished site is moved (not copied) into place; myst-nb also writes
    # its image files beside the HTML folder (`jupyter_execute/`), which stays in here.
    with tempfile.TemporaryDirectory(prefix=f".{out.name}-", dir=out.parent) as work:
        work = Path(work)
        chapters = stage(root, work / "source", variant)
        command = sphinx_command(work / "source", work / "html", work / "doctrees", confdir, variant)
        subprocess.run(command, check=True, env=env, cwd=root)
        _replace_tree(work / "html", out)
    return chapters
