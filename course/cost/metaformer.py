"""Closed-form cost of the MetaFormer macro-architecture (:class:`course.models.metaformer.MetaFormer`)
with any token mixer: MACs and parameters from the formulas, never from a model.

>>> most_params_mixer()
'spatial_mlp'
"""

from __future__ import annotations

from typing import Sequence, Union

from course.cost import Cost, conv2d, linear
from course.cost import attention as formulas

__all__ = ["metaformer_cost", "most_params_mixer"]


def _stage_sizes(img_size: int) -> List[int]:
    """Map sizes of the four stages: stem conv 7x7 stride 4 padding 2, then 3x3 stride 2 padding 1."""
    size = (img_size + 4 - 7) // 4 + 1
    sizes = [size]
    for _ in range(3):
        size = (size + 2 - 3) // 2 + 1
        sizes.append(size)
    return sizes


def metaformer_cost(
    mixers: Union[str, Sequence[str]] = "pool",
    depths: Sequence[int] = (2, 2, 6, 2),
    dims: Sequence[int] = (64, 128, 320, 512),
    img_size: int = 224,
    head_dim: int = 32,
    sr_ratios: Sequence[int] = (8, 4, 2, 1),
    mlp_ratio: int = 4,
    num_classes: int = 1000,
) -> Cost:
    """MACs and parameters of :class:`course.models.metaformer.MetaFormer`, from the formulas.

    Stem ``conv2d(3 -> C1, 7, stride 4, padding 2)``; per stage a ``3x3`` stride-2 conv
    (stages 2-4) and ``depth`` blocks of: two GroupNorms (``2·2C`` params), two LayerScales
    (``2C``), the mixer (:func:`course.cost.attention.mixer`) and the MLP (two 1x1 convs:
    ``2·r·h·w·C²`` MACs, ``2·r·C² + r·C + C`` params); then LayerNorm (``2C``) and the
    linear head.
    """
    if isinstance(mixers, str):
        mixers = [mixers] * 4
    sizes = _stage_sizes(img_size)
    total = conv2d(img_size, img_size, 3, dims[0], 7, stride=4, padding=2)
    for i, (name, depth, C, h) in enumerate(zip(mixers, depths, dims, sizes)):
        if i > 0:
            total = total + conv2d(sizes[i - 1], sizes[i - 1], dims[i - 1], C, 3, stride=2, padding=1)
        hidden = mlp_ratio * C
        mixer = formulas.mixer(name, h, h, C, heads=C // head_dim, sr_ratio=sr_ratios[i])
        block = Cost(
            macs=mixer.macs + 2 * h * h * C * hidden,
            params=mixer.params + 2 * 2 * C + 2 * C + (C * hidden + hidden) + (hidden * C + C),
        )
        total = total + Cost(macs=block.macs * depth, params=block.params * depth)  # depth different blocks
    head = linear(dims[-1], num_classes)
    return Cost(macs=total.macs + head.macs, params=total.params + 2 * dims[-1] + head.params)


def most_params_mixer(depths: Sequence[int] = (2, 2, 6, 2), dims: Sequence[int] = (64, 128, 320, 512),
                      img_size: int = 224) -> str:
    """The mixer that gives the MetaFormer macro-architecture the most parameters (formula)."""
    return max(formulas.MIXER_NAMES, key=lambda name: metaformer_cost(name, depths, dims, img_size).params)
