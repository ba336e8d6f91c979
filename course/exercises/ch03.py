"""Chapter 3 exercises: channel shuffle and memory access cost.

Expected values come from the course's own code (:func:`course.blocks.shuffle.channel_shuffle`,
:mod:`course.cost.shuffle`), imported on first use; none is written down here.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional

from course.exercises.core import FUNCTION, WRONG_VALUE, Exercise, draw_from, register


def _shuffle_cost():
    from course.cost import shuffle

    return shuffle


def _near(got: Any, value: float, rel: float = 1e-6) -> bool:
    return isinstance(got, (int, float)) and not isinstance(got, bool) and abs(got - value) <= rel * abs(value)


# --- 3.1 shuffled_order ---------------------------------------------------------------------------


def _ref_shuffled_order(C: int, groups: int):
    import torch

    from course.blocks.shuffle import channel_shuffle

    x = torch.arange(C, dtype=torch.float32).view(1, C, 1, 1)
    return [int(v) for v in channel_shuffle(x, groups).flatten().tolist()]


def _compare_order(expected: Any, got: Any) -> Optional[str]:
    if not isinstance(got, (list, tuple)):
        return f"expected a list of {len(expected)} ints, got {type(got).__name__}"
    if len(got) != len(expected):
        return f"expected a list of {len(expected)} channel indices, got {len(got)}"
    if any(not isinstance(v, int) or isinstance(v, bool) for v in got):
        return "every item must be an int (use .tolist() on an integer tensor, or int(...))"
    return None if list(got) == list(expected) else WRONG_VALUE


def _diagnose_order(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    C, G = case["C"], case["groups"]
    if not isinstance(got, (list, tuple)) or len(got) != C:
        return None
    if sorted(got) != list(range(C)):
        return "a shuffle is a permutation: every channel 0..C-1 must appear exactly once."
    if list(got) == list(range(C)):
        return "the order did not change: transpose the two channel axes between the two reshapes."
    if list(got) == _ref_shuffled_order(C, C // G):
        return "the axes are swapped: first view the channels as (groups, C // groups), then transpose."
    return None


register(
    Exercise(
        id="3.1",
        title="Channel shuffle: reshape, transpose, reshape",
        points=2,
        answer="shuffled_order",
        kind=FUNCTION,
        cases=(
            dict(C=6, groups=2),
            dict(C=6, groups=3),
            dict(C=12, groups=3),
            dict(C=12, groups=4),
            dict(C=8, groups=1),
            dict(C=8, groups=8),
            dict(C=24, groups=3),
            dict(C=16, groups=2),
        ),
        hidden_cases=(
            dict(C=10, groups=5),
            dict(C=18, groups=6),
            dict(C=30, groups=2),
            dict(C=9, groups=3),
        ),
        draw=draw_from(C=[4, 6, 8, 9, 12, 15, 16, 20, 24, 36], groups=[2, 3, 4, 5, 6],
                       where=lambda c: c["C"] % c["groups"] == 0),
        reference=_ref_shuffled_order,
        compare=_compare_order,
        hints=(
            "torch.arange(C).view(groups, C // groups), transpose, then flatten: the list of input "
            "channels in their new order.",
        ),
        diagnose=_diagnose_order,
    )
)


# --- 3.2 memory_access_cost -----------------------------------------------------------------------


def _ref_mac(h, w, c1, c2):
    return _shuffle_cost().memory_access_cost(h, w, c1, c2)


def _diagnose_mac(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    h, w, c1, c2 = case["h"], case["w"], case["c1"], case["c2"]
    if got == h * w * (c1 + c2):
        return "you counted the input and output feature maps; the weights (c1 * c2) are read too."
    if got == h * w * c1 * c2:
        return "that is the FLOPs (multiply-adds), not the memory access cost."
    if got == 4 * expected:
        return "count elements, not bytes."
    return None


register(
    Exercise(
        id="3.2",
        title="Memory access cost of a 1x1 convolution",
        points=2,
        answer="memory_access_cost",
        kind=FUNCTION,
        cases=(
            dict(h=56, w=56, c1=64, c2=64),
            dict(h=56, w=56, c1=32, c2=128),
            dict(h=28, w=28, c1=116, c2=116),
            dict(h=7, w=7, c1=464, c2=1024),
            dict(h=14, w=14, c1=9, c2=108),
            dict(h=1, w=1, c1=1024, c2=1000),
            dict(h=28, w=14, c1=90, c2=180),
        ),
        hidden_cases=(
            dict(h=3, w=5, c1=7, c2=11),
            dict(h=112, w=112, c1=16, c2=96),
            dict(h=14, w=28, c1=300, c2=20),
        ),
        draw=draw_from(h=[1, 7, 14, 28, 56], w=[1, 7, 14, 28, 56], c1=[8, 24, 58, 116, 232], c2=[8, 32, 116, 464]),
        reference=_ref_mac,
        hints=("MAC = h*w*(c1 + c2) + c1*c2: read the input, read the weights, write the output.",),
        diagnose=_diagnose_mac,
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
