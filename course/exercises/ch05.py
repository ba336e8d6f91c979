"""Chapter 5 exercises: the shifted-window mask, spatial-reduction attention, and what the attentions cost.

Expected values come from :mod:`course.cost.attention` and :mod:`course.blocks.attention`
(imported on first use); none is written down here.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from course.exercises.core import FUNCTION, MODULE, Exercise, draw_from, register


def _formulas():
    from course.cost import attention

    return attention


# --- 5.1 window_attention_mask ------------------------------------------------------------------


def _mask_from_labels(labels, window: int):
    """``(h, w)`` region labels -> ``(nW, M², M²)`` bools (True: the two tokens' labels differ)."""
    from course.blocks.attention import window_partition

    win = window_partition(labels.view(1, *labels.shape, 1), window).flatten(1)  # (nW, M²)
    return win[:, :, None] != win[:, None, :]


def _ref_mask(h: int, w: int, window: int, shift: int) -> list:
    """The course's Swin mask (:func:`course.blocks.attention.shifted_window_mask`), True where masked."""
    from course.blocks.attention import shifted_window_mask

    if shift == 0:
        import torch

        return torch.zeros((h // window) * (w // window), window * window, window * window, dtype=torch.bool).tolist()
    return (shifted_window_mask(h, w, (window, window), (shift, shift)) != 0).tolist()


def _mask_variants(h: int, w: int, window: int, shift: int) -> Dict[str, list]:
    """Typical wrong masks, for the messages: the shift's sign flipped, the regions labelled on
    the image without the cyclic roll, the windows numbered column by column."""
    import torch

    M, s = window, shift
    bands = lambda n, cuts: torch.bucketize(torch.arange(n), torch.tensor(cuts), right=True)  # noqa: E731
    # Regions of the original image: the first s rows/columns wrap to the far side after the roll.
    ry, rx = bands(h, [s, h - M + s]), bands(w, [s, w - M + s])
    original = ry[:, None] * 3 + rx[None, :]
    rolled = torch.roll(original, shifts=(-s, -s), dims=(0, 1))
    variants = {
        "sign": _mask_from_labels(torch.roll(original, shifts=(s, s), dims=(0, 1)), M),
        "no_roll": _mask_from_labels(original, M),
    }
    right = _mask_from_labels(rolled, M)
    nh, nw = h // M, w // M
    variants["column_major"] = right.view(nh, nw, M * M, M * M).transpose(0, 1).reshape(-1, M * M, M * M)
    variants["next_window"] = torch.roll(right, 1, dims=0)
    variants["previous_window"] = torch.roll(right, -1, dims=0)
    variants["inverted"] = ~right
    return {name: mask.tolist() for name, mask in variants.items()}


def _as_bool_mask(got: Any):
    """The learner's mask as nested lists of bools (True: masked), or None when it is not one.
    Accepts bools (True = masked) and additive masks (0 = allowed, anything else = masked)."""
    if not isinstance(got, list) or not got or not all(isinstance(row, list) for row in got):
        return None
    try:
        return [[[bool(v) for v in row] for row in window] for window in got]
    except TypeError:
        return None


def _shape(mask: list) -> tuple:
    return (len(mask), len(mask[0]) if mask else 0, len(mask[0][0]) if mask and mask[0] else 0)


def _compare_mask(expected: Any, got: Any) -> Optional[str]:
    if isinstance(got, dict) and "__unsupported__" in got:
        return f"got a {got['__unsupported__']}: return a torch tensor (or nested lists) of shape (num_windows, M², M²)"
    mask = _as_bool_mask(got)
    if mask is None:
        return "expected a (num_windows, M², M²) tensor: True (or a negative number) where attention is blocked"
    if _shape(mask) != _shape(expected):
        return f"the mask has shape {_shape(mask)}; the course's has {_shape(expected)} (num_windows, M², M²)"
    if mask == expected:
        return None
    wrong = sum(a != b for ew, gw in zip(expected, mask) for er, gr in zip(ew, gw) for a, b in zip(er, gr))
    return f"{wrong} of the {len(mask) * len(mask[0]) ** 2} entries are wrong"


def _diagnose_mask(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    mask = _as_bool_mask(got)
    if mask is None or _shape(mask) != _shape(expected):
        h, w, M = case["h"], case["w"], case["window"]
        return (f"one mask per window: ({h // M} x {w // M} windows, {M}² tokens each, {M}² keys): "
                "cut the map of region labels into windows with window_partition and compare labels pairwise.")
    if case["shift"] == 0:
        return "without a shift every window holds one region: nothing is masked."
    if not any(v for w_ in mask for row in w_ for v in row):
        return "nothing is masked: after the roll the windows on the bottom row and right column hold pixels from opposite sides."
    variants = _mask_variants(case["h"], case["w"], case["window"], case["shift"])
    messages = {
        "inverted": "your mask is inverted: True (or -100) marks the pairs that must NOT attend (different regions).",
        "sign": "the shift has the wrong sign: Swin rolls the map by -shift (torch.roll(x, -shift)), so the pixels of the "
                "first `shift` rows and columns land at the bottom and right.",
        "no_roll": "you labelled the regions of the image but cut the windows without the cyclic roll: roll the labels by "
                   "-shift (or label the rolled map: bands [0, h-M), [h-M, h-shift), [h-shift, h)) before window_partition.",
        "column_major": "the masks are right but in the wrong order: window_partition numbers windows row by row, "
                        "not column by column.",
        "next_window": "your masks are off by one window: mask i must belong to window i of window_partition "
                       "(row by row from the top-left, after the roll).",
        "previous_window": "your masks are off by one window: mask i must belong to window i of window_partition "
                           "(row by row from the top-left, after the roll).",
    }
    for name, message in messages.items():
        if mask == variants[name]:
            return message
    return "label the rolled map's 3 x 3 regions (bands [0, h-M), [h-M, h-shift), [h-shift, h) on each axis), cut the " \
           "labels into windows, and mask every pair of tokens whose labels differ."


register(
    Exercise(
        id="5.1",
        title="The shifted-window attention mask",
        points=3,
        answer="window_attention_mask",
        kind=FUNCTION,
        cases=(
            dict(h=8, w=8, window=4, shift=2),
            dict(h=8, w=8, window=4, shift=0),
            dict(h=8, w=12, window=4, shift=2),
            dict(h=14, w=14, window=7, shift=3),
            dict(h=12, w=12, window=4, shift=1),
            dict(h=6, w=9, window=3, shift=1),
        ),
        hidden_cases=(
            dict(h=12, w=8, window=4, shift=2),
            dict(h=21, w=14, window=7, shift=3),
            dict(h=10, w=15, window=5, shift=2),
            dict(h=12, w=18, window=6, shift=3),
        ),
        draw=draw_from(h=[8, 12, 16, 24], w=[8, 12, 16, 24], window=[4], shift=[1, 2, 3]),
        reference=_ref_mask,
        compare=_compare_mask,
        reveal_expected=False,
        hints=("label the rolled map's 3 x 3 regions (bands [0, h-M), [h-M, h-shift), [h-shift, h) per axis), cut the "
               "labels into windows with window_partition, and mask (True) every pair whose labels differ.",),
        diagnose=_diagnose_mask,
    )
)


# --- 5.2 SpatialReductionAttention's forward (a module) ------------------------------------------


def _ref_sra_module(dim: int, heads: int, sr_ratio: int):
    """The course's SRA on a ``(B, C, h, w)`` map (:class:`course.blocks.metaformer.SpatialReductionMixer`)."""
    from course.blocks.metaformer import SpatialReductionMixer

    return SpatialReductionMixer(dim, heads, sr_ratio)


#: The learner's layers are named as in :class:`course.blocks.attention.SpatialReductionAttention`;
#: the course's mixer holds them under ``attn.``.
_SRA_WEIGHTS = {f"{layer}.{p}": f"attn.{layer}.{p}" for layer in ("q", "kv", "proj", "sr", "norm")
                for p in ("weight", "bias")}


def _sra_variant(kind: str):
    """A wrong SRA written as a learner might (for the messages): ``"one_head"`` (heads not split),
    ``"scale_C"`` (scores scaled by sqrt(C) instead of sqrt(d)), ``"reduce_all"`` (the reduction
    applied to the queries too)."""
    import torch
    from torch import nn

    class WrongSRA(nn.Module):
        def __init__(self, dim, heads, sr_ratio):
            super().__init__()
            self.heads, self.sr_ratio = heads, sr_ratio
            self.q = nn.Linear(dim, dim)
            self.kv = nn.Linear(dim, 2 * dim)
            self.proj = nn.Linear(dim, dim)
            if sr_ratio > 1:
                self.sr = nn.Conv2d(dim, dim, sr_ratio, stride=sr_ratio)
                self.norm = nn.LayerNorm(dim)

        def forward(self, x):
            B, C, h, w = x.shape
            tokens = x.flatten(2).transpose(1, 2)
            reduced = tokens
            if self.sr_ratio > 1:
                reduced = self.norm(self.sr(x).flatten(2).transpose(1, 2))
            queries = reduced if kind == "reduce_all" else tokens
            heads = 1 if kind == "one_head" else self.heads
            q = self.q(queries).reshape(B, -1, heads, C // heads).transpose(1, 2)
            k, v = self.kv(reduced).reshape(B, -1, 2, heads, C // heads).permute(2, 0, 3, 1, 4)
            scale = (C if kind == "scale_C" else C // self.heads) ** -0.5
            out = ((q @ k.transpose(-2, -1)) * scale).softmax(-1) @ v
            out = self.proj(out.transpose(1, 2).reshape(B, -1, C))
            side = (h, w) if kind != "reduce_all" else (h // self.sr_ratio, w // self.sr_ratio)
            return out.transpose(1, 2).reshape(B, C, *side)

    return WrongSRA


def _matches_variant(exercise_id: str, variant, case: Dict[str, Any], got: Any) -> bool:
    """Whether ``got`` is what the module ``variant`` gives on ``case`` (same weights, same input)."""
    from course.exercises.core import get_exercise
    from course.exercises.judge import compare_module_output
    from course.exercises.runners import run_module

    try:
        wrong = run_module(get_exercise(exercise_id), variant, case)
    except Exception:
        return False
    return isinstance(got, dict) and compare_module_output(wrong, got) is None


def _diagnose_sra_module(case: Dict[str, Any], expected: Any, got: Any) -> Optional[str]:
    if not isinstance(got, dict) or "shape" not in got:
        return None
    if got["shape"] != expected["shape"]:
        if len(got["shape"]) == 4 and got["shape"][2:] != expected["shape"][2:]:
            return ("the reduction is for the keys and values only: the queries keep all h·w tokens, so the "
                    "output has the input's size.")
        return "return a (B, C, h, w) map: the tokens (B, h·w, C) transposed and reshaped back."
    if got.get("params") != expected.get("params"):
        return "build the layers exactly as given (q, kv, proj; sr and norm only when sr_ratio > 1)."
    if case["sr_ratio"] > 1 and _matches_variant("5.2", _sra_variant("reduce_all"), case, got):
        return "the reduction is for the keys and values only: the queries keep all h·w tokens."
    if case["heads"] > 1 and _matches_variant("5.2", _sra_variant("one_head"), case, got):
        return ("you attend with one head of width C: split q, k and v into `heads` heads of d = C // heads "
                "channels, attend per head, and put the heads side by side again before proj.")
    if case["heads"] > 1 and _matches_variant("5.2", _sra_variant("scale_C"), case, got):
        return "scale the scores by 1/sqrt(d) with d = C // heads, the width of one head, not 1/sqrt(C)."
    if case["sr_ratio"] > 1:
        return ("keys and values come from the reduced map: x (B, C, h, w) -> sr (kernel and stride R) -> flatten "
                "to (B, h'·w', C) -> norm -> kv.")
    return None


register(
    Exercise(
        id="5.2",
        title="Spatial-reduction attention's forward (a module)",
        points=3,
        answer="SpatialReductionAttentionAnswer",
        kind=MODULE,
        cases=(
            dict(dim=16, heads=2, sr_ratio=2, input=(2, 16, 8, 8)),
            dict(dim=16, heads=1, sr_ratio=1, input=(1, 16, 5, 7)),
            dict(dim=16, heads=2, sr_ratio=1, input=(1, 16, 6, 6)),
            dict(dim=24, heads=3, sr_ratio=4, input=(1, 24, 9, 11)),
            dict(dim=8, heads=1, sr_ratio=3, input=(2, 8, 7, 7)),
        ),
        hidden_cases=(
            dict(dim=32, heads=4, sr_ratio=2, input=(1, 32, 7, 9)),
            dict(dim=12, heads=3, sr_ratio=1, input=(2, 12, 3, 5)),
            dict(dim=16, heads=4, sr_ratio=5, input=(1, 16, 11, 10)),
        ),
        reference=_ref_sra_module,
        weights=_SRA_WEIGHTS,
        rel_tol=1e-5,
        abs_tol=1e-5,
        diagnose=_diagnose_sra_module,
        hints=("q from all h·w tokens; k, v from the tokens of the map reduced by `sr` (kernel = stride = R) and `norm` "
               "(R = 1: from all tokens); heads of d = C // heads channels; softmax(q kᵀ / sqrt(d)) v; proj.",),
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
