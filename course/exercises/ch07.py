"""Chapter 7 exercises: re-parameterization by hand, and what measurements decide.

* 7.1 (module): a RepVGG block's ``reparameterize()``: the learner's block gets the course
  block's weights by name, folds its branches into one conv, and must give the output of the
  course's block re-parameterized by the library (:mod:`course.blocks.reparam`), seeded inputs,
  stride 1 and 2, ``N != M``, groups, eval mode; a diagnosis names the branch that folds wrongly.
* 7.2 (function): parameters of a MobileOne unit, train vs deploy (the course's block counts them).
* 7.3 (function): which activations are clearly slower than a baseline, from paired per-round
  timings (fixed inputs, never the grader's machine): :func:`course.latency.compare.clearly_slower`.

Expected values are computed by the course's code (imported on first use); none is written down.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from course.exercises.core import FUNCTION, MODULE, Exercise, register


def _torch():
    import torch

    return torch


# --- 7.1 build a RepVGG block's reparameterize() ----------------------------------------------

#: Every BatchNorm of 7.1's check gets this eps (PyTorch's default, 1e-5, would hide a forgotten eps
#: inside the float32 tolerance): ``t = gamma / sqrt(var + eps)`` then differs from
#: ``gamma / sqrt(var)`` by about ``eps / (2 var)``, 0.025% to 0.1% with the check's variances.
REPVGG_EPS = 1e-3

#: What 7.1's runner also runs, per case: the same block with a branch taken out of both the
#: learner's module and the course's, so the diagnosis can say which branch folds wrongly.
_VARIANTS = ("no_identity", "no_identity_zero_1x1")


def _repvgg_case(exercise_id: str, case: Dict[str, Any]):
    """The course's block for ``case`` (seeded weights, random BN statistics, eps
    :data:`REPVGG_EPS`, eval mode), its constructor arguments and the seeded input."""
    torch = _torch()
    from course.blocks.reparam import RepVGGBlock
    from course.equivalence import randomize_bn
    from course.exercises.runners import case_seed

    kwargs = {k: case[k] for k in ("N", "M", "stride", "groups")}
    seed = case_seed(exercise_id, case)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        block = RepVGGBlock(**kwargs)
    randomize_bn(block, seed)
    _set_eps(block)
    x = torch.randn(*case["input"], generator=torch.Generator().manual_seed(seed + 1))
    return block.eval(), kwargs, x


def _set_eps(module, eps: float = REPVGG_EPS) -> None:
    torch = _torch()
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eps = eps


def _apply_variant(module, variant: str) -> None:
    """Take a branch out of a train-time RepVGG block (the course's or the learner's): the
    identity, and (``..._zero_1x1``) the 1x1 branch's kernel (its BN's shift stays)."""
    if variant.startswith("no_identity"):
        module.identity = None
    if variant.endswith("zero_1x1"):
        with _torch().no_grad():
            module.conv1x1.conv.weight.zero_()


def _counts(module) -> Dict[str, int]:
    torch = _torch()
    mods = list(module.modules())
    return {"convs": sum(isinstance(m, torch.nn.Conv2d) for m in mods),
            "bns": sum(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in mods)}


def _run_repvgg(exercise: Exercise, answer, case: Dict[str, Any]) -> Dict[str, Any]:
    """7.1's runner (in the answer's process): build the learner's block, copy the course block's
    weights into it by name, set eps, ``eval()``, call its ``reparameterize()`` and run it on the
    seeded input; the same for each of :data:`_VARIANTS`. Returns the output's summary, its
    parameter count, the convs and BatchNorms left in the block, and each variant's values."""
    torch = _torch()
    from torch import nn

    from course.exercises.runners import copy_weights, output_summary

    block, kwargs, x = _repvgg_case(exercise.id, case)

    def deployed(variant: Optional[str]):
        module = answer(**kwargs)
        if not isinstance(module, nn.Module):
            raise TypeError(f"{exercise.answer}(...) made {type(module).__name__}, not an nn.Module")
        copy_weights(block, module, dict(exercise.weights))
        _set_eps(module)
        if variant is not None:
            _apply_variant(module, variant)
        module.eval()
        module.reparameterize()
        with torch.no_grad():
            return module, output_summary(module(x))

    module, summary = deployed(None)
    summary["params"] = sum(p.numel() for p in module.parameters())
    summary.update(_counts(module))
    summary["variants"] = {}
    for variant in _VARIANTS:
        try:
            summary["variants"][variant] = deployed(variant)[1]["values"]
        except Exception:  # a variant the learner's code does not survive says nothing
            summary["variants"][variant] = None
    return summary


def _ref_repvgg(N: int, M: int, stride: int, groups: int, input) -> Dict[str, Any]:
    """7.1's expected result: the course's block re-parameterized by the library
    (:func:`course.blocks.reparam.reparameterize_model`), its variants, and the output a folding
    without eps would give."""
    import copy

    torch = _torch()
    from course.blocks.reparam import reparameterize_model
    from course.exercises.runners import output_summary

    case = dict(N=N, M=M, stride=stride, groups=groups, input=input)
    block, _, x = _repvgg_case("7.1", case)

    def deployed(module):
        with torch.no_grad():
            return output_summary(reparameterize_model(module)(x))

    expected = deployed(block)
    reference = reparameterize_model(block)
    expected["params"] = sum(p.numel() for p in reference.parameters())
    expected.update(_counts(reference))
    expected["variants"] = {}
    for variant in _VARIANTS:
        other = copy.deepcopy(block)
        _apply_variant(other, variant)
        expected["variants"][variant] = deployed(other)["values"]
    no_eps = copy.deepcopy(block)
    _set_eps(no_eps, 0.0)
    expected["eps_ignored"] = deployed(no_eps)["values"]
    return expected


def _close(a, b) -> bool:
    from course.exercises.judge import MODULE_ABS_TOL, MODULE_REL_TOL

    if not isinstance(a, list) or not isinstance(b, list) or len(a) != len(b) or not a:
        return False
    return all(isinstance(x, (int, float)) and abs(x - y) <= MODULE_ABS_TOL + MODULE_REL_TOL * abs(y)
               for x, y in zip(a, b))


def _compare_repvgg(expected: Dict[str, Any], got: Any) -> Optional[str]:
    from course.exercises.judge import compare_module_output

    if isinstance(got, dict) and got.get("shape") == expected["shape"] and (
            got.get("convs") != expected["convs"] or got.get("bns") != expected["bns"]):
        return (f"after reparameterize() the block still holds {got.get('convs')} conv(s) and {got.get('bns')} "
                f"BatchNorm(s); the deployed block holds one conv (with a bias) and no BatchNorm: set the "
                f"branches to None once `reparam` is built")
    return compare_module_output(expected, got)


def _diagnose_repvgg(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    if not isinstance(got, dict) or not isinstance(got.get("values"), list):
        return None
    if got.get("shape") != expected["shape"]:
        return "build `reparam` with the branches' geometry: kernel 3, padding 1, and conv3x3's stride and groups."
    if got.get("convs") != expected["convs"] or got.get("bns") != expected["bns"]:
        return "the forward uses `self.reparam` once it is set: build it, then drop conv3x3, conv1x1 and identity."
    if _close(got["values"], expected["eps_ignored"]):
        return ("BN eps ignored: t = gamma / sqrt(running_var + eps) (the check sets eps = 0.001 on every "
                "BatchNorm, so the difference shows).")
    variants = got.get("variants") or {}
    identity = case["N"] == case["M"] and case["stride"] == 1
    without_identity = _close(variants.get("no_identity"), expected["variants"]["no_identity"])
    if identity and without_identity:
        return ("outputs match without the identity branch but not with it: check the identity kernel (a 1 at "
                "the centre of channel i -> i, which is input i % (N/G) inside its group, folded with the "
                "identity's BN).")
    if not without_identity and _close(variants.get("no_identity_zero_1x1"),
                                       expected["variants"]["no_identity_zero_1x1"]):
        return ("1x1 kernel not centred when padded: outputs match once the 1x1 kernel is zero, so pad it with "
                "one zero on every side (F.pad(w, [1, 1, 1, 1])) to put it at the 3x3 kernel's centre.")
    scale = max((abs(v) for v in expected["values"]), default=0.0) or 1.0
    worst = max(abs(g - e) for g, e in zip(got["values"], expected["values"])
                if isinstance(g, (int, float))) if got["values"] else 0.0
    if worst < 5e-3 * scale:
        return (f"the outputs differ by at most {worst / scale:.2%} of their scale, the size a forgotten BN eps "
                f"makes: t = gamma / sqrt(running_var + eps).")
    return ("fold each branch's BN into its kernel (W' = t W, b' = beta - t mu, t = gamma / sqrt(var + eps)), pad "
            "the 1x1 kernel to 3x3, write the identity as a 3x3 kernel, and add the three.")


def _draw_repvgg(rng) -> Dict[str, Any]:
    N = rng.choice([4, 6, 8, 12])
    groups = rng.choice([g for g in (1, 2, 3, 4) if N % g == 0])
    M = rng.choice([N, N, 2 * N])
    stride = rng.choice([1, 1, 2])
    return dict(N=N, M=M, stride=stride, groups=groups,
                input=(rng.choice([1, 2]), N, rng.choice([5, 6, 7, 9]), rng.choice([5, 8, 9])))


register(
    Exercise(
        id="7.1",
        title="A RepVGG block's reparameterize()",
        points=5,
        answer="MyRepVGGBlock",
        kind=MODULE,
        cases=(
            dict(N=8, M=8, stride=1, groups=1, input=(2, 8, 9, 9)),
            dict(N=8, M=16, stride=1, groups=1, input=(1, 8, 8, 8)),
            dict(N=8, M=8, stride=2, groups=1, input=(1, 8, 9, 9)),
            dict(N=8, M=8, stride=1, groups=4, input=(1, 8, 7, 7)),
            dict(N=12, M=24, stride=2, groups=3, input=(1, 12, 10, 10)),
        ),
        hidden_cases=(
            dict(N=6, M=6, stride=1, groups=2, input=(2, 6, 5, 7)),
            dict(N=4, M=12, stride=2, groups=2, input=(1, 4, 11, 11)),
            dict(N=16, M=16, stride=1, groups=16, input=(1, 16, 6, 6)),
        ),
        draw=_draw_repvgg,
        reference=_ref_repvgg,
        runner=_run_repvgg,
        compare=_compare_repvgg,
        rel_tol=1e-5,
        abs_tol=1e-5,
        diagnose=_diagnose_repvgg,
        hints=("fold each branch's BN into its kernel, pad the 1x1 kernel to 3x3, write the identity as a 3x3 "
               "kernel, add them, and put the sum in one nn.Conv2d with a bias named `reparam`.",),
    )
)


# --- 7.2 what re-parameterization saves ---------------------------------------------------------


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
        id="7.2",
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


# --- 7.3 measurements -> a decision: which activations are clearly slower ------------------------


def _ref_clearly_slower(rounds, baseline):
    from course.latency.compare import clearly_slower

    return clearly_slower(rounds, baseline)


def _quartile(values, q):
    from course.latency.timing import _quantile

    return _quantile(sorted(values), q)


def _diagnose_clearly_slower(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    rounds, baseline = case["rounds"], case["baseline"]
    if not isinstance(got, (list, tuple)) or not all(isinstance(n, str) for n in got):
        return "return a list of names (strings), e.g. ['GELU']."
    if baseline in got:
        return f"leave the baseline ({baseline!r}) out: it is what the others are compared with."
    if list(got) != sorted(got) and sorted(got) == list(expected):
        return "the right names: return them sorted (sorted(names))."
    base = rounds[baseline]
    others = [n for n in rounds if n != baseline]

    def rule(test):
        return sorted(n for n in others if test(rounds[n]))

    ratios = lambda times: [t / b for t, b in zip(times, base)]  # noqa: E731
    if list(got) == rule(lambda t: _quartile(t, 0.5) / _quartile(base, 0.5) > 1) or list(got) == rule(
            lambda t: _quartile(ratios(t), 0.5) > 1):
        return ("a median ratio above 1 can be noise: call an activation slower only when the 25th percentile "
                "of its per-round ratios t_i / baseline_i is above 1 (the whole IQR above 1).")
    if list(got) == rule(lambda t: sum(ratios(t)) / len(t) > 1):
        return "one slow round (a load spike) moves a mean: use the 25th percentile of the per-round ratios."
    if list(got) == rule(lambda t: _quartile(t, 0.25) > _quartile(base, 0.75)):
        return ("compare round by round: the ratios t_i / baseline_i of the same round (a load spike hits both "
                "sides of a round and cancels), not the quartiles of the two lists.")
    return "ratios r_i = t_i / baseline_i per round; slower when the 25th percentile of the r_i is above 1."


_SLOWER_CASES = (
    dict(rounds={"ReLU": [1.0, 1.0, 1.0, 1.0, 1.0], "GELU": [1.2, 1.1, 1.3, 1.2, 1.25],
                 "h-swish": [1.05, 0.9, 1.1, 0.95, 1.02]}, baseline="ReLU"),
    dict(rounds={"ReLU": [1.0, 1.5, 1.0, 1.5, 1.0, 1.5], "GELU": [1.1, 1.65, 1.1, 1.65, 1.1, 1.65],
                 "ReLU6": [0.98, 1.45, 0.99, 1.5, 0.97, 1.44]}, baseline="ReLU"),
    dict(rounds={"ReLU": [2.0, 2.0, 2.0, 2.0, 2.0], "h-swish": [2.0, 2.0, 2.0, 2.0, 6.0],
                 "SE + ReLU": [2.6, 2.5, 2.7, 2.6, 2.4], "GELU": [2.1, 2.2, 2.1, 2.3, 2.2]}, baseline="ReLU"),
    dict(rounds={"no activation": [0.5, 0.5, 0.6, 0.5, 0.5], "ReLU": [0.5, 0.51, 0.6, 0.49, 0.5]},
         baseline="no activation"),
)

register(
    Exercise(
        id="7.3",
        title="Which activations are clearly slower than ReLU?",
        points=3,
        answer="clearly_slower_than",
        kind=FUNCTION,
        cases=_SLOWER_CASES,
        hidden_cases=(
            dict(rounds={"ReLU": [3.0, 3.1, 2.9, 3.0, 3.0, 9.0], "GELU": [3.3, 3.4, 3.2, 3.3, 3.2, 9.9],
                         "SE + ReLU": [3.1, 3.0, 2.8, 3.2, 3.1, 9.0]}, baseline="ReLU"),
            dict(rounds={"ReLU": [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], "h-swish": [1.02, 1.03, 1.01, 1.02, 1.04, 1.02, 0.99],
                         "GELU": [0.99, 1.01, 1.0, 0.98, 1.0, 1.02, 1.0], "SE + ReLU": [1.5, 1.4, 1.6, 1.5, 1.5, 1.45, 1.55]},
                 baseline="ReLU"),
            dict(rounds={"GELU": [1.0, 1.0, 1.0, 1.0, 1.0], "ReLU": [0.9, 0.8, 0.95, 0.85, 0.9]}, baseline="GELU"),
        ),
        reference=_ref_clearly_slower,
        hints=("ratios r_i = t_i / baseline_i per round; slower when the 25th percentile of the r_i is above 1.",),
        diagnose=_diagnose_clearly_slower,
    )
)
