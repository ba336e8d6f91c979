"""Chapter 7 exercises: re-parameterization by hand.

Expected values come from :mod:`course.blocks.reparam` (imported on first use, float64); none is
written down here. Tensors travel as (nested) lists of floats, so answers are JSON-able: return
``tensor.tolist()`` or plain lists.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from course.exercises.core import FUNCTION, Exercise, register


def _torch():
    import torch

    return torch


def _reparam():
    from course.blocks import reparam

    return reparam


def _depth(value: Any) -> int:
    depth = 0
    while isinstance(value, (list, tuple)) and value:
        value, depth = value[0], depth + 1
    return depth


# --- 7.1 fold BN into a conv ---------------------------------------------------------------------


def _ref_fold_bn(weight, gamma, beta, mean, var, eps):
    torch = _torch()
    bn = torch.nn.BatchNorm2d(len(gamma), eps=eps).double().eval()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(gamma, dtype=torch.float64))
        bn.bias.copy_(torch.tensor(beta, dtype=torch.float64))
        bn.running_mean.copy_(torch.tensor(mean, dtype=torch.float64))
        bn.running_var.copy_(torch.tensor(var, dtype=torch.float64))
        kernel = torch.tensor(weight, dtype=torch.float64).reshape(-1, 1, 1, 1)
        w, b = _reparam().fold_bn(kernel, bn)
    return (w.flatten().tolist(), b.tolist())


def _diagnose_fold_bn(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    if not isinstance(got, (list, tuple)) or len(got) != 2:
        return "return a pair: `return weight, bias`, each a list with one value per output channel."
    weight, bias = got
    if not isinstance(weight, (list, tuple)) or len(weight) != len(case["gamma"]):
        return "weight needs one value per output channel (M values)."
    std = [(v + case["eps"]) ** 0.5 for v in case["var"]]
    if all(abs(w - g * x / v) < 1e-6 * max(1.0, abs(g * x / v)) for w, g, x, v in zip(weight, case["gamma"], case["weight"], case["var"])):
        return "divide by the standard deviation sqrt(var + eps), not by the variance."
    no_eps = [g * x / v ** 0.5 for g, x, v in zip(case["gamma"], case["weight"], case["var"])]
    if case["eps"] >= 1e-3 and all(abs(w - n) < 1e-9 * max(1.0, abs(n)) for w, n in zip(weight, no_eps)):
        return "don't forget eps: BatchNorm divides by sqrt(var + eps)."
    right_w = all(abs(w - g * x / s) <= 1e-5 * max(1.0, abs(g * x / s)) for w, g, x, s in zip(weight, case["gamma"], case["weight"], std))
    if right_w:
        return "the weight is right; the bias is beta - gamma * mean / sqrt(var + eps) (the mean is scaled too)."
    return "t = gamma / sqrt(var + eps); weight' = t * weight; bias' = beta - t * mean."


_FOLD_CASES = (
    dict(weight=[0.5], gamma=[2.0], beta=[0.25], mean=[1.0], var=[4.0], eps=1e-5),
    dict(weight=[1.0, -2.0], gamma=[1.0, 0.5], beta=[0.0, 1.0], mean=[0.5, -0.5], var=[1.0, 0.25], eps=1e-5),
    dict(weight=[0.3, 0.7, -1.1], gamma=[1.5, 0.8, 1.2], beta=[-0.2, 0.1, 0.3], mean=[0.2, -0.4, 0.9], var=[0.5, 2.0, 1.5], eps=1e-3),
    dict(weight=[2.0, 2.0], gamma=[1.0, 1.0], beta=[0.5, -0.5], mean=[3.0, -3.0], var=[9.0, 9.0], eps=0.1),
    dict(weight=[-0.75], gamma=[0.25], beta=[1.5], mean=[-2.0], var=[0.01], eps=1e-5),
)

register(
    Exercise(
        id="7.1",
        title="Fold BatchNorm into a convolution",
        points=3,
        answer="fold_bn",
        kind=FUNCTION,
        cases=_FOLD_CASES,
        hidden_cases=(
            dict(weight=[1.5, -0.5, 0.25, 2.0], gamma=[0.9, 1.1, 0.7, 1.3], beta=[0.1, -0.1, 0.2, 0.0],
                 mean=[0.3, 0.1, -0.2, 1.0], var=[0.8, 1.2, 0.3, 2.5], eps=1e-5),
            dict(weight=[-1.0], gamma=[3.0], beta=[-2.0], mean=[0.5], var=[0.04], eps=0.01),
        ),
        reference=_ref_fold_bn,
        rel_tol=1e-5,
        output_names=("weight", "bias"),
        hints=(
            "t = gamma / sqrt(var + eps); weight' = t * weight; bias' = beta - t * mean.",
        ),
        diagnose=_diagnose_fold_bn,
    )
)


# --- 7.2 pad a kernel ------------------------------------------------------------------------------


def _ref_pad(kernel, K):
    torch = _torch()
    padded = _reparam().pad_kernel(torch.tensor(kernel, dtype=torch.float64)[None, None], K)
    return padded[0, 0].tolist()


def _diagnose_pad(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    K = case["K"]
    if not isinstance(got, (list, tuple)) or _depth(got) != 2:
        return f"return a K x K nested list (a list of {K} rows of {K} numbers); use `.tolist()` on a tensor."
    if len(got) != K or any(len(row) != K for row in got):
        return f"the result must be {K} x {K}: pad (K - k) // 2 zeros on every side."
    return "keep the kernel centred: the same number of zeros on the left and the right, the top and the bottom."


_PAD_CASES = (
    dict(kernel=[[2.0]], K=3),
    dict(kernel=[[-0.5]], K=5),
    dict(kernel=[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]], K=5),
    dict(kernel=[[0.5, -1.0, 0.25], [1.5, 2.0, -2.5], [3.0, 0.75, 1.0]], K=7),
    dict(kernel=[[1.25]], K=1),
)

register(
    Exercise(
        id="7.2",
        title="Pad a 1x1 kernel to 3x3",
        points=2,
        answer="pad_kernel",
        kind=FUNCTION,
        cases=_PAD_CASES,
        hidden_cases=(
            dict(kernel=[[3.0]], K=7),
            dict(kernel=[[1.0, -2.0, 3.0], [-4.0, 5.0, -6.0], [7.0, -8.0, 9.0]], K=3),
            dict(kernel=[[0.5, 1.0, 1.5, 2.0, 2.5]] * 5, K=7),
        ),
        reference=_ref_pad,
        rel_tol=1e-9,
        hints=("torch.nn.functional.pad(kernel, [p, p, p, p]) with p = (K - k) // 2 keeps it centred.",),
        diagnose=_diagnose_pad,
    )
)


# --- 7.3 the identity as a conv -----------------------------------------------------------------


def _ref_identity(channels, groups, K):
    torch = _torch()
    return _reparam().identity_kernel(channels, K, groups, dtype=torch.float64).tolist()


def _diagnose_identity(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    C, G, K = case["channels"], case["groups"], case["K"]
    if isinstance(got, dict):
        return "return a nested list: `kernel.tolist()`."
    if not isinstance(got, (list, tuple)) or _depth(got) != 4:
        return f"return the weight as a 4-level nested list of shape (C, C/G, K, K) = ({C}, {C // G}, {K}, {K})."
    if len(got) != C or len(got[0]) != C // G:
        if len(got[0]) == C and G > 1:
            return f"with groups={G} each output channel sees only C/G = {C // G} input channels: the weight is (C, C/G, K, K)."
        return f"the weight's shape is (C, C/G, K, K) = ({C}, {C // G}, {K}, {K})."
    if G > 1:
        return "inside its group, output channel i reads input channel i % (C/G): put the 1 there, at the kernel's centre."
    return "a 1 at the centre [K//2, K//2] of channel i -> i, zeros everywhere else."


_IDENTITY_CASES = (
    dict(channels=2, groups=1, K=3),
    dict(channels=3, groups=1, K=1),
    dict(channels=4, groups=2, K=3),
    dict(channels=3, groups=3, K=3),
    dict(channels=2, groups=1, K=5),
    dict(channels=6, groups=3, K=3),
)

register(
    Exercise(
        id="7.3",
        title="The identity as a convolution",
        points=2,
        answer="identity_kernel",
        kind=FUNCTION,
        cases=_IDENTITY_CASES,
        hidden_cases=(
            dict(channels=8, groups=4, K=3),
            dict(channels=4, groups=1, K=7),
            dict(channels=5, groups=5, K=1),
        ),
        reference=_ref_identity,
        rel_tol=1e-9,
        hints=("a 1 at the centre of channel i -> i (i % (C/G) inside a group), zeros elsewhere; return .tolist().",),
        diagnose=_diagnose_identity,
    )
)


# --- 7.4 what re-parameterization saves ---------------------------------------------------------


def _ref_unit_params(N, M, K, groups, k, stride):
    from course.blocks.reparam import MobileOneUnit

    def params(deploy):
        unit = MobileOneUnit(N, M, K, stride, groups, k, deploy=deploy)
        return sum(p.numel() for p in unit.parameters())

    return (params(False), params(True))


def _diagnose_unit_params(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    if not isinstance(got, (list, tuple)) or len(got) != 2:
        return "return a pair: `return train_params, deploy_params`."
    train, deploy = expected
    hints = []
    if got[1] != deploy:
        hints.append("deploy: one conv K*K*(N/G)*M plus a bias of M.")
    if got[0] != train:
        M = case["M"]
        identity = case["N"] == M and case["stride"] == 1
        if identity and got[0] == train - 2 * M:
            hints.append("the identity branch is a BatchNorm: 2M parameters (gamma, beta).")
        elif case["K"] > 1 and got[0] == train - (case["N"] // case["groups"]) * M - 2 * M:
            hints.append("don't forget the 1x1 scale branch (conv + BN) when K > 1.")
        else:
            hints.append("train: k branches of (conv K*K*(N/G)*M + BN 2M), a 1x1 scale branch when K > 1, an identity BN when N == M and stride 1.")
    return " ".join(hints) or None


_UNIT_CASES = (
    dict(N=64, M=64, K=3, groups=64, k=4, stride=1),
    dict(N=64, M=64, K=3, groups=64, k=4, stride=2),
    dict(N=48, M=128, K=1, groups=1, k=4, stride=1),
    dict(N=128, M=128, K=1, groups=1, k=1, stride=1),
    dict(N=32, M=32, K=3, groups=1, k=1, stride=1),
    dict(N=3, M=48, K=3, groups=1, k=1, stride=2),
    dict(N=256, M=256, K=3, groups=256, k=8, stride=1),
)

register(
    Exercise(
        id="7.4",
        title="Parameters of a MobileOne unit, train vs deploy",
        points=2,
        answer="unit_params",
        kind=FUNCTION,
        cases=_UNIT_CASES,
        hidden_cases=(
            dict(N=32, M=32, K=3, groups=32, k=2, stride=2),
            dict(N=16, M=64, K=1, groups=1, k=3, stride=1),
            dict(N=96, M=96, K=3, groups=96, k=1, stride=1),
        ),
        reference=_ref_unit_params,
        output_names=("train", "deploy"),
        hints=("BN has 2 parameters per channel (running statistics are buffers); the deploy conv has a bias.",),
        diagnose=_diagnose_unit_params,
    )
)
