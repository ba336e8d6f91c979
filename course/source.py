"""Show the library's own code in a notebook: the learner reads exactly the tested block.

>>> from course.source import show_source
>>> from course.blocks.shuffle import channel_shuffle
>>> code = show_source(channel_shuffle)
>>> "def channel_shuffle" in code.source
True

In Jupyter the returned :class:`Source` renders syntax-highlighted (Pygments, the highlighter
Jupyter itself uses); as text it is the plain source with its file and line numbers.
"""

from __future__ import annotations

import html
import inspect
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

__all__ = ["Source", "show_source"]


@dataclass(frozen=True)
class Source:
    """A piece of the library's source code, ready to display.

    Attributes:
        name: what it is, e.g. ``"course.blocks.shuffle.ShuffleV2Unit"``.
        source: the code, dedented, exactly as it stands in the file.
        where: the file (relative to the ``course`` package's parent folder) and the lines,
            e.g. ``"course/blocks/shuffle.py, lines 20-41"``.
    """

    name: str
    source: str
    where: str

    @property
    def header(self) -> str:
        return f"{self.name}  ({self.where})"

    def __str__(self) -> str:
        return f"# {self.header}\n{self.source}"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython's plain-text display
        printer.text(str(self))

    def _repr_html_(self) -> str:
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import PythonLexer

        formatter = HtmlFormatter(noclasses=True, style="default", linenos=False)
        body = highlight(self.source, PythonLexer(), formatter)
        return (
            f'<div class="course-source"><div style="font-family: monospace; font-size: 90%; '
            f'color: #555; margin-bottom: 2px">{html.escape(self.header)}</div>{body}</div>'
        )


def show_source(obj: Any, members: Optional[Sequence[str]] = None) -> Source:
    """The source of a class, function or method of the course library, for display.

    Args:
        obj: a class (e.g. ``ShuffleV2Unit``), a function, a method or a module.
        members: for a class, show only these methods (e.g. ``["forward"]``), in this order;
            ``None`` shows the whole class.

    Returns:
        a :class:`Source`; in a notebook, leave it as the cell's last expression.

    Raises:
        TypeError: when ``obj`` has no source file (a built-in, or an object made at run time).
        ValueError: when a name in ``members`` is not a method defined on the class itself.
    """
    obj = inspect.unwrap(obj)
    try:
        file = inspect.getsourcefile(obj)
        pieces = [inspect.getsourcelines(obj)] if members is None else _members(obj, members)
    except (TypeError, OSError) as exc:
        raise TypeError(f"no source to show for {obj!r}: {exc}") from exc
    spans = ", ".join(f"{max(start, 1)}-{max(start, 1) + len(lines) - 1}" for lines, start in pieces)
    name = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', getattr(obj, '__name__', ''))}"
    if inspect.ismodule(obj):
        name = obj.__name__
    source = "\n".join(textwrap.dedent("".join(lines)) for lines, _ in pieces)
    where = f"{_relative(file)}, lines {spans}"
    return Source(name=name.strip("."), source=source, where=where)


def _members(cls: Any, members: Sequence[str]) -> list:
    """``[(lines, first line number)]`` of each named method of ``cls``, in the order given."""
    if not inspect.isclass(cls):
        raise ValueError(f"members= needs a class, got {cls!r}")
    pieces = []
    for member in members:
        if member not in vars(cls):
            raise ValueError(f"{cls.__name__} defines no method {member!r} itself")
        pieces.append(inspect.getsourcelines(inspect.unwrap(vars(cls)[member])))
    return pieces


def _relative(file: Optional[str]) -> str:
    if not file:
        return "?"
    path = Path(file).resolve()
    package_parent = Path(__file__).resolve().parents[1]
    try:
        return str(path.relative_to(package_parent))
    except ValueError:
        return path.name
