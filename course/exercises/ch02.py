"""Chapter 2 exercises: separable and group convolution, the Fire module, MobileNetV1.

Expected values come from :mod:`course.cost.separable` and the course's MobileNetV1 (imported
on first use, so ``import course`` stays light); none is written down here.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Dict, Optional

from course.exercises.core import FUNCTION, VALUE, Exercise, draw_from, register


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


# --- 2.2 fire_cost ----------------------------------------------------------------------------


def _ref_fire_cost(H, W, N, S, E1, E3):
    cost = _separable().fire(H, W, N, S, E1, E3)
    return (cost.macs, cost.params)


def _diagnose_fire_cost(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    if not isinstance(got, (list, tuple)) or len(got) != 2:
        return "return a tuple: `return macs, params`."
    H, W, N, S, E1, E3 = (case[k] for k in ("H", "W", "N", "S", "E1", "E3"))
    macs, params = expected
    got_macs, got_params = got
    hints = []
    weights = N * S + S * E1 + 9 * S * E3
    if got_macs != macs:
        if got_macs == H * W * (N * S + N * E1 + 9 * N * E3):
            hints.append("the expand convs read the squeeze layer's S channels, not the module's N inputs.")
        elif got_macs == H * W * (N * S + S * E1 + S * E3):
            hints.append("the e3x3 expand conv has a 3 x 3 kernel: 9 weights per input channel.")
        else:
            hints.append("MACs = H*W*(N*S + S*E1 + 9*S*E3): three convs, all at H x W.")
    if got_params != params:
        if got_params == weights:
            hints.append("SqueezeNet's convs have biases: add S + E1 + E3.")
        else:
            hints.append("params = N*S + S*E1 + 9*S*E3 weights plus S + E1 + E3 biases.")
    return " ".join(dict.fromkeys(hints)) or None


_FIRE_CASES = (
    dict(H=55, W=55, N=96, S=16, E1=64, E3=64),
    dict(H=27, W=27, N=256, S=32, E1=128, E3=128),
    dict(H=13, W=13, N=512, S=64, E1=256, E3=256),
    dict(H=56, W=56, N=64, S=16, E1=64, E3=64),
    dict(H=14, W=14, N=384, S=48, E1=192, E3=192),
    dict(H=8, W=12, N=40, S=10, E1=30, E3=20),
)

register(
    Exercise(
        id="2.2",
        title="MACs and parameters of a Fire module",
        points=3,
        answer="fire_cost",
        kind=FUNCTION,
        cases=_FIRE_CASES,
        hidden_cases=(
            dict(H=20, W=30, N=128, S=24, E1=96, E3=32),
            dict(H=7, W=7, N=512, S=80, E1=320, E3=320),
            dict(H=111, W=55, N=3, S=8, E1=16, E3=8),
        ),
        draw=draw_from(H=[7, 13, 27, 55], W=[7, 13, 27, 55], N=[64, 96, 128, 256, 512], S=[16, 32, 48, 64],
                       E1=[64, 128, 192, 256], E3=[64, 128, 192, 256]),
        reference=_ref_fire_cost,
        output_names=("macs", "params"),
        hints=(
            "squeeze 1x1 N->S, expand 1x1 S->E1 and 3x3 S->E3 (padding 1), all with biases.",
        ),
        diagnose=_diagnose_fire_cost,
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
