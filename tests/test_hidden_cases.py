"""Hidden cases: the grader runs every called answer on cases `check` never shows, so an answer
written for the shown cases fails; the course's own answers pass them all (issue 12, section 2)."""

import json

import pytest

from course.exercises import check, collect_outcomes, grade_outcomes, list_exercises
from course.exercises.core import CALLED, FUNCTION
from course.exercises.examples import CHAPTER as EXAMPLES

FUNCTIONS = [e for e in list_exercises() if e.kind == FUNCTION]
SEEDS = range(4)


def graded(exercise, answer, cases):
    """What the grader gives ``answer`` on ``cases`` (outcomes through JSON, as from its process)."""
    call = exercise.run_case if exercise.kind != FUNCTION else None
    outcomes = collect_outcomes(answer, exercise.kind, exercise.case_args(cases), call=call)
    return grade_outcomes(exercise, json.loads(json.dumps(outcomes)), cases)


def reference_answer(exercise):
    keys = list(exercise.cases[0])
    return lambda *args: exercise.reference(**dict(zip(keys, args)))


def hard_coded(exercise):
    """Right on every case `check` shows (looked up in a table), the first one's result elsewhere."""
    table = {json.dumps(list(case.values())): value for case, value in zip(exercise.cases, exercise.expected())}
    first = exercise.expected()[0]
    return lambda *args: table.get(json.dumps(list(args)), first)


def test_every_called_exercise_of_the_course_has_hidden_cases():
    called = [e for e in list_exercises() if e.kind in CALLED and e.chapter != EXAMPLES]
    assert len(called) >= 20
    for e in called:
        hidden = e.grading_cases(seed=0)[len(e.cases):]
        assert len(hidden) >= 2, e.id
        shown = [json.dumps(c, sort_keys=True) for c in e.cases]
        assert any(json.dumps(c, sort_keys=True) not in shown for c in hidden), e.id


@pytest.mark.parametrize("exercise", FUNCTIONS, ids=lambda e: e.id)
def test_the_reference_passes_every_hidden_case(exercise):
    for seed in SEEDS:
        points, message = graded(exercise, reference_answer(exercise), exercise.grading_cases(seed))
        assert points == exercise.points, message
        n = len(exercise.grading_cases(seed)) - len(exercise.cases)
        assert message.endswith(f"and {n}/{n} hidden cases ({exercise.points} points)")


@pytest.mark.parametrize("exercise", FUNCTIONS, ids=lambda e: e.id)
def test_an_answer_hard_coded_to_the_shown_cases_scores_zero(exercise):
    answer = hard_coded(exercise)
    assert check(exercise.id, answer, quiet=True).passed  # what the learner sees in the notebook
    points, message = graded(exercise, answer, exercise.grading_cases(seed=0))
    assert points == 0
    assert message.startswith(f"Exercise {exercise.id} failed on a hidden case: "
                              f"{len(exercise.cases)}/{len(exercise.cases)} cases pass")
    assert "First failing hidden case" in message and "`check` does not run it" in message
    assert "compute the result from the inputs" in message


def test_drawn_cases_depend_on_the_submission_and_repeat_for_the_same_one():
    e = next(e for e in FUNCTIONS if e.draw is not None and e.chapter != EXAMPLES)
    first, again, other = e.grading_cases(seed=1), e.grading_cases(seed=1), e.grading_cases(seed=2)
    assert first == again and first != other
    assert first[: len(e.cases) + len(e.hidden_cases)] == other[: len(e.cases) + len(e.hidden_cases)]
    assert len(first) == len(e.cases) + len(e.hidden_cases) + e.n_drawn
    assert e.grading_cases(seed=None) == list(e.cases) + list(e.hidden_cases)  # nothing drawn without a seed


def test_no_hidden_runs_the_shown_cases_only():
    e = next(e for e in FUNCTIONS if e.chapter != EXAMPLES)
    assert e.grading_cases(seed=3, hidden=False) == list(e.cases)
    points, message = graded(e, hard_coded(e), e.grading_cases(seed=3, hidden=False))
    assert points == e.points and "hidden" not in message


def test_the_message_names_the_hidden_case_and_why():
    from course.exercises import get_exercise

    e = get_exercise("1.1")
    cases = e.grading_cases(seed=None)
    points, message = graded(e, hard_coded(e), cases)
    first_hidden = cases[len(e.cases)]
    lines = message.splitlines()
    assert points == 0
    assert lines[1] == (f"First failing hidden case (1 of {len(e.hidden_cases)}; `check` does not run it): "
                        f"{e.call_text(first_hidden)}")
    assert lines[2] == f"  expected {e.reference(**first_hidden)}"
    assert lines[3] == f"  got      {e.expected()[0]}"


def test_a_parameter_that_separates_failures_is_named():
    from course.exercises import get_exercise

    e = get_exercise("1.2")

    def forgets_groups(H, W, N, M, K, stride, padding, groups, bias):
        H_out = (H + 2 * padding - K) // stride + 1
        W_out = (W + 2 * padding - K) // stride + 1
        return H_out * W_out * K * K * N * M, K * K * N * M + (M if bias else 0)

    message = check("1.2", forgets_groups, quiet=True).message
    assert "It passes every case with groups=1 and fails every case with another value of groups." in message


def test_hidden_cases_must_look_like_the_shown_ones():
    from course.exercises import Exercise

    with pytest.raises(ValueError, match="must have the keys of the cases, in the same order"):
        Exercise(id="0.99", title="t", points=1, answer="f", kind=FUNCTION, reference=lambda a, b: a,
                 cases=(dict(a=1, b=2),), hidden_cases=(dict(b=2, a=1),))
