"""Module and design answers (the worked examples of ``course.exercises.examples``, chapter 99):
checked in the notebook by ``check``, and graded by the grader in the answer's own process."""

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from course.exercises import check, get_exercise
from course.grading import Limits, grade

MODULE = '''import torch
from torch import nn


class ConvBNReLU(nn.Module):
    def __init__(self, N, M, K, stride):
        super().__init__()
        ### BEGIN SOLUTION
        self.conv = nn.Conv2d(N, M, K, stride=stride, padding=K // 2, bias=False)
        self.bn = nn.BatchNorm2d(M)
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        return torch.relu(self.bn(self.conv(x)))
        ### END SOLUTION
'''
DESIGN = '''from torch import nn


def make_classifier():
    ### BEGIN SOLUTION
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
    ### END SOLUTION
'''
FUNCTION = '''def same_padding(K, dilation):
    ### BEGIN SOLUTION
    return dilation * (K - 1) // 2
    ### END SOLUTION
'''
POINTS = {"99.1": 1, "99.2": 2, "99.3": 2}


def namespace(source):
    out = {}
    exec(compile(source, "<answer>", "exec"), out)
    return out


# --- module answers --------------------------------------------------------------------------


def test_a_module_answer_gets_the_blocks_weights_and_matches_its_outputs():
    result = check("99.2", namespace(MODULE)["ConvBNReLU"], quiet=True)
    assert result.passed and result.message == "Exercise 99.2 passed: 3/3 cases (2 points)"


@pytest.mark.parametrize("change, expected", [
    (("torch.relu(self.bn(self.conv(x)))", "self.bn(torch.relu(self.conv(x)))"), "outputs differ: the largest difference"),
    (("stride=stride, ", ""), "It passes every case with stride=1 and fails every case with stride=2."),
    (("self.bn = nn.BatchNorm2d(M)", "self.norm = nn.BatchNorm2d(M)"),
     "the course's block has no norm.bias, norm.num_batches_tracked, norm.running_mean"),
    (("bias=False", "bias=True"), "the course's block has no conv.bias"),
    (("torch.relu(self.bn(self.conv(x)))", "(self.bn(self.conv(x)), x)"), "forward() returned tuple; return one tensor"),
])
def test_a_wrong_module_gets_a_specific_message(change, expected):
    answer = namespace(MODULE.replace(*change))["ConvBNReLU"]
    result = check("99.2", answer, quiet=True)
    assert not result.passed and expected in result.message, result.message


def test_a_module_stub_is_not_attempted():
    from course.grading import strip_solution

    result = check("99.2", namespace(strip_solution(MODULE, "99.2"))["ConvBNReLU"], quiet=True)
    assert not result.attempted and "not attempted yet" in result.message


def test_a_module_answer_must_be_a_class_of_module():
    assert "should be a class" in check("99.2", 3, quiet=True).message
    assert "made int, not an nn.Module" in check("99.2", lambda **kw: 3, quiet=True).message


# --- design answers --------------------------------------------------------------------------


def test_a_design_answer_is_built_trained_and_scored():
    assert check("99.3", namespace(DESIGN)["make_classifier"], quiet=True).passed
    linear = check("99.3", lambda: __import__("torch").nn.Linear(2, 2), quiet=True)
    assert not linear.passed and "the target is 95%" in linear.message
    big = check("99.3", lambda: __import__("torch").nn.Sequential(
        __import__("torch").nn.Linear(2, 256), __import__("torch").nn.ReLU(), __import__("torch").nn.Linear(256, 2)),
        quiet=True)
    assert not big.passed and "the budget is 500" in big.message


def test_an_exercise_declares_its_own_time_limit():
    assert Limits(case_s=2).case_timeout(get_exercise("99.3")) == 60
    assert Limits(case_s=2).case_timeout(get_exercise("99.1")) == 2


# --- the grader: replayed in the answer's own (sandboxed) process -----------------------------


def examples_notebook(module=MODULE, design=DESIGN, function=FUNCTION):
    cells = [new_code_cell("FAST = False", metadata={"tags": ["parameters"]})]
    for exercise_id, source in (("99.1", function), ("99.2", module), ("99.3", design)):
        cells.append(new_code_cell(source, metadata={"course": {"exercise": exercise_id, "part": "solution"}}))
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


@pytest.mark.slow
def test_module_and_design_answers_are_graded_in_their_own_process(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    nbformat.write(examples_notebook(), subs / "right.ipynb")
    nbformat.write(examples_notebook(module=MODULE.replace("stride=stride, ", ""), design=DESIGN.replace(
        "nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))", "nn.Linear(2, 2)"),
        function=FUNCTION.replace("    return", "    import time\n    time.sleep(30)\n    return")), subs / "wrong.ipynb")
    # case_s=5: the function's limit; the design exercise declares 60 s, and the grader follows it.
    results = {r.name: r for r in grade(subs, tmp_path / "out", Limits(case_s=5, cell_s=120), jobs=2, quiet=True)}
    right, wrong = results["right"], results["wrong"]
    assert {e.id: e.points for e in right.exercises} == POINTS, [e.message for e in right.exercises]
    assert right.exercise("99.2").message == "Exercise 99.2 passed: 3/3 cases and 1/1 hidden cases (2 points)"
    assert {e.id: e.points for e in wrong.exercises} == {"99.1": 0, "99.2": 0, "99.3": 0}
    assert "did not return within 5 s" in wrong.exercise("99.1").message
    assert "fails every case with stride=2" in wrong.exercise("99.2").message
    assert "test accuracy" in wrong.exercise("99.3").message
