"""Chapter 2 exercises: separable and group convolution, the Fire module, MobileNetV1, and
reading a speed-up against the MACs ratio.

Expected values come from :mod:`course.cost.separable` and the course's MobileNetV1 (imported
on first use, so ``import course`` stays light); none is written down here.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Dict, Optional

from course.exercises.core import FUNCTION, MODULE, VALUE, Exercise, draw_from, register


def _separable():
    from course.cost import separable

    return separable


def _out(size: int, K: int, stride: int) -> int:
    return (size + 2 * (K // 2) - K) // stride + 1


# --- 2.1 separable_cost -----------------------------------------------------------------------


def _ref_separable_cost(H, W, N, M, K, stride):
    cost = _separable().separable_conv(H, W, N, M, K, stride=stride, batch_norm=False, activation=False)
    return (cost.macs, cost.params)


def _diagnose_separable_cost(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    if not isinstance(got, (list, tuple)) or len(got) != 2:
        return "return a tuple: `return macs, params`."
    H, W, N, M, K, stride = (case[k] for k in ("H", "W", "N", "M", "K", "stride"))
    Ho, Wo = _out(H, K, stride), _out(W, K, stride)
    got_macs, got_params = got
    hints = []
    if got_macs == Ho * Wo * K * K * N * M:
        hints.append("that is the standard K x K conv; a separable conv is a depthwise K x K conv "
                     "(one filter per channel) followed by a 1 x 1 conv.")
    elif got_macs == Ho * Wo * K * K * N + H * W * N * M and stride > 1:
        hints.append("the stride belongs to the depthwise conv: the pointwise conv runs on its "
                     "output, at H' x W', not at H x W.")
    elif got_macs in (Ho * Wo * K * K * N, Ho * Wo * N * M):
        hints.append("add both halves: depthwise H'*W'*K*K*N plus pointwise H'*W'*N*M.")
    elif got_macs != expected[0]:
        hints.append("MACs = H'*W'*N*(K*K + M) with H' = (H + 2*(K//2) - K)//stride + 1.")
    if got_params != expected[1]:
        if got_params == K * K * N * M:
            hints.append("parameters: K*K*N for the depthwise conv plus N*M for the pointwise conv.")
        else:
            hints.append("no bias here: params = K*K*N + N*M.")
    return " ".join(dict.fromkeys(hints)) or None


_SEPARABLE_CASES = (
    dict(H=56, W=56, N=128, M=128, K=3, stride=1),
    dict(H=112, W=112, N=32, M=64, K=3, stride=1),
    dict(H=112, W=112, N=64, M=128, K=3, stride=2),
    dict(H=14, W=14, N=512, M=512, K=5, stride=1),
    dict(H=7, W=7, N=1024, M=1024, K=3, stride=1),
    dict(H=15, W=9, N=24, M=40, K=7, stride=2),
    dict(H=28, W=28, N=16, M=8, K=1, stride=1),
    dict(H=33, W=33, N=48, M=96, K=3, stride=2),
)

register(
    Exercise(
        id="2.1",
        title="MACs and parameters of a depthwise-separable conv",
        points=3,
        answer="separable_cost",
        kind=FUNCTION,
        cases=_SEPARABLE_CASES,
        hidden_cases=(
            dict(H=17, W=31, N=40, M=80, K=5, stride=2),
            dict(H=10, W=10, N=256, M=64, K=3, stride=1),
            dict(H=64, W=48, N=8, M=16, K=7, stride=1),
        ),
        draw=draw_from(H=[7, 13, 14, 28, 56, 112], W=[7, 14, 27, 56], N=[8, 32, 64, 128, 512], M=[16, 64, 128, 256],
                       K=[1, 3, 5, 7], stride=[1, 2]),
        reference=_ref_separable_cost,
        output_names=("macs", "params"),
        hints=(
            "depthwise K x K (stride, padding K//2) then pointwise 1 x 1, no bias: "
            "MACs = H'*W'*N*(K*K + M), params = K*K*N + N*M.",
        ),
        diagnose=_diagnose_separable_cost,
    )
)


# --- 2.2 MyFire: build SqueezeNet's Fire module --------------------------------------------------


def fire_reference(N: int, S: int, E1: int, E3: int):
    """The block the learner rebuilds in exercise 2.2: :class:`course.blocks.Fire` (parameters
    ``squeeze``, ``expand1x1``, ``expand3x3``, each a conv with ``weight`` and ``bias``)."""
    from course.blocks.conv import Fire

    return Fire(N, S, E1, E3)


def _fire_exercise() -> Exercise:
    """2.2 as :func:`course.exercises.runners.run_module` runs it: the block is the reference."""
    from dataclasses import replace

    from course.exercises.core import get_exercise

    return replace(get_exercise("2.2"), reference=fire_reference, runner=None)


def _expected_fire(**case) -> Dict[str, Any]:
    """What the course's Fire gives for ``case``: the learner's module must give the same."""
    return run_fire(_fire_exercise(), fire_reference, case)


def run_fire(exercise: Exercise, answer, case: Dict[str, Any]) -> Dict[str, Any]:
    """:func:`course.exercises.runners.run_module` plus the MACs :func:`course.cost.count`
    finds in the module on one image of the case's input shape (``"macs"``)."""
    import torch

    from course.cost import count
    from course.exercises.runners import input_shapes, run_module

    try:
        summary = run_module(_fire_exercise(), answer, case)
    except ValueError as error:
        if "weight" not in str(error):
            raise
        raise ValueError(f"{error}. squeeze is the 1 x 1 conv N -> S that comes first; expand1x1 (1 x 1, "
                         "S -> E1) and expand3x3 (3 x 3, S -> E3) both read its output") from None
    kwargs = {k: v for k, v in case.items() if k != "input"}
    module = fire_reference(**kwargs) if answer is fire_reference else answer(**kwargs)
    _, N, H, W = input_shapes(case)[0]
    summary["macs"] = count(module.eval(), torch.zeros(1, N, H, W)).macs
    return summary


def _compare_fire(expected: Any, got: Any) -> Optional[str]:
    from course.exercises.judge import compare_module_output

    problem = compare_module_output(expected, got)
    if problem is None and isinstance(got, dict) and got.get("macs") != expected.get("macs"):
        problem = (f"the counter finds {got.get('macs'):,} MACs in your module; the course's Fire does "
                   f"{expected['macs']:,} (H*W*(N*S + S*E1 + 9*S*E3))")
    return problem


def _draw_fire(rng) -> Dict[str, Any]:
    """A random case for exercise 2.2 (odd and non-square sizes, batch 1 or 2)."""
    N, S = rng.choice([4, 8, 12, 24]), rng.choice([2, 3, 4, 6])
    return dict(N=N, S=S, E1=rng.choice([2, 4, 6, 10]), E3=rng.choice([2, 4, 8, 12]),
                input=(rng.choice([1, 2]), N, rng.randint(3, 12), rng.randint(3, 12)))


def _diagnose_fire(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    if not isinstance(got, dict) or not isinstance(got.get("shape"), list):
        return "forward() must return one tensor of shape (B, E1 + E3, H, W)."
    E1, E3 = case["E1"], case["E3"]
    if got["shape"] != expected["shape"]:
        if got["shape"][1:2] in ([case["S"]], [E1], [E3]):
            return "return both expand branches concatenated on the channel axis: torch.cat([e1, e3], dim=1)."
        return "the 3 x 3 expand conv needs padding=1 to keep H x W; the output is (B, E1 + E3, H, W)."
    if got.get("params") != expected.get("params"):
        return ("three convs with biases: squeeze 1 x 1 N -> S, expand1x1 1 x 1 S -> E1, expand3x3 "
                "3 x 3 S -> E3 (padding 1).")
    values, want = got.get("values") or [], expected["values"]
    if values and min(values) < 0:
        return "the outputs go through a ReLU on each expand branch: none can be negative."
    if len(values) == len(want) and sorted(round(v, 4) for v in values) == sorted(round(v, 4) for v in want):
        return "the concatenation order: the 1 x 1 branch first, then the 3 x 3 one: torch.cat([e1, e3], dim=1)."
    return ("squeeze first (1 x 1, N -> S, then ReLU), then both expand convs read the squeezed tensor "
            "(not the input), each followed by a ReLU.")


register(
    Exercise(
        id="2.2",
        title="Build a Fire module",
        points=3,
        answer="MyFire",
        kind=MODULE,
        cases=(
            dict(N=16, S=4, E1=8, E3=8, input=(2, 16, 8, 8)),
            dict(N=12, S=3, E1=6, E3=10, input=(1, 12, 9, 7)),
            dict(N=8, S=6, E1=4, E3=12, input=(1, 8, 5, 11)),
            dict(N=24, S=8, E1=16, E3=16, input=(1, 24, 13, 13)),
        ),
        hidden_cases=(
            dict(N=10, S=5, E1=12, E3=4, input=(2, 10, 7, 6)),
            dict(N=32, S=4, E1=8, E3=24, input=(1, 32, 3, 3)),
        ),
        draw=_draw_fire,
        reference=_expected_fire,
        runner=run_fire,
        compare=_compare_fire,
        diagnose=_diagnose_fire,
        hints=(
            "squeeze (1 x 1 conv N -> S, ReLU), then expand1x1 (1 x 1, S -> E1, ReLU) and expand3x3 "
            "(3 x 3, padding 1, S -> E3, ReLU) side by side, concatenated on the channel axis.",
            "name the convs `squeeze`, `expand1x1`, `expand3x3` (nn.Conv2d with bias): their weights are copied by name.",
        ),
    )
)


# --- 2.3 depthwise_share ----------------------------------------------------------------------

#: The width multiplier of exercise 2.3 (the paper's Table 2 breaks down alpha = 1 only).
SHARE_ALPHA = 0.25


@lru_cache(maxsize=None)
def mobilenet_depthwise_share(alpha: float = SHARE_ALPHA) -> float:
    """Percent of MobileNetV1's MACs (width ``alpha``, input 1x3x224x224) spent in its depthwise
    convs, counted once per process with :func:`course.cost.count`."""
    import torch

    from course.cost import count
    from course.models.mobilenetv1 import MobileNetV1

    report = count(MobileNetV1(alpha=alpha), torch.zeros(1, 3, 224, 224))
    depthwise = sum(r["macs"] for r in report.rows() if r["module"].endswith("conv_dw"))
    return 100.0 * depthwise / report.macs


def _ref_depthwise_share() -> float:
    return mobilenet_depthwise_share(SHARE_ALPHA)


def _near(got: float, value: float, tol: float = 1e-3) -> bool:
    return abs(got - value) <= tol * abs(value)


def _diagnose_share(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    if not isinstance(got, (int, float)) or isinstance(got, bool):
        return None
    if 0 < got <= 1 and _near(100 * got, expected):
        return "give a percentage (0-100), not a fraction."
    if _near(got, mobilenet_depthwise_share(1.0)) or abs(got - 3.06) < 0.005:
        return ("that is the share at alpha = 1 (the paper's Table 2 says 3.06%); build "
                "MobileNetV1(alpha=0.25): the depthwise MACs shrink as alpha, the 1 x 1 MACs as alpha².")
    return "sum the MACs of the rows whose module name ends in 'conv_dw', divide by the total, times 100."


register(
    Exercise(
        id="2.3",
        title="The depthwise share of a thin MobileNetV1",
        points=2,
        answer="depthwise_share",
        kind=VALUE,
        reference=_ref_depthwise_share,
        rel_tol=1e-4,
        reveal_expected=False,
        hints=(
            "count MobileNetV1(alpha=0.25) at 1x3x224x224 and sum the MACs of the depthwise (conv_dw) rows.",
        ),
        diagnose=_diagnose_share,
    )
)


# --- 2.4 speedup_table: measurements -> decisions ------------------------------------------------


def _ref_speedup_table(pairs):
    rows = []
    for pair in pairs:
        speedup = pair["baseline_ms"] / pair["candidate_ms"]
        macs_ratio = pair["baseline_macs"] / pair["candidate_macs"]
        rows.append((pair["name"], speedup, macs_ratio, speedup > macs_ratio))
    return rows


def _diagnose_speedup(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    if not isinstance(got, (list, tuple)) or len(got) != len(expected):
        return "return one row per pair, in the pairs' order: (name, speedup, macs_ratio, faster_than_macs)."
    for want, row in zip(expected, got):
        if not isinstance(row, (list, tuple)) or len(row) != 4:
            return "each row is a 4-tuple: (name, speedup, macs_ratio, faster_than_macs)."
        name, speedup, ratio, verdict = want
        try:
            got_speedup, got_ratio = float(row[1]), float(row[2])
        except (TypeError, ValueError):
            return "speedup and macs_ratio are numbers."
        if abs(got_speedup * speedup - 1) < 1e-6 and abs(speedup - 1) > 1e-6:
            return ("the speed-up is baseline time / candidate time (above 1 when the candidate is faster); "
                    "you divided the other way.")
        if abs(got_ratio * ratio - 1) < 1e-6 and abs(ratio - 1) > 1e-6:
            return ("the MACs ratio is baseline MACs / candidate MACs (how many times fewer MACs the "
                    "candidate does); you divided the other way.")
        if row[3] is not verdict and row[3] == (not verdict):
            return ("faster than the MACs predict means speedup > macs_ratio: the candidate gained more time "
                    "than it saved MACs.")
    return None


def _draw_pairs(rng) -> Dict[str, Any]:
    """A random case for exercise 2.4: 1-4 pairs with times in ms and MACs (a candidate may be
    slower, or do more MACs, than its baseline)."""
    pairs = []
    for k in range(rng.randint(1, 4)):
        macs = rng.randint(10_000, 500_000_000)
        pairs.append((f"pair {k}", round(rng.uniform(0.05, 50.0), 3), round(rng.uniform(0.05, 50.0), 3),
                      macs, max(1, int(macs / rng.uniform(0.5, 30.0)))))
    return dict(pairs=_pairs(*pairs))


def _pairs(*rows):
    keys = ("name", "baseline_ms", "candidate_ms", "baseline_macs", "candidate_macs")
    return [dict(zip(keys, row)) for row in rows]


register(
    Exercise(
        id="2.4",
        title="Speed-up against the MACs ratio",
        points=2,
        answer="speedup_table",
        kind=FUNCTION,
        cases=(
            dict(pairs=_pairs(("separable vs 3x3, 56x56x128", 4.82, 0.93, 462_422_016, 54_992_896),
                              ("G=4 vs G=1, 3x3, 56x56x64", 2.10, 0.88, 115_605_504, 28_901_376))),
            dict(pairs=_pairs(("1x1 vs 3x3", 9.0, 1.5, 9 * 802_816, 802_816),
                              ("depthwise only", 1.2, 0.6, 1_000_000, 100_000),
                              ("same MACs", 2.0, 2.0, 500, 500))),
            dict(pairs=_pairs(("bigger candidate", 1.0, 2.5, 100, 300))),
        ),
        hidden_cases=(
            dict(pairs=_pairs(("a", 3.3, 0.3, 8_000, 1_000), ("b", 0.75, 0.5, 4_000, 4_000),
                              ("c", 10.0, 4.0, 9_000_000, 1_000_000))),
            dict(pairs=_pairs(("fire vs 3x3", 5.5, 2.2, 2_560_000, 290_000))),
        ),
        draw=_draw_pairs,
        reference=_ref_speedup_table,
        rel_tol=1e-6,
        diagnose=_diagnose_speedup,
        hints=(
            "for each pair: (name, baseline_ms / candidate_ms, baseline_macs / candidate_macs, speedup > macs_ratio).",
        ),
    )
)
