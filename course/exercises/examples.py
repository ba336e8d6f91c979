"""Worked examples of every kind of exercise (chapter 99: in no notebook, graded like the others).

Copy the one that fits when you write an exercise (``docs/exercises.md``):

* 99.1 ``same_padding``: a *function*, with hidden cases and cases drawn per submission;
* 99.2 ``ConvBNReLU``: a *module*: the learner writes an ``nn.Module`` class; the check copies
  the course block's weights into it by name and compares outputs on seeded inputs, at
  stride 1 and 2 and odd sizes;
* 99.3 ``make_classifier``: a *design*: a function returning a model, which the check builds,
  trains for a fixed number of steps and scores, under the exercise's own time limit.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from course.exercises.core import DESIGN, FUNCTION, MODULE, Exercise, draw_from, register

#: The examples' chapter number (far from the course's chapters, and from ids tests use as fakes).
CHAPTER = 99

# --- 99.1 a function, with hidden and drawn cases --------------------------------------------------


def _ref_same_padding(K: int, dilation: int) -> int:
    return dilation * (K - 1) // 2


register(
    Exercise(
        id="99.1",
        title="Padding that keeps the size (example of a function exercise)",
        points=1,
        answer="same_padding",
        kind=FUNCTION,
        cases=(dict(K=3, dilation=1), dict(K=5, dilation=1), dict(K=3, dilation=2)),
        hidden_cases=(dict(K=7, dilation=1), dict(K=5, dilation=3)),
        draw=draw_from(K=[1, 3, 5, 7, 9], dilation=[1, 2, 3, 4]),
        reference=_ref_same_padding,
        hints=("the dilated kernel spans dilation*(K-1)+1 pixels: pad half of the rest on each side.",),
    )
)


# --- 99.2 a module: the learner writes an nn.Module class ------------------------------------------


def conv_bn_relu(N: int, M: int, K: int, stride: int):
    """The block the learner rebuilds: ``conv`` (no bias, same padding) -> ``bn`` -> ReLU.

    Shapes: (B, N, H, W) -> (B, M, H', W') with H' = (H - 1) // stride + 1.
    """
    from torch import nn

    class ConvBNReLU(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(N, M, K, stride=stride, padding=K // 2, bias=False)
            self.bn = nn.BatchNorm2d(M)

        def forward(self, x):
            return self.bn(self.conv(x)).relu()

    return ConvBNReLU()


def _diagnose_conv_bn_relu(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    if isinstance(got, dict) and got.get("shape") != expected.get("shape"):
        return "padding K // 2 keeps the size at stride 1; the stride goes to the conv."
    return "conv, then BatchNorm, then ReLU, in this order (the check runs both in eval() mode)."


register(
    Exercise(
        id="99.2",
        title="Conv-BN-ReLU as a module (example of a module exercise)",
        points=2,
        answer="ConvBNReLU",
        kind=MODULE,
        cases=(
            dict(N=4, M=8, K=3, stride=1, input=(2, 4, 8, 8)),
            dict(N=4, M=8, K=3, stride=2, input=(2, 4, 8, 8)),
            dict(N=3, M=6, K=1, stride=1, input=(1, 3, 7, 9)),
        ),
        hidden_cases=(dict(N=6, M=4, K=5, stride=2, input=(1, 6, 9, 7)),),
        reference=conv_bn_relu,
        rel_tol=1e-5,
        abs_tol=1e-5,
        diagnose=_diagnose_conv_bn_relu,
        hints=("name the layers `conv` and `bn`, as the course's block does: their weights are copied by name.",),
    )
)


# --- 99.3 a design: a function returning a model, trained and scored by the check ------------------


def rings(n: int, seed: int):
    """``n`` points in 2-D (float32, shape (n, 2)) on two noisy rings, and their ring (0 or 1)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, 2, (n,), generator=g)
    radius = 1.0 + label.float() + 0.15 * torch.randn(n, generator=g)
    angle = 2 * torch.pi * torch.rand(n, generator=g)
    return torch.stack([radius * angle.cos(), radius * angle.sin()], 1), label


def train_and_score(exercise: Exercise, answer, case: Dict[str, Any]) -> Dict[str, Any]:
    """Build ``answer()``, train it full-batch with Adam for ``case["steps"]`` steps on 512 points,
    and score it on 512 others: ``{"accuracy", "params"}``. A fixed number of steps, never "as
    many as fit in N seconds", so the grade does not depend on the machine;
    ``Exercise.case_timeout_s`` bounds the time."""
    import torch
    from torch import nn

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is fastest, and steady on a busy machine
    try:
        return _train_and_score(exercise, answer, case)
    finally:
        torch.set_num_threads(threads)


def _train_and_score(exercise: Exercise, answer, case: Dict[str, Any]) -> Dict[str, Any]:
    import torch
    from torch import nn

    torch.manual_seed(case["seed"])
    model = answer()
    if not isinstance(model, nn.Module):
        raise TypeError(f"{exercise.answer}() returned {type(model).__name__}, not an nn.Module")
    x, y = rings(512, case["seed"])
    x_test, y_test = rings(512, case["seed"] + 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    model.train()
    for _ in range(case["steps"]):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    return {"accuracy": round(accuracy, 4), "params": sum(p.numel() for p in model.parameters())}


def _targets(seed: int, steps: int) -> Dict[str, Any]:
    return {"min_accuracy": 0.95, "max_params": 500}


def _compare_design(expected: Dict[str, Any], got: Any) -> Optional[str]:
    if not isinstance(got, dict) or "accuracy" not in got:
        return f"expected the score of a model, got {got!r}"
    if got["params"] > expected["max_params"]:
        return f"{got['params']} parameters: the budget is {expected['max_params']}"
    if got["accuracy"] < expected["min_accuracy"]:
        return f"test accuracy {got['accuracy']:.1%}: the target is {expected['min_accuracy']:.0%}"
    return None


register(
    Exercise(
        id="99.3",
        title="A small classifier for two rings (example of a design exercise)",
        points=2,
        answer="make_classifier",
        kind=DESIGN,
        cases=(dict(seed=0, steps=200),),
        hidden_cases=(dict(seed=1, steps=200),),
        reference=_targets,
        runner=train_and_score,
        compare=_compare_design,
        case_timeout_s=60,
        hints=("a straight line cannot separate two rings: one hidden layer with a non-linearity can.",),
    )
)
