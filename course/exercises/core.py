"""The exercise registry, the comparison of answers, and ``check``.

One comparison serves two callers:

* ``check(id, answer)`` in the learner's notebook computes the *outcomes* (what the learner's
  answer returned or raised on each case) in-process, then grades them;
* the grader (:mod:`course.grading.grader`) computes the outcomes inside the submission's kernel,
  receives them as JSON, and grades them in its own process.

Both call :func:`grade_outcomes`, a pure function of the exercise and the outcomes, so the
grader never trusts what a notebook prints. Expected values are never stored: each exercise
has a ``reference`` that computes them with the course's own code.

An *outcome* is a JSON-able dict, one per case, produced by :func:`collect_outcomes`:

* ``{"status": "ok", "value": ..., "type": "tuple", "repr": "(3, 4)"}``
* ``{"status": "error", "error_type": "ZeroDivisionError", "error_message": "..."}``
* ``{"status": "timeout", "seconds": 10}`` and ``{"status": "skipped"}`` (after a timeout)
* a single ``{"status": "missing", "detail": ...}`` or ``{"status": "not_callable", ...}``
  when there is no answer to call at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

FUNCTION = "function"
VALUE = "value"

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
        kind: ``"function"`` (called on every case) or ``"value"`` (one value, no case).
        cases: for functions, one dict per case mapping parameter name -> argument, in the
            order of the learner's signature (arguments are passed positionally).
        reference: computes the expected result: ``reference(**case)`` for a function,
            ``reference()`` for a value. Never a stored literal.
        rel_tol: relative tolerance for floats (ints and strings compare exactly).
        hints: general hints; the first is shown when no specific one applies.
        diagnose: optional ``diagnose(case, expected, got) -> str | None`` giving a hint
            specific to how this case failed.
        compare: optional ``compare(expected, got) -> str | None`` replacing the default
            comparison (return ``None`` when the answer is right, else what is wrong).
        output_names: names of the components of a tuple result, for messages
            (``("macs", "params")``).
        reveal_expected: whether messages may show the expected value (``False`` for value
            exercises, where it would give the answer away).
    """

    id: str
    title: str
    points: int
    answer: str
    kind: str
    reference: Callable[..., Any]
    cases: Tuple[Dict[str, Any], ...] = ()
    rel_tol: float = 1e-9
    hints: Tuple[str, ...] = ()
    diagnose: Optional[Callable[[Dict[str, Any], Any, Any], Optional[str]]] = None
    compare: Optional[Callable[[Any, Any], Optional[str]]] = None
    output_names: Tuple[str, ...] = ()
    reveal_expected: bool = True
    _expected_cache: list = field(default_factory=list, init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.kind not in (FUNCTION, VALUE):
            raise ValueError(f"exercise {self.id}: kind must be 'function' or 'value', got {self.kind!r}")
        if self.kind == FUNCTION and not self.cases:
            raise ValueError(f"exercise {self.id}: a function exercise needs cases")

    @property
    def chapter(self) -> int:
        """The chapter number (the part of the id before the dot)."""
        return int(self.id.split(".")[0])

    @property
    def n_cases(self) -> int:
        """How many outcomes a complete answer produces (1 for a value)."""
        return len(self.cases) if self.kind == FUNCTION else 1

    def case_args(self) -> List[list]:
        """The positional arguments of every case (JSON-able), in order."""
        return [list(case.values()) for case in self.cases]

    def expected(self) -> list:
        """Expected results, one per case (one item for a value), computed once by ``reference``."""
        if not self._expected_cache:
            if self.kind == FUNCTION:
                values = [self.reference(**case) for case in self.cases]
            else:
                values = [self.reference()]
            self._expected_cache.append(values)
        return self._expected_cache[0]

    def call_text(self, case: Dict[str, Any]) -> str:
        """How the case reads as a call: ``conv_cost(H=56, W=56, ...)``."""
        args = ", ".join(f"{k}={v!r}" for k, v in case.items())
        return f"{self.answer}({args})"

    def spec(self, case_timeout_s: Optional[float] = None) -> dict:
        """What the grader's probe needs to run this exercise in a kernel (JSON-able)."""
        return {
            "id": self.id,
            "answer": self.answer,
            "kind": self.kind,
            "cases": self.case_args() if self.kind == FUNCTION else [],
            "case_timeout_s": case_timeout_s,
        }


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
    return tuple(int(p) if p.isdigit() else p for p in str(exercise_id).split("."))


# --- collecting outcomes (runs in the learner's kernel, also pasted into the grader's probe) ---


def collect_outcomes(answer, kind, cases, case_timeout_s=None):
    """Run ``answer`` on every case (``kind="function"``) or read it (``kind="value"``).

    Returns a list of JSON-able outcome dicts (see the module docstring). Never raises for
    anything the answer does. This function is self-contained (no module globals, imports
    inside) because the grader sends its source into the submission's kernel.
    """
    import numbers
    import signal
    import threading

    def short(obj, limit=300, as_repr=False):
        try:
            text = repr(obj) if as_repr else str(obj)
        except Exception as exc:  # a broken __repr__ or __str__
            text = f"<{type(obj).__name__} (printing it failed: {type(exc).__name__})>"
        return text if len(text) <= limit else text[: limit - 3] + "..."

    def jsonable(obj, depth=0):
        if obj is None or isinstance(obj, (bool, str, int, float)):
            if isinstance(obj, str):
                return obj[:10000]
            if isinstance(obj, int) and not isinstance(obj, bool):
                return int(obj)
            if isinstance(obj, float):
                return float(obj)
            return obj
        if depth < 4 and isinstance(obj, (list, tuple)):
            return [jsonable(item, depth + 1) for item in list(obj)[:100]]
        if isinstance(obj, numbers.Integral):
            return int(obj)
        if isinstance(obj, numbers.Real):
            return float(obj)
        try:  # numpy / torch scalars and small arrays
            if getattr(obj, "ndim", None) == 0 and callable(getattr(obj, "item", None)):
                return jsonable(obj.item(), depth + 1)
            if getattr(obj, "ndim", None) == 1 and callable(getattr(obj, "tolist", None)) and depth < 4:
                return jsonable(obj.tolist(), depth + 1)
        except Exception:
            pass
        return {"__unsupported__": type(obj).__name__}

    def describe(value):
        try:
            value_json = jsonable(value)
        except Exception:
            value_json = {"__unsupported__": type(value).__name__}
        out = {"status": "ok", "type": type(value).__name__, "repr": short(value, as_repr=True), "value": value_json}
        if isinstance(value, (list, tuple)):
            out["len"] = len(value)
        return out

    class CaseTimeout(BaseException):
        pass

    if kind == "value":
        return [describe(answer)]
    if answer is None:
        return [{"status": "missing", "detail": "it is None"}]
    if not callable(answer):
        return [{"status": "not_callable", "type": type(answer).__name__, "repr": short(answer, 80, as_repr=True)}]

    use_alarm = bool(case_timeout_s) and hasattr(signal, "setitimer") and (
        threading.current_thread() is threading.main_thread()
    )
    outcomes = []
    timed_out = False
    for args in cases:
        if timed_out:
            outcomes.append({"status": "skipped"})
            continue
        previous = None
        try:
            if use_alarm:
                def on_alarm(signum, frame):
                    raise CaseTimeout()

                previous = signal.signal(signal.SIGALRM, on_alarm)
                signal.setitimer(signal.ITIMER_REAL, float(case_timeout_s))
            try:
                outcome = describe(answer(*args))
            finally:
                if use_alarm:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                    signal.signal(signal.SIGALRM, previous)
            outcomes.append(outcome)
        except CaseTimeout:
            timed_out = True
            outcomes.append({"status": "timeout", "seconds": case_timeout_s})
        except KeyboardInterrupt:  # the learner (or the grader) stopped the kernel: stop too
            raise
        except BaseException as exc:  # the learner's code may raise anything, even SystemExit
            outcomes.append(
                {"status": "error", "error_type": type(exc).__name__, "error_message": short(exc, 500)}
            )
    return outcomes


# --- comparing (pure: used by check and by the grader) ---------------------------------------


def _article(word: str) -> str:
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _show(value) -> str:
    if isinstance(value, dict) and "__unsupported__" in value:
        return f"<a {value['__unsupported__']}>"
    return repr(value)


WRONG_VALUE = "wrong value"


def compare_values(expected, got, rel_tol: float = 1e-9, names: Sequence[str] = ()) -> Optional[str]:
    """``None`` when ``got`` matches ``expected``, else a short reason (``"wrong value"`` or a type problem).

    ints and strings compare exactly (an int is expected as an int: ``28.0`` is reported),
    floats with relative tolerance ``rel_tol``, tuples item by item (``names`` labels the
    items in the message: ``"macs is wrong (params is right)"``). ``got`` is the JSON-able
    form of the learner's value (tuples arrive as lists).
    """
    if isinstance(got, dict) and "__unsupported__" in got:
        return f"expected {_kind_of(expected)}, got a {got['__unsupported__']}"
    if isinstance(expected, bool):
        return None if got is expected else WRONG_VALUE
    if isinstance(expected, int):
        if isinstance(got, float) and math.isfinite(got) and got == int(got):
            return f"got a float ({got!r}) but the answer is a whole number: return an int (use // to divide)"
        if not isinstance(got, int) or isinstance(got, bool):
            return f"expected an int, got {type(got).__name__} {_show(got)}"
        return None if got == expected else WRONG_VALUE
    if isinstance(expected, float):
        if not _is_number(got):
            return f"expected a number, got {type(got).__name__} {_show(got)}"
        if math.isclose(float(got), expected, rel_tol=rel_tol, abs_tol=0.0):
            return None
        return f"{WRONG_VALUE} (relative tolerance {rel_tol:g})"
    if isinstance(expected, str):
        if not isinstance(got, str):
            return f"expected a str, got {type(got).__name__} {_show(got)}"
        return None if got == expected else WRONG_VALUE
    if isinstance(expected, (tuple, list)):
        if not isinstance(got, (list, tuple)):
            return f"expected {_kind_of(expected, names)}, got {type(got).__name__} {_show(got)}"
        if len(got) != len(expected):
            return f"expected {_kind_of(expected, names)}, got {len(got)} values"
        labels = [names[i] if i < len(names) else f"item {i}" for i in range(len(expected))]
        wrong, right, details = [], [], []
        for label, e, g in zip(labels, expected, got):
            problem = compare_values(e, g, rel_tol)
            if problem is None:
                right.append(label)
            else:
                wrong.append(label)
                if problem != WRONG_VALUE:
                    details.append(f"{label}: {problem}")
        if not wrong:
            return None
        if not right:
            text = ("both " if len(wrong) == 2 else "all of ") + " and ".join(wrong) + " are wrong"
        else:
            text = f"{' and '.join(wrong)} {_verb(wrong)} wrong ({', '.join(right)} {_verb(right)} right)"
        return "; ".join([text] + details)
    return None if got == expected else WRONG_VALUE


def _verb(items: Sequence[str]) -> str:
    return "is" if len(items) == 1 else "are"


def _kind_of(expected, names: Sequence[str] = ()) -> str:
    if isinstance(expected, (tuple, list)):
        if names:
            return f"a tuple ({', '.join(names)})"
        return f"a tuple of {len(expected)} values"
    if isinstance(expected, bool):
        return "a bool"
    return {int: "an int", float: "a number", str: "a str"}.get(type(expected), type(expected).__name__)


def _shown_expected(exercise: Exercise, expected) -> str:
    if isinstance(expected, tuple) and exercise.output_names:
        return "(" + ", ".join(f"{n}={v!r}" for n, v in zip(exercise.output_names, expected)) + ")"
    return repr(expected)


def _shown_got(outcome: dict) -> str:
    text = outcome.get("repr")
    return text if text is not None else _show(outcome.get("value"))


def grade_outcomes(exercise: Exercise, outcomes: Sequence[dict]) -> Tuple[int, str]:
    """Grade an answer's outcomes: ``(points, message)``, all or nothing.

    ``outcomes`` is what :func:`collect_outcomes` returned (in-process or via JSON). The
    message names the first failing case (its inputs), expected vs got and a hint, or says
    ``"Exercise 1.2 passed: 8/8 cases (3 points)"``. Pure: no I/O, no learner code.
    """
    ex = exercise
    head = f"Exercise {ex.id}"
    zero = f"(0/{ex.points} points)"
    outcomes = list(outcomes or [])
    if not outcomes:
        return 0, f"{head}: no result to grade {zero}."
    first = outcomes[0]
    if not isinstance(first, dict):
        return 0, f"{head}: malformed outcome {zero}."
    status = first.get("status")
    if status == "missing":
        detail = first.get("detail") or "it is not defined"
        return 0, (
            f"{head} not attempted yet: `{ex.answer}` is missing ({detail}). "
            f"Write your solution in the exercise's cell and run it, then run the check {zero}."
        )
    if status == "not_callable":
        return 0, (
            f"{head}: `{ex.answer}` should be a function, but it is {_article(str(first.get('type')))} "
            f"({first.get('repr')}). Define it with `def {ex.answer}(...):` {zero}."
        )
    if ex.kind == VALUE and status == "ok" and first.get("value") is None:
        return 0, f"{head} not attempted yet: `{ex.answer}` is None {zero}."
    if len(outcomes) != ex.n_cases:
        return 0, f"{head}: expected {ex.n_cases} results, got {len(outcomes)} {zero}."
    if all(o.get("status") == "error" and o.get("error_type") == "NotImplementedError" for o in outcomes):
        return 0, (
            f"{head} not attempted yet: `{ex.answer}` still raises NotImplementedError. Replace the "
            f"`raise NotImplementedError(...)` line with your solution and run the cell {zero}."
        )

    expected = ex.expected()
    failures = []  # (index, problem text, specific hint)
    for index, (outcome, want) in enumerate(zip(outcomes, expected)):
        problem, hint = _judge(ex, index, outcome, want)
        if problem:
            failures.append((index, problem, hint))
    n = ex.n_cases
    if not failures:
        if ex.kind == VALUE:
            return ex.points, f"{head} passed ({ex.points} points)"
        return ex.points, f"{head} passed: {n}/{n} cases ({ex.points} points)"

    index, problem, hint = failures[0]
    hint = hint or (ex.hints[0] if ex.hints else None)
    if ex.kind == VALUE:
        lines = [f"{head} failed {zero}.", f"  {problem}"]
    else:
        case = ex.cases[index]
        lines = [
            f"{head} failed: {n - len(failures)}/{n} cases pass {zero}.",
            f"First failing case ({index + 1} of {n}): {ex.call_text(case)}",
            f"  {problem}",
        ]
    if hint:
        lines.append(f"Hint: {hint}")
    return 0, "\n".join(lines)


def _judge(ex: Exercise, index: int, outcome: dict, want) -> Tuple[Optional[str], Optional[str]]:
    """What is wrong with one case's outcome (``None`` when right) and a specific hint."""
    status = outcome.get("status") if isinstance(outcome, dict) else None
    if status == "error":
        what = "your value" if ex.kind == VALUE else "your function"
        return (
            f"{what} raised {outcome.get('error_type')}: {outcome.get('error_message')}",
            "call it yourself on these inputs in a cell to see the full traceback.",
        )
    if status == "timeout":
        return (
            f"your function did not return within {outcome.get('seconds')} s",
            "look for a loop that never ends on these inputs.",
        )
    if status == "skipped":
        return "not run (an earlier case timed out)", None
    if status != "ok":
        return f"no result ({status})", None
    got = outcome.get("value")
    if ex.compare is not None:
        problem = ex.compare(want, got)
    else:
        problem = compare_values(want, got, ex.rel_tol, ex.output_names)
    if problem is None:
        return None, None
    case = ex.cases[index] if ex.kind == FUNCTION else {}
    hint = ex.diagnose(case, want, got) if ex.diagnose else None
    if ex.reveal_expected:
        text = f"expected {_shown_expected(ex, want)}\n  got      {_shown_got(outcome)}"
        if problem != WRONG_VALUE:
            text += f"\n  {problem}"
    elif problem == WRONG_VALUE:
        text = f"got {_shown_got(outcome)}, which is not the answer"
    else:
        text = f"got {_shown_got(outcome)}: {problem}"
    return text, hint


# --- check: in-notebook feedback -------------------------------------------------------------


class CheckResult:
    """What :func:`check` returns: ``passed``, ``points``, ``max_points``, ``message``.

    ``check`` already printed the message, so in a notebook this object displays nothing
    (no duplicated message); its ``repr`` is one short line.
    """

    __slots__ = ("exercise", "passed", "points", "max_points", "message")

    def __init__(self, exercise: str, passed: bool, points: int, max_points: int, message: str):
        self.exercise = exercise
        self.passed = passed
        self.points = points
        self.max_points = max_points
        self.message = message

    def __repr__(self) -> str:
        state = "passed" if self.passed else "not passed"
        return f"<CheckResult {self.exercise}: {state}, {self.points}/{self.max_points} points>"

    def __bool__(self) -> bool:
        return self.passed

    def _ipython_display_(self) -> None:
        """Show nothing: the message was printed by ``check``."""


_MISSING = object()


def check(exercise_id: str, answer: Any = _MISSING, *, quiet: bool = False) -> CheckResult:
    """Check the learner's answer to an exercise and print friendly feedback.

    Args:
        exercise_id: e.g. ``"1.2"``.
        answer: the learner's function (function exercises) or value (value exercises). When
            omitted, the exercise's answer name is looked up in the notebook's namespace.
        quiet: do not print (the message is still in the result).

    Returns:
        A :class:`CheckResult` (displays nothing in a notebook). Never raises for anything
        the answer does: wrong types, exceptions, stubs and ``None`` are all reported.
    """
    exercise = get_exercise(exercise_id)
    if answer is _MISSING:
        import __main__

        if hasattr(__main__, exercise.answer):
            answer = getattr(__main__, exercise.answer)
            outcomes = collect_outcomes(answer, exercise.kind, exercise.case_args())
        else:
            outcomes = [{"status": "missing", "detail": "it is not defined yet"}]
    else:
        outcomes = collect_outcomes(answer, exercise.kind, exercise.case_args())
    points, message = grade_outcomes(exercise, outcomes)
    if not quiet:
        print(message)
    return CheckResult(exercise.id, points == exercise.points, points, exercise.points, message)
