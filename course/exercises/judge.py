"""Judge an answer's outcomes against the course's reference: points and a message.

Pure (no I/O, no learner code): :func:`grade_outcomes` serves ``check`` in the notebook and the
grader in its own process. The message names the first failing case (its inputs), expected
vs got and a hint; for the grader's hidden cases it says that a hidden case failed, which one
and why; and when one parameter separates the failing cases from the passing ones, it says so
("passes every case with stride=1 and fails every case with stride=2").
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

from course.exercises.core import CALLED, MODULE, VALUE, WRONG_VALUE

if TYPE_CHECKING:  # pragma: no cover
    from course.exercises.core import Exercise

#: Module outputs are float32: tolerances are at least these.
MODULE_REL_TOL = 1e-5
MODULE_ABS_TOL = 1e-5


def _article(word: str) -> str:
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def _points(n: int) -> str:
    # "1 points" as the notebooks' stored outputs (nbval compares check cells) still say; make
    # it "1 point" when the solution notebooks are re-executed.
    return f"{n} points"


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _show(value) -> str:
    if isinstance(value, dict) and "__unsupported__" in value:
        return f"<a {value['__unsupported__']}>"
    return repr(value)


def compare_values(expected, got, rel_tol: float = 1e-9, names: Sequence[str] = (), abs_tol: float = 0.0) -> Optional[str]:
    """``None`` when ``got`` matches ``expected``, else a short reason (``"wrong value"`` or a type problem).

    ints and strings compare exactly (an int is expected as an int: ``28.0`` is reported),
    floats with relative tolerance ``rel_tol`` (and ``abs_tol``), tuples item by item
    (``names`` labels the items in the message: ``"macs is wrong (params is right)"``).
    ``got`` is the JSON-able form of the learner's value (tuples arrive as lists).
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
        if math.isclose(float(got), expected, rel_tol=rel_tol, abs_tol=abs_tol):
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
            problem = compare_values(e, g, rel_tol, abs_tol=abs_tol)
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


def compare_module_output(expected: dict, got: Any, rel_tol: float = 0.0, abs_tol: float = 0.0) -> Optional[str]:
    """Compare what :func:`course.exercises.runners.run_module` returned for the learner's module
    with the course block's: shape, parameter count, then the values (tolerances at least
    :data:`MODULE_REL_TOL` and :data:`MODULE_ABS_TOL`)."""
    if not isinstance(got, dict) or not isinstance(got.get("shape"), list):
        return f"expected the module's output, got {_show(got)}"
    if got["shape"] != expected["shape"]:
        return f"the output has shape {tuple(got['shape'])}; the course's block gives {tuple(expected['shape'])}"
    if got.get("params") != expected.get("params"):
        return f"the module has {got.get('params')} parameters; the course's block has {expected.get('params')}"
    rel, absolute = max(rel_tol, MODULE_REL_TOL), max(abs_tol, MODULE_ABS_TOL)
    worst, where = 0.0, None
    for index, (e, g) in enumerate(zip(expected["values"], got.get("values") or [])):
        if not _is_number(g) or not math.isfinite(g):
            return f"the output holds {g!r} at position {index}"
        excess = abs(g - e) - (absolute + rel * abs(e))
        if excess > 0 and (where is None or abs(g - e) > worst):
            worst, where = abs(g - e), (index, e, g)
    if len(got.get("values") or []) != len(expected["values"]):
        return "the output's values could not be read"
    if where is None:
        return None
    index, e, g = where
    return (f"outputs differ: the largest difference is {worst:.3g} (at flat position {index}: expected "
            f"{e:.6g}, got {g:.6g}; tolerance {absolute:g} + {rel:g} x |expected|)")


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


def _shown_expected(exercise: "Exercise", expected) -> str:
    if isinstance(expected, tuple) and exercise.output_names:
        return "(" + ", ".join(f"{n}={v!r}" for n, v in zip(exercise.output_names, expected)) + ")"
    return repr(expected)


def _shown_got(outcome: dict) -> str:
    text = outcome.get("repr")
    return text if text is not None else _show(outcome.get("value"))


def is_attempted(exercise: "Exercise", outcomes: Sequence[dict]) -> bool:
    """False when the outcomes show the exercise's stub (or no answer at all)."""
    outcomes = list(outcomes or [])
    if not outcomes or not isinstance(outcomes[0], dict):
        return False
    first = outcomes[0]
    if first.get("status") == "missing":
        return False
    if exercise.kind == VALUE and first.get("status") == "ok" and first.get("value") is None:
        return False
    return not all(o.get("status") == "error" and o.get("error_type") == "NotImplementedError" for o in outcomes)


def grade_outcomes(exercise: "Exercise", outcomes: Sequence[dict],
                   cases: Optional[Sequence[Dict[str, Any]]] = None) -> Tuple[int, str]:
    """Grade an answer's outcomes: ``(points, message)``, all or nothing.

    ``outcomes``: what :func:`course.exercises.outcomes.collect_outcomes` returned (in-process or
    via JSON), one per case of ``cases`` (default: the public cases that ``check`` shows; the
    grader passes :meth:`~course.exercises.Exercise.grading_cases`, whose cases after the
    public ones are hidden). Pure: no I/O, no learner code.
    """
    ex = exercise
    head = f"Exercise {ex.id}"
    zero = f"(0/{ex.points} points)"
    cases = list(ex.cases) if cases is None or ex.kind not in CALLED else list(cases)
    n_public = ex.n_cases
    n_all = len(cases) if ex.kind in CALLED else 1
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
        what = "a class" if ex.kind == MODULE else "a function"
        how = f"class {ex.answer}(nn.Module):" if ex.kind == MODULE else f"def {ex.answer}(...):"
        return 0, (
            f"{head}: `{ex.answer}` should be {what}, but it is {_article(str(first.get('type')))} "
            f"({first.get('repr')}). Define it with `{how}` {zero}."
        )
    if not is_attempted(ex, outcomes):
        if ex.kind == VALUE:
            return 0, f"{head} not attempted yet: `{ex.answer}` is None {zero}."
        return 0, (
            f"{head} not attempted yet: `{ex.answer}` still raises NotImplementedError. Replace the "
            f"`raise NotImplementedError(...)` line with your solution and run the cell {zero}."
        )
    if len(outcomes) != n_all:
        return 0, f"{head}: expected {n_all} results, got {len(outcomes)} {zero}."

    expected = ex.expected_for(cases)
    failures = []  # (index, problem text, specific hint)
    for index, (outcome, want) in enumerate(zip(outcomes, expected)):
        problem, hint = _judge(ex, cases[index] if ex.kind in CALLED else {}, outcome, want)
        if problem:
            failures.append((index, problem, hint))
    n_hidden = n_all - n_public
    if not failures:
        if ex.kind == VALUE:
            return ex.points, f"{head} passed ({_points(ex.points)})"
        hidden = f" and {n_hidden}/{n_hidden} hidden cases" if n_hidden else ""
        return ex.points, f"{head} passed: {n_public}/{n_public} cases{hidden} ({_points(ex.points)})"

    index, problem, hint = failures[0]
    hint = hint or (ex.hints[0] if ex.hints else None)
    if ex.kind == VALUE:
        lines = [f"{head} failed {zero}.", f"  {problem}"]
    else:
        public_fail = sum(1 for i, _, _ in failures if i < n_public)
        hidden_fail = len(failures) - public_fail
        counts = f"{n_public - public_fail}/{n_public} cases pass"
        if n_hidden:
            counts += f", {n_hidden - hidden_fail}/{n_hidden} hidden cases pass"
        if index < n_public:
            lines = [f"{head} failed: {counts} {zero}.",
                     f"First failing case ({index + 1} of {n_public}): {ex.call_text(cases[index])}"]
        else:
            lines = [f"{head} failed on a hidden case: {counts} {zero}.",
                     f"First failing hidden case ({index - n_public + 1} of {n_hidden}; `check` does not run it): "
                     f"{ex.call_text(cases[index])}"]
        lines.append(f"  {problem}")
    if hint:
        lines.append(f"Hint: {hint}")
    if ex.kind != VALUE:
        pattern = _pattern(cases, {i for i, _, _ in failures})
        if pattern:
            lines.append(pattern)
        if index >= n_public:
            lines.append("Right on the cases `check` shows but wrong on this one: compute the result from the "
                         "inputs (a result written down for the shown cases fails the hidden ones).")
    return 0, "\n".join(lines)


def _hashable(value):
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    return value


def _alternatives(key: str, values: set) -> str:
    shown = sorted(values, key=repr)
    text = ", ".join(f"{v!r}" if not isinstance(v, tuple) else str(v) for v in shown[:-1])
    last = shown[-1]
    last = f"{last!r}" if not isinstance(last, tuple) else str(last)
    return f"{key}={text + ' or ' + last if text else last}"


def _pattern(cases: Sequence[Dict[str, Any]], failed: set) -> Optional[str]:
    """One sentence when exactly one parameter separates the failing cases from the passing ones
    with a single value on one side ("passes every case with stride=1 and fails every case
    with stride=2"); None otherwise (with few cases, several parameters may split them by chance)."""
    if not failed or len(failed) == len(cases) or not isinstance(cases[0], dict):
        return None
    separating = []
    for key in cases[0]:
        try:
            bad = {_hashable(c.get(key)) for i, c in enumerate(cases) if i in failed}
            good = {_hashable(c.get(key)) for i, c in enumerate(cases) if i not in failed}
        except TypeError:  # unhashable values
            continue
        if bad.isdisjoint(good) and min(len(bad), len(good)) == 1:
            separating.append((key, good, bad))
    if len(separating) != 1:
        return None
    key, good, bad = separating[0]
    passes = _alternatives(key, good) if len(good) <= 3 else f"another value of {key}"
    fails = _alternatives(key, bad) if len(bad) <= 3 else f"another value of {key}"
    return f"It passes every case with {passes} and fails every case with {fails}."


def _seconds(value) -> str:
    return f"{value:g}" if _is_number(value) else str(value)


_WHAT = {"function": "your function", "module": "your module", "design": "your design", "value": "your value"}


def _judge(ex: "Exercise", case: Dict[str, Any], outcome: dict, want) -> Tuple[Optional[str], Optional[str]]:
    """What is wrong with one case's outcome (``None`` when right) and a specific hint."""
    status = outcome.get("status") if isinstance(outcome, dict) else None
    if status == "error":
        return (
            f"{_WHAT.get(ex.kind, 'your answer')} raised {outcome.get('error_type')}: {outcome.get('error_message')}",
            "call it yourself on these inputs in a cell to see the full traceback.",
        )
    if status == "timeout":
        return (
            f"{_WHAT.get(ex.kind, 'your answer')} did not return within {_seconds(outcome.get('seconds'))} s",
            "look for a loop that never ends on these inputs.",
        )
    if status == "skipped":
        return "not run (an earlier case timed out)", None
    if status != "ok":
        return f"no result ({status})", None
    got = outcome.get("value")
    if ex.compare is not None:
        problem = ex.compare(want, got)
    elif ex.kind == MODULE:
        problem = compare_module_output(want, got, ex.rel_tol, ex.abs_tol)
    else:
        problem = compare_values(want, got, ex.rel_tol, ex.output_names, abs_tol=ex.abs_tol)
    if problem is None:
        return None, None
    hint = ex.diagnose(case, want, got) if ex.diagnose else None
    if ex.kind == MODULE:
        return problem, hint
    if ex.reveal_expected:
        text = f"expected {_shown_expected(ex, want)}\n  got      {_shown_got(outcome)}"
        if problem != WRONG_VALUE:
            text += f"\n  {problem}"
    elif problem == WRONG_VALUE:
        text = f"got {_shown_got(outcome)}, which is not the answer"
    else:
        text = f"got {_shown_got(outcome)}: {problem}"
    return text, hint
