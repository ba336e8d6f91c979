"""Chapter 6: MetaFormer. The zoo seen as token mixers, mixers swapped in one macro-architecture.

* :data:`MIXER_TABLE` / :func:`mixer_table`: recent vision backbones and their token mixers.
* :func:`course.cost.metaformer.metaformer_cost` (also ``ch06.metaformer_cost``): closed-form
  MACs and parameters of a whole :class:`course.models.metaformer.MetaFormer`.
* :func:`mixer_costs`: each mixer alone on one map, formula and counter.
* :func:`compare_mixers`: one macro-architecture, every mixer: params, MACs, latency.
* :func:`mixer_verdicts`: the sentences about :func:`compare_mixers`' measurements, from them.
* :func:`metaformer_explorer`: pick the mixer, the stage depths and the width.
* :func:`efficientformerv2_layout` and :func:`efficientformerv2_table`: where EfficientFormerV2
  (Li et al., ICCV 2023) puts its conv (4D) and attention (3D) blocks, and the course's S0-S2
  against their timm twins and the paper.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import torch

from course.cost import attention as formulas
from course.cost.metaformer import metaformer_cost, most_params_mixer  # noqa: F401  (ch06.* in the notebook)
from course.mixers import MIXER_NAMES, check_mixer_name

__all__ = [
    "EFFICIENTFORMERV2_COLUMNS",
    "MIXER_TABLE",
    "compare_mixers",
    "efficientformerv2_layout",
    "efficientformerv2_table",
    "metaformer_cost",
    "metaformer_explorer",
    "mixer_costs",
    "mixer_table",
    "mixer_verdicts",
    "mixers_table",
    "most_params_mixer",
]

#: Recent vision backbones seen as MetaFormers: (model, token mixer, this course's mixer name
#: (one of :data:`course.mixers.MIXER_NAMES`), this course's zoo name or None, reference).
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
for _row in MIXER_TABLE:  # the course's mixer of every model is one of the registry's
    check_mixer_name(_row[2])


def mixer_table() -> List[dict]:
    """:data:`MIXER_TABLE` as dicts: ``model, mixer, course_mixer, zoo_name, reference``."""
    keys = ("model", "mixer", "course_mixer", "zoo_name", "reference")
    return [dict(zip(keys, row)) for row in MIXER_TABLE]


def mixer_costs(h: int = 56, C: int = 64, heads: int = 2, sr_ratio: int = 8, names: Sequence[str] = MIXER_NAMES):
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
    names: Sequence[str] = MIXER_NAMES,
    depths: Sequence[int] = (2, 2, 6, 2),
    dims: Sequence[int] = (64, 128, 320, 512),
    img_size: int = 224,
    measure: bool = True,
    budget_s: float = 0.3,
    device: Optional[str] = None,
    threads: Optional[int] = None,
) -> List[dict]:
    """Build :func:`course.models.metaformer.metaformer` with each mixer and report params,
    counted MACs (equal to :func:`metaformer_cost`) and measured latency on a seeded
    ``(1, 3, img, img)`` input. The models are measured together, in alternating rounds
    (:func:`course.latency.measure_interleaved`, by the course's policy; ``threads`` ``None``
    is 1), so a load spike does not favour one mixer. Returns one dict per mixer: ``mixer,
    params, macs, formula_macs, formula_params, ms, timing`` (``None`` when not measured)."""
    from course import latency
    from course.cost import count
    from course.models.metaformer import metaformer

    x = torch.randn(1, 3, img_size, img_size, generator=torch.Generator().manual_seed(0))
    rows, cases = [], {}
    for name in names:
        torch.manual_seed(0)
        model = metaformer(name, depths=depths, dims=dims, img_size=img_size).eval()
        report = count(model, x)
        formula = metaformer_cost(name, depths, dims, img_size)
        rows.append({"mixer": name, "params": report.params, "macs": report.macs, "formula_macs": formula.macs,
                     "formula_params": formula.params, "ms": None, "timing": None})
        if measure:
            cases[name] = (model, (x,))
    if cases:
        timings = latency.measure_interleaved(cases, device=device, threads=threads, budget_s=budget_s * len(cases))
        for row in rows:
            row["timing"] = timings[row["mixer"]]
            row["ms"] = row["timing"].median_ms
    return rows


def mixers_table(rows: Sequence[dict]) -> "tables.Table":
    """:func:`compare_mixers`' rows as a :class:`course.tables.Table` (``print`` it): mixer,
    params, MACs, latency (median ± IQR, noisy marked)."""
    from course import tables

    return tables.table(rows, [("mixer", "mixer"), ("params", "params", "M"), ("macs", "MACs", "G"),
                               ("timing", "latency")])


def metaformer_explorer(measure: bool = True, budget_s: float = 0.3):
    """Chapter 6's explorer: one MetaFormer, pick the mixer, the depth of each stage, the width
    and the input size. Widths are ``(w, 2w, 5w, 8w)`` (PoolFormer's ratios) with attention
    heads of ``w / 2`` channels. The table checks :func:`metaformer_cost`'s MACs and params against
    the counter; the plot collects latency against MACs for every configuration visited."""
    from course.widgets import Explorer
    from course.models.metaformer import metaformer

    controls = {
        "mixer": {"options": list(MIXER_NAMES), "default": "pool"},
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


def mixer_verdicts(rows: Sequence[dict], pairs: Sequence[tuple] = (("identity", "pool"), ("pool", "attention"),
                                                                      ("dwconv", "pool"), ("window", "attention"))) -> List[str]:
    """One sentence per ``(a, b)`` pair of :func:`compare_mixers`' measured rows, written from the
    interleaved timings by :func:`course.latency.describe_speedup` (with the MACs ratio)."""
    from course.latency import describe_speedup

    by_name = {r["mixer"]: r for r in rows if r.get("timing") is not None}
    out = []
    for a, b in pairs:
        if a in by_name and b in by_name:
            out.append(describe_speedup(f"the {a} MetaFormer", by_name[a]["timing"], f"the {b} one", by_name[b]["timing"],
                                        by_name[a]["macs"], by_name[b]["macs"]))
    return out


# --- EfficientFormerV2 ---------------------------------------------------------------------------


def efficientformerv2_layout(name: str = "efficientformerv2_s0") -> List[dict]:
    """Where the zoo's EfficientFormerV2 ``name`` puts its blocks, read from the built model: per
    stage its stride, map size at 224 input, width, how many conv (4D) blocks and attention (3D)
    blocks it has, whether the attention is strided (Q, K, V on a map half the size) and whether
    the downsampling into it has an attention path."""
    from course.blocks.efficientformer import Attention4D
    from course.models import create_model

    model = create_model(name)
    rows, size = [], 224 // 4
    for i, stage in enumerate(model.stages):
        if i:
            size = -(-size // 2)
        blocks = list(stage.blocks)
        attention = [b.token_mixer for b in blocks if isinstance(b.token_mixer, Attention4D)]
        down = getattr(stage, "downsample", None)
        rows.append({
            "stage": i + 1, "stride": 4 * 2 ** i, "map": f"{size} x {size}", "width": blocks[0].ls2.scale.numel(),
            "conv blocks (4D)": len(blocks) - len(attention), "attention blocks (3D)": len(attention),
            "attention tokens": (attention[0].resolution ** 2) if attention else 0,
            "strided attention": bool(attention and attention[0].stride),
            "attention in downsampling": bool(down is not None and getattr(down, "attn", None) is not None),
        })
    return rows


def efficientformerv2_table(names: Sequence[str] = ("efficientformerv2_s0", "efficientformerv2_s1",
                                                    "efficientformerv2_s2"),
                            measure: bool = False, budget_s: float = 0.3, threads: Optional[int] = None) -> List[dict]:
    """The course's EfficientFormerV2 models against their timm twins and the paper: params (course,
    twin, paper), MACs (the counter, the paper, the difference in %), the largest output difference
    after copying the twin's weights (eval, seeded 224 input), and, when ``measure``, eager latency
    of course model and twin, timed in alternating rounds (by the course's policy)."""
    from course import latency
    from course.cost import count
    from course.models import create_model, load_twin_weights, zoo
    from course.models.twins import create_twin

    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    rows = []
    for name in names:
        entry = zoo[name]
        torch.manual_seed(0)
        ours, twin = create_model(name).eval(), create_twin(entry).eval()
        load_twin_weights(ours, twin, name)
        with torch.no_grad():
            diff = (ours(x) - twin(x)).abs().max().item()
        macs = count(ours, x).macs
        row = {"model": name, "params": sum(p.numel() for p in ours.parameters()),
               "twin params": sum(p.numel() for p in twin.parameters()), "paper params": entry.paper.params_m * 1e6,
               "MACs": macs, "paper MACs": entry.paper.macs_g * 1e9,
               "MACs vs paper": macs / (entry.paper.macs_g * 1e9) - 1, "max abs diff": diff,
               "top-1 (paper, distilled)": entry.paper.top1, "course": None, "twin": None}
        if measure:
            timings = latency.measure_interleaved({"course": (ours, (x,)), "twin": (twin, (x,))}, threads=threads,
                                                  budget_s=2 * budget_s)
            row["course"], row["twin"] = timings["course"], timings["twin"]
        rows.append(row)
    return rows


#: Columns of :func:`efficientformerv2_table` for :func:`course.tables.show`.
EFFICIENTFORMERV2_COLUMNS = [("model", "model"), ("params", "params", "M"), ("twin params", "twin", "M"),
                             ("paper params", "paper", "M"), ("MACs", "MACs (counter)", "G"),
                             ("paper MACs", "paper", "G"), ("MACs vs paper", "diff", "+.1%"),
                             ("max abs diff", "max |out - twin|", ".1e"), ("top-1 (paper, distilled)", "top-1", ".1f"),
                             ("course", "course eager"), ("twin", "timm eager")]
