"""Chapter 4 (bottlenecks): MobileNetV1's cost split, MACs vs measured time by operator type,
and the inverted-residual explorer.

* :func:`mobilenetv1_cost_by_type` -- MobileNetV1's MACs and parameters by layer type, from the
  formulas (the paper's Table 2 in a few lines): why V1 was unbalanced.
* :func:`operator_shares` -- for any model, the share of MACs (the counter) and the share of
  measured CPU time (:func:`course.latency.profile_model`) held by each operator type.
* :func:`share_figure` -- the two shares side by side.
* :func:`block_explorer` -- expansion ratio, kernel size, SE on/off, activation: the block's
  cost (formula vs counter) and its measured latency.
* :func:`shares_sentence` -- what the operator shares say, written from the measured numbers.
* :func:`uib_explorer` -- MobileNetV4's Universal Inverted Bottleneck, variant by variant
  (inverted bottleneck, ConvNeXt-like, FFN, ExtraDW): MACs (formula vs counter), parameters and
  measured latency.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

import torch
from torch import nn

from course.blocks.bottleneck import InvertedResidual, make_divisible
from course.cost import Cost, conv2d, count, linear
from course.cost.bottleneck import inverted_residual
from course.latency import op_type, profile_model
from course.latency.profile import OP_TYPES

if TYPE_CHECKING:  # for the annotation only
    from course.tables import Table

__all__ = [
    "CATEGORIES",
    "MOBILENETV1_SEPARABLE",
    "OperatorShare",
    "block_explorer",
    "mobilenetv1_cost_by_type",
    "operator_shares",
    "UIB_FORMULA_FIELDS",
    "share_figure",
    "shares_sentence",
    "shares_table",
    "uib_config",
    "uib_explorer",
]

# --- MobileNetV1, from the formulas ------------------------------------------------------------

#: MobileNetV1 1.0 (Howard et al. 2017, Table 1): the 13 separable layers as
#: (input size H, input channels N, output channels M, stride of the depthwise conv).
MOBILENETV1_SEPARABLE: List[Tuple[int, int, int, int]] = (
    [(112, 32, 64, 1), (112, 64, 128, 2), (56, 128, 128, 1), (56, 128, 256, 2), (28, 256, 256, 1), (28, 256, 512, 2)]
    + [(14, 512, 512, 1)] * 5
    + [(14, 512, 1024, 2), (7, 1024, 1024, 1)]
)


def mobilenetv1_cost_by_type(num_classes: int = 1000) -> Dict[str, Cost]:
    """MobileNetV1 1.0 at 224, summed by layer type (bias-free convs; BN not counted, as in
    the paper): ``{"conv 1x1": ..., "depthwise 3x3": ..., "conv 3x3 (stem)": ...,
    "fully connected": ...}``.

    Per separable layer the 1x1 conv costs ``H'W'·N·M`` and the depthwise ``H'W'·9·N``:
    a ratio ``M / 9``, i.e. 7x to 114x in V1. So 95% of the MACs sit in the 1x1 convs
    (the paper's Table 2: 94.86% of Mult-Adds, 74.59% of parameters).
    """
    by_type = {
        "conv 1x1": Cost(),
        "depthwise 3x3": Cost(),
        "conv 3x3 (stem)": conv2d(224, 224, 3, 32, 3, stride=2, bias=False),
        "fully connected": linear(1024, num_classes),
    }
    for H, N, M, stride in MOBILENETV1_SEPARABLE:
        depthwise = conv2d(H, H, N, N, 3, stride=stride, groups=N, bias=False)
        H_out = depthwise.out_shape[2]
        by_type["depthwise 3x3"] = by_type["depthwise 3x3"] + depthwise
        by_type["conv 1x1"] = by_type["conv 1x1"] + conv2d(H_out, H_out, N, M, 1, bias=False)
    return by_type


# --- MACs vs time by operator type ---------------------------------------------------------

#: The operator types of :func:`operator_shares`, in display order: the module types of
#: :data:`course.latency.profile.OP_TYPES`, then the operators a ``forward`` calls itself.
CATEGORIES = tuple(t for t in OP_TYPES if t != "other") + (
    "add (residual)",
    "mean (pool, SE squeeze)",
    "mul (SE scale)",
    "other ops",
    "overhead (Python, dispatch)",
)

#: ATen operators called outside the modules (in a ``forward``), by profiler name.
_OP_CATEGORY = {
    "aten::add": "add (residual)",
    "aten::add_": "add (residual)",
    "aten::mean": "mean (pool, SE squeeze)",
    "aten::adaptive_avg_pool2d": "mean (pool, SE squeeze)",
    "aten::mul": "mul (SE scale)",
    "aten::mul_": "mul (SE scale)",
}


def _category(module: nn.Module) -> Optional[str]:
    """A leaf module's :func:`course.latency.op_type`, or ``None`` for a container or an "other"
    module (whose operators are sorted by name instead)."""
    if next(module.children(), None) is not None:
        return None
    kind = op_type(module)
    return None if kind == "other" else kind


@dataclass(frozen=True)
class OperatorShare:
    """One operator type's share of a model's MACs and of its measured time.

    Attributes:
        category: one of :data:`CATEGORIES`.
        calls: operator calls per forward pass (modules, or ATen calls outside modules).
        macs: multiply-accumulates per forward pass (the counter's).
        macs_pct: share of the model's MACs, in percent.
        time_ms: measured CPU time per forward pass, in ms (inclusive of what it calls).
        time_pct: share of the measured forward time, in percent.
    """

    category: str
    calls: int
    macs: int
    macs_pct: float
    time_ms: float
    time_pct: float


def operator_shares(
    model: nn.Module,
    x: torch.Tensor,
    runs: int = 5,
    warmup: int = 2,
    threads: Optional[int] = None,
    budget_s: float = 0.2,
) -> List[OperatorShare]:
    """Share of the MACs and share of the measured CPU time, by operator type (:data:`CATEGORIES`).

    Time comes from :func:`course.latency.profile_model` (``torch.profiler``, every module in a
    labelled range, ``runs`` profiled passes after ``warmup`` unprofiled ones): a leaf module of
    a known type (conv, norm, activation, linear, pooling ...) is charged its whole time; the
    ATen operators a ``forward`` calls itself (the residual add, the pooling mean, the SE
    product) are sorted by name; what is left of the forward pass (Python, module calls, the
    hooks themselves) is "overhead (Python, dispatch)". MACs come from
    :func:`course.cost.count`, charged to each leaf module's type; MACs of operators a
    ``forward`` calls directly go to "other ops". Both shares sum to 100%; the time includes
    the profiler's own overhead, so read the shares, not the absolute times.

    Args:
        model: the network (run in eval mode, under ``torch.inference_mode``).
        x: its input, e.g. ``torch.randn(1, 3, 224, 224)``; on the CPU (a CPU profile).
        runs, warmup: profiled and unprofiled forward passes.
        threads: CPU threads (``None``: the course policy's, 1); restored afterwards.
        budget_s: budget of the profile's unprofiled end-to-end measurement.

    Returns:
        One :class:`OperatorShare` per type that has MACs or time, in :data:`CATEGORIES` order.
    """
    if runs < 1 or warmup < 0:
        raise ValueError(f"need runs >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}")
    if x.device.type != "cpu":
        raise ValueError(f"x must be on the CPU (this is a CPU profile), got device {x.device}")
    was_training = model.training
    model.eval()
    try:
        report = count(model, x)
        prof = profile_model(model, x, runs=runs, warmup=warmup, threads=threads, budget_s=budget_s)
    finally:
        model.train(was_training)
    modules = dict(model.named_modules())
    macs: Dict[str, int] = defaultdict(int)
    for name, module in modules.items():
        category = _category(module)
        if category is not None:
            macs[category] += report.module_cost(name).macs
    macs["other ops"] += report.macs - sum(macs.values())
    time_ms: Dict[str, float] = defaultdict(float)
    calls: Dict[str, int] = defaultdict(int)
    for m in prof.modules:
        category = _category(modules[m.name])
        if category is not None:
            time_ms[category] += m.total_ms
            calls[category] += m.calls
            continue
        for op in m.direct:
            time_ms[_OP_CATEGORY.get(op.name, "other ops")] += op.ms
            calls[_OP_CATEGORY.get(op.name, "other ops")] += op.calls
        time_ms["overhead (Python, dispatch)"] += max(0.0, m.self_ms - sum(op.ms for op in m.direct))
    time_ms["overhead (Python, dispatch)"] += prof.unattributed_ms
    total_time = sum(time_ms.values())
    total_macs = report.macs
    shares = []
    for category in CATEGORIES:
        if not macs.get(category) and not time_ms.get(category):
            continue
        shares.append(
            OperatorShare(
                category=category,
                calls=calls.get(category, 0),
                macs=macs.get(category, 0),
                macs_pct=100.0 * macs.get(category, 0) / total_macs if total_macs else 0.0,
                time_ms=time_ms.get(category, 0.0),
                time_pct=100.0 * time_ms.get(category, 0.0) / total_time if total_time else 0.0,
            )
        )
    return shares


def shares_table(shares: List[OperatorShare]) -> "Table":
    """:func:`operator_shares` as a :class:`course.tables.Table` (``print`` it), with a total row."""
    from course.tables import table

    total = {"category": "total", "calls": None, "macs": sum(s.macs for s in shares), "macs_pct": 100.0,
             "time_ms": sum(s.time_ms for s in shares), "time_pct": 100.0}
    return table(list(shares) + [total], [("category", "operator type"), ("calls", "calls"), ("macs", "MACs"),
                                         ("macs_pct", "% MACs", "pct"), ("time_ms", "time", "ms"),
                                         ("time_pct", "% time", "pct")],
                 notes=["time: profiled (torch.profiler adds its own cost): read the shares, not the absolute times"])


def share_figure(shares: List[OperatorShare], title: str = "share of MACs vs share of measured time"):
    """Horizontal bars per operator type: % of MACs next to % of measured time. Returns the Figure."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 0.45 * len(shares) + 1.2), layout="constrained")
    ax = fig.add_subplot()
    rows = list(reversed(shares))
    y = range(len(rows))
    ax.barh([i + 0.2 for i in y], [s.macs_pct for s in rows], height=0.4, label="% of MACs")
    ax.barh([i - 0.2 for i in y], [s.time_pct for s in rows], height=0.4, label="% of time")
    ax.set_yticks(list(y), [s.category for s in rows])
    ax.set_xlabel("percent of the model's total")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right")
    ax.grid(True, axis="x", alpha=0.3)
    return fig


# --- the explorer ------------------------------------------------------------------------------

_ACT = {"ReLU6": nn.ReLU6, "Hardswish": nn.Hardswish}


def block_config(c: dict) -> dict:
    """The block arguments of an explorer configuration: ``mid = expansion·N``, ``R =
    make_divisible(mid / 4)`` with SE (MobileNetV3's rule), stride 1, ``M = N``."""
    N, mid = c["N"], c["expansion"] * c["N"]
    return dict(N=N, M=N, mid=mid, K=c["K"], R=make_divisible(mid / 4) if c["SE"] == "on" else 0)


def block_explorer(measure: bool = True, budget_s: float = 0.3):
    """Chapter 4: one inverted residual (``M = N``, stride 1, so with the skip connection).

    Controls: ``expansion`` (t), ``K`` (depthwise kernel), ``SE`` (off/on), ``act``
    (ReLU6/hard-swish), ``H`` (= W), ``N``. The formula is
    :func:`course.cost.bottleneck.inverted_residual`; the input a seeded ``torch.randn(1, N, H, H)``.
    """
    from course.widgets import Explorer

    def build(c):
        a = block_config(c)
        block = InvertedResidual(a["N"], a["M"], a["mid"], K=a["K"], act=_ACT[c["act"]], R=a["R"], se_gate=nn.Hardsigmoid)
        x = torch.randn(1, c["N"], c["H"], c["H"], generator=torch.Generator().manual_seed(0))
        return block.eval(), (x,)

    def formula(c):
        a = block_config(c)
        return inverted_residual(c["H"], c["H"], a["N"], a["M"], a["mid"], a["K"], 1, a["R"])

    controls = {
        "expansion": {"options": [1, 2, 3, 4, 6], "default": 6},
        "K": [3, 5, 7],
        "SE": ["off", "on"],
        "act": ["ReLU6", "Hardswish"],
        "H": (8, 56, 4, 28),
        "N": {"options": [16, 24, 40, 80, 112], "default": 40},
    }
    return Explorer(controls, build, formula, measure=measure, budget_s=budget_s,
                    title="Chapter 4: one inverted residual (expansion, kernel, SE)")


def shares_sentence(shares: List[OperatorShare]) -> str:
    """What :func:`operator_shares` measured, as sentences written from the numbers: each
    operator type's share of the MACs and of the time, and the types whose time share is
    largest relative to their MACs share."""
    by = {s.category: s for s in shares}
    parts = []
    for name in ("1x1 conv", "depthwise conv"):
        if name in by:
            s = by[name]
            parts.append(f"the {name}s hold {s.macs_pct:.1f}% of the MACs and {s.time_pct:.1f}% of the time")
    free = [s for s in shares if s.macs == 0 and s.time_pct > 0 and not s.category.startswith("overhead")]
    if free:
        parts.append(f"operators with no MACs ({', '.join(s.category for s in free)}) take "
                     f"{sum(s.time_pct for s in free):.1f}% of the time")
    text = "On this device " + "; ".join(parts) + "."
    ratios = sorted((s.time_pct / s.macs_pct, s.category) for s in shares if s.macs_pct > 0.5)
    if len(ratios) >= 2:
        (low, low_name), (high, high_name) = ratios[0], ratios[-1]
        text += (f" Time share per MACs share: {high:.1f} for {high_name} (the most time per MAC), "
                 f"{low:.2f} for {low_name} (the least).")
    return text


# --- MobileNetV4's Universal Inverted Bottleneck -------------------------------------------------

#: The :class:`course.cost.Cost` fields :func:`course.cost.modern.uib` defines (it leaves the
#: element-wise work and bytes moved to the counter).
UIB_FORMULA_FIELDS = ("macs", "flops", "params", "out_shape")


def uib_config(c: dict) -> dict:
    """The block arguments of a :func:`uib_explorer` configuration: the variant's two depthwise
    kernels (``K`` where present, 0 where absent), ``M = N`` at stride 1 and ``2N`` at stride 2."""
    from course.blocks.uib import UIB_VARIANTS

    start, middle = UIB_VARIANTS[c["variant"]]
    return dict(N=c["N"], M=c["N"] * c["stride"], start_K=c["K"] if start else 0, mid_K=c["K"] if middle else 0,
                stride=c["stride"], expansion=float(c["expansion"]))


def uib_explorer(measure: bool = True, budget_s: float = 0.3):
    """Chapter 4: one MobileNetV4 Universal Inverted Bottleneck, variant by variant.

    Controls: ``variant`` (``inverted_bottleneck``: depthwise after the expansion;
    ``convnext``: before it; ``ffn``: none; ``extra_dw``: both), ``K`` (the depthwise kernels),
    ``expansion``, ``stride`` (at 2 the output has ``2N`` channels; the FFN cannot stride and is
    shown in red), ``H`` (= W), ``N``. The formula is :func:`course.cost.modern.uib`, compared on
    :data:`UIB_FORMULA_FIELDS`; the input a seeded ``torch.randn(1, N, H, H)``.
    """
    from course.blocks.uib import UniversalInvertedBottleneck
    from course.cost.modern import uib
    from course.widgets import Explorer

    def build(c):
        block = UniversalInvertedBottleneck(**uib_config(c))
        x = torch.randn(1, c["N"], c["H"], c["H"], generator=torch.Generator().manual_seed(0))
        return block.eval(), (x,)

    def formula(c):
        a = uib_config(c)
        return uib(c["H"], c["H"], a["N"], a["M"], a["start_K"], a["mid_K"], a["stride"], a["expansion"])

    controls = {
        "variant": {"options": ["inverted_bottleneck", "convnext", "ffn", "extra_dw"], "default": "extra_dw"},
        "K": [3, 5, 7],
        "expansion": {"options": [2, 3, 4, 6], "default": 4},
        "stride": [1, 2],
        "H": (8, 56, 4, 28),
        "N": {"options": [32, 48, 64, 96, 128], "default": 64},
    }
    return Explorer(controls, build, formula, measure=measure, budget_s=budget_s,
                    title="Chapter 4: MobileNetV4's Universal Inverted Bottleneck", compare=UIB_FORMULA_FIELDS)
