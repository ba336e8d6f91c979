"""Chapter 3 exercises: the channel-shuffle layer, the ShuffleNet V2 unit's forward, memory
access cost.

Expected values come from the course's own code (:class:`course.blocks.shuffle.ChannelShuffle`,
:class:`course.blocks.shuffle.ShuffleV2Unit`, :mod:`course.cost.shuffle`), imported on first
use; none is written down here. The module exercises (3.1, 3.2) recognise typical mistakes by
running the course's block *with that mistake* on the case's seeded input and comparing.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional

from course.exercises.core import FUNCTION, MODULE, Exercise, draw_from, register


def _shuffle_cost():
    from course.cost import shuffle

    return shuffle


def _near(got: Any, value: float, rel: float = 1e-6) -> bool:
    return isinstance(got, (int, float)) and not isinstance(got, bool) and abs(got - value) <= rel * abs(value)


def _gives(exercise_id: str, case: Dict[str, Any], variant, got: Any) -> bool:
    """Whether ``got`` (a module answer's output summary) is what ``variant`` (the course's block
    with one typical mistake, same submodule names) gives on this case's seeded input."""
    from course.exercises.core import get_exercise
    from course.exercises.judge import compare_module_output
    from course.exercises.runners import run_module

    try:
        summary = run_module(get_exercise(exercise_id), variant, case)
    except Exception:  # the mistake does not even run on this case: not this one
        return False
    return compare_module_output(summary, got) is None


# --- 3.1 the channel-shuffle layer ---------------------------------------------------------------


def _channel_shuffle_layer(groups: int):
    """The course's layer (:class:`course.blocks.shuffle.ChannelShuffle`)."""
    from course.blocks.shuffle import ChannelShuffle

    return ChannelShuffle(groups)


def _shuffle_variants():
    """The typical mistakes of a channel shuffle, as modules: ``{hint: class}``."""
    from course.blocks.shuffle import ChannelShuffle, channel_shuffle

    class NoShuffle(ChannelShuffle):
        def forward(self, x):
            B, C, H, W = x.shape
            return x.view(B, self.groups, C // self.groups, H, W).reshape(B, C, H, W)

    class SwappedAxes(ChannelShuffle):
        def forward(self, x):
            return channel_shuffle(x, x.shape[1] // self.groups)

    class Spatial(ChannelShuffle):  # transposed the wrong axes (mixes pixels into channels)
        def forward(self, x):
            B, C, H, W = x.shape
            return x.reshape(B, self.groups, C // self.groups, H * W).transpose(2, 3).reshape(B, C, H, W)

    return {
        "the channels did not move: transpose the two channel axes (1 and 2) between the two reshapes.": NoShuffle,
        "the axes are swapped: view the channels as (groups, C // groups), then transpose; "
        "you viewed them as (C // groups, groups).": SwappedAxes,
        "you moved pixels into channels: keep H and W as they are, view (B, groups, C // groups, H, W).": Spatial,
    }


def _diagnose_shuffle_layer(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    if not isinstance(got, dict) or got.get("shape") != expected.get("shape"):
        return "a shuffle keeps the shape (B, C, H, W): only the order of the channels changes."
    for hint, variant in _shuffle_variants().items():
        if _gives("3.1", case, variant, got):
            return hint
    return "channel g·(C/G) + k (channel k of group g) must land at position k·G + g."


register(
    Exercise(
        id="3.1",
        title="A channel-shuffle layer",
        points=2,
        answer="MyChannelShuffle",
        kind=MODULE,
        cases=(
            dict(groups=2, input=(2, 6, 3, 5)),
            dict(groups=3, input=(1, 12, 4, 4)),
            dict(groups=4, input=(1, 8, 5, 3)),
            dict(groups=3, input=(2, 24, 2, 3)),
        ),
        hidden_cases=(
            dict(groups=5, input=(1, 10, 3, 3)),
            dict(groups=2, input=(3, 18, 2, 5)),
            dict(groups=6, input=(1, 12, 7, 2)),
        ),
        draw=draw_from(groups=[2, 3, 4, 5, 8], input=[(1, 24, 3, 3), (2, 40, 2, 5), (1, 120, 3, 1), (2, 16, 5, 2)],
                       where=lambda c: c["input"][1] % c["groups"] == 0),
        reference=_channel_shuffle_layer,
        diagnose=_diagnose_shuffle_layer,
        hints=("view (B, groups, C // groups, H, W), transpose(1, 2), reshape back to (B, C, H, W).",),
    )
)


# --- 3.2 the ShuffleNet V2 unit's forward ---------------------------------------------------------


def _shufflev2_unit(N: int, M: int, stride: int):
    """The course's unit (:class:`course.blocks.shuffle.ShuffleV2Unit`)."""
    from course.blocks.shuffle import ShuffleV2Unit

    return ShuffleV2Unit(N, M, stride)


def _v2_variants():
    """The typical mistakes of a ShuffleNet V2 unit's forward, as modules: ``{hint: class}``."""
    import torch

    from course.blocks.shuffle import ShuffleV2Unit

    def branches(unit, x):
        if unit.stride == 1:
            x_left, x_right = x.chunk(2, dim=1)
            return x_left, unit.right(x_right)
        return unit.left(x), unit.right(x)

    class NoShuffle(ShuffleV2Unit):
        def forward(self, x):
            return torch.cat(branches(self, x), dim=1)

    class ShuffleFirst(ShuffleV2Unit):  # shuffled the input instead of the output
        def forward(self, x):
            return torch.cat(branches(self, self.shuffle(x)), dim=1)

    class SwappedConcat(ShuffleV2Unit):
        def forward(self, x):
            left, right = branches(self, x)
            return self.shuffle(torch.cat([right, left], dim=1))

    class RightHalfPassed(ShuffleV2Unit):  # the branch on the first half, the second passed through
        def forward(self, x):
            if self.stride == 2:
                return self.shuffle(torch.cat(branches(self, x), dim=1))
            x_first, x_second = x.chunk(2, dim=1)
            return self.shuffle(torch.cat([x_second, self.right(x_first)], dim=1))

    class BranchOnFirstHalf(ShuffleV2Unit):
        def forward(self, x):
            if self.stride == 2:
                return self.shuffle(torch.cat(branches(self, x), dim=1))
            x_first, x_second = x.chunk(2, dim=1)
            return self.shuffle(torch.cat([self.right(x_first), x_second], dim=1))

    class InterleavedSplit(ShuffleV2Unit):
        def forward(self, x):
            if self.stride == 2:
                return self.shuffle(torch.cat(branches(self, x), dim=1))
            return self.shuffle(torch.cat([x[:, 0::2], self.right(x[:, 1::2])], dim=1))

    missing = ("missing channel shuffle: your output is the concatenation before the shuffle; "
               "finish with self.shuffle(out) (2 groups), so that the next unit's split mixes both halves.")
    split = ("wrong split ({}): x.chunk(2, dim=1) gives (left, right); the left (first) half passes through "
             "unchanged and goes first in the concatenation, the right (second) half goes through self.right.")
    return {
        missing: NoShuffle,
        "the shuffle comes last: split, branch and concatenate first, then shuffle the concatenation.": ShuffleFirst,
        "concatenate in the order [left, right]: the left branch's output first.": SwappedConcat,
        split.format("you passed the second half through"): RightHalfPassed,
        split.format("you sent the first half through the branch"): BranchOnFirstHalf,
        split.format("you split even and odd channels, not the first and the second half"): InterleavedSplit,
    }


def _draw_v2_case(rng) -> Dict[str, Any]:
    """A hidden case drawn per submission: stride 1 (N == M) or 2 (M = 2N), an odd or even size."""
    stride = rng.choice([1, 2])
    N = rng.choice([4, 8, 12, 20])
    M = N if stride == 1 else 2 * N
    return dict(N=N, M=M, stride=stride, input=(rng.choice([1, 2]), N, rng.choice([3, 5, 8]), rng.choice([4, 7, 9])))


def _diagnose_v2_forward(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    downsampling = ("outputs match for stride 1 but not stride 2: check the downsampling branch (at stride 2 "
                    "there is no split: self.left and self.right both read all N input channels).")
    if not isinstance(got, dict):
        return None
    if got.get("shape") != expected.get("shape"):
        if case["stride"] == 2:
            return downsampling
        return "at stride 1 the unit keeps the shape: split in two halves, concatenate the two halves back."
    for hint, variant in _v2_variants().items():
        if _gives("3.2", case, variant, got):
            return hint
    if case["stride"] == 2:  # the stride-1 cases come first: when this one is the first failure, they passed
        return downsampling
    return None


register(
    Exercise(
        id="3.2",
        title="The ShuffleNet V2 unit's forward (split, branch, concat, shuffle)",
        points=3,
        answer="MyShuffleV2Unit",
        kind=MODULE,
        cases=(  # stride 1 first (the stride-2 hint relies on it), odd sizes, batch 1 and 2
            dict(N=8, M=8, stride=1, input=(2, 8, 7, 9)),
            dict(N=12, M=12, stride=1, input=(1, 12, 5, 6)),
            dict(N=6, M=12, stride=2, input=(1, 6, 9, 7)),
            dict(N=8, M=16, stride=2, input=(2, 8, 6, 6)),
        ),
        hidden_cases=(
            dict(N=16, M=16, stride=1, input=(1, 16, 3, 5)),
            dict(N=10, M=20, stride=2, input=(1, 10, 5, 5)),
            dict(N=12, M=24, stride=2, input=(1, 12, 7, 4)),
        ),
        draw=_draw_v2_case,
        reference=_shufflev2_unit,
        diagnose=_diagnose_v2_forward,
        hints=("stride 1: x.chunk(2, dim=1), the right half through self.right, concatenate [left, right], "
               "self.shuffle; stride 2: concatenate [self.left(x), self.right(x)], self.shuffle.",),
    )
)


# --- 3.3 mac_lower_bound --------------------------------------------------------------------------


def _ref_bound(h, w, B):
    return _shuffle_cost().mac_lower_bound(h, w, B)


def _diagnose_bound(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    h, w, B = case["h"], case["w"], case["B"]
    if _near(got, 2 * math.sqrt(h * w * B)):
        return "at c1 = c2 = sqrt(B / hw) the weights still cost c1 * c2 = B / (h*w): add that term."
    if _near(got, B / (h * w)):
        return "you kept only the weights: the feature maps cost h*w*(c1 + c2) >= 2*sqrt(h*w*B)."
    if _near(got, 4 * expected):
        return "count elements, not bytes."
    return "apply AM-GM, c1 + c2 >= 2*sqrt(c1*c2), with c1*c2 = B / (h*w)."


register(
    Exercise(
        id="3.3",
        title="The lower bound of MAC at fixed FLOPs (guideline G1)",
        points=2,
        answer="mac_lower_bound",
        kind=FUNCTION,
        cases=(
            dict(h=56, w=56, B=56 * 56 * 64 * 64),
            dict(h=28, w=28, B=28 * 28 * 22 * 44),
            dict(h=14, w=14, B=1_000_000),
            dict(h=7, w=7, B=7 * 7 * 464 * 464),
            dict(h=112, w=112, B=123_456_789),
            dict(h=1, w=1, B=1_024_000),
        ),
        hidden_cases=(
            dict(h=20, w=20, B=20 * 20 * 50 * 80),
            dict(h=5, w=3, B=123_457),
            dict(h=64, w=64, B=4096 * 7),
        ),
        draw=draw_from(h=[1, 7, 14, 28, 56], w=[1, 7, 14, 28, 56], B=[10_000, 250_000, 3_000_000, 40_000_000]),
        reference=_ref_bound,
        rel_tol=1e-6,
        hints=("MAC >= 2*sqrt(h*w*B) + B/(h*w), with equality when c1 = c2.",),
        diagnose=_diagnose_bound,
    )
)


# --- 3.4 v2_unit_cost -----------------------------------------------------------------------------


def _ref_v2_unit(H, W, N, M, stride):
    cost = _shuffle_cost().shuffle_v2_unit(H, W, N, M, stride)
    return (cost.macs, cost.params)


def _diagnose_v2_unit(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    if not isinstance(got, (list, tuple)) or len(got) != 2:
        return "return a tuple: `return macs, params`."
    macs, params = expected
    hints = []
    if got[1] != params:
        N, M, stride = case["N"], case["M"], case["stride"]
        c = M // 2
        bn = 2 * (3 * c + (N + c if stride == 2 else 0))
        if got[1] == params - bn:
            hints.append("each BatchNorm2d(C) adds 2*C parameters (weight and bias).")
    if got[0] != macs:
        if case["stride"] == 2:
            hints.append(
                "at stride 2 there is no split: both branches read all N input channels; the right "
                "branch's first 1x1 conv runs at H x W, everything after the depthwise conv at H/2 x W/2."
            )
        else:
            hints.append("at stride 1 only the right half (M/2 channels) is computed: 1x1, 3x3 depthwise, 1x1.")
    return " ".join(hints) or None


register(
    Exercise(
        id="3.4",
        title="MACs and parameters of a ShuffleNet V2 unit",
        points=3,
        answer="v2_unit_cost",
        kind=FUNCTION,
        cases=(
            dict(H=28, W=28, N=116, M=116, stride=1),
            dict(H=56, W=56, N=24, M=116, stride=2),
            dict(H=14, W=14, N=232, M=232, stride=1),
            dict(H=28, W=28, N=116, M=232, stride=2),
            dict(H=7, W=7, N=976, M=976, stride=1),
            dict(H=9, W=9, N=48, M=96, stride=2),
        ),
        hidden_cases=(
            dict(H=14, W=14, N=48, M=48, stride=1),
            dict(H=20, W=20, N=40, M=80, stride=2),
            dict(H=56, W=56, N=116, M=116, stride=1),
            dict(H=11, W=13, N=64, M=128, stride=2),
        ),
        reference=_ref_v2_unit,
        output_names=("macs", "params"),
        hints=(
            "add the convs (K*K*(N/groups)*M weights, H'*W' times each) and the BatchNorms "
            "(2 parameters per channel, no MACs).",
        ),
        diagnose=_diagnose_v2_unit,
    )
)
