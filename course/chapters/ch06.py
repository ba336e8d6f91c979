"""Chapter 6: MetaFormer. The zoo seen as token mixers, mixers swapped in one macro-architecture.

* :data:`MIXER_TABLE` / :func:`mixer_table`: recent vision backbones and their token mixers.
* :func:`metaformer_cost`: closed-form MACs and parameters of a whole
  :class:`course.models.metaformer.MetaFormer` (checked against the counter in the tests).
* :func:`mixer_costs`: each mixer alone on one map, formula and counter.
* :func:`compare_mixers`: one macro-architecture, every mixer: params, MACs, latency.
* :func:`metaformer_explorer`: pick the mixer, the stage depths and the width.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Union

import torch

from course.cost import Cost, conv2d, linear
from course.cost import attention as formulas

__all__ = [
    "MIXER_TABLE",
    "compare_mixers",
    "metaformer_cost",
    "metaformer_explorer",
    "mixer_costs",
    "mixer_table",
    "most_params_mixer",
]

#: Recent vision backbones seen as MetaFormers: (model, token mixer, this course's mixer name,
#: this course's zoo name or None, reference).
MIXER_TABLE = (
    ("ViT / DeiT", "global multi-head self-attention", "attention", "vit_small_patch16_224",
     "Dosovitskiy et al., ICLR 2021; Touvron et al., ICML 2021"),
    ("Swin", "(shifted) window attention", "window", "swin_tiny_patch4_window7_224", "Liu et al., ICCV 2021"),
    ("PVT", "spatial-reduction attention", "sra", "pvt_tiny", "Wang et al., ICCV 2021"),
    ("PVTv2-Li", "linear SRA (pool K, V to 7 x 7)", "sra", None, "Wang et al., CVMJ 2022"),
    ("MLP-Mixer / ResMLP", "MLP across tokens", "spatial_mlp", None,
     "Tolstikhin et al., NeurIPS 2021; Touvron et al., TPAMI 2022"),
    ("PoolFormer", "3 x 3 average pooling", "pool", "poolformer_s12", "Yu et al., CVPR 2022"),
    ("ShiftViT", "shift channels by one pixel", "shift", None, "Wang et al., AAAI 2022"),
    ("ConvNeXt", "7 x 7 depthwise convolution", "dwconv", None, "Liu et al., CVPR 2022"),
    ("(baseline)", "identity: no token mixing", "identity", None, "Yu et al., CVPR 2022, Table 5"),
)


def mixer_table() -> List[dict]:
    """:data:`MIXER_TABLE` as dicts: ``model, mixer, course_mixer, zoo_name, reference``."""
    keys = ("model", "mixer", "course_mixer", "zoo_name", "reference")
    return [dict(zip(keys, row)) for row in MIXER_TABLE]


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


def mixer_costs(h: int = 56, C: int = 64, heads: int = 2, sr_ratio: int = 8, names: Sequence[str] = formulas.MIXER_NAMES):
    """Each mixer alone on a seeded ``(1, C, h, h)`` map: formula and counter side by side.

    Returns one dict per mixer: ``mixer, params, macs`` (formula), ``counted_macs``,
    ``counted_params``, ``elementwise`` (the counter's element-wise operations).
    """
    from course.blocks.metaformer import make_mixer
    from course.cost import count

    x = torch.randn(1, C, h, h, generator=torch.Generator().manual_seed(0))
    rows = []
    for name in names:
        torch.manual_seed(0)
        formula = formulas.mixer(name, h, h, C, heads, sr_ratio)
        report = count(make_mixer(name, C, heads, h, h, sr_ratio), x)
        rows.append({"mixer": name, "params": formula.params, "macs": formula.macs, "counted_params": report.params,
                     "counted_macs": report.macs, "elementwise": report.total.elementwise})
    return rows


def compare_mixers(
    names: Sequence[str] = formulas.MIXER_NAMES,
    depths: Sequence[int] = (2, 2, 6, 2),
    dims: Sequence[int] = (64, 128, 320, 512),
    img_size: int = 224,
    measure: bool = True,
    budget_s: float = 0.3,
    device: Optional[str] = None,
) -> List[dict]:
    """Build :func:`course.models.metaformer.metaformer` with each mixer and report params,
    counted MACs (equal to :func:`metaformer_cost`) and measured latency on a seeded
    ``(1, 3, img, img)`` input. Returns one dict per mixer: ``mixer, params, macs,
    formula_macs, ms`` (``None`` when not measured)."""
    from course.cost import count
    from course.latency import measure as time_it
    from course.models.metaformer import metaformer

    x = torch.randn(1, 3, img_size, img_size, generator=torch.Generator().manual_seed(0))
    rows = []
    for name in names:
        torch.manual_seed(0)
        model = metaformer(name, depths=depths, dims=dims, img_size=img_size).eval()
        report = count(model, x)
        formula = metaformer_cost(name, depths, dims, img_size)
        row = {"mixer": name, "params": report.params, "macs": report.macs, "formula_macs": formula.macs,
               "formula_params": formula.params, "ms": None}
        if measure:
            if device is not None:
                model, xd = model.to(device), x.to(device)
            else:
                xd = x
            row["ms"] = time_it(model, xd, budget_s=budget_s).median_ms
        rows.append(row)
    return rows


def most_params_mixer(depths: Sequence[int] = (2, 2, 6, 2), dims: Sequence[int] = (64, 128, 320, 512),
                      img_size: int = 224) -> str:
    """The mixer that gives the MetaFormer macro-architecture the most parameters (formula)."""
    return max(formulas.MIXER_NAMES, key=lambda name: metaformer_cost(name, depths, dims, img_size).params)


def metaformer_explorer(measure: bool = True, budget_s: float = 0.3):
    """Chapter 6's explorer: one MetaFormer, pick the mixer, the depth of each stage, the width
    and the input size. Widths are ``(w, 2w, 5w, 8w)`` (PoolFormer's ratios) with attention
    heads of ``w / 2`` channels. The table checks :func:`metaformer_cost`'s MACs and params against
    the counter; the plot collects latency against MACs for every configuration visited."""
    from course.widgets import Explorer
    from course.models.metaformer import metaformer

    controls = {
        "mixer": {"options": list(formulas.MIXER_NAMES), "default": "pool"},
        "depth1": (1, 6, 1, 2),
        "depth2": (1, 6, 1, 2),
        "depth3": (1, 18, 1, 6),
        "depth4": (1, 6, 1, 2),
        "width": {"options": [32, 48, 64, 96], "default": 64},
        "img_size": {"options": [64, 128, 160, 224], "default": 224},
    }

    def config(c):
        w = c["width"]
        return dict(depths=(c["depth1"], c["depth2"], c["depth3"], c["depth4"]), dims=(w, 2 * w, 5 * w, 8 * w),
                    img_size=c["img_size"], head_dim=w // 2)

    def build(c):
        torch.manual_seed(0)
        model = metaformer(c["mixer"], **config(c))
        x = torch.randn(1, 3, c["img_size"], c["img_size"], generator=torch.Generator().manual_seed(0))
        return model, (x,)

    def formula(c):
        return metaformer_cost(c["mixer"], **config(c))

    return Explorer(controls, build, formula, measure=measure, budget_s=budget_s,
                    title="Chapter 6: one MetaFormer, your token mixer", compare=("macs", "params"))
