"""Graded exercises: a registry keyed by id ("1.2" = chapter 1, exercise 2) and ``check``.

In a notebook::

    from course.exercises import check
    check("1.2", conv_cost)   # prints "Exercise 1.2 passed: 8/8 cases (3 points)" or what failed

The grader (:mod:`course.grading`) uses the same :func:`grade_outcomes` on outcomes computed in
a fresh process, on the public cases and the hidden ones. Importing this package is light:
expected values are computed on first use with :mod:`course.cost`. How to write an exercise:
``docs/exercises.md``; worked examples of every kind: :mod:`course.exercises.examples`.
"""

from course.exercises.core import (
    DESIGN,
    FUNCTION,
    MODULE,
    REGISTRY,
    VALUE,
    CheckResult,
    Exercise,
    check,
    draw_from,
    get_exercise,
    id_sort_key,
    list_exercises,
    register,
)
from course.exercises.judge import compare_values, grade_outcomes
from course.exercises.outcomes import collect_outcomes


def _register_chapters() -> None:
    """Import every ``course.exercises.chNN`` module (each registers its chapter's exercises)
    and the worked examples (chapter 99, in no notebook)."""
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("ch") and info.name[2:].isdigit():
            importlib.import_module(f"{__name__}.{info.name}")
    importlib.import_module(f"{__name__}.examples")


_register_chapters()

__all__ = [
    "DESIGN",
    "FUNCTION",
    "MODULE",
    "REGISTRY",
    "VALUE",
    "CheckResult",
    "Exercise",
    "check",
    "collect_outcomes",
    "compare_values",
    "draw_from",
    "get_exercise",
    "grade_outcomes",
    "id_sort_key",
    "list_exercises",
    "register",
]
