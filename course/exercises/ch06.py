"""Chapter 6 exercises: build the MetaFormer block, what the pooling mixer costs, and mixers compared.

Expected values come from :mod:`course.cost` (the formulas and the counter on the real
modules) and :mod:`course.cost.metaformer`, imported on first use; none is written down here.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from course.exercises.core import FUNCTION, MODULE, VALUE, WRONG_VALUE, Exercise, register

# --- 6.1 a MetaFormer block with a pluggable mixer (a module) -----------------------------------


def _mixer_for(name: str, dim: int, heads: int, learner: bool):
    """The token mixer of a case: the course's, or what the learner's block is given (``None`` for
    ``"pool"``: the learner's block builds its own pooling mixer)."""
    from course.blocks.metaformer import make_mixer

    if learner and name == "pool":
        return None
    return make_mixer(name, dim, heads)


def run_metaformer_case(exercise: Exercise, answer, case: Dict[str, Any]) -> Dict[str, Any]:
    """Build the course's :class:`~course.blocks.metaformer.MetaFormerBlock` (no layer scale, so
    that the mixer's branch counts; GroupNorms with seeded affine parameters, so that a forgotten
    or misplaced norm shows) with the case's mixer, and ``answer(dim, mixer)`` (``mixer=None`` for
    the pooling case: the learner's block builds PoolFormer's mixer); copy the weights by name and
    run both in ``eval()`` on a seeded ``(B, C, h, w)`` input. Returns
    :func:`course.exercises.runners.output_summary` plus ``params``. ``answer=None``: the course's
    block alone (the expected side)."""
    import torch
    from torch import nn

    from course.blocks.metaformer import MetaFormerBlock
    from course.exercises.runners import case_seed, copy_weights, output_summary

    seed = case_seed(exercise.id, case)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        reference = MetaFormerBlock(case["dim"], _mixer_for(case["mixer"], case["dim"], case["heads"], False),
                                    layer_scale=None)
        for norm in (reference.norm1, reference.norm2):
            nn.init.normal_(norm.weight, 1.0, 0.2)
            nn.init.normal_(norm.bias, 0.0, 0.2)
        module = reference
        if answer is not None:
            module = answer(case["dim"], _mixer_for(case["mixer"], case["dim"], case["heads"], True))
    if not isinstance(module, nn.Module):
        raise TypeError(f"{exercise.answer}(...) made {type(module).__name__}, not an nn.Module")
    if module is not reference:
        copy_weights(reference, module, dict(exercise.weights))
    x = torch.randn(*case["input"], generator=torch.Generator().manual_seed(seed + 1))
    module.eval()
    with torch.no_grad():
        summary = output_summary(module(x))
    summary["params"] = sum(p.numel() for p in module.parameters())
    return summary


def _ref_metaformer_block(dim: int, mixer: str, heads: int, input) -> Dict[str, Any]:
    from course.exercises.core import get_exercise

    return run_metaformer_case(get_exercise("6.1"), None, dict(dim=dim, mixer=mixer, heads=heads, input=input))


def metaformer_block_variant(kind: str):
    """A wrong MetaFormer block written as a learner might (for the messages and the tests):
    ``"no_mixer_residual"``, ``"no_mlp_residual"``, ``"pool_no_subtract"`` (the pooling mixer
    returns ``pool(x)``), ``"mixer_before_norm"`` (``x + norm(mixer(x))``)."""
    from torch import nn

    from course.blocks.metaformer import ConvMlp

    class WrongPool(nn.Module):
        def __init__(self):
            super().__init__()
            self.pool = nn.AvgPool2d(3, 1, 1, count_include_pad=False)

        def forward(self, x):
            return self.pool(x) if kind == "pool_no_subtract" else self.pool(x) - x

    class WrongBlock(nn.Module):
        def __init__(self, dim, mixer=None, mlp_ratio=4.0):
            super().__init__()
            self.norm1 = nn.GroupNorm(1, dim)
            self.token_mixer = mixer if mixer is not None else WrongPool()
            self.norm2 = nn.GroupNorm(1, dim)
            self.mlp = ConvMlp(dim, int(dim * mlp_ratio))

        def forward(self, x):
            if kind == "mixer_before_norm":
                x = x + self.norm1(self.token_mixer(x))
            elif kind == "no_mixer_residual":
                x = self.token_mixer(self.norm1(x))
            else:
                x = x + self.token_mixer(self.norm1(x))
            y = self.mlp(self.norm2(x))
            return y if kind == "no_mlp_residual" else x + y

    return WrongBlock


def _diagnose_metaformer_block(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    from course.exercises.core import get_exercise
    from course.exercises.judge import compare_module_output

    if not isinstance(got, dict) or "shape" not in got or got["shape"] != expected["shape"]:
        return "the block keeps the map's shape: (B, C, h, w) in, (B, C, h, w) out."
    if got.get("params") != expected.get("params"):
        return ("norm1 and norm2 are GroupNorm(1, dim); mlp is 1x1 conv dim -> 4·dim, GELU, 1x1 conv back "
                "(course.blocks.metaformer.ConvMlp); no layer scale; the mixer's parameters are its own.")
    messages = {
        "no_mixer_residual": "the token mixer's branch is residual: x = x + token_mixer(norm1(x)).",
        "no_mlp_residual": "the MLP's branch is residual: return x + mlp(norm2(x)).",
        "pool_no_subtract": ("PoolFormer's mixer returns pool(x) - x, not pool(x): the block's residual adds x back, so "
                             "the block adds only the neighbourhood average minus the token itself."),
        "mixer_before_norm": "pre-norm: normalise first, then mix: x + token_mixer(norm1(x)).",
    }
    for kind, message in messages.items():
        if kind == "pool_no_subtract" and case["mixer"] != "pool":
            continue
        try:
            wrong = run_metaformer_case(get_exercise("6.1"), metaformer_block_variant(kind), case)
        except Exception:
            continue
        if compare_module_output(wrong, got) is None:
            return message
    if case["mixer"] == "pool":
        return "the pooling mixer: AvgPool2d(3, stride=1, padding=1, count_include_pad=False)(x) - x."
    return None


register(
    Exercise(
        id="6.1",
        title="A MetaFormer block with a pluggable token mixer (a module)",
        points=3,
        answer="MetaFormerBlockAnswer",
        kind=MODULE,
        cases=(
            dict(dim=8, mixer="pool", heads=1, input=(2, 8, 6, 6)),
            dict(dim=8, mixer="identity", heads=1, input=(1, 8, 5, 7)),
            dict(dim=16, mixer="attention", heads=2, input=(1, 16, 4, 5)),
            dict(dim=12, mixer="pool", heads=1, input=(1, 12, 7, 3)),
        ),
        hidden_cases=(
            dict(dim=16, mixer="pool", heads=1, input=(1, 16, 9, 5)),
            dict(dim=24, mixer="attention", heads=3, input=(2, 24, 3, 3)),
            dict(dim=8, mixer="dwconv", heads=1, input=(1, 8, 8, 8)),
            dict(dim=12, mixer="shift", heads=1, input=(1, 12, 6, 4)),
        ),
        reference=_ref_metaformer_block,
        runner=run_metaformer_case,
        rel_tol=1e-5,
        abs_tol=1e-5,
        diagnose=_diagnose_metaformer_block,
        hints=("x = x + token_mixer(norm1(x)); return x + mlp(norm2(x)); with mixer=None, token_mixer is "
               "PoolFormer's pool(x) - x. Name the layers norm1, token_mixer, norm2, mlp (fc1, act, fc2).",),
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
