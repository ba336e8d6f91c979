"""Chapter 5 exercises: windows, and what global, window and spatial-reduction attention cost.

Expected values come from :mod:`course.cost.attention` and :mod:`course.blocks.attention`
(imported on first use); none is written down here.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from course.exercises.core import FUNCTION, Exercise, draw_from, register


def _formulas():
    from course.cost import attention

    return attention


# --- 5.1 shifted_window_index -------------------------------------------------------------------


def _ref_window_index(y: int, x: int, h: int, w: int, window: int, shift: int) -> int:
    """Run the real partition on a map of token ids and find where token (y, x) landed."""
    import torch

    from course.blocks.attention import window_partition

    ids = torch.arange(h * w).view(1, h, w, 1)
    if shift:
        ids = torch.roll(ids, shifts=(-shift, -shift), dims=(1, 2))
    windows = window_partition(ids, window).flatten(1)  # (nW, M²)
    return int((windows == y * w + x).any(dim=1).nonzero()[0, 0])


def _diagnose_window_index(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    if not isinstance(got, int):
        return "return an int: the index of the window, counted row by row from the top-left."
    y, x, h, w, M, s = (case[k] for k in ("y", "x", "h", "w", "window", "shift"))
    if s and got == (y // M) * (w // M) + x // M:
        return "that is the window before the shift: after torch.roll(x, -shift), token (y, x) sits at ((y - shift) % h, (x - shift) % w)."
    if got == (x // M) * (h // M) + y // M:
        return "windows are numbered row by row: index = row_of_window * (w // M) + column_of_window."
    return "find where the token sits after the roll, then which M x M window holds that position."


register(
    Exercise(
        id="5.1",
        title="Which window holds a token (after the cyclic shift)",
        points=2,
        answer="shifted_window_index",
        kind=FUNCTION,
        cases=(
            dict(y=0, x=0, h=8, w=8, window=4, shift=0),
            dict(y=5, x=6, h=8, w=8, window=4, shift=0),
            dict(y=5, x=6, h=8, w=8, window=4, shift=2),
            dict(y=0, x=0, h=8, w=8, window=4, shift=2),
            dict(y=1, x=7, h=8, w=12, window=4, shift=2),
            dict(y=13, x=2, h=14, w=21, window=7, shift=3),
            dict(y=2, x=20, h=14, w=21, window=7, shift=3),
            dict(y=10, x=10, h=14, w=14, window=7, shift=0),
        ),
        hidden_cases=(
            dict(y=3, x=9, h=12, w=12, window=6, shift=3),
            dict(y=11, x=0, h=12, w=16, window=4, shift=1),
            dict(y=7, x=7, h=8, w=8, window=8, shift=0),
            dict(y=20, x=5, h=21, w=14, window=7, shift=3),
        ),
        reference=_ref_window_index,
        hints=("after torch.roll(x, -shift), token (y, x) sits at ((y - shift) % h, (x - shift) % w).",),
        diagnose=_diagnose_window_index,
    )
)


# --- 5.2 global_attention_macs ------------------------------------------------------------------


def _ref_global(h: int, w: int, C: int) -> int:
    return _formulas().global_attention(h, w, C).macs


def _diagnose_global(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    if not isinstance(got, int):
        return "return an int (MACs)."
    T, C = case["h"] * case["w"], case["C"]
    if got == 2 * T * T * C:
        return "that is only Q Kᵀ and A V: add the four projections (Q, K, V and output), 4·T·C²."
    if got == 4 * T * C * C:
        return "that is only the projections: add Q Kᵀ and A V, T²·C each."
    if got == 2 * expected:
        return "count MACs, not FLOPs."
    if got == 4 * T * C * C + T * T * C:
        return "A V costs as much as Q Kᵀ: T²·C each."
    return "tokens T = h·w; MACs = 4·T·C² + 2·T²·C."


register(
    Exercise(
        id="5.2",
        title="MACs of global self-attention",
        points=2,
        answer="global_attention_macs",
        kind=FUNCTION,
        cases=(
            dict(h=14, w=14, C=384),
            dict(h=56, w=56, C=64),
            dict(h=7, w=7, C=768),
            dict(h=80, w=80, C=768),
            dict(h=12, w=20, C=96),
            dict(h=1, w=1, C=8),
        ),
        hidden_cases=(
            dict(h=9, w=17, C=48),
            dict(h=28, w=28, C=192),
            dict(h=2, w=3, C=4),
        ),
        draw=draw_from(h=[1, 7, 14, 28, 56], w=[1, 7, 14, 28, 56], C=[8, 64, 96, 384, 768]),
        reference=_ref_global,
        hints=("tokens T = h·w; MACs = 4·T·C² (projections) + 2·T²·C (Q Kᵀ and A V).",),
        diagnose=_diagnose_global,
    )
)


# --- 5.3 window_attention_macs ------------------------------------------------------------------


def _ref_window(h: int, w: int, C: int, window: int) -> int:
    return _formulas().window_attention(h, w, C, 1, window).macs


def _diagnose_window(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    if not isinstance(got, int):
        return "return an int (MACs)."
    h, w, C, M = case["h"], case["w"], case["C"], case["window"]
    if got == 4 * h * w * C * C + 2 * M * M * h * w * C:
        return ("the map is padded to a multiple of the window first: use H_p = ceil(h / M) · M "
                "(and the same for w); the padded tokens are computed too.")
    if h < M or w < M:
        return "on an axis where the map is smaller than the window, the window shrinks to the map."
    return "MACs = 4·H_p·W_p·C² + 2·M²·H_p·W_p·C on the padded map H_p x W_p."


register(
    Exercise(
        id="5.3",
        title="MACs of window attention, with padding",
        points=3,
        answer="window_attention_macs",
        kind=FUNCTION,
        cases=(
            dict(h=56, w=56, C=96, window=7),
            dict(h=14, w=14, C=384, window=7),
            dict(h=60, w=60, C=64, window=7),
            dict(h=25, w=33, C=96, window=7),
            dict(h=32, w=32, C=128, window=12),
            dict(h=5, w=9, C=32, window=7),
        ),
        hidden_cases=(
            dict(h=15, w=15, C=48, window=5),
            dict(h=57, w=50, C=96, window=7),
            dict(h=8, w=8, C=32, window=8),
            dict(h=3, w=4, C=16, window=7),
        ),
        draw=draw_from(h=[7, 14, 25, 28, 56], w=[7, 14, 28, 33, 56], C=[32, 96, 192], window=[4, 7, 12]),
        reference=_ref_window,
        hints=(
            "pad the map to a multiple of the window (H_p = ceil(h / M) · M); MACs = 4·H_p·W_p·C² + 2·M²·H_p·W_p·C.",
            "on an axis where the map is smaller than the window, the window shrinks to the map.",
        ),
        diagnose=_diagnose_window,
    )
)


# --- 5.4 sra_macs -------------------------------------------------------------------------------


def _ref_sra(h: int, w: int, C: int, R: int) -> int:
    return _formulas().spatial_reduction_attention(h, w, C, 1, R).macs


def _diagnose_sra(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    if not isinstance(got, int):
        return "return an int (MACs)."
    h, w, C, R = case["h"], case["w"], case["C"], case["R"]
    T, r = h * w, (h // R) * (w // R)
    if R > 1 and got == expected - r * R * R * C * C:
        return "you left out the reduction conv: kernel R x R, stride R, C -> C, on h'·w' outputs: h'·w'·R²·C² MACs."
    if got == 4 * T * C * C + 2 * T * r * C:
        return "K and V are computed from the h'·w' reduced tokens, not from all T: 2·h'·w'·C²."
    return "Q and output: 2·T·C²; conv: h'w'·R²·C² (R > 1); K, V: 2·h'w'·C²; attention: 2·T·h'w'·C, with h' = h // R."


register(
    Exercise(
        id="5.4",
        title="MACs of spatial-reduction attention",
        points=2,
        answer="sra_macs",
        kind=FUNCTION,
        cases=(
            dict(h=56, w=56, C=64, R=8),
            dict(h=28, w=28, C=128, R=4),
            dict(h=14, w=14, C=320, R=2),
            dict(h=7, w=7, C=512, R=1),
            dict(h=30, w=31, C=64, R=4),
            dict(h=112, w=112, C=64, R=8),
        ),
        hidden_cases=(
            dict(h=20, w=20, C=96, R=4),
            dict(h=15, w=15, C=64, R=2),
            dict(h=9, w=13, C=32, R=3),
        ),
        draw=draw_from(h=[7, 14, 28, 56], w=[7, 14, 28, 56], C=[32, 64, 128, 320], R=[1, 2, 4, 7]),
        reference=_ref_sra,
        hints=("Q and output: 2·T·C²; conv: h'w'·R²·C² (R > 1); K, V: 2·h'w'·C²; attention: 2·T·h'w'·C, with h' = h // R.",),
        diagnose=_diagnose_sra,
    )
)
