"""Argument checks shared by the blocks (``course.blocks``) and the formulas (``course.cost``).

Each check raises ``ValueError`` with a message that names the parameter, its value and the
rule it breaks, e.g. ``"groups=4 must divide the input channels N=30"``. The module imports
nothing (not even torch), so every layer of the package may use it.

The first functions check one value; the ones after them check a block's whole configuration,
once for the block and its closed-form cost (e.g. :func:`check_shuffle_v1_unit` for
:class:`course.blocks.shuffle.ShuffleV1Unit` and :func:`course.cost.shuffle.shuffle_v1_unit`).
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

__all__ = [
    "check_conv",
    "check_inverted_residual",
    "check_lite_mla",
    "check_mobile_mqa",
    "check_uib",
    "check_shuffle_v1_unit",
    "check_shuffle_v2_unit",
    "check_window_shift",
    "make_divisible",
    "mbconv_se_width",
    "require_divides",
    "require_non_negative",
    "require_positive_number",
    "require_odd",
    "require_positive",
    "require_stride",
]

#: What a symbol means, for messages: ``groups=4 must divide the input channels N=30``.
MEANING = {
    "N": "the input channels",
    "M": "the output channels",
    "C": "the embedding dim",
    "dim": "the embedding dim",
}


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def require_positive(**values: int) -> None:
    """Each keyword's value is an ``int`` >= 1 (``True`` is not an int here).

    >>> require_positive(N=0)
    Traceback (most recent call last):
    ValueError: N must be a positive integer, got N=0
    """
    for name, value in values.items():
        if not _is_int(value) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {name}={value!r}")


def require_positive_number(**values: float) -> None:
    """Each keyword's value is a real number > 0 (an expansion ratio, a width multiplier).

    >>> require_positive_number(expansion=0)
    Traceback (most recent call last):
    ValueError: expansion must be a positive number, got expansion=0
    """
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"{name} must be a positive number, got {name}={value!r}")


def require_non_negative(note: str = "", **values: int) -> None:
    """Each keyword's value is an ``int`` >= 0; ``note`` says what 0 means, e.g. ``"0 = no SE"``."""
    for name, value in values.items():
        if not _is_int(value) or value < 0:
            extra = f" ({note})" if note else ""
            raise ValueError(f"{name} must be a non-negative integer{extra}, got {name}={value!r}")


def require_divides(divisor_name: str, divisor: int, **values: int) -> None:
    """``divisor`` is a positive integer that divides each keyword's value.

    >>> require_divides("groups", 4, N=30)
    Traceback (most recent call last):
    ValueError: groups=4 must divide the input channels N=30
    """
    require_positive(**{divisor_name: divisor})
    for name, value in values.items():
        if value % divisor:
            meaning = MEANING.get(name)
            what = f"{meaning} {name}" if meaning else name
            raise ValueError(f"{divisor_name}={divisor} must divide {what}={value}")


def require_odd(**values: int) -> None:
    """Each kernel size is a positive odd integer ("same" padding ``K // 2`` keeps the size)."""
    require_positive(**values)
    for name, value in values.items():
        if value % 2 == 0:
            raise ValueError(f"{name} must be odd (same padding {name}//2 keeps the size), got {name}={value}")


def require_stride(stride: int) -> None:
    """``stride`` is 1 or 2 (the blocks of the course downsample by 2 at most)."""
    require_positive(stride=stride)
    if stride not in (1, 2):
        raise ValueError(f"stride must be 1 or 2, got stride={stride}")


def make_divisible(value: float, divisor: int = 8, round_limit: float = 0.9) -> int:
    """``value`` rounded to the nearest multiple of ``divisor`` (at least ``divisor``), never
    below ``round_limit * value`` -- the rule MobileNetV2/V3/V4 use for every channel count
    (the same as timm's and TensorFlow's ``_make_divisible``). Here, beside the checks, so that
    a block and its closed-form cost (``course.cost``) compute the same widths.

    >>> make_divisible(18), make_divisible(30), make_divisible(88.08)
    (24, 32, 88)
    """
    new_value = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new_value < round_limit * value:
        new_value += divisor
    return new_value


# --- block configurations (the block and its formula share them) --------------------------------


def check_conv(N: int, M: int, K: int, stride: int = 1, groups: int = 1) -> None:
    """A "same"-padded convolution ``N -> M``: positive channels and stride, an odd ``K``, and
    ``groups`` dividing both ``N`` and ``M``."""
    require_positive(N=N, M=M, stride=stride)
    require_odd(K=K)
    require_divides("groups", groups, N=N, M=M)


def check_inverted_residual(N: int, M: int, mid: int, K: int, stride: int, R: int) -> None:
    """An inverted residual (MobileNetV2): positive channels and ``mid``, an odd ``K``,
    ``stride`` 1 or 2, and an SE width ``R >= 0`` (0: no SE)."""
    require_positive(N=N, M=M, mid=mid)
    require_odd(K=K)
    require_stride(stride)
    require_non_negative("the SE width, 0 = no SE", R=R)


def mbconv_se_width(N: int, expansion: int, se_ratio: float) -> int:
    """MnasNet's SE width ``R = int(se_ratio · N)`` (relative to the block's *input*), after
    checking ``expansion`` (a positive integer) and ``se_ratio`` (in [0, 1], leaving at least
    one channel when it is not 0)."""
    require_positive(N=N, expansion=expansion)
    if not 0 <= se_ratio <= 1:
        raise ValueError(f"se_ratio must be in [0, 1], got {se_ratio!r}")
    R = int(N * se_ratio)
    if se_ratio and R < 1:
        raise ValueError(f"se_ratio={se_ratio} leaves no SE channel for N={N}")
    return R


def check_uib(N: int, M: int, start_K: int, mid_K: int, stride: int, expansion: float) -> int:
    """MobileNetV4's Universal Inverted Bottleneck: positive channels; ``start_K`` and ``mid_K``
    each 0 (that depthwise conv is absent) or odd; ``stride`` 1 or 2, and a depthwise conv to
    carry a stride of 2; a positive ``expansion``. Returns the expanded width
    ``mid = make_divisible(N · expansion)``.

    >>> check_uib(24, 24, 3, 5, 1, 4.0)
    96
    """
    require_positive(N=N, M=M)
    for name, K in (("start_K", start_K), ("mid_K", mid_K)):
        if not _is_int(K) or K < 0 or (K and K % 2 == 0):
            raise ValueError(f"{name} must be 0 (no depthwise conv) or an odd positive integer, got {name}={K!r}")
    require_stride(stride)
    if stride == 2 and not (start_K or mid_K):
        raise ValueError("stride=2 needs a depthwise conv to carry it (start_K or mid_K > 0)")
    require_positive_number(expansion=expansion)
    return make_divisible(N * expansion)


def check_mobile_mqa(dim: int, heads: int, key_dim: int, value_dim: int, kv_stride: int, dw_K: int) -> None:
    """MobileNetV4's Mobile MQA: positive widths, heads and key/value stride, and an odd kernel
    ``dw_K`` for the strided depthwise conv that shrinks the keys' and values' map."""
    require_positive(dim=dim, heads=heads, key_dim=key_dim, value_dim=value_dim, kv_stride=kv_stride)
    require_odd(dw_K=dw_K)


def check_lite_mla(dim: int, heads: int, scales: Sequence[int]) -> None:
    """EfficientViT's multi-scale ReLU linear attention: ``heads`` divides ``dim`` (heads of
    width ``dim / heads``), and every aggregation kernel of ``scales`` is odd."""
    require_divides("heads", heads, dim=dim)
    require_odd(**{f"scales[{i}]": s for i, s in enumerate(scales)})


def check_shuffle_v1_unit(N: int, M: int, groups: int, stride: int, bottleneck: Optional[int],
                          group_first: bool) -> Tuple[int, int, int]:
    """A ShuffleNet V1 unit; returns ``(bottleneck, branch_out, first_groups)``.

    ``bottleneck`` defaults to ``M // 4``; the branch makes ``M`` channels at stride 1 (added to
    the input, so ``N == M``) and ``M - N`` at stride 2 (concatenated to the pooled input, so
    ``M > N``); the first pointwise conv has ``groups`` groups, or 1 when not ``group_first``.
    """
    require_positive(N=N, M=M, groups=groups)
    require_stride(stride)
    if bottleneck is None:
        bottleneck = M // 4
    if bottleneck < 1:
        raise ValueError(f"bottleneck={bottleneck} must be positive")
    if stride == 1 and N != M:
        raise ValueError(f"at stride 1 the shortcut is an addition: N={N} must equal M={M}")
    if stride == 2 and M <= N:
        raise ValueError(f"at stride 2 the branch adds M - N channels to the N pooled ones: M={M} must exceed N={N}")
    branch_out = M if stride == 1 else M - N
    first_groups = groups if group_first else 1
    if N % first_groups:
        raise ValueError(f"groups={groups} must divide the input channels N={N}")
    if bottleneck % groups:
        raise ValueError(f"groups={groups} must divide the bottleneck channels bottleneck={bottleneck}")
    if branch_out % groups:
        raise ValueError(f"groups={groups} must divide the branch's output channels "
                         f"({branch_out} = M - N at stride 2, else M)")
    return bottleneck, branch_out, first_groups


def check_shuffle_v2_unit(N: int, M: int, stride: int) -> None:
    """A ShuffleNet V2 unit: even widths (the channel split and the concatenation halve them),
    and ``N == M`` at stride 1."""
    require_positive(N=N, M=M)
    require_stride(stride)
    if stride == 1 and N % 2:
        raise ValueError(f"N={N} must be even: the channel split cuts the input in two halves")
    if M % 2:
        raise ValueError(f"M={M} must be even: the output is the concatenation of two halves")
    if stride == 1 and N != M:
        raise ValueError(f"at stride 1 the unit keeps its width: N={N} must equal M={M}")


def check_window_shift(window: int, shift: int) -> None:
    """Swin's window ``M`` (a positive integer) and shift (in ``[0, M)``; ``M // 2`` for SW-MSA)."""
    require_positive(window=window)
    if not 0 <= shift < window:
        raise ValueError(f"shift={shift} must be in [0, window={window})")
