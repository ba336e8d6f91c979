"""The exercise registry and ``check``.

One comparison serves two callers:

* ``check(id, answer)`` in the learner's notebook runs the answer on the exercise's public
  cases in-process (:func:`course.exercises.outcomes.collect_outcomes`), then grades what
  happened;
* the grader (:mod:`course.grading`) runs the answer in a fresh, sandboxed process on the
  public cases *and* the hidden ones, receives the outcomes as JSON, and grades them in its own
  process.

Both call :func:`course.exercises.judge.grade_outcomes`, a pure function of the exercise and
the outcomes, so the grader never trusts what a notebook prints. Expected values are never
stored: each exercise has a ``reference`` that computes them with the course's own code.

Kinds of answers (``Exercise.kind``):

* ``"function"``: a function, called on every case (positional arguments);
* ``"value"``: data the notebook computed (read from the kernel, no cases);
* ``"module"``: an ``nn.Module`` class: built from each case's keyword arguments, given the
  reference block's weights and run on seeded inputs (:mod:`course.exercises.runners`);
* ``"design"``: a function the exercise's ``runner`` builds, trains and measures (e.g. a
  function returning a model), under the exercise's own time limit ``case_timeout_s``.

See ``docs/exercises.md`` for how to write one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

FUNCTION = "function"
VALUE = "value"
MODULE = "module"
DESIGN = "design"
KINDS = (FUNCTION, VALUE, MODULE, DESIGN)
#: Kinds whose answers are called on cases (the grader replays them in a fresh process).
CALLED = (FUNCTION, MODULE, DESIGN)

#: What a comparison returns when the answer is simply not the expected value.
WRONG_VALUE = "wrong value"

#: Every exercise, keyed by id ("1.2" = chapter 1, exercise 2). Filled by ``course.exercises.chNN``.
REGISTRY: Dict[str, "Exercise"] = {}


@dataclass(frozen=True, eq=False)
class Exercise:
    """One graded exercise.

    Attributes:
        id: "chapter.number", e.g. "1.2".
        title: a short title for reports.
        points: what a correct answer earns (all or nothing).
        answer: the name the learner defines in the notebook (``conv_cost``).
        kind: ``"function"``, ``"value"``, ``"module"`` or ``"design"`` (module docstring).
        cases: one dict per case that ``check`` shows. Functions: parameter name -> argument,
            in the order of the learner's signature (arguments are passed positionally).
            Modules: constructor keyword arguments, plus ``input``: the input's shape (or a
            list of shapes for several inputs). Designs: whatever ``runner`` reads.
        reference: computes the expected result: ``reference(**case)`` for a function,
            ``reference()`` for a value; for a module, the course's block (a class or factory
            called with the case's constructor arguments). Never a stored literal.
        hidden_cases: cases the grader also runs, which ``check`` never shows (same keys, in
            the same order, as ``cases``).
        draw: ``draw(rng) -> case``: the grader also runs ``n_drawn`` cases drawn with a
            ``random.Random`` seeded from the submission's file and the exercise id (so every
            submission gets other ones, and re-grading the same file the same ones). See
            :func:`draw_from`.
        n_drawn: how many cases ``draw`` gives each submission.
        rel_tol: relative tolerance for floats (ints and strings compare exactly).
        abs_tol: absolute tolerance for floats (module outputs use it near zero).
        hints: general hints; the first is shown when no specific one applies.
        diagnose: optional ``diagnose(case, expected, got) -> str | None`` giving a hint
            specific to how this case failed.
        compare: optional ``compare(expected, got) -> str | None`` replacing the default
            comparison (return ``None`` when the answer is right, else what is wrong).
        output_names: names of the components of a tuple result, for messages
            (``("macs", "params")``).
        reveal_expected: whether messages may show the expected value (``False`` for value
            exercises, where it would give the answer away).
        case_timeout_s: seconds one case may take in the grader (default: its
            ``--case-timeout``); declare it for answers that train (``"design"``): the
            grader's limits follow it.
        runner: ``runner(exercise, answer, case) -> JSON-able value``: how one case of a
            ``"design"`` (or a non-standard ``"module"``) exercise is run in the answer's
            process. Module exercises default to :func:`course.exercises.runners.run_module`.
        weights: module exercises: ``{learner's parameter name: reference's name}`` for the
            names that differ (the others are copied by name); documented in the exercise.
    """

    id: str
    title: str
    points: int
    answer: str
    kind: str
    reference: Callable[..., Any]
    cases: Tuple[Dict[str, Any], ...] = ()
    hidden_cases: Tuple[Dict[str, Any], ...] = ()
    draw: Optional[Callable[[random.Random], Dict[str, Any]]] = None
    n_drawn: int = 3
    rel_tol: float = 1e-9
    abs_tol: float = 0.0
    hints: Tuple[str, ...] = ()
    diagnose: Optional[Callable[[Dict[str, Any], Any, Any], Optional[str]]] = None
    compare: Optional[Callable[[Any, Any], Optional[str]]] = None
    output_names: Tuple[str, ...] = ()
    reveal_expected: bool = True
    case_timeout_s: Optional[float] = None
    runner: Optional[Callable[["Exercise", Any, Dict[str, Any]], Any]] = None
    weights: Mapping[str, str] = field(default_factory=dict)
    _expected_cache: list = field(default_factory=list, init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"exercise {self.id}: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.kind in CALLED and not self.cases:
            raise ValueError(f"exercise {self.id}: a {self.kind} exercise needs cases")
        if self.kind == DESIGN and self.runner is None:
            raise ValueError(f"exercise {self.id}: a design exercise needs a runner")
        if self.kind == MODULE and any("input" not in case for case in self.cases + self.hidden_cases):
            raise ValueError(f"exercise {self.id}: every case of a module exercise needs an 'input' shape")
        keys = [list(case) for case in self.cases]
        for case in self.hidden_cases:
            if self.kind == FUNCTION and keys and list(case) != keys[0]:
                raise ValueError(f"exercise {self.id}: hidden case {case} must have the keys of the cases, "
                                 f"in the same order ({', '.join(keys[0])})")

    @property
    def chapter(self) -> int:
        """The chapter number (the part of the id before the dot)."""
        return int(self.id.split(".")[0])

    @property
    def n_cases(self) -> int:
        """How many outcomes a complete answer produces on the public cases (1 for a value)."""
        return len(self.cases) if self.kind in CALLED else 1

    # --- cases ---------------------------------------------------------------------------

    def grading_cases(self, seed: Optional[int] = None, hidden: bool = True) -> List[Dict[str, Any]]:
        """The cases the grader runs: the public ones, then (``hidden``) the hidden ones and
        ``n_drawn`` drawn with ``seed`` (a per-submission number; none drawn when None)."""
        cases = list(self.cases)
        if not hidden or self.kind not in CALLED:
            return cases
        cases += list(self.hidden_cases)
        if self.draw is not None and seed is not None:
            rng = random.Random(f"{seed}:{self.id}")
            for _ in range(self.n_drawn):
                case = dict(self.draw(rng))
                if self.kind == FUNCTION and self.cases and list(case) != list(self.cases[0]):
                    raise ValueError(f"exercise {self.id}: draw() gave {case}, whose keys differ from the cases'")
                cases.append(case)
        return cases

    def case_args(self, cases: Optional[Sequence[Dict[str, Any]]] = None) -> list:
        """What travels to the answer's process (JSON-able): for functions, the positional
        arguments of every case; for modules and designs, the case dicts themselves."""
        cases = self.cases if cases is None else cases
        if self.kind == FUNCTION:
            return [list(case.values()) for case in cases]
        return [dict(case) for case in cases] if self.kind in CALLED else []

    def run_case(self, answer: Any, case) -> Any:
        """Run one case of a module or design exercise in the answer's process (the
        ``call`` of :func:`course.exercises.outcomes.collect_outcomes`)."""
        if self.runner is not None:
            return self.runner(self, answer, case)
        if self.kind == MODULE:
            from course.exercises.runners import run_module

            return run_module(self, answer, case)
        return answer(*case) if isinstance(case, list) else answer(**case)

    def expected(self) -> list:
        """Expected results on the public cases (one item for a value), computed once."""
        if not self._expected_cache:
            self._expected_cache.append(self.expected_for(self.cases))
        return self._expected_cache[0]

    def expected_for(self, cases: Sequence[Dict[str, Any]]) -> list:
        """Expected results on ``cases``, computed by ``reference`` (the public ones cached)."""
        if self.kind == VALUE:
            return [self.reference()]
        cases = list(cases)
        head = list(self.cases)
        if cases[: len(head)] == head and self._expected_cache:
            return self._expected_cache[0] + [self._expected_one(c) for c in cases[len(head):]]
        return [self._expected_one(case) for case in cases]

    def _expected_one(self, case: Dict[str, Any]) -> Any:
        if self.kind == FUNCTION:
            return self.reference(**case)
        if self.kind == MODULE and self.runner is None:
            from course.exercises.runners import run_module

            return run_module(self, self.reference, case)
        return self.reference(**case)

    def call_text(self, case: Dict[str, Any]) -> str:
        """How the case reads: ``conv_cost(H=56, W=56, ...)``; for a module,
        ``Unit(N=24, stride=2) on an input of shape (2, 24, 9, 9)``."""
        if self.kind == MODULE:
            args = ", ".join(f"{k}={v!r}" for k, v in case.items() if k != "input")
            shapes = case.get("input")
            if shapes and isinstance(shapes[0], (list, tuple)):
                shown = " and ".join(str(tuple(s)) for s in shapes)
                return f"{self.answer}({args}) on inputs of shapes {shown}"
            return f"{self.answer}({args}) on an input of shape {tuple(shapes or ())}"
        args = ", ".join(f"{k}={v!r}" for k, v in case.items())
        return f"{self.answer}({args})"

    def spec(self, case_timeout_s: Optional[float] = None, cases: Optional[Sequence[Dict[str, Any]]] = None) -> dict:
        """What the grader's answer process (or kernel probe) needs to run this exercise (JSON-able)."""
        return {
            "id": self.id,
            "answer": self.answer,
            "kind": self.kind,
            "cases": self.case_args(cases),
            "case_timeout_s": case_timeout_s,
        }


def draw_from(where: Optional[Callable[[Dict[str, Any]], bool]] = None, **choices: Sequence[Any]):
    """A ``draw`` for :class:`Exercise`: each parameter picked from its choices (keep the order of
    the answer's signature), redrawn until ``where(case)`` holds. For example::

        draw=draw_from(H=[7, 14, 28, 56], N=[16, 32, 64], groups=[1, 2, 4], where=lambda c: c["N"] % c["groups"] == 0)
    """
    if not choices:
        raise ValueError("draw_from needs at least one parameter and its choices")

    def draw(rng: random.Random) -> Dict[str, Any]:
        for _ in range(10_000):
            case = {name: rng.choice(list(options)) for name, options in choices.items()}
            if where is None or where(case):
                return case
        raise ValueError(f"draw_from: no case satisfies `where` among the choices {choices}")

    return draw


def register(exercise: Exercise) -> Exercise:
    """Add an exercise to :data:`REGISTRY` (its id must be new)."""
    if exercise.id in REGISTRY and REGISTRY[exercise.id] is not exercise:
        raise ValueError(f"exercise {exercise.id} is registered twice")
    REGISTRY[exercise.id] = exercise
    return exercise


def get_exercise(exercise_id: str) -> Exercise:
    """The exercise with this id; ``KeyError`` naming the known ids otherwise."""
    try:
        return REGISTRY[str(exercise_id)]
    except KeyError:
        known = ", ".join(sorted(REGISTRY, key=id_sort_key)) or "none"
        raise KeyError(f"no exercise {exercise_id!r}; known exercises: {known}") from None


def list_exercises(chapter: Optional[int] = None) -> List[Exercise]:
    """All registered exercises (of one chapter if given), in id order."""
    items = sorted(REGISTRY.values(), key=lambda e: id_sort_key(e.id))
    return [e for e in items if chapter is None or e.chapter == chapter]


def id_sort_key(exercise_id: str):
    """Sort key of an exercise id: "1.10" after "1.9"."""
    return tuple(int(p) if p.isdigit() else p for p in str(exercise_id).split("."))


# --- check: in-notebook feedback -------------------------------------------------------------


class CheckResult:
    """What :func:`check` returns: ``passed``, ``points``, ``max_points``, ``message``.

    ``check`` already printed the message, so in a notebook this object displays nothing
    (no duplicated message); its ``repr`` is one short line.
    """

    __slots__ = ("exercise", "passed", "points", "max_points", "message", "attempted")

    def __init__(self, exercise: str, passed: bool, points: int, max_points: int, message: str,
                 attempted: bool = True):
        self.exercise = exercise
        self.passed = passed
        self.points = points
        self.max_points = max_points
        self.message = message
        self.attempted = attempted

    def __repr__(self) -> str:
        state = "passed" if self.passed else ("not passed" if self.attempted else "not attempted")
        return f"<CheckResult {self.exercise}: {state}, {self.points}/{self.max_points} points>"

    def __bool__(self) -> bool:
        return self.passed

    def _ipython_display_(self) -> None:
        """Show nothing: the message was printed by ``check``."""


_MISSING = object()


def check(exercise_id: str, answer: Any = _MISSING, *, quiet: bool = False) -> CheckResult:
    """Check the learner's answer to an exercise on its public cases and print friendly feedback.

    Args:
        exercise_id: e.g. ``"1.2"``.
        answer: the learner's function, class (module exercises) or value. When omitted, the
            exercise's answer name is looked up in the notebook's namespace.
        quiet: do not print (the message is still in the result).

    Returns:
        A :class:`CheckResult` (displays nothing in a notebook). Never raises for anything
        the answer does: wrong types, exceptions, stubs and ``None`` are all reported.
    """
    from course.exercises.judge import grade_outcomes, is_attempted
    from course.exercises.outcomes import collect_outcomes

    exercise = get_exercise(exercise_id)
    if answer is _MISSING:
        import __main__

        answer = getattr(__main__, exercise.answer, _MISSING)
    if answer is _MISSING:
        outcomes = [{"status": "missing", "detail": "it is not defined yet"}]
    else:
        call = exercise.run_case if exercise.kind in (MODULE, DESIGN) else None
        outcomes = collect_outcomes(answer, exercise.kind, exercise.case_args(), call=call)
    points, message = grade_outcomes(exercise, outcomes)
    if not quiet:
        print(message)
    return CheckResult(exercise.id, points == exercise.points, points, exercise.points, message,
                       attempted=is_attempted(exercise, outcomes))
