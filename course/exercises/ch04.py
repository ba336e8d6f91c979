"""Chapter 4 exercises: what bottleneck blocks cost, and an MBConv built by the learner.

Expected values come from :mod:`course.cost.bottleneck`, :mod:`course.cost`, the course's
:class:`~course.blocks.bottleneck.MBConv` and MobileNetV2 (imported on first use); none is
written down here. 4.2 (a module) recognises typical mistakes by running the course's block
*with that mistake* on the case's seeded input and comparing.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Dict, Optional

from course.exercises.core import FUNCTION, MODULE, VALUE, Exercise, draw_from, get_exercise, register


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


# --- 4.2 an MBConv with squeeze-and-excitation ------------------------------------------------------


def _mbconv_block(N: int, M: int, expansion: int, K: int, stride: int, se_ratio: float):
    """The course's block (:class:`course.blocks.bottleneck.MBConv`): the learner's weights come from it."""
    from course.blocks.bottleneck import MBConv

    return MBConv(N, M, expansion, K, stride, se_ratio)


def _mbconv_exercise() -> Exercise:
    """4.2 as :func:`course.exercises.runners.run_module` runs it: the block is the reference."""
    from dataclasses import replace

    return replace(get_exercise("4.2"), reference=_mbconv_block, runner=None)


def _expected_mbconv(**case: Any) -> Dict[str, Any]:
    """The course block's output summary on the case (the expected side of 4.2)."""
    from course.exercises.runners import run_module

    return run_module(_mbconv_exercise(), _mbconv_block, case)


_SE_WIDTH = ("SE on the wrong width: MBConv's SE sits after the depthwise conv, on the expanded width "
             "mid = expansion·N, and squeezes it to R = int(se_ratio·N) (a share of the block's *input*).")


def _run_mbconv(exercise: Exercise, answer, case: Dict[str, Any]) -> Dict[str, Any]:
    """Run the learner's MBConv like any module answer; a weight of the wrong shape in the SE gets its hint."""
    from course.exercises.runners import run_module

    try:
        return run_module(_mbconv_exercise(), answer, case)
    except ValueError as error:
        if str(error).startswith("se.") or " se." in str(error):
            raise ValueError(f"{error}. {_SE_WIDTH}") from None
        if case.get("expansion") == 1 and "expand." in str(error):
            raise ValueError(f"{error}. With expansion 1 there is no expand conv: "
                             "self.expand = nn.Identity(), as in MobileNetV2's first block.") from None
        raise


def _mbconv_variants():
    """The typical mistakes of an MBConv, as modules with the course block's names: ``{hint: class}``."""
    from course.blocks.bottleneck import MBConv

    class NoResidual(MBConv):
        def forward(self, x):
            return self.project(self.se(self.depthwise(self.expand(x))))

    class ReluAfterProjection(MBConv):
        def forward(self, x):
            out = self.project(self.se(self.depthwise(self.expand(x)))).relu()
            return out + x if self.has_skip else out

    class ReluAfterResidual(MBConv):
        def forward(self, x):
            out = self.project(self.se(self.depthwise(self.expand(x))))
            return (out + x if self.has_skip else out).relu()

    class SEBeforeDepthwise(MBConv):
        def forward(self, x):
            out = self.project(self.depthwise(self.se(self.expand(x))))
            return out + x if self.has_skip else out

    return {
        "missing residual: add the input to the output when stride == 1 and N == M.": NoResidual,
        "ReLU after the projection: the projection is linear (conv + BN, no activation): a ReLU on the "
        "narrow tensor destroys information (the linear bottleneck).": ReluAfterProjection,
        "an activation after the residual add: the block returns project(...) + x, with no activation.": ReluAfterResidual,
        "the SE comes after the depthwise conv (expand -> depthwise -> SE -> project).": SEBeforeDepthwise,
    }


def _diagnose_mbconv(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    if not isinstance(got, dict):
        return None
    if got.get("shape") != expected.get("shape"):
        return "the stride goes to the depthwise conv (padding K // 2); the projection maps mid -> M channels."
    if got.get("params") != expected.get("params"):
        if case["expansion"] == 1:
            return "with expansion 1 there is no expand conv (use nn.Identity(), as MobileNetV2's first block)."
        return "count your layers: expand (1x1 conv + BN), depthwise (KxK conv + BN), SE (two 1x1 convs with bias), project (1x1 conv + BN)."
    from course.exercises.runners import run_module
    from course.exercises.judge import compare_module_output

    for hint, variant in _mbconv_variants().items():
        try:
            summary = run_module(_mbconv_exercise(), variant, case)
        except Exception:  # this mistake does not run on this case
            continue
        if compare_module_output(summary, got) is None:
            return hint
    return None


_MBCONV_CASES = (
    dict(N=8, M=8, expansion=6, K=3, stride=1, se_ratio=0.25, input=(2, 8, 7, 7)),
    dict(N=8, M=12, expansion=6, K=5, stride=2, se_ratio=0.25, input=(1, 8, 9, 11)),
    dict(N=16, M=16, expansion=1, K=3, stride=1, se_ratio=0.25, input=(1, 16, 6, 5)),
    dict(N=8, M=16, expansion=3, K=3, stride=1, se_ratio=0.5, input=(1, 8, 5, 5)),
)


def _draw_mbconv_case(rng) -> Dict[str, Any]:
    """A hidden case drawn per submission: stride 1 or 2, with or without the residual, t = 1 sometimes."""
    N = rng.choice([4, 8, 12])
    stride = rng.choice([1, 2])
    M = rng.choice([N, N, 2 * N])
    return dict(N=N, M=M, expansion=rng.choice([1, 3, 4, 6]), K=rng.choice([3, 5]), stride=stride,
                se_ratio=rng.choice([0.25, 0.5]), input=(1, N, rng.choice([5, 6, 9]), rng.choice([4, 7])))


register(
    Exercise(
        id="4.2",
        title="Build an MBConv with squeeze-and-excitation",
        points=3,
        answer="MyMBConv",
        kind=MODULE,
        cases=_MBCONV_CASES,
        hidden_cases=(
            dict(N=16, M=24, expansion=1, K=3, stride=2, se_ratio=0.25, input=(1, 16, 8, 7)),
            dict(N=12, M=12, expansion=4, K=7, stride=1, se_ratio=0.25, input=(2, 12, 9, 6)),
            dict(N=8, M=8, expansion=6, K=3, stride=2, se_ratio=0.5, input=(1, 8, 5, 5)),
        ),
        draw=_draw_mbconv_case,
        reference=_expected_mbconv,
        runner=_run_mbconv,
        diagnose=_diagnose_mbconv,
        hints=("expand (1x1, N -> mid, BN, ReLU; none when expansion == 1) -> depthwise (KxK at stride, BN, ReLU) "
               "-> SE on mid -> project (1x1, mid -> M, BN, no activation) -> + x when stride == 1 and N == M.",),
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
