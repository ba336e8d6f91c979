"""The exercise checks: references pass, wrong answers get specific messages, nothing crashes."""

import json

import pytest

import course.exercises as ex
from course.exercises import check, collect_outcomes, get_exercise, grade_outcomes, list_exercises

CH01 = ["1.1", "1.2", "1.3", "1.4"]


# --- learner answers (what a learner might write) ------------------------------------------


def conv_output_size(size, K, stride, padding, dilation):
    return (size + 2 * padding - dilation * (K - 1) - 1) // stride + 1


def conv_cost(H, W, N, M, K, stride, padding, groups, bias):
    H_out = (H + 2 * padding - K) // stride + 1
    W_out = (W + 2 * padding - K) // stride + 1
    weight = K * K * (N // groups) * M
    return H_out * W_out * weight, weight + (M if bias else 0)


CORRECT = {"1.1": conv_output_size, "1.2": conv_cost}


def stub(*args):
    raise NotImplementedError("Exercise: replace this line with your solution")


# --- registry -----------------------------------------------------------------------------


def test_chapter1_registry():
    exercises = list_exercises(1)
    assert [e.id for e in exercises] == CH01
    assert [e.points for e in exercises] == [2, 3, 3, 2]
    assert [e.answer for e in exercises] == ["conv_output_size", "conv_cost", "Im2colConv2d", "heaviest_conv"]
    for e in exercises:
        assert e.title and e.hints
        if e.kind == "function":
            assert 6 <= len(e.cases) <= 12
            json.dumps(e.spec(10))  # the probe's spec travels as JSON


def test_unknown_id_is_a_clear_error():
    with pytest.raises(KeyError, match="known exercises: 1.1, 1.2"):
        get_exercise("9.9")


def test_importing_exercises_stays_light():
    import subprocess
    import sys

    code = "import sys, course.exercises, course.grading; print('torch' in sys.modules, 'nbclient' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_case_coverage():
    sizes = get_exercise("1.1").cases
    assert any(c["stride"] == 2 and c["size"] % 2 == 1 for c in sizes)
    assert any(c["dilation"] == 2 for c in sizes)
    costs = get_exercise("1.2").cases
    assert any(c["groups"] > 1 for c in costs)
    assert {c["bias"] for c in costs} == {True, False}
    assert any(c["stride"] == 2 for c in costs)


def test_expected_values_come_from_the_course():
    from course.cost import formulas

    e = get_exercise("1.2")
    for case, want in zip(e.cases, e.expected()):
        cost = formulas.conv2d(case["H"], case["W"], case["N"], case["M"], case["K"], stride=case["stride"],
                               padding=case["padding"], groups=case["groups"], bias=case["bias"])
        assert want == (cost.macs, cost.params)


# --- references and correct answers pass --------------------------------------------------


@pytest.mark.parametrize("exercise_id", ["1.1", "1.2"])
def test_reference_passes_every_case(exercise_id, capsys):
    e = get_exercise(exercise_id)
    result = check(exercise_id, lambda *args: e.reference(**dict(zip(e.cases[0], args))))
    assert result.passed and result.points == e.points == result.max_points
    assert capsys.readouterr().out.strip() == f"Exercise {e.id} passed: {len(e.cases)}/{len(e.cases)} cases ({e.points} points)"


@pytest.mark.parametrize("exercise_id", ["1.1", "1.2"])
def test_learner_style_answer_passes(exercise_id):
    assert check(exercise_id, CORRECT[exercise_id], quiet=True).passed


@pytest.mark.slow
def test_heaviest_conv(capsys):
    e = get_exercise("1.4")
    expected = e.expected()[0]
    table = ex.ch01.resnet18_conv_macs()
    assert len(table) == 20 and max(table.values()) == table[expected]
    assert check("1.4", expected).passed
    assert capsys.readouterr().out.strip() == "Exercise 1.4 passed (2 points)"
    lighter = min(table, key=table.get)
    result = check("1.4", lighter)
    message = capsys.readouterr().out
    assert not result.passed and f"{table[lighter]:,} MACs" in message
    assert repr(expected) not in message  # a value exercise never gives its answer away
    assert "no Conv2d named 'fc'" in check("1.4", "fc", quiet=True).message
    assert "not attempted" in check("1.4", None, quiet=True).message
    assert "not a str" in check("1.4", 3, quiet=True).message


# --- wrong answers get specific messages --------------------------------------------------


def test_wrong_answer_names_the_case_and_expected_vs_got():
    def no_dilation(size, K, stride, padding, dilation):
        return (size + 2 * padding - K) // stride + 1

    result = check("1.1", no_dilation, quiet=True)
    assert not result.passed and result.points == 0 and result.max_points == 2
    e = get_exercise("1.1")
    first = next(i for i, c in enumerate(e.cases) if c["dilation"] > 1)
    case = e.cases[first]
    assert f"First failing case ({first + 1} of {len(e.cases)})" in result.message
    assert "conv_output_size(" + ", ".join(f"{k}={v}" for k, v in case.items()) + ")" in result.message
    assert f"expected {e.expected()[first]}" in result.message
    assert f"got      {no_dilation(**case)}" in result.message
    assert "dilation*(K-1)+1" in result.message  # the hint


def test_conv_cost_says_which_part_is_wrong():
    def no_groups(H, W, N, M, K, stride, padding, groups, bias):
        return conv_cost(H, W, N * groups, M, K, stride, padding, groups, bias)

    def no_bias(H, W, N, M, K, stride, padding, groups, bias):
        return conv_cost(H, W, N, M, K, stride, padding, groups, False)

    message = check("1.2", no_groups, quiet=True).message
    assert "both macs and params are wrong" in message and "divide by the groups" in message
    assert "groups=32" in message  # the first grouped case
    message = check("1.2", no_bias, quiet=True).message
    assert "params is wrong (macs is right)" in message
    assert "a bias adds M parameters and no MACs" in message


# --- nothing crashes ----------------------------------------------------------------------


def test_stub_is_not_attempted(capsys):
    result = check("1.2", stub)
    out = capsys.readouterr().out
    assert not result.passed and result.points == 0
    assert "not attempted yet" in out and "NotImplementedError" in out


@pytest.mark.parametrize(
    "answer, expected_text",
    [
        (None, "not attempted yet"),
        (3, "should be a function, but it is an int"),
        ("conv_cost", "should be a function, but it is a str"),
        (lambda *a: 1 / 0, "raised ZeroDivisionError: division by zero"),
        (lambda H, W: 0, "raised TypeError"),
        (lambda *a: "lots", "expected a tuple (macs, params), got str 'lots'"),
        (lambda *a: (1, 2, 3), "expected a tuple (macs, params), got 3 values"),
        (lambda *a: object(), "got a object"),
        (lambda *a: (float(conv_cost(*a)[0]), conv_cost(*a)[1]), "macs: got a float"),
        (lambda *a: (1.5, 2), "macs: expected an int, got float 1.5"),
        (lambda *a: None, "got NoneType None"),
    ],
)
def test_bad_answers_are_reported_not_raised(answer, expected_text):
    result = check("1.2", answer, quiet=True)
    assert not result.passed and result.points == 0
    assert expected_text in result.message, result.message


def test_system_exit_inside_the_answer_is_caught():
    def leaves(*args):
        raise SystemExit(3)

    assert "raised SystemExit" in check("1.1", leaves, quiet=True).message


def test_float_for_an_int_is_explained():
    result = check("1.1", lambda *a: float(conv_output_size(*a)), quiet=True)
    assert "return an int (use // to divide)" in result.message


def test_numpy_and_torch_scalars_are_accepted():
    import numpy as np

    assert check("1.1", lambda *a: np.int64(conv_output_size(*a)), quiet=True).passed


def test_check_finds_the_answer_in_the_notebook_namespace(monkeypatch):
    import __main__

    monkeypatch.setattr(__main__, "conv_output_size", conv_output_size, raising=False)
    assert check("1.1", quiet=True).passed
    monkeypatch.delattr(__main__, "Im2colConv2d", raising=False)
    assert "not attempted yet" in check("1.3", quiet=True).message


def test_result_display_is_short_and_not_duplicated():
    result = check("1.1", conv_output_size, quiet=True)
    assert repr(result) == "<CheckResult 1.1: passed, 2/2 points>"
    assert result._ipython_display_() is None  # the notebook shows the printed message only
    assert bool(result) is True


# --- grade_outcomes is pure and JSON-safe --------------------------------------------------


def test_grade_outcomes_after_a_json_round_trip():
    for exercise_id, answer in CORRECT.items():
        e = get_exercise(exercise_id)
        outcomes = collect_outcomes(answer, e.kind, e.case_args())
        wire = json.loads(json.dumps(outcomes))
        assert grade_outcomes(e, wire) == grade_outcomes(e, outcomes)
        assert grade_outcomes(e, wire)[0] == e.points


def test_grade_outcomes_on_malformed_input():
    e = get_exercise("1.2")
    assert grade_outcomes(e, [])[0] == 0
    assert grade_outcomes(e, [{"status": "ok", "value": [1, 2]}])[0] == 0  # too few cases
    points, message = grade_outcomes(e, [{"status": "missing", "detail": "never defined"}])
    assert points == 0 and "not attempted yet" in message and "never defined" in message
    timeouts = [{"status": "timeout", "seconds": 2}] + [{"status": "skipped"}] * (len(e.cases) - 1)
    points, message = grade_outcomes(e, timeouts)
    assert points == 0 and "did not return within 2 s" in message


def test_arrays_and_broken_objects():
    import numpy as np
    import torch

    assert check("1.2", lambda *a: np.array(conv_cost(*a)), quiet=True).passed
    assert check("1.1", lambda *a: torch.tensor(conv_output_size(*a)), quiet=True).passed

    class Broken:
        def __repr__(self):
            raise RuntimeError("no repr")

        def __str__(self):
            raise RuntimeError("no str")

    class BrokenError(Exception):
        def __str__(self):
            raise RuntimeError("no str")

    def raises_broken(*args):
        raise BrokenError()

    assert "printing it failed" in check("1.2", lambda *a: Broken(), quiet=True).message
    assert "raised BrokenError" in check("1.2", raises_broken, quiet=True).message
    assert "should be a function" in check("1.2", Broken(), quiet=True).message
    assert "printing it failed" in check("1.4", Broken(), quiet=True).message


def test_unsupported_return_values_are_json_safe():
    outcomes = collect_outcomes(lambda *a: {1, 2}, "function", [[1, 2]])
    json.dumps(outcomes)
    assert outcomes[0]["value"] == {"__unsupported__": "set"}
