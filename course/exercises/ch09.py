"""Chapter 9 exercises: pruning masks and pruned widths, quantization parameters, integer-only
arithmetic, the distillation loss, MnasNet's reward, and a design task.

Expected values come from :mod:`course.compression` (imported on first use: importing this module
does not import torch); the pruned widths and MACs of 9.2 come from actually pruning a model with
Torch-Pruning and counting it with :func:`course.cost.count`. Every check runs on fixed inputs;
none depends on a timing. The design task (9.7) is graded by rebuilding the learner's spec,
checking its budgets and training it with the course recipe (seeded), in the checking process.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional

from course.exercises.core import FUNCTION, VALUE, Exercise, register

# --- 9.1 a magnitude mask ----------------------------------------------------------------------


def _ref_mask(weights, sparsity):
    import torch

    from course.compression.pruning import magnitude_mask

    return [int(v) for v in magnitude_mask(torch.tensor(weights, dtype=torch.float64), sparsity).tolist()]


def _diagnose_mask(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    if not isinstance(got, (list, tuple)) or len(got) != len(case["weights"]):
        return "return a list of 0/1 ints, one per weight, in the same order."
    n = len(case["weights"])
    pruned = sum(1 for g in got if g == 0)
    want = sum(1 for e in expected if e == 0)
    if pruned != want:
        if pruned == math.floor(case["sparsity"] * n) or pruned == math.ceil(case["sparsity"] * n):
            return (f"prune round(sparsity * n) = round({case['sparsity']} * {n}) = {want} weights; Python's round "
                    "rounds halves to even, as torch.nn.utils.prune does.")
        return f"prune exactly round(sparsity * n) = {want} of the {n} weights."
    return "prune the weights of smallest |w| (absolute value): a large negative weight matters."


_MASK_CASES = (
    dict(weights=[0.5, -0.1, 0.3, -0.9, 0.05, 0.7], sparsity=0.5),
    dict(weights=[0.5, -0.1, 0.3, -0.9, 0.05, 0.7], sparsity=0.0),
    dict(weights=[0.5, -0.1, 0.3, -0.9, 0.05, 0.7], sparsity=1.0),
    dict(weights=[-2.0, 1.5, -0.25, 0.125, 3.0], sparsity=0.5),
    dict(weights=[-2.0, 1.5, -0.25, 0.125, 3.0], sparsity=0.7),
    dict(weights=[0.01, -0.02, 0.03, -0.04, 0.05, -0.06, 0.07, -0.08, 0.09, -0.1], sparsity=0.25),
    dict(weights=[-1.2, -0.8, -0.3, 0.2, 0.9, 1.1, -0.05], sparsity=0.9),
)

register(
    Exercise(
        id="9.1",
        title="A magnitude-pruning mask",
        points=2,
        answer="magnitude_mask",
        kind=FUNCTION,
        cases=_MASK_CASES,
        hidden_cases=(
            dict(weights=[0.31, -0.29, 0.1, 2.0, -0.6, 0.02, 1.4, -1.1], sparsity=0.375),
            dict(weights=[4.0, -3.0, 2.0, -1.0], sparsity=0.75),
            dict(weights=[-0.2, 0.9, 0.4], sparsity=0.34),
        ),
        reference=_ref_mask,
        hints=("zero the round(sparsity * n) weights of smallest absolute value: mask 0 for them, 1 for the rest.",),
        diagnose=_diagnose_mask,
    )
)


# --- 9.2 channels kept and MACs after channel pruning --------------------------------------------


def _ref_pruned_chain(H, widths, K, ratio):
    import torch
    from torch import nn

    from course.compression.pruning import conv_widths, prune_channels
    from course.cost import count

    layers = []
    for i, (N, M) in enumerate(zip(widths[:-1], widths[1:])):
        layers += [nn.Conv2d(N, M, K, padding=K // 2, bias=False)] + ([nn.ReLU()] if i < len(widths) - 2 else [])
    chain = nn.Sequential(*layers)
    x = torch.zeros(1, widths[0], H, H)
    last = [name for name, m in chain.named_modules() if isinstance(m, nn.Conv2d)][-1]
    pruned = prune_channels(chain, ratio, x, ignored=[last])
    return [widths[0]] + list(conv_widths(pruned).values()), count(pruned, x).macs


def _diagnose_chain(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    if not isinstance(got, (list, tuple)) or len(got) != 2:
        return "return a pair: (widths after pruning, MACs)."
    widths, macs = got
    want_widths, want_macs = expected
    if isinstance(widths, (list, tuple)) and list(widths) != list(want_widths):
        if widths and widths[-1] != case["widths"][-1]:
            return "the last conv's outputs are the model's outputs: keep them all (and the input channels)."
        if widths and widths[0] != case["widths"][0]:
            return "the input image keeps its channels: widths[0] does not change."
        return "each hidden width keeps floor(M * (1 - ratio)) channels."
    if widths == want_widths and macs != want_macs:
        return ("a conv loses output AND input channels: MACs = sum over layers of H*H*K*K*N'*M' with the pruned "
                "widths on both sides (stride 1, same padding).")
    return None


_CHAIN_CASES = (
    dict(H=32, widths=[3, 16, 32, 10], K=3, ratio=0.5),
    dict(H=32, widths=[3, 16, 32, 10], K=3, ratio=0.25),
    dict(H=16, widths=[8, 12, 20, 24, 8], K=3, ratio=0.75),
    dict(H=16, widths=[8, 12, 20, 24, 8], K=1, ratio=0.375),
    dict(H=8, widths=[4, 10, 6], K=5, ratio=0.5),
    dict(H=28, widths=[1, 6, 16, 10], K=5, ratio=0.0),
)

register(
    Exercise(
        id="9.2",
        title="Channels kept and MACs after channel pruning",
        points=2,
        answer="pruned_chain",
        kind=FUNCTION,
        cases=_CHAIN_CASES,
        hidden_cases=(
            dict(H=16, widths=[3, 8, 16, 4], K=3, ratio=0.5),
            dict(H=8, widths=[6, 24, 12], K=1, ratio=0.25),
            dict(H=20, widths=[2, 10, 14, 18, 6], K=3, ratio=0.625),
        ),
        reference=_ref_pruned_chain,
        output_names=("widths", "macs"),
        hints=("hidden widths become floor(M * (1 - ratio)); the input and the last output keep theirs; "
               "MACs = sum of H*H*K*K*N*M over the convs with the new widths.",),
        diagnose=_diagnose_chain,
    )
)


# --- 9.3 scale and zero point ----------------------------------------------------------------------


def _ref_qparams(x_min, x_max, bits):
    from course.compression.quantization import scale_zero_point

    return scale_zero_point(x_min, x_max, bits)


def _diagnose_qparams(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    if not isinstance(got, (list, tuple)) or len(got) != 2:
        return "return a pair: (scale, zero_point)."
    scale, _ = expected
    if isinstance(got[0], (int, float)) and abs(got[0] - scale) > 1e-9 * scale:
        if case["x_min"] > 0 or case["x_max"] < 0:
            return "widen the range to include 0 first: x_min = min(x_min, 0), x_max = max(x_max, 0)."
        return f"scale = (x_max - x_min) / (2**bits - 1): {2 ** case['bits'] - 1} steps for {case['bits']} bits."
    return "zero_point = 0 - round(x_min / scale), an int clamped to [0, 2**bits - 1]."


_QPARAM_CASES = (
    dict(x_min=-1.0, x_max=3.0, bits=8),
    dict(x_min=-2.5, x_max=2.5, bits=8),
    dict(x_min=0.0, x_max=6.0, bits=8),
    dict(x_min=0.5, x_max=4.0, bits=8),
    dict(x_min=-3.0, x_max=-1.0, bits=8),
    dict(x_min=-0.75, x_max=1.8, bits=4),
    dict(x_min=-1.0, x_max=1.0, bits=2),
)

register(
    Exercise(
        id="9.3",
        title="Scale and zero point",
        points=2,
        answer="scale_zero_point",
        kind=FUNCTION,
        cases=_QPARAM_CASES,
        hidden_cases=(
            dict(x_min=-0.5, x_max=0.25, bits=8),
            dict(x_min=1.0, x_max=2.0, bits=4),
            dict(x_min=-10.0, x_max=5.0, bits=6),
        ),
        reference=_ref_qparams,
        output_names=("scale", "zero_point"),
        hints=("unsigned b bits: q in [0, 2**b - 1]; widen [x_min, x_max] to include 0; scale = range / (2**b - 1); "
               "zero_point = -round(x_min / scale), clamped.",),
        diagnose=_diagnose_qparams,
    )
)


# --- 9.4 an integer-only linear layer ------------------------------------------------------------


def _ref_int_linear(x_q, x_zero_point, w_q, bias_q, multiplier, y_zero_point):
    from course.compression.quantization import integer_linear

    return [int(v) for v in integer_linear(x_q, x_zero_point, w_q, bias_q, multiplier, y_zero_point).tolist()]


def _diagnose_int_linear(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    if not isinstance(got, (list, tuple)) or len(got) != len(case["w_q"]):
        return "return a list of ints, one per output (one per row of w_q)."
    if any(isinstance(g, int) and (g < 0 or g > 255) for g in got):
        return "clamp the outputs to the uint8 range [0, 255]."
    return ("subtract the input's zero point before multiplying: acc = sum((x - x_zp) * w) + bias_q; "
            "then y = clamp(round(acc * multiplier) + y_zp, 0, 255).")


_INT_LINEAR_CASES = (
    dict(x_q=[10, 200, 128, 0], x_zero_point=128, w_q=[[1, -2, 3, 4], [-127, 127, 0, 5]], bias_q=[100, -50],
         multiplier=0.0123, y_zero_point=10),
    dict(x_q=[0, 0, 0], x_zero_point=0, w_q=[[5, 6, 7]], bias_q=[300], multiplier=0.25, y_zero_point=3),
    dict(x_q=[255, 255, 255, 255], x_zero_point=0, w_q=[[127, 127, 127, 127], [-127, -127, -127, -127]],
         bias_q=[0, 0], multiplier=0.002, y_zero_point=128),
    dict(x_q=[37, 91, 140, 3, 250], x_zero_point=100, w_q=[[12, -7, 33, -90, 4], [0, 1, -1, 0, 2], [-40, 25, 60, 11, -3]],
         bias_q=[-1200, 77, 5000], multiplier=0.00731, y_zero_point=64),
    dict(x_q=[128, 129, 127], x_zero_point=128, w_q=[[100, -100, 50]], bias_q=[0], multiplier=0.9, y_zero_point=0),
    dict(x_q=[60, 70], x_zero_point=64, w_q=[[-90, 80], [15, 15], [127, -128]], bias_q=[1000, -1000, 0],
         multiplier=0.0517, y_zero_point=200),
)

register(
    Exercise(
        id="9.4",
        title="An integer-only linear layer",
        points=3,
        answer="int_linear",
        kind=FUNCTION,
        cases=_INT_LINEAR_CASES,
        hidden_cases=(
            dict(x_q=[1, 2, 3], x_zero_point=2, w_q=[[3, -1, 2], [0, 4, -4]], bias_q=[10, -10], multiplier=0.5,
                 y_zero_point=5),
            dict(x_q=[200, 50], x_zero_point=120, w_q=[[64, -64]], bias_q=[-2000], multiplier=0.01, y_zero_point=128),
        ),
        reference=_ref_int_linear,
        hints=("acc[m] = sum_n (x_q[n] - x_zero_point) * w_q[m][n] + bias_q[m] (integers); "
               "y[m] = clamp(round(acc[m] * multiplier) + y_zero_point, 0, 255).",),
        diagnose=_diagnose_int_linear,
    )
)


# --- 9.5 the distillation loss ---------------------------------------------------------------------


def _ref_kd(student_logits, teacher_logits, label, T, alpha):
    import torch

    from course.compression.distillation import distillation_loss

    s = torch.tensor([student_logits], dtype=torch.float64)
    t = torch.tensor([teacher_logits], dtype=torch.float64)
    return float(distillation_loss(s, t, torch.tensor([label]), T, alpha))


def _diagnose_kd(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    if not isinstance(got, (int, float)):
        return "return one number."
    T, alpha = case["T"], case["alpha"]
    if alpha > 0 and T != 1 and abs(got - expected) > 1e-6 and expected:
        return ("scale the KL term by T**2; the KL goes from the teacher's soft targets p_t to the student's p_s: "
                "sum p_t * (log p_t - log p_s), both softmax(logits / T).")
    return "the cross-entropy term uses the student's logits at temperature 1: -log softmax(z_s)[label]."


_KD_CASES = (
    dict(student_logits=[2.0, 0.5, -1.0], teacher_logits=[3.0, 1.0, -2.0], label=0, T=4.0, alpha=0.9),
    dict(student_logits=[2.0, 0.5, -1.0], teacher_logits=[3.0, 1.0, -2.0], label=0, T=1.0, alpha=0.5),
    dict(student_logits=[2.0, 0.5, -1.0], teacher_logits=[3.0, 1.0, -2.0], label=2, T=2.0, alpha=0.0),
    dict(student_logits=[0.1, 0.2, 0.3, 0.4], teacher_logits=[-1.0, 4.0, 0.0, 1.0], label=1, T=3.0, alpha=1.0),
    dict(student_logits=[5.0, -3.0], teacher_logits=[5.0, -3.0], label=0, T=4.0, alpha=0.9),
    dict(student_logits=[1.0, -1.0, 0.0, 2.0, -2.0], teacher_logits=[0.5, 0.0, 2.5, 1.0, -1.0], label=3, T=8.0,
         alpha=0.7),
)

register(
    Exercise(
        id="9.5",
        title="The distillation loss",
        points=2,
        answer="distillation_loss",
        kind=FUNCTION,
        cases=_KD_CASES,
        hidden_cases=(
            dict(student_logits=[0.0, 1.0, 2.0], teacher_logits=[2.0, 1.0, 0.0], label=1, T=2.0, alpha=0.3),
            dict(student_logits=[-1.0, 3.0], teacher_logits=[0.5, 0.5], label=0, T=5.0, alpha=0.8),
        ),
        reference=_ref_kd,
        rel_tol=1e-6,
        hints=("loss = alpha * T**2 * KL(p_t || p_s) + (1 - alpha) * CE(z_s, label), p = softmax(z / T), "
               "KL(p_t || p_s) = sum p_t * (log p_t - log p_s).",),
        diagnose=_diagnose_kd,
    )
)


# --- 9.6 MnasNet's reward ----------------------------------------------------------------------------


def _ref_reward(accuracy, latency, target, alpha, beta):
    from course.compression.search import mnasnet_reward

    return mnasnet_reward(accuracy, latency, target, alpha, beta)


def _diagnose_reward(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    if not isinstance(got, (int, float)):
        return "return one number."
    if case["latency"] > case["target"]:
        return "over the target the exponent is beta (alpha applies only when latency <= target)."
    return "reward = accuracy * (latency / target) ** w, with w = alpha when latency <= target."


_REWARD_CASES = (
    dict(accuracy=0.75, latency=80.0, target=80.0, alpha=-0.07, beta=-0.07),
    dict(accuracy=0.75, latency=40.0, target=80.0, alpha=-0.07, beta=-0.07),
    dict(accuracy=0.76, latency=160.0, target=80.0, alpha=-0.07, beta=-0.07),
    dict(accuracy=0.74, latency=60.0, target=80.0, alpha=0.0, beta=-1.0),
    dict(accuracy=0.78, latency=100.0, target=80.0, alpha=0.0, beta=-1.0),
    dict(accuracy=91.5, latency=2.5, target=3.0, alpha=-0.07, beta=-0.15),
    dict(accuracy=91.5, latency=3.5, target=3.0, alpha=-0.07, beta=-0.15),
)

register(
    Exercise(
        id="9.6",
        title="MnasNet's reward",
        points=1,
        answer="mnasnet_reward",
        kind=FUNCTION,
        cases=_REWARD_CASES,
        hidden_cases=(
            dict(accuracy=0.8, latency=120.0, target=100.0, alpha=-0.07, beta=-0.07),
            dict(accuracy=0.7, latency=50.0, target=100.0, alpha=0.0, beta=-1.0),
            dict(accuracy=70.0, latency=10.0, target=10.0, alpha=-0.1, beta=-0.2),
        ),
        reference=_ref_reward,
        hints=("reward = accuracy * (latency / target) ** w; w = alpha if latency <= target else beta.",),
        diagnose=_diagnose_reward,
    )
)


# --- 9.7 the design task ------------------------------------------------------------------------------

#: The design task's budgets and recipe. A spec meeting the budgets is rebuilt as
#: ``SearchNet(spec)`` after ``torch.manual_seed(seed)`` and trained with ``course.train.fit`` on
#: ``course.data.digits()`` (epochs, batch size, lr, seed below, one thread); its test accuracy
#: must reach ``accuracy``.
DESIGN = {"macs": 1_200_000, "params": 15_000, "accuracy": 95.0, "epochs": 6, "batch_size": 64, "lr": 3e-3,
          "seed": 0, "threads": 1}

_DESIGN_RESULTS: Dict[str, Any] = {}  # spec (as text) -> result, so a second check does not retrain


def design_report(spec) -> Dict[str, Any]:
    """Rebuild, count and (within budget) train a design: ``{"macs", "params", "accuracy" (None
    when over budget), "train_s", "problem" (None or why it fails)}``. Cached per spec."""
    key = repr(spec)
    if key in _DESIGN_RESULTS:
        return _DESIGN_RESULTS[key]
    import torch

    from course.compression.nets import SearchNet
    from course.cost import count
    from course.data import digits
    from course.train import fit

    report: Dict[str, Any] = {"macs": None, "params": None, "accuracy": None, "train_s": None, "problem": None}
    try:
        torch.manual_seed(DESIGN["seed"])
        model = SearchNet(spec)
    except ValueError as error:
        report["problem"] = f"the spec is not valid: {error}"
        return report
    cost = count(model, torch.zeros(1, 3, 32, 32))
    report.update(macs=cost.macs, params=cost.params)
    over = []
    if cost.macs > DESIGN["macs"]:
        over.append(f"{cost.macs:,} MACs > {DESIGN['macs']:,}")
    if cost.params > DESIGN["params"]:
        over.append(f"{cost.params:,} parameters > {DESIGN['params']:,}")
    if over:
        report["problem"] = "over budget: " + " and ".join(over) + " (nothing was trained)"
        _DESIGN_RESULTS[key] = report
        return report
    result = fit(model, digits(), epochs=DESIGN["epochs"], batch_size=DESIGN["batch_size"], lr=DESIGN["lr"],
                 seed=DESIGN["seed"], threads=DESIGN["threads"])
    report.update(accuracy=result.accuracy, train_s=result.train_s)
    if result.accuracy < DESIGN["accuracy"]:
        report["problem"] = (f"trained with the course recipe it reaches {result.accuracy:.1f}% on the digits' test "
                             f"split, below the {DESIGN['accuracy']:.0f}% required ({cost.macs:,} MACs, "
                             f"{cost.params:,} parameters)")
    _DESIGN_RESULTS[key] = report
    return report


def _ref_design():
    return dict(DESIGN)


def _compare_design(expected: Any, got: Any) -> Optional[str]:
    if isinstance(got, dict) and "__unsupported__" in got:
        return f"`design` must be a list of [K, expansion, M, stride, se] lists, got a {got['__unsupported__']}"
    report = design_report(got)
    return report["problem"]


register(
    Exercise(
        id="9.7",
        title="Design a model within a MACs and parameter budget",
        points=4,
        answer="design",
        kind=VALUE,
        reference=_ref_design,
        compare=_compare_design,
        reveal_expected=False,
        hints=(f"a SearchNet spec: a list of [K, expansion, M, stride, se] blocks after the 16-channel stem at 32x32; "
               f"at most {DESIGN['macs']:,} MACs and {DESIGN['params']:,} parameters; downsample early "
               "(stride 2) to keep the MACs low.",),
    )
)
