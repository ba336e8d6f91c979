"""Chapter 9: the exercises (plain-Python learner answers pass, wrong ones get specific hints,
the design task is graded by rebuilding and training) and the chapter module's helpers.

Oracles: hand-written learner answers (lists and numbers, as in the notebook), torch's own
pruning and quantization (through the library's tests), hand-made rows and models."""

import math

import pytest
import torch

from course.exercises import check, collect_outcomes, get_exercise, grade_outcomes, list_exercises


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --- what a learner writes -------------------------------------------------------------------------


def magnitude_mask(weights, sparsity):
    n_prune = round(sparsity * len(weights))
    order = sorted(range(len(weights)), key=lambda i: abs(weights[i]))
    pruned = set(order[:n_prune])
    return [0 if i in pruned else 1 for i in range(len(weights))]


def pruned_chain(H, widths, K, ratio):
    new = [widths[0]] + [int(M * (1 - ratio)) for M in widths[1:-1]] + [widths[-1]]
    return new, sum(H * H * K * K * N * M for N, M in zip(new[:-1], new[1:]))


def scale_zero_point(x_min, x_max, bits):
    q_max = 2 ** bits - 1
    x_min, x_max = min(x_min, 0.0), max(x_max, 0.0)
    scale = (x_max - x_min) / q_max or 1.0
    return scale, int(min(max(-round(x_min / scale), 0), q_max))


def int_linear(x_q, x_zero_point, w_q, bias_q, multiplier, y_zero_point):
    out = []
    for row, b in zip(w_q, bias_q):
        acc = sum((x - x_zero_point) * w for x, w in zip(x_q, row)) + b
        out.append(min(max(round(acc * multiplier) + y_zero_point, 0), 255))
    return out


def distillation_loss(student_logits, teacher_logits, label, T, alpha):
    def softmax(z, t):
        e = [math.exp((v - max(z)) / t) for v in z]
        return [v / sum(e) for v in e]

    p_t, p_s = softmax(teacher_logits, T), softmax(student_logits, T)
    kl = sum(a * (math.log(a) - math.log(b)) for a, b in zip(p_t, p_s))
    return alpha * T * T * kl + (1 - alpha) * -math.log(softmax(student_logits, 1.0)[label])


def mnasnet_reward(accuracy, latency, target, alpha, beta):
    return accuracy * (latency / target) ** (alpha if latency <= target else beta)


ANSWERS = {"9.1": magnitude_mask, "9.2": pruned_chain, "9.3": scale_zero_point, "9.4": int_linear,
           "9.5": distillation_loss, "9.6": mnasnet_reward}


def test_chapter9_registry():
    exercises = list_exercises(9)
    assert [e.id for e in exercises] == [f"9.{i}" for i in range(1, 8)]
    assert [e.points for e in exercises] == [2, 2, 2, 3, 2, 1, 4]
    for e in exercises:
        assert e.title and e.hints
        if e.kind == "function":
            assert 6 <= len(e.cases) <= 12


@pytest.mark.parametrize("exercise_id", sorted(ANSWERS))
def test_learner_answers_pass(exercise_id):
    result = check(exercise_id, ANSWERS[exercise_id], quiet=True)
    assert result.passed, result.message


def _message(exercise_id, answer):
    e = get_exercise(exercise_id)
    return grade_outcomes(e, collect_outcomes(answer, e.kind, e.case_args()))


@pytest.mark.parametrize("exercise_id, wrong, hint", [
    ("9.1", lambda w, s: [0 if abs(x) < 0.2 else 1 for x in w], "round(sparsity"),
    ("9.1", lambda w, s: [0 if i in sorted(range(len(w)), key=lambda j: w[j])[:round(s * len(w))] else 1
                          for i in range(len(w))], "absolute value"),
    ("9.2", lambda H, w, K, r: ([w[0]] + [int(M * (1 - r)) for M in w[1:]], 0), "last conv"),
    ("9.2", lambda H, w, K, r: (pruned_chain(H, w, K, r)[0], sum(H * H * K * K * N * M for N, M in zip(w[:-1], w[1:]))),
     "input channels"),
    ("9.3", lambda lo, hi, b: ((hi - lo) / (2 ** b - 1), int(-round(lo / ((hi - lo) / (2 ** b - 1))))), "widen the range"),
    ("9.4", lambda x, zx, w, b, m, zy: [round((sum(a * c for a, c in zip(x, r)) + bb) * m) + zy for r, bb in zip(w, b)],
     "clamp"),
    ("9.5", lambda s, t, y, T, a: distillation_loss(s, t, y, T, a) / (T * T), "T**2"),
    ("9.6", lambda acc, lat, T, a, b: acc * (lat / T) ** a, "beta"),
])
def test_wrong_answers_get_specific_hints(exercise_id, wrong, hint):
    points, message = _message(exercise_id, wrong)
    assert points == 0 and hint in message, message


def test_stubs_are_not_attempted():
    def stub(*args):
        raise NotImplementedError("Exercise: replace this line with your solution")

    for exercise_id in ANSWERS:
        assert "not attempted" in _message(exercise_id, stub)[1]
    assert "not attempted" in check("9.7", None, quiet=True).message


def test_importing_the_exercises_does_not_build_anything():
    import subprocess
    import sys

    code = "import sys, course.exercises.ch09; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split() == ["False"]


# --- the design task ------------------------------------------------------------------------------


def test_design_over_budget_or_invalid_is_refused_without_training(monkeypatch):
    from course import train
    from course.exercises import ch09 as ex9

    monkeypatch.setattr(train, "fit", lambda *a, **k: pytest.fail("trained an over-budget design"))
    too_big = [[3, 6, 64, 1, 0], [3, 6, 64, 2, 0]]
    report = ex9.design_report(too_big)
    assert report["accuracy"] is None and "over budget" in report["problem"] and f"{report['macs']:,}" in report["problem"]
    result = check("9.7", too_big, quiet=True)
    assert not result.passed and "over budget" in result.message
    assert "K must be 3, 5 or 7" in check("9.7", [[4, 1, 16, 2, 0]], quiet=True).message
    assert "not valid" in check("9.7", "resnet", quiet=True).message
    assert "got a set" in check("9.7", {1, 2}, quiet=True).message


@pytest.mark.slow
def test_solution_design_passes_by_training_and_a_weak_one_fails():
    from course.exercises import ch09 as ex9

    solution = [[3, 1, 16, 2, 0], [5, 3, 24, 2, 0], [5, 3, 40, 2, 1]]
    report = ex9.design_report(solution)
    assert report["problem"] is None, report
    assert report["macs"] <= ex9.DESIGN["macs"] and report["params"] <= ex9.DESIGN["params"]
    assert report["accuracy"] >= ex9.DESIGN["accuracy"]
    assert check("9.7", solution, quiet=True).passed
    weak = [[3, 1, 4, 2, 0], [3, 1, 4, 2, 0]]  # tiny: within budget, too weak to learn the digits in time
    result = check("9.7", weak, quiet=True)
    assert not result.passed and "below" in result.message


# --- the chapter module ----------------------------------------------------------------------------


def test_format_rows():
    from dataclasses import dataclass

    from course.chapters import ch09
    from course.latency import Timing

    @dataclass
    class Row:
        name: str
        n: int
        x: float
        t: Timing = None

    rows = [Row("a", 1234, 0.5, Timing(0.0025, 0.0, 5, "cpu", 1)), Row("bb", 5, None)]
    text = ch09.format_rows(rows, (("name", "name", "s"), ("n", "n", ",d"), ("x", "x", ".2f"), ("ms", "t", ".3f")))
    assert text.splitlines() == ["name      n     x     ms", "a     1,234  0.50  2.500", "bb        5     -      -"]


def test_verdicts_are_printed_from_the_rows():
    from course.chapters import ch09
    from course.latency import Timing

    def t(ms):
        return Timing(ms / 1e3, 0.0, 10, "cpu", 1)

    dense = ch09.UnstructuredRow(0.0, 0.0, 1000, 400, 350, t(2.0), 80.0)
    sparse = ch09.UnstructuredRow(0.9, 0.9, 1000, 400, 100, t(2.1), 30.0)
    full = ch09.ChannelRow(0.0, (16,), 100, 1000, 400, t(2.0), 80.0, 81.0)
    half = ch09.ChannelRow(0.5, (8,), 26, 280, 120, t(1.0), 40.0, 75.0)
    text = ch09.pruning_verdict([dense, sparse], [full, half])
    assert "MACs 1,000 vs 1,000" in text and "1.05x" in text and "MACs x0.28" in text and "latency x0.50" in text
    assert "75.0% after fine-tuning" in text
    rows = [ch09.DistillRow("labels", 500, 500, s, a, 1.0) for s, a in ((0, 50.0), (1, 52.0))]
    rows += [ch09.DistillRow("teacher on all images", 6000, 0, s, a, 3.0) for s, a in ((0, 60.0), (1, 61.0))]
    verdict = ch09.distillation_verdict(rows)
    assert "+9.5 points: the teacher helped" in verdict and "spread 2.0" in verdict
    int8 = [ch09.Int8Row("fp32", 400, t(2.0), 80.0, 1.0), ch09.Int8Row("int8 static", 100, t(1.0), 79.5, 0.98)]
    assert "2.00x the speed of fp32" in ch09.int8_verdict(int8) and "4.0x smaller" in ch09.int8_verdict(int8)


@pytest.mark.slow
def test_explorer_driven_from_code():
    from course.chapters import ch09
    from course.compression.nets import EarlyExitNet, ResNetLite
    from course.data import shapes

    data = shapes(n_train=64, n_test=40)
    torch.manual_seed(0)
    explorer = ch09.compression_explorer(ResNetLite().eval(), EarlyExitNet().eval(), data, budget_s=0.02, widgets=False)
    base = explorer.point
    assert base.technique == "unstructured sparsity" and base.macs == 3_523_200 and base.latency is not None
    half = explorer.set(technique="channel pruning ratio", amount=0.5)
    assert half.macs < base.macs / 3 and half.weight_bytes < base.weight_bytes
    two_bits = explorer.set(technique="quantization bits", amount=2)
    assert two_bits.latency is None and "no 2-bit kernel" in two_bits.note and two_bits.weight_bytes * 16 == \
        explorer.set(technique="quantization bits", amount=32).weight_bytes
    never = explorer.set(technique="early-exit threshold", amount=1.01)
    always = explorer.set(technique="early-exit threshold", amount=0.0)
    assert never.macs > always.macs and "0% of the images exit" in never.note
    assert explorer.set(technique="channel pruning ratio", amount=0.5) is half  # cached
    with pytest.raises(ValueError, match="amount"):
        explorer.set(technique="quantization bits", amount=5)
    assert explorer.figure() is not None
