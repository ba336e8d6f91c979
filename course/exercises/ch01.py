"""Chapter 1 exercises: what a convolution costs.

Expected values come from :mod:`course.cost` (imported on first use, so ``import course``
stays light); none is written down here.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Dict, Optional

from course.exercises.core import FUNCTION, MODULE, VALUE, WRONG_VALUE, Exercise, draw_from, register


def _formulas():
    from course.cost import formulas

    return formulas


# --- 1.1 conv_output_size ---------------------------------------------------------------------


def _ref_output_size(size: int, K: int, stride: int, padding: int, dilation: int) -> int:
    return _formulas().conv_output_size(size, K, stride, padding, dilation)


def _diagnose_output_size(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    if case.get("dilation", 1) > 1:
        return (
            "with dilation the kernel's taps are spread out: the dilated kernel spans "
            "dilation*(K-1)+1 pixels."
        )
    if case.get("stride", 1) > 1:
        return "at stride > 1 the division is a floor division (//): count the positions the kernel can start at."
    return None


_OUTPUT_SIZE_CASES = (
    dict(size=56, K=3, stride=1, padding=1, dilation=1),
    dict(size=32, K=5, stride=1, padding=0, dilation=1),
    dict(size=224, K=7, stride=2, padding=3, dilation=1),
    dict(size=56, K=3, stride=2, padding=1, dilation=1),
    dict(size=7, K=3, stride=2, padding=1, dilation=1),
    dict(size=15, K=3, stride=2, padding=0, dilation=1),
    dict(size=32, K=3, stride=1, padding=2, dilation=2),
    dict(size=28, K=3, stride=1, padding=0, dilation=2),
    dict(size=9, K=5, stride=3, padding=0, dilation=1),
)

register(
    Exercise(
        id="1.1",
        title="Output size of a convolution",
        points=2,
        answer="conv_output_size",
        kind=FUNCTION,
        cases=_OUTPUT_SIZE_CASES,
        hidden_cases=(
            dict(size=17, K=3, stride=2, padding=1, dilation=1),
            dict(size=100, K=7, stride=3, padding=2, dilation=1),
            dict(size=64, K=5, stride=2, padding=4, dilation=2),
            dict(size=13, K=1, stride=4, padding=0, dilation=1),
        ),
        draw=draw_from(size=[5, 9, 16, 31, 64, 100, 227], K=[1, 3, 5, 7], stride=[1, 2, 3], padding=[0, 1, 2, 3],
                       dilation=[1, 2, 3], where=lambda c: c["size"] + 2 * c["padding"] > c["dilation"] * (c["K"] - 1)),
        reference=_ref_output_size,
        hints=(
            "the output size is a floor division: (size + 2*padding - span) // stride + 1.",
            "the dilated kernel spans dilation*(K-1)+1 pixels.",
        ),
        diagnose=_diagnose_output_size,
    )
)


# --- 1.2 conv_cost ----------------------------------------------------------------------------


def _ref_conv_cost(H, W, N, M, K, stride, padding, groups, bias):
    cost = _formulas().conv2d(H, W, N, M, K, stride=stride, padding=padding, groups=groups, bias=bias)
    return (cost.macs, cost.params)


_GROUPS_HINT = (
    "did you divide by the groups? Each output channel sees only N/groups input channels, "
    "so the weight is K*K*(N/groups)*M."
)


def _diagnose_conv_cost(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    if not isinstance(got, (list, tuple)) or len(got) != 2:
        return "return a tuple: `return macs, params`."
    macs, params = expected
    got_macs, got_params = got
    G, M = case["groups"], case["M"]
    hints = []
    if got_macs != macs:
        if G > 1 and got_macs == macs * G:
            hints.append(_GROUPS_HINT)
        elif case["stride"] > 1:
            hints.append("at stride 2 the output is smaller: MACs = H' * W' * K*K * (N/groups) * M, with H', W' the output size.")
        elif G > 1:
            hints.append(_GROUPS_HINT)
        else:
            hints.append("one MAC per weight per output position: H' * W' * K*K * (N/groups) * M.")
    if got_params != params:
        bias_params = M if case["bias"] else 0
        if G > 1 and got_params == (params - bias_params) * G + bias_params:
            hints.append(_GROUPS_HINT)
        elif case["bias"]:
            hints.append("a bias adds M parameters and no MACs.")
        else:
            hints.append("bias=False here: no bias parameters.")
    return " ".join(dict.fromkeys(hints)) or None


_CONV_COST_CASES = (
    dict(H=56, W=56, N=64, M=64, K=3, stride=1, padding=1, groups=1, bias=False),
    dict(H=56, W=56, N=64, M=256, K=1, stride=1, padding=0, groups=1, bias=True),
    dict(H=224, W=224, N=3, M=64, K=7, stride=2, padding=3, groups=1, bias=False),
    dict(H=28, W=28, N=32, M=32, K=3, stride=1, padding=1, groups=32, bias=False),
    dict(H=28, W=28, N=64, M=128, K=3, stride=2, padding=1, groups=4, bias=True),
    dict(H=14, W=14, N=96, M=96, K=5, stride=1, padding=2, groups=96, bias=True),
    dict(H=7, W=9, N=16, M=8, K=3, stride=2, padding=1, groups=2, bias=False),
    dict(H=32, W=32, N=48, M=24, K=1, stride=1, padding=0, groups=3, bias=True),
)

register(
    Exercise(
        id="1.2",
        title="MACs and parameters of a convolution",
        points=3,
        answer="conv_cost",
        kind=FUNCTION,
        cases=_CONV_COST_CASES,
        hidden_cases=(
            dict(H=17, W=23, N=24, M=36, K=3, stride=2, padding=1, groups=6, bias=True),
            dict(H=10, W=10, N=12, M=12, K=5, stride=1, padding=2, groups=12, bias=False),
            dict(H=64, W=32, N=8, M=16, K=1, stride=2, padding=0, groups=1, bias=True),
        ),
        draw=draw_from(H=[7, 9, 14, 15, 28, 33, 56], W=[7, 10, 14, 28, 31, 56], N=[8, 12, 16, 24, 48],
                       M=[8, 16, 24, 32, 48], K=[1, 3, 5], stride=[1, 2], padding=[0, 1, 2], groups=[1, 2, 4, 8],
                       bias=[True, False], where=lambda c: c["N"] % c["groups"] == 0 and c["M"] % c["groups"] == 0),
        reference=_ref_conv_cost,
        output_names=("macs", "params"),
        hints=(
            "did you divide by the groups?",
            "a bias adds M parameters and no MACs.",
        ),
        diagnose=_diagnose_conv_cost,
    )
)


# --- 1.3 Im2colConv2d: a convolution as one matrix multiply ------------------------------------


def im2col_reference(N: int, M: int, K: int, stride: int, padding: int, bias: bool):
    """The block the learner rebuilds in exercise 1.3: ``nn.Conv2d(N, M, K, stride, padding,
    bias=bias)`` (parameters ``weight``: (M, N, K, K) and ``bias``: (M,)). Shapes:
    (B, N, H, W) -> (B, M, H', W') with H' = (H + 2*padding - K) // stride + 1."""
    from torch import nn

    return nn.Conv2d(N, M, K, stride=stride, padding=padding, bias=bias)


def _output_hw(case: Dict[str, Any]):
    _, _, H, W = case["input"]
    K, stride, padding = case["K"], case["stride"], case["padding"]
    return (H + 2 * padding - K) // stride + 1, (W + 2 * padding - K) // stride + 1


def _draw_im2col(rng) -> Dict[str, Any]:
    """A random case for exercise 1.3 (odd sizes, H != W, strides 1-3)."""
    N, M, K = rng.choice([1, 2, 3, 5]), rng.choice([2, 3, 4, 7]), rng.choice([1, 2, 3, 5])
    stride, padding = rng.choice([1, 2, 3]), rng.choice([0, 1, 2])
    H, W = rng.randint(max(K, 3), 14), rng.randint(max(K, 3), 14)
    return dict(N=N, M=M, K=K, stride=stride, padding=padding, bias=rng.random() < 0.5,
                input=(rng.choice([1, 2]), N, H, W))


def _diagnose_im2col(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    if not isinstance(got, dict) or not isinstance(got.get("shape"), list):
        return "forward() must return one tensor of shape (B, M, H', W')."
    if got["shape"] != expected["shape"]:
        Ho, Wo = _output_hw(case)
        return (f"the output should be (B, M, H', W') = {tuple(expected['shape'])}: H' = (H + 2*padding - K) // "
                f"stride + 1 = {Ho} and W' = {Wo} (exercise 1.1's formula; H and W can differ, so compute both). "
                "F.unfold(x, K, padding=padding, stride=stride) gives (B, N*K*K, H'*W').")
    if got.get("params") != expected.get("params"):
        return "keep exactly two parameters, `weight` (M, N, K, K) and `bias` (M,) (or None when bias=False)."
    values, want = got.get("values") or [], expected["values"]
    if len(values) == len(want) and sorted(round(v, 4) for v in values) == sorted(round(v, 4) for v in want):
        return ("the right numbers in the wrong places: a reshape/transpose scrambles the layout. The matmul "
                "weight.view(M, -1) @ cols gives (B, M, H'*W'): reshape it to (B, M, H', W') directly "
                "(no transpose), with the rows of H' first.")
    if case["bias"] and len(values) == len(want):
        return "did you add the bias? It is one number per output channel: bias.view(1, M, 1)."
    return ("flatten the weight in unfold's order: weight.view(M, N*K*K) matches the N*K*K rows of "
            "F.unfold (channel, then kernel row, then kernel column).")


register(
    Exercise(
        id="1.3",
        title="A convolution as im2col + one matrix multiply",
        points=3,
        answer="Im2colConv2d",
        kind=MODULE,
        cases=(
            dict(N=3, M=4, K=3, stride=1, padding=1, bias=True, input=(2, 3, 8, 8)),
            dict(N=4, M=6, K=3, stride=2, padding=1, bias=False, input=(1, 4, 9, 9)),
            dict(N=2, M=5, K=5, stride=1, padding=0, bias=True, input=(1, 2, 11, 7)),
            dict(N=6, M=3, K=1, stride=2, padding=0, bias=True, input=(2, 6, 7, 10)),
            dict(N=3, M=8, K=7, stride=2, padding=3, bias=False, input=(1, 3, 15, 13)),
        ),
        hidden_cases=(
            dict(N=5, M=7, K=3, stride=3, padding=2, bias=True, input=(1, 5, 13, 17)),
            dict(N=8, M=2, K=5, stride=2, padding=1, bias=True, input=(3, 8, 10, 9)),
            dict(N=1, M=4, K=2, stride=1, padding=0, bias=False, input=(1, 1, 6, 5)),
        ),
        draw=_draw_im2col,
        reference=im2col_reference,
        diagnose=_diagnose_im2col,
        hints=(
            "cols = F.unfold(x, K, padding=padding, stride=stride) is (B, N*K*K, H'*W'); "
            "weight.view(M, -1) @ cols is (B, M, H'*W'); add the bias, reshape to (B, M, H', W').",
            "name the parameters `weight` (M, N, K, K) and `bias` (M,), as nn.Conv2d does: they are copied by name.",
        ),
    )
)


def _article(word: str) -> str:
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


# --- 1.4 heaviest_conv ------------------------------------------------------------------------


@lru_cache(maxsize=None)
def resnet18_conv_macs() -> Dict[str, int]:
    """MACs of every ``Conv2d`` in torchvision's ``resnet18`` at 1x3x224x224, by module name.

    Counted once per process with ``course.cost.count`` (imports torch and torchvision).
    """
    import torch
    import torchvision

    from course.cost import count

    model = torchvision.models.resnet18(weights=None).eval()
    rows = count(model, torch.zeros(1, 3, 224, 224)).rows()
    return {row["module"]: row["macs"] for row in rows if row["type"] == "Conv2d"}


def _ref_heaviest_conv() -> str:
    table = resnet18_conv_macs()
    return max(table, key=table.get)


def _compare_heaviest(expected: Any, got: Any) -> Optional[str]:
    if not isinstance(got, str):
        return f"that is {_article(type(got).__name__)}, not a str (a module name such as 'layer1.0.conv1')"
    table = resnet18_conv_macs()
    # Any conv tied with the heaviest one is right.
    return None if table.get(got) == table[expected] else WRONG_VALUE


def _diagnose_heaviest(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    if not isinstance(got, str):
        return None
    table = resnet18_conv_macs()
    if got not in table:
        if got.strip() in table:
            return "remove the spaces around the name."
        return (
            f"resnet18 has no Conv2d named {got!r}: names look like 'layer1.0.conv1' "
            "(see model.named_modules() or the rows of course.cost.count)."
        )
    return (
        f"{got!r} does {table[got]:,} MACs, but another conv does more. Use course.cost.count(...) "
        "and look at the per-layer rows; the answer may surprise you."
    )


register(
    Exercise(
        id="1.4",
        title="The heaviest convolution in ResNet-18",
        points=2,
        answer="heaviest_conv",
        kind=VALUE,
        reference=_ref_heaviest_conv,
        compare=_compare_heaviest,
        reveal_expected=False,
        hints=(
            "use course.cost.count(...) and look at the per-layer rows; the answer may surprise you.",
        ),
        diagnose=_diagnose_heaviest,
    )
)
