"""Chapter 2 (separable and group convolution): the explorer, the sweeps and the figures.

* :func:`variant_costs`, :func:`build_variant`: a standard, a group and a depthwise-separable
  conv for the same ``(H, N, M, K, G)``, as formulas and as modules.
* :func:`separable_explorer`: the chapter's explorer (one variant measured at a time, all three
  compared side by side).
* :func:`measure_variants`, :func:`channels_last_effect`: the measured lesson: the latency
  ratio of separable to standard conv is far smaller than its MACs ratio.
* :func:`mobilenet_grid`, :func:`plot_alpha_rho`: MobileNetV1's width/resolution trade-off.
* :func:`compare_with_twin`, :func:`zoo_table`: the course models against their
  timm/torchvision twins (parameters, MACs, outputs, latency).
"""

from __future__ import annotations

import html
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from torch import nn

from course.blocks.conv import DepthwiseConv, GroupConv, PointwiseConv
from course.cost import Cost, conv2d, count
from course.cost.separable import depthwise_conv, group_conv, pointwise_conv, separable_conv
from course.equivalence import randomize_weights
from course import latency, tables
from course.latency import describe_speedup, measure, speedup
from course.widgets import Explorer

__all__ = [
    "VARIANTS",
    "build_variant",
    "channels_last_effect",
    "compare_with_twin",
    "measure_variants",
    "mobilenet_grid",
    "plot_alpha_rho",
    "plot_ratios",
    "variants_table",
    "SeparableExplorer",
    "separable_explorer",
    "separable_verdict",
    "variant_costs",
    "zoo_table",
]

#: The three ways to map ``N`` channels to ``M`` with a ``K x K`` receptive field.
VARIANTS = ("standard", "group", "separable")


def _seeded(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def variant_costs(H: int, N: int, M: int, K: int, G: int, stride: int = 1) -> Dict[str, Cost]:
    """Closed-form costs of the three variants on a ``(1, N, H, H)`` input (no bias, no norm).

    ``standard``: ``K x K`` conv ``N -> M``; ``group``: the same with ``G`` groups;
    ``separable``: depthwise ``K x K`` (stride) then pointwise ``1 x 1``.

    Raises:
        ValueError: naming the parameter (e.g. ``G`` not dividing ``N`` or ``M``).
    """
    return {
        "standard": conv2d(H, H, N, M, K, stride=stride, padding=K // 2, bias=False),
        "group": group_conv(H, H, N, M, K, G, stride=stride),
        "separable": separable_conv(H, H, N, M, K, stride=stride, batch_norm=False, activation=False),
    }


def build_variant(variant: str, H: int, N: int, M: int, K: int, G: int, stride: int = 1,
                  seed: int = 0) -> Tuple[nn.Module, Tuple[torch.Tensor]]:
    """The module of one variant (eval mode) and a seeded input ``(1, N, H, H)``.

    Raises:
        ValueError: for an unknown ``variant`` or a bad configuration (naming the parameter).
    """
    if variant == "standard":
        module: nn.Module = GroupConv(N, M, K, groups=1, stride=stride)
    elif variant == "group":
        module = GroupConv(N, M, K, groups=G, stride=stride)
    elif variant == "separable":
        module = nn.Sequential(DepthwiseConv(N, K, stride), PointwiseConv(N, M))
    else:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    return module.eval(), (_seeded(1, N, H, H, seed=seed),)


# --- the explorer ------------------------------------------------------------------------------

CHANNELS = [16, 32, 64, 128, 256, 512]


def comparison_rows(config: Dict[str, Any], timings: Optional[Dict[tuple, Tuple[int, Any]]] = None) -> List[dict]:
    """One row per variant for ``config`` (explorer controls): MACs, params, bytes, ratios to
    the standard conv, and the measured latency when ``timings`` (the explorer's cache) has it."""
    costs = variant_costs(config["H"], config["N"], config["M"], config["K"], config["G"])
    base = costs["standard"]
    rows = []
    for variant, cost in costs.items():
        key = tuple(sorted({**config, "variant": variant}.items()))
        timing = timings.get(key, (None, None))[1] if timings else None
        rows.append({
            "variant": variant,
            "macs": cost.macs,
            "params": cost.params,
            "bytes": cost.bytes_moved,
            "macs_ratio": cost.macs / base.macs,
            "params_ratio": cost.params / base.params,
            "ms": timing.median_ms if timing is not None else None,
            "timing": timing,
        })
    std_ms = rows[0]["ms"]
    for row in rows:
        row["latency_ratio"] = row["ms"] / std_ms if row["ms"] is not None and std_ms else None
    return rows


def _comparison_html(rows: List[dict]) -> str:
    columns = [("variant", "variant"), ("macs", "MACs"), ("params", "params"), ("bytes", "MB moved", "M"),
               ("macs_ratio", "MACs / std", ".3f"), ("params_ratio", "params / std", ".3f"),
               ("timing", "latency"), ("latency_ratio", "time / std", ".2f")]
    t = tables.table(rows, columns, title="All three variants",
                     notes=["formulas; a variant's time appears once you have selected it (measured separately: "
                            "for a fair time ratio, use measure_variants, which interleaves them)"])
    return t._repr_html_()


class SeparableExplorer(Explorer):
    """Chapter 2's explorer: standard vs group vs depthwise-separable conv.

    Controls: ``variant`` (the one built, counted and timed), ``H`` (= W), ``N``, ``M``,
    ``K``, ``G`` (the group conv's groups). Under the usual explorer output (formula vs
    counter, latency, latency-vs-MACs plot) a table compares all three variants: MACs, params,
    bytes moved and their ratios to the standard conv, with the measured time of every variant
    already visited at these settings (:attr:`comparison` holds its rows).
    """

    def __init__(self, measure: bool = True, budget_s: float = 0.3):
        import ipywidgets as widgets

        self._comparison = widgets.HTML()
        self.comparison: List[dict] = []
        controls = {
            "variant": list(VARIANTS),
            "H": (8, 224, 8, 56),
            "N": {"options": CHANNELS, "default": 128},
            "M": {"options": CHANNELS, "default": 128},
            "K": {"options": [1, 3, 5, 7], "default": 3},
            "G": {"options": [1, 2, 4, 8, 16, 32], "default": 4},
        }
        super().__init__(controls, self._build, self._formula, measure=measure, budget_s=budget_s,
                         title="Chapter 2: standard vs group vs depthwise-separable conv")
        self.widget.children = tuple(self.widget.children) + (self._comparison,)

    @staticmethod
    def _build(c: Dict[str, Any]):
        return build_variant(c["variant"], c["H"], c["N"], c["M"], c["K"], c["G"])

    @staticmethod
    def _formula(c: Dict[str, Any]) -> Cost:
        return variant_costs(c["H"], c["N"], c["M"], c["K"], c["G"])[c["variant"]]

    def _update(self) -> None:
        super()._update()
        try:
            self.comparison = comparison_rows(self.config, self.timings)
            self._comparison.value = _comparison_html(self.comparison)
        except ValueError as exc:  # e.g. G does not divide N: the main table says it in red
            self.comparison = []
            self._comparison.value = f"<p>{html.escape(str(exc))}</p>"


def separable_explorer(measure: bool = True, budget_s: float = 0.3) -> SeparableExplorer:
    """Build Chapter 2's :class:`SeparableExplorer` (in a notebook, it displays itself)."""
    return SeparableExplorer(measure=measure, budget_s=budget_s)


# --- the measured lesson ------------------------------------------------------------------------


def _to_memory_format(module: nn.Module, x: torch.Tensor, channels_last: bool):
    if channels_last:
        return module.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    return module, x


def measure_variants(
    configs: Iterable[Dict[str, int]],
    budget_s: float = 0.3,
    threads: Optional[int] = None,
    channels_last: bool = False,
) -> List[dict]:
    """Measure standard vs separable conv (and the separable's two halves) for each config,
    interleaved (:func:`course.latency.measure_interleaved`: a load spike hits all four).

    Each config has ``H, N, M, K`` (stride 1). Returns one row per config with MACs, bytes
    moved, the :class:`~course.latency.Timing` (``*_timing``) and median milliseconds
    (``*_ms``) of ``standard``, ``separable``, ``depthwise`` and ``pointwise``; ``macs_ratio``
    / ``latency_ratio`` (separable / standard); ``speedup`` (how many times faster the
    separable conv is, a :class:`~course.latency.Speedup` with its IQR interval); ``sentence``
    (what this device did, written from the measurement); ``noisy``; ``dw_macs_share`` /
    ``dw_time_share`` (the depthwise half's share of the separable conv).

    Args:
        budget_s: seconds of timing per module (the four share ``4 · budget_s``).
        threads: CPU threads (``None``: the course policy's, 1).
    """
    rows = []
    for cfg in configs:
        H, N, M, K = cfg["H"], cfg["N"], cfg["M"], cfg["K"]
        x = _seeded(1, N, H, H)
        modules = {
            "standard": GroupConv(N, M, K),
            "separable": nn.Sequential(DepthwiseConv(N, K), PointwiseConv(N, M)),
            "depthwise": DepthwiseConv(N, K),
            "pointwise": PointwiseConv(N, M),
        }
        costs = {
            "standard": conv2d(H, H, N, M, K, bias=False),
            "separable": separable_conv(H, H, N, M, K, batch_norm=False, activation=False),
            "depthwise": depthwise_conv(H, H, N, K),
            "pointwise": pointwise_conv(H, H, N, M),
        }
        cases = {}
        for name, module in modules.items():
            module, xin = _to_memory_format(module.eval(), x, channels_last)
            cases[name] = (module, (xin,))
        timings = latency.measure_interleaved(cases, threads=threads, budget_s=budget_s * len(cases))
        row: Dict[str, Any] = dict(cfg)
        for name in modules:
            row[f"{name}_macs"] = costs[name].macs
            row[f"{name}_bytes"] = costs[name].bytes_moved
            row[f"{name}_timing"] = timings[name]
            row[f"{name}_ms"] = timings[name].median_ms
        row["macs_ratio"] = row["separable_macs"] / row["standard_macs"]
        row["latency_ratio"] = row["separable_ms"] / row["standard_ms"]
        row["speedup"] = speedup(timings["separable"], timings["standard"])
        row["sentence"] = describe_speedup(
            f"the separable conv ({K}x{K}, {N}->{M} @{H})", timings["separable"], "the standard conv",
            timings["standard"], row["separable_macs"], row["standard_macs"])
        row["noisy"] = any(t.noisy for t in timings.values())
        row["dw_macs_share"] = row["depthwise_macs"] / row["separable_macs"]
        row["dw_time_share"] = row["depthwise_ms"] / (row["depthwise_ms"] + row["pointwise_ms"])
        rows.append(row)
    return rows


def variants_table(rows: Sequence[dict]) -> "tables.Table":
    """:func:`measure_variants`' rows as a table: the layer, MACs ratio, the separable conv's
    measured speed-up over the standard conv (with its IQR), the depthwise half's share of the
    MACs and of the time. ``print`` it, or ``course.tables.show`` it."""
    shown = [{
        "layer": f"{r['K']}x{r['K']} {r['N']}->{r['M']} @{r['H']}",
        "macs": 1 / r["macs_ratio"],
        "speedup": r["speedup"],
        "dw_macs": r["dw_macs_share"],
        "dw_time": r["dw_time_share"],
        "std": r["standard_timing"],
        "sep": r["separable_timing"],
    } for r in rows]
    return tables.table(shown, [("layer", "layer"), ("macs", "fewer MACs", "x"), ("speedup", "measured speed-up"),
                                ("dw_macs", "dw: % MACs", "%"), ("dw_time", "dw: % time", "%"),
                                ("std", "standard"), ("sep", "separable")])


def separable_verdict(rows: Sequence[dict]) -> str:
    """What :func:`measure_variants`' rows show about the separable conv, written from the
    numbers: in how many layers its measured speed-up (with its IQR interval) fell short of,
    matched (within the noise) or beat the MACs ratio ``standard MACs / separable MACs``."""
    if not rows:
        raise ValueError("rows: empty; measure at least one layer")
    short, beyond, within = [], [], []
    for r in rows:
        s, predicted = r["speedup"], 1 / r["macs_ratio"]
        layer = f"{r['K']}x{r['K']} {r['N']}->{r['M']} @{r['H']}: {s.value:.1f}x for {predicted:.1f}x fewer MACs"
        (short if s.high < predicted else beyond if s.low > predicted else within).append(layer)
    n = len(rows)
    parts = []
    for layers, what in ((short, "less than the MACs ratio predicts"), (within, "about what the MACs ratio predicts "
                          "within the IQR"), (beyond, "more than the MACs ratio predicts")):
        if layers:
            parts.append(f"{len(layers)} of {n} layers {'was' if len(layers) == 1 else 'were'} faster by {what} "
                         f"({'; '.join(layers)})")
    text = "On this device the separable conv: " + "; ".join(parts) + "."
    if any(r.get("noisy") for r in rows):
        text += " Some timings are noisy: rerun on a quieter machine."
    return text


def bytes_per_mac(H: int, N: int, M: int, K: int) -> Dict[str, float]:
    """Bytes moved per MAC (float32, each tensor read or written once) of the standard conv
    and of the separable conv's two halves: the depthwise conv moves about as many bytes as
    the others for ``M`` times fewer MACs (``1 / arithmetic intensity``)."""
    costs = {
        "standard": conv2d(H, H, N, M, K, bias=False),
        "depthwise": depthwise_conv(H, H, N, K),
        "pointwise": pointwise_conv(H, H, N, M),
    }
    return {name: cost.bytes_moved / cost.macs for name, cost in costs.items()}


def channels_last_effect(
    configs: Iterable[Dict[str, int]],
    budget_s: float = 0.3,
    threads: Optional[int] = None,
) -> List[dict]:
    """Median ms of the depthwise conv, the separable conv and the standard conv in the default
    (NCHW, ``contiguous``) and ``channels_last`` (NHWC) memory formats, one row per config; the
    two formats of each module are measured interleaved.

    ``*_speedup`` columns are NCHW time / NHWC time (> 1: channels_last is faster here), and
    ``*_speedup_iqr`` its :class:`~course.latency.Speedup` with the IQR interval.
    """
    rows = []
    for cfg in configs:
        H, N, M, K = cfg["H"], cfg["N"], cfg["M"], cfg["K"]
        row: Dict[str, Any] = dict(cfg)
        for name, make in (
            ("depthwise", lambda: DepthwiseConv(N, K)),
            ("separable", lambda: nn.Sequential(DepthwiseConv(N, K), PointwiseConv(N, M))),
            ("standard", lambda: GroupConv(N, M, K)),
        ):
            cases = {}
            for fmt, last in (("nchw", False), ("nhwc", True)):
                module, x = _to_memory_format(make().eval(), _seeded(1, N, H, H), last)
                cases[fmt] = (module, (x,))
            timings = latency.measure_interleaved(cases, threads=threads, budget_s=2 * budget_s)
            for fmt in ("nchw", "nhwc"):
                row[f"{name}_{fmt}_ms"] = timings[fmt].median_ms
                row[f"{name}_{fmt}_timing"] = timings[fmt]
            row[f"{name}_speedup"] = row[f"{name}_nchw_ms"] / row[f"{name}_nhwc_ms"]
            row[f"{name}_speedup_iqr"] = speedup(timings["nhwc"], timings["nchw"])
        rows.append(row)
    return rows


def plot_ratios(rows: Sequence[dict], ax=None):
    """Bars per config: the separable conv's MACs ratio and measured latency ratio (to the
    standard conv). A MACs ratio of 0.12 with a latency ratio of 0.4 means the 8x fewer MACs
    bought only a 2.5x speed-up. Returns the Figure."""
    from matplotlib.figure import Figure

    if ax is None:
        fig = Figure(figsize=(6.0, 3.2), layout="constrained")
        ax = fig.add_subplot()
    fig = ax.figure
    labels = [f"{r['K']}x{r['K']}, {r['N']}->{r['M']}\n@{r['H']}" for r in rows]
    xs = range(len(rows))
    width = 0.38
    ax.bar([x - width / 2 for x in xs], [r["macs_ratio"] for r in rows], width, label="MACs ratio")
    ratios = [r["latency_ratio"] for r in rows]
    spread = [r.get("speedup") for r in rows]  # time ratio = 1 / speed-up: its IQR interval
    yerr = None
    if all(s is not None for s in spread):
        yerr = [[max(0.0, ratio - 1 / s.high) for ratio, s in zip(ratios, spread)],
                [max(0.0, 1 / s.low - ratio) for ratio, s in zip(ratios, spread)]]
    ax.bar([x + width / 2 for x in xs], ratios, width, label="latency ratio (IQR)", yerr=yerr, capsize=3)
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.set_xticks(list(xs), labels, fontsize=7)
    ax.set_ylabel("separable / standard")
    ax.legend(fontsize=8)
    return fig


# --- MobileNetV1: width and resolution -----------------------------------------------------------


def mobilenet_grid(
    alphas: Sequence[float] = (1.0, 0.75, 0.5, 0.25),
    resolutions: Sequence[int] = (224, 192, 160, 128),
    measure_latency: bool = False,
    budget_s: float = 0.5,
    threads: Optional[int] = None,
) -> List[dict]:
    """MobileNetV1 for every ``(alpha, resolution)``: counted MACs and params, the paper's
    top-1 where Table 6 (alpha at 224) or Table 7 (resolution at alpha 1) gives it, and the
    measured median ms (batch 1) when ``measure_latency``.

    Keys: alpha, resolution, macs, params, paper_macs (M, or None), paper_top1 (or None), ms,
    timing (the :class:`~course.latency.Timing`, or None). ``threads``: ``None`` is the course
    policy's (1).
    """
    from course.models.mobilenetv1 import PAPER_TABLE6, PAPER_TABLE7, MobileNetV1

    rows = []
    for alpha in alphas:
        model = MobileNetV1(alpha=alpha).eval()
        for res in resolutions:
            x = _seeded(1, 3, res, res)
            report = count(model, x)
            paper = PAPER_TABLE7.get(res) if alpha == 1.0 else (PAPER_TABLE6.get(alpha) if res == 224 else None)
            rows.append({
                "alpha": alpha,
                "resolution": res,
                "macs": report.macs,
                "params": report.params,
                "paper_macs": paper[1] if paper else None,
                "paper_top1": paper[0] if paper else None,
                "timing": measure(model, x, threads=threads, budget_s=budget_s) if measure_latency else None,
            })
            rows[-1]["ms"] = rows[-1]["timing"].median_ms if measure_latency else None
    return rows


def _plain_log_ticks(axis) -> None:
    """Log axis with plain major labels (50, 100, 200) and no minor labels."""
    from matplotlib import ticker

    axis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(ticker.StrMethodFormatter("{x:g}"))
    axis.set_minor_formatter(ticker.NullFormatter())


def plot_alpha_rho(rows: Sequence[dict]):
    """Left: the paper's top-1 against MACs (the rows with a published top-1), one line for
    "shrink alpha" and one for "shrink the resolution". Right (when the rows were measured):
    measured latency against MACs for the whole grid, one line per alpha (IQR error bars, a noisy
    point hollow). Returns the Figure."""
    from matplotlib.figure import Figure

    from course.plots import timing_errorbar

    measured = any(r["ms"] is not None for r in rows)
    fig = Figure(figsize=(9.5 if measured else 5.0, 3.4), layout="constrained")
    ax = fig.add_subplot(1, 2 if measured else 1, 1)
    width_rows = sorted((r for r in rows if r["resolution"] == 224 and r["paper_top1"] is not None),
                        key=lambda r: r["macs"])
    res_rows = sorted((r for r in rows if r["alpha"] == 1.0 and r["paper_top1"] is not None), key=lambda r: r["macs"])
    ax.plot([r["macs"] / 1e6 for r in width_rows], [r["paper_top1"] for r in width_rows], "o-",
            label="width alpha (at 224)")
    ax.plot([r["macs"] / 1e6 for r in res_rows], [r["paper_top1"] for r in res_rows], "s--",
            label="resolution (alpha = 1)")
    for r in width_rows:
        ax.annotate(f"a={r['alpha']:g}", (r["macs"] / 1e6, r["paper_top1"]), xytext=(4, -10),
                    textcoords="offset points", fontsize=7)
    for r in res_rows:
        ax.annotate(str(r["resolution"]), (r["macs"] / 1e6, r["paper_top1"]), xytext=(4, 4),
                    textcoords="offset points", fontsize=7)
    ax.set_xscale("log")
    _plain_log_ticks(ax.xaxis)
    ax.set_xlabel("MACs (M), counted")
    ax.set_ylabel("ImageNet top-1 (%), paper")
    ax.set_title("accuracy vs MACs (Howard et al., Tables 6-7)", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    if measured:
        ax2 = fig.add_subplot(1, 2, 2)
        for alpha in sorted({r["alpha"] for r in rows}, reverse=True):
            pts = sorted((r for r in rows if r["alpha"] == alpha), key=lambda r: r["macs"])
            timing_errorbar(ax2, [r["macs"] / 1e6 for r in pts], [r.get("timing") or r["ms"] for r in pts],
                            label=f"alpha={alpha:g}")
        ax2.set_xscale("log")
        ax2.set_yscale("log")
        _plain_log_ticks(ax2.xaxis)
        _plain_log_ticks(ax2.yaxis)
        ax2.set_xlabel("MACs (M)")
        ax2.set_ylabel("latency (ms), measured (IQR)")
        ax2.set_title("measured latency, resolutions 128-224", fontsize=9)
        ax2.grid(True, which="both", alpha=0.3)
        ax2.legend(fontsize=8)
    return fig


# --- the course models against their twins -------------------------------------------------------


def compare_with_twin(name: str, seed: int = 0, batch: int = 2, size: Optional[int] = None) -> Dict[str, Any]:
    """Build zoo model ``name`` and its twin, give the twin seeded random weights (and BN
    statistics), copy them into the course model by the model file's documented name mapping,
    and compare outputs in eval mode on a seeded ``(batch, 3, size, size)`` input.

    Returns ``{"course": model, "twin": twin, "course_params", "twin_params", "max_abs_diff", "input"}``.
    """
    from course.models import create_model, load_twin_weights, zoo
    from course.models.twins import create_twin

    entry = zoo[name]
    model = create_model(name).eval()
    twin = create_twin(entry).eval()
    randomize_weights(twin, seed)
    load_twin_weights(model, twin, name)
    size = size or entry.input_size
    x = _seeded(batch, 3, size, size, seed=seed + 1)
    with torch.no_grad():
        diff = (model(x) - twin(x)).abs().max().item()
    return {
        "course": model,
        "twin": twin,
        "course_params": sum(p.numel() for p in model.parameters()),
        "twin_params": sum(p.numel() for p in twin.parameters()),
        "max_abs_diff": diff,
        "input": x,
    }


def zoo_table(
    names: Optional[Sequence[str]] = None,
    threads: Sequence[int] = (1,),
    budget_s: float = 1.0,
    measure_latency: bool = True,
    comparisons: Optional[Dict[str, Dict[str, Any]]] = None,
) -> List[dict]:
    """The chapter's closing table, one row per model: params (course / twin / paper), MACs
    (course counter / paper, at the paper's input size), max abs output difference vs the twin,
    and eager CPU latency (batch 1) of course model and twin for each thread count, measured
    interleaved: ``course_t{t}`` / ``twin_t{t}`` (:class:`~course.latency.Timing`) and
    ``course_ms_t{t}`` / ``twin_ms_t{t}`` (median ms).

    ``comparisons``: results of :func:`compare_with_twin` already computed, by model name
    (reused instead of building the pair again).
    """
    comparisons = dict(comparisons or {})
    from course.models import list_models, zoo

    names = list(names) if names is not None else list_models(chapter=2)
    rows = []
    for name in names:
        entry = zoo[name]
        size = entry.paper.input_size if entry.paper else entry.input_size
        x = _seeded(1, 3, size, size)
        row: Dict[str, Any] = {"model": name, "twin": entry.twin}
        if entry.twin:
            cmp = comparisons.get(name) or compare_with_twin(name)
            model, twin = cmp["course"], cmp["twin"]
            row.update(course_params=cmp["course_params"], twin_params=cmp["twin_params"],
                       max_abs_diff=cmp["max_abs_diff"])
        else:
            from course.models import create_model

            model, twin = create_model(name).eval(), None
            row.update(course_params=sum(p.numel() for p in model.parameters()), twin_params=None, max_abs_diff=None)
        row["paper_params_m"] = entry.paper.params_m if entry.paper else None
        row["course_macs"] = count(model, x).macs
        row["paper_macs_g"] = entry.paper.macs_g if entry.paper else None
        row["convention"] = entry.paper.convention if entry.paper else None
        if measure_latency:
            for t in threads:
                cases = {"course": (model, (x,))}
                if twin is not None:
                    cases["twin"] = (twin, (x,))
                timings = latency.measure_interleaved(cases, device="cpu", threads=t, budget_s=budget_s * len(cases))
                row[f"course_t{t}"] = timings["course"]
                row[f"twin_t{t}"] = timings.get("twin")
                row[f"course_ms_t{t}"] = timings["course"].median_ms
                row[f"twin_ms_t{t}"] = timings["twin"].median_ms if twin is not None else None
        rows.append(row)
    return rows


def format_zoo_table(rows: Sequence[dict], threads: Sequence[int] = (1,)) -> "tables.Table":
    """:func:`zoo_table`'s rows as a :class:`course.tables.Table` (``print`` it for text,
    ``.markdown()`` for Markdown); latencies as median ± IQR, noisy ones marked."""
    def params(r):
        paper = "—" if r["paper_params_m"] is None else f"{r['paper_params_m']:g} M"
        twin = "—" if r["twin_params"] is None else f"{r['twin_params']:,}"
        return f"{r['course_params']:,} / {twin} / {paper}"

    def macs(r):
        paper = "—" if r["paper_macs_g"] is None else f"{r['paper_macs_g']:g} G"
        return f"{r['course_macs'] / 1e9:.4f} G / {paper}"

    def diff(r):
        d = r["max_abs_diff"]
        return "—" if d is None else ("0" if d == 0 else f"{d:.1e}")

    shown = [dict(r, params=params(r), macs=macs(r), diff=diff(r)) for r in rows]
    columns = [("model", "model"), ("params", "params course / twin / paper"), ("macs", "MACs course / paper"),
               ("diff", "max abs diff vs twin", None, "right")]
    for t in threads:
        if any(f"course_t{t}" in r or f"course_ms_t{t}" in r for r in rows):
            columns += [(f"course_t{t}", f"course ({t} thr)"), (f"twin_t{t}", f"twin ({t} thr)")]
    return tables.table(shown, columns)
