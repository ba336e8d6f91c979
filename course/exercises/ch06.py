"""Chapter 6 exercises: the MetaFormer block, the pooling mixer, and mixers compared.

Expected values come from :mod:`course.cost` (the formulas and the counter on the real
modules) and :mod:`course.cost.metaformer`, imported on first use; none is written down here.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from course.exercises.core import FUNCTION, VALUE, WRONG_VALUE, Exercise, register

# --- 6.1 metaformer_block_macs ------------------------------------------------------------------


def _ref_block(mixer: str, h: int, w: int, C: int) -> int:
    from course.cost import attention

    return attention.mixer(mixer, h, w, C, heads=1, kernel=7).macs + 2 * h * w * C * 4 * C


def _diagnose_block(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    if not isinstance(got, int):
        return "return an int (MACs)."
    h, w, C, T = case["h"], case["w"], case["C"], case["h"] * case["w"]
    mlp = 8 * T * C * C
    if got == expected - mlp:
        return "the block is mixer + MLP: add the MLP's two 1x1 convs, C -> 4C -> C: 8·h·w·C² MACs."
    if got == mlp and expected != mlp:
        return f"the {case['mixer']!r} mixer is not free: add its MACs."
    if case["mixer"] == "dwconv":
        return "a 7x7 depthwise conv costs 49 MACs per output element: 49·h·w·C."
    if case["mixer"] == "spatial_mlp":
        return "a linear layer across the T = h·w tokens, for each of the C channels: T²·C MACs."
    if case["mixer"] == "attention":
        return "attention on T = h·w tokens: 4·T·C² + 2·T²·C."
    return "pooling, shift and identity do no multiply-accumulates."


register(
    Exercise(
        id="6.1",
        title="MACs of a MetaFormer block",
        points=3,
        answer="metaformer_block_macs",
        kind=FUNCTION,
        cases=(
            dict(mixer="pool", h=56, w=56, C=64),
            dict(mixer="identity", h=14, w=14, C=320),
            dict(mixer="shift", h=28, w=28, C=128),
            dict(mixer="dwconv", h=56, w=56, C=64),
            dict(mixer="spatial_mlp", h=14, w=14, C=320),
            dict(mixer="attention", h=7, w=7, C=512),
            dict(mixer="attention", h=56, w=56, C=64),
        ),
        hidden_cases=(
            dict(mixer="pool", h=14, w=14, C=320),
            dict(mixer="dwconv", h=7, w=9, C=96),
            dict(mixer="spatial_mlp", h=7, w=7, C=64),
            dict(mixer="shift", h=5, w=11, C=24),
        ),
        reference=_ref_block,
        hints=("MACs = mixer + MLP, with MLP = 8·h·w·C² (C -> 4C -> C).",),
        diagnose=_diagnose_block,
    )
)


# --- 6.2 pooling_mixer_ops ----------------------------------------------------------------------


def _ref_pool_ops(h: int, w: int, C: int, pool_size: int) -> int:
    import torch

    from course.blocks.metaformer import PoolingMixer
    from course.cost import count

    x = torch.zeros(1, C, h, w)
    return count(PoolingMixer(pool_size), x).total.elementwise


def _diagnose_pool_ops(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    if not isinstance(got, int):
        return "return an int (element-wise operations)."
    n, K = case["h"] * case["w"] * case["C"], case["pool_size"]
    if got == K * K * n:
        return "don't forget the subtraction `pool(x) - x`: one more operation per element."
    if got == (K * K - 1) * n + n or got == K * K * n - n:
        return "the counter charges K² reads per output element for the pooling (the borders included), and 1 per element for the subtraction."
    return "pooling: K² per output element; subtraction: 1 per element; MACs: none."


register(
    Exercise(
        id="6.2",
        title="What the pooling mixer costs",
        points=2,
        answer="pooling_mixer_ops",
        kind=FUNCTION,
        cases=(
            dict(h=56, w=56, C=64, pool_size=3),
            dict(h=7, w=7, C=512, pool_size=3),
            dict(h=14, w=14, C=320, pool_size=5),
            dict(h=1, w=1, C=8, pool_size=3),
            dict(h=10, w=6, C=3, pool_size=7),
        ),
        hidden_cases=(
            dict(h=28, w=28, C=128, pool_size=3),
            dict(h=9, w=5, C=16, pool_size=5),
            dict(h=3, w=3, C=4, pool_size=3),
        ),
        reference=_ref_pool_ops,
        hints=("pooling: K² per output element; subtraction: 1 per element; MACs: none.",),
        diagnose=_diagnose_pool_ops,
    )
)


# --- 6.3 most_params_mixer ----------------------------------------------------------------------


def _ref_most_params() -> str:
    from course.cost.metaformer import most_params_mixer

    return most_params_mixer()


def _compare_mixer(expected: Any, got: Any) -> Optional[str]:
    from course.mixers import MIXER_NAMES

    if not isinstance(got, str):
        return f"that is a {type(got).__name__}, not a str (one of {list(MIXER_NAMES)})"
    if got not in MIXER_NAMES:
        return f"{got!r} is not a mixer name: use one of {list(MIXER_NAMES)}"
    return None if got == expected else WRONG_VALUE


register(
    Exercise(
        id="6.3",
        title="The mixer with the most parameters",
        points=2,
        answer="most_params_mixer",
        kind=VALUE,
        reference=_ref_most_params,
        compare=_compare_mixer,
        reveal_expected=False,
        hints=("build each variant with course.models.metaformer.metaformer(name) and count its parameters; "
               "which mixer's weights grow with the number of tokens?",),
    )
)
