"""Graded exercises: a registry keyed by id ("1.2" = chapter 1, exercise 2) and ``check``.

In a notebook::

    from course.exercises import check
    check("1.2", conv_cost)   # prints "Exercise 1.2 passed: 8/8 cases (3 points)" or what failed

The grader (:mod:`course.grading`) uses the same :func:`grade_outcomes` on outcomes computed in
the submission's kernel. Importing this package is light: expected values are computed on
first use with :mod:`course.cost`.
"""

from course.exercises.core import (
    FUNCTION,
    REGISTRY,
    VALUE,
    CheckResult,
    Exercise,
    check,
    collect_outcomes,
    compare_values,
    get_exercise,
    grade_outcomes,
    list_exercises,
    register,
)

def _register_chapters() -> None:
    """Import every ``course.exercises.chNN`` module: each registers its chapter's exercises."""
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("ch") and info.name[2:].isdigit():
            importlib.import_module(f"{__name__}.{info.name}")


_register_chapters()

__all__ = [
    "FUNCTION",
    "REGISTRY",
    "VALUE",
    "CheckResult",
    "Exercise",
    "check",
    "collect_outcomes",
    "compare_values",
    "get_exercise",
    "grade_outcomes",
    "list_exercises",
    "register",
]
