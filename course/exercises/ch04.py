"""Chapter 4 exercises: what bottleneck blocks cost.

Expected values come from :mod:`course.cost.bottleneck`, :mod:`course.cost` and the course's
MobileNetV2 (imported on first use); none is written down here.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Dict, Optional

from course.exercises.core import FUNCTION, VALUE, Exercise, draw_from, register


def _bottleneck():
    from course.cost import bottleneck

    return bottleneck


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --- 4.1 inverted_residual_macs -----------------------------------------------------------------


def _ref_ir_macs(H, W, N, M, t, K, stride):
    return _bottleneck().inverted_residual(H, W, N, M, t * N, K, stride).macs


def _diagnose_ir_macs(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    if not _is_number(got):
        return "return one integer: the MACs of the whole block."
    H, W, N, M, t, K, s = (case[k] for k in ("H", "W", "N", "M", "t", "K", "stride"))
    mid = t * N
    Ho, Wo = (H - 1) // s + 1, (W - 1) // s + 1
    if t == 1 and got == expected + H * W * N * mid:
        return "with t = 1 there is no expansion conv (MobileNetV2's first block): only depthwise + project."
    if s > 1:
        all_full = H * W * N * mid * (t != 1) + H * W * K * K * mid + H * W * mid * M
        if got == all_full:
            return "the stride is on the depthwise conv: it and the projection run at H' = H/stride (rounded up)."
        if got == Ho * Wo * N * mid * (t != 1) + Ho * Wo * K * K * mid + Ho * Wo * mid * M:
            return "the expansion conv comes before the stride: it runs at the full input size H x W."
    if got == expected - Ho * Wo * K * K * mid + Ho * Wo * K * K * mid * mid:
        return "the depthwise conv has one K x K filter per channel: H'·W'·K²·mid, not ·mid²."
    return "add the three convs: expand H·W·N·mid (none when t = 1), depthwise H'·W'·K²·mid, project H'·W'·mid·M."


_IR_CASES = (
    dict(H=56, W=56, N=24, M=24, t=6, K=3, stride=1),
    dict(H=112, W=112, N=16, M=24, t=6, K=3, stride=2),
    dict(H=112, W=112, N=32, M=16, t=1, K=3, stride=1),
    dict(H=28, W=28, N=40, M=80, t=6, K=5, stride=2),
    dict(H=14, W=14, N=80, M=80, t=3, K=5, stride=1),
    dict(H=7, W=7, N=160, M=320, t=6, K=3, stride=1),
    dict(H=15, W=15, N=24, M=40, t=4, K=7, stride=2),
)

register(
    Exercise(
        id="4.1",
        title="MACs of an inverted residual",
        points=3,
        answer="inverted_residual_macs",
        kind=FUNCTION,
        cases=_IR_CASES,
        hidden_cases=(
            dict(H=20, W=20, N=32, M=64, t=4, K=3, stride=2),
            dict(H=9, W=9, N=96, M=96, t=6, K=5, stride=1),
            dict(H=56, W=28, N=24, M=32, t=1, K=3, stride=2),
        ),
        draw=draw_from(H=[7, 14, 15, 28, 56], W=[7, 14, 28, 29, 56], N=[16, 24, 40, 80], M=[24, 40, 80, 112],
                       t=[1, 3, 4, 6], K=[3, 5, 7], stride=[1, 2]),
        reference=_ref_ir_macs,
        hints=(
            "expand 1x1 at H x W (none when t = 1), depthwise K x K at the stride, project 1x1 at H' x W'.",
        ),
        diagnose=_diagnose_ir_macs,
    )
)


# --- 4.2 se_cost -----------------------------------------------------------------------------------


def _ref_se_cost(H, W, C, R):
    cost = _bottleneck().squeeze_excite(H, W, C, R)
    return (cost.macs, cost.params)


def _diagnose_se_cost(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    if not isinstance(got, (list, tuple)) or len(got) != 2:
        return "return a tuple: `return macs, params`."
    H, W, C, R = (case[k] for k in ("H", "W", "C", "R"))
    macs, params = expected
    hints = []
    if got[0] != macs:
        if got[0] == macs * H * W:
            hints.append("the two 1x1 convs run once per image, on the pooled (C, 1, 1) vector, not at every pixel.")
        elif got[0] == macs // 2:
            hints.append("there are two 1x1 convs: C -> R and R -> C.")
        else:
            hints.append("MACs: C·R (reduce) + R·C (expand), on a 1x1 map.")
    if got[1] != params:
        if got[1] == 2 * C * R:
            hints.append("the SE's 1x1 convs have biases: + R + C parameters.")
        else:
            hints.append("parameters: C·R + R (reduce) + R·C + C (expand).")
    return " ".join(hints) or None


_SE_CASES = (
    dict(H=28, W=28, C=72, R=24),
    dict(H=14, W=14, C=480, R=120),
    dict(H=7, W=7, C=960, R=240),
    dict(H=56, W=56, C=16, R=8),
    dict(H=14, W=10, C=120, R=10),
)

register(
    Exercise(
        id="4.2",
        title="The cost of squeeze-and-excitation",
        points=2,
        answer="se_cost",
        kind=FUNCTION,
        cases=_SE_CASES,
        hidden_cases=(
            dict(H=7, W=5, C=64, R=16),
            dict(H=28, W=28, C=240, R=60),
            dict(H=1, W=1, C=10, R=3),
        ),
        draw=draw_from(H=[1, 7, 14, 28], W=[1, 7, 14, 28], C=[16, 72, 120, 480, 960], R=[4, 8, 16, 24, 60]),
        reference=_ref_se_cost,
        output_names=("macs", "params"),
        hints=("the excitation is two 1x1 convs (with bias) on the pooled vector.",),
        diagnose=_diagnose_se_cost,
    )
)


# --- 4.3 pointwise_share ------------------------------------------------------------------------


def _ref_pointwise_share(N, M, K):
    from course.cost import conv2d

    depthwise = conv2d(8, 8, N, N, K, groups=N, bias=False)
    pointwise = conv2d(8, 8, N, M, 1, bias=False)
    return pointwise.macs / (pointwise.macs + depthwise.macs)


def _diagnose_pointwise_share(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    if not _is_number(got):
        return "return one number between 0 and 1."
    M, K = case["M"], case["K"]

    def near(value):
        return abs(got - value) <= 1e-6 * abs(value)

    if near(100 * expected):
        return "a fraction between 0 and 1, not a percentage."
    if near(1 - expected):
        return "that is the depthwise conv's share; the question asks for the 1x1 conv's."
    if near(M / (K * K)):
        return "that is the ratio pointwise / depthwise; the share is pointwise / (pointwise + depthwise)."
    return "per pixel the 1x1 conv does N·M MACs and the depthwise K²·N: H, W and N cancel."


_SHARE_CASES = (
    dict(N=32, M=64, K=3),
    dict(N=512, M=512, K=3),
    dict(N=1024, M=1024, K=3),
    dict(N=96, M=24, K=3),
    dict(N=240, M=40, K=5),
    dict(N=64, M=16, K=7),
)

register(
    Exercise(
        id="4.3",
        title="Where a separable layer's MACs go",
        points=2,
        answer="pointwise_share",
        kind=FUNCTION,
        cases=_SHARE_CASES,
        hidden_cases=(
            dict(N=48, M=96, K=5),
            dict(N=16, M=160, K=3),
            dict(N=1000, M=10, K=1),
        ),
        draw=draw_from(N=[16, 32, 96, 240, 512], M=[16, 24, 64, 320], K=[3, 5, 7]),
        reference=_ref_pointwise_share,
        rel_tol=1e-6,
        hints=("share = HWNM / (HWNM + HWK²N) = M / (M + K²).",),
        diagnose=_diagnose_pointwise_share,
    )
)


# --- 4.4 residual_blocks --------------------------------------------------------------------------


@lru_cache(maxsize=None)
def _ref_residual_blocks() -> int:
    from course.blocks.bottleneck import InvertedResidual
    from course.models.mobilenetv2 import MobileNetV2

    return sum(1 for m in MobileNetV2().modules() if isinstance(m, InvertedResidual) and m.has_skip)


def _diagnose_residual_blocks(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    if not isinstance(got, int) or isinstance(got, bool):
        return "answer with an integer count."
    if got == 17:
        return "not every block adds its input: only those at stride 1 whose output width equals the input's."
    if got == 19:
        return "count the inverted residuals only (17 of them), not the stem and the head."
    return "Table 2: a block has a shortcut when its stride is 1 and N == M; the first block of each row changes c."


register(
    Exercise(
        id="4.4",
        title="Residual connections in MobileNetV2",
        points=1,
        answer="residual_blocks",
        kind=VALUE,
        reference=_ref_residual_blocks,
        reveal_expected=False,
        hints=("a block adds its input only when stride == 1 and N == M.",),
        diagnose=_diagnose_residual_blocks,
    )
)
