"""Chapter 3 (channel shuffle): channel mixing, the unit explorer and ShuffleNet V2's guideline experiments.

* :func:`shuffle_order` and :func:`channel_mixing` / :func:`plot_channel_mixing`: what the
  shuffle does to the channel order, and why stacked group convolutions need it.
* :func:`unit_explorer`: a ShuffleNet V1 or V2 unit, live (formula vs counter, latency).
* The four guideline experiments of ShuffleNet V2 (Ma et al., ECCV 2018, Tables 1-4),
  rebuilt as small benchmark networks (:func:`g1_net` ... :func:`g4_net`), measured with
  :func:`course.latency.measure` by :func:`run_guideline`, and shown beside the paper's
  numbers (:data:`PAPER`) by :func:`guideline_table` and :func:`plot_guidelines`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from course import latency
from course.blocks.shuffle import ShuffleV1Unit, ShuffleV2Unit, channel_shuffle
from course.cost import count
from course.cost.shuffle import group_conv_mac, memory_access_cost, shuffle_v1_unit, shuffle_v2_unit
from course.latency.devices import default_device

__all__ = [
    "FORMULA_FIELDS",
    "GUIDELINES",
    "PAPER",
    "GuidelineRow",
    "channel_mixing",
    "default_device",
    "g1_net",
    "g2_net",
    "g3_net",
    "g4_net",
    "guideline_table",
    "guideline_verdicts",
    "verdicts_table",
    "plot_channel_mixing",
    "plot_guidelines",
    "run_guideline",
    "shuffle_order",
    "unit_explorer",
]


# --- the shuffle and channel mixing --------------------------------------------------------------


def shuffle_order(C: int, groups: int) -> List[int]:
    """Which input channel lands at each position after :func:`channel_shuffle` (a list of ``C`` ints).

    >>> shuffle_order(6, 2)
    [0, 3, 1, 4, 2, 5]
    """
    x = torch.arange(C, dtype=torch.float32).view(1, C, 1, 1)
    return [int(v) for v in channel_shuffle(x, groups).flatten().tolist()]


def channel_mixing(C: int, groups: int, shuffle: bool, layers: int = 2) -> torch.Tensor:
    """Which input channels each output channel depends on, after ``layers`` stacked group convs.

    Builds ``layers`` real ``nn.Conv2d(C, C, 1, groups=groups)`` with positive weights (and a
    :func:`channel_shuffle` between consecutive ones if ``shuffle``), feeds it the ``C`` one-hot
    inputs and records which outputs become non-zero.

    Returns:
        A ``(C, C)`` bool tensor, ``[output channel, input channel]``.
    """
    if layers < 1:
        raise ValueError(f"layers={layers} must be at least 1")
    convs = [nn.Conv2d(C, C, 1, groups=groups, bias=False) for _ in range(layers)]
    x = torch.eye(C).view(C, C, 1, 1)  # C one-hot inputs: (C, C, 1, 1)
    with torch.no_grad():
        for i, conv in enumerate(convs):
            conv.weight.fill_(1.0)
            x = conv(x)
            if shuffle and i < layers - 1:
                x = channel_shuffle(x, groups)
    return (x.view(C, C) > 0).t()  # (output, input)


def plot_channel_mixing(C: int = 12, groups: int = 3):
    """Two panels: the dependency matrix of two stacked group convs, without and with a shuffle."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 3.6), layout="constrained")
    for ax, shuffle in zip(fig.subplots(1, 2), (False, True)):
        mixing = channel_mixing(C, groups, shuffle)
        ax.imshow(mixing.numpy(), cmap="Blues", vmin=0, vmax=1.3)
        reached = mixing.sum(1).float().mean().item()
        ax.set_title(f"{'with' if shuffle else 'without'} shuffle: each output sees {reached:.0f}/{C} inputs", fontsize=9)
        ax.set_xlabel("input channel")
        ax.set_ylabel("output channel")
        ax.set_xticks(range(0, C, groups))
        ax.set_yticks(range(0, C, groups))
    fig.suptitle(f"two stacked 1x1 group convs, {C} channels, {groups} groups", fontsize=10)
    return fig


# --- the unit explorer ---------------------------------------------------------------------------

#: The :class:`course.cost.Cost` fields the unit formulas define (they leave bytes moved at 0).
FORMULA_FIELDS = ("macs", "flops", "params", "activations", "out_shape")


def unit_explorer(measure: bool = True, budget_s: float = 0.3):
    """One ShuffleNet unit, live: V1 (``groups``) or V2 (channel split), stride 1 or 2.

    Controls: ``version``, ``H`` (= W), ``M`` (output channels; at stride 2 the input has
    ``M/2``, as in the networks), ``groups`` (V1 only) and ``stride``. The formula is
    :func:`course.cost.shuffle.shuffle_v1_unit` or :func:`~course.cost.shuffle.shuffle_v2_unit`;
    configurations the unit rejects (e.g. channels that the groups do not divide) are shown in red.
    The table checks the fields the unit formulas define (:data:`FORMULA_FIELDS`: MACs, FLOPs,
    parameters, activations, output shape; they do not model bytes moved, the counter shows those).
    """
    from course.widgets import Explorer

    def widths(c) -> Tuple[int, int]:
        return (c["M"] // 2 if c["stride"] == 2 else c["M"]), c["M"]

    def build(c):
        N, M = widths(c)
        if c["version"] == "V1":
            unit = ShuffleV1Unit(N, M, c["groups"], c["stride"])
        else:
            unit = ShuffleV2Unit(N, M, c["stride"])
        x = torch.randn(1, N, c["H"], c["H"], generator=torch.Generator().manual_seed(0))
        return unit.eval(), (x,)

    def formula(c):
        N, M = widths(c)
        if c["version"] == "V1":
            return shuffle_v1_unit(c["H"], c["H"], N, M, c["groups"], c["stride"])
        return shuffle_v2_unit(c["H"], c["H"], N, M, c["stride"])

    controls = {
        "version": ["V1", "V2"],
        "H": (7, 56, 7, 28),
        "M": {"options": [48, 96, 116, 240, 272, 384, 480], "default": 240},
        "groups": {"options": [1, 2, 3, 4, 8], "default": 3},
        "stride": [1, 2],
    }
    return Explorer(controls, build, formula, measure=measure, budget_s=budget_s,
                    title="Chapter 3: one ShuffleNet unit", compare=FORMULA_FIELDS)


# --- the guideline experiments -------------------------------------------------------------------

#: The paper's measurements (Ma et al., ECCV 2018, Tables 1-4), by guideline and platform.
#: "gpu": GTX 1080Ti, batches/s; "arm": Snapdragon 810, images/s. Each entry:
#: ``{"column": what the numbers are for, "rows": [(label, setting, value), ...]}``.
#: Tables 1 and 2 are given for their "x1" column (the smallest networks); Tables 3 and 4
#: for every channel number ``c`` they list. A setting is what we build: for G2 with g=8 on
#: ARM we use c=184, the multiple of 8 nearest to 64·sqrt(8) ≈ 181 (equal FLOPs to g=1, c=64).
PAPER: Dict[str, Dict[str, Dict[str, Any]]] = {
    "G1": {
        "gpu": {"column": "x1", "unit": "batches/s",
                "rows": [("1:1", (128, 128), 1480), ("1:2", (90, 180), 1296),
                         ("1:6", (52, 312), 876), ("1:12", (36, 432), 748)]},
        "arm": {"column": "x1", "unit": "images/s",
                "rows": [("1:1", (32, 32), 76.2), ("1:2", (22, 44), 72.9),
                         ("1:6", (13, 78), 69.1), ("1:12", (9, 108), 57.6)]},
    },
    "G2": {
        "gpu": {"column": "x1", "unit": "batches/s",
                "rows": [("g=1", (128, 1), 2451), ("g=2", (180, 2), 1725),
                         ("g=4", (256, 4), 1026), ("g=8", (360, 8), 634)]},
        "arm": {"column": "x1", "unit": "images/s",
                "rows": [("g=1", (64, 1), 40.0), ("g=2", (90, 2), 35.0),
                         ("g=4", (128, 4), 32.9), ("g=8", (184, 8), 27.8)]},
    },
    "G3": {
        "gpu": {"column": "c", "unit": "batches/s", "c": (128, 256, 512),
                "rows": [("1-fragment", ("series", 1), (2446, 1274, 434)),
                         ("2-fragment-series", ("series", 2), (1790, 872, 548)),
                         ("4-fragment-series", ("series", 4), (752, 701, 519)),
                         ("2-fragment-parallel", ("parallel", 2), (1537, 1170, 678)),
                         ("4-fragment-parallel", ("parallel", 4), (691, 463, 374))]},
        "arm": {"column": "c", "unit": "images/s", "c": (64, 128, 256),
                "rows": [("1-fragment", ("series", 1), (40.2, 10.1, 2.3)),
                         ("2-fragment-series", ("series", 2), (38.6, 10.1, 2.2)),
                         ("4-fragment-series", ("series", 4), (38.4, 10.1, 2.3)),
                         ("2-fragment-parallel", ("parallel", 2), (27.9, 8.1, 2.0)),
                         ("4-fragment-parallel", ("parallel", 4), (24.0, 7.3, 1.9))]},
    },
    "G4": {
        "gpu": {"column": "c", "unit": "batches/s", "c": (32, 64, 128),
                "rows": [("ReLU + shortcut", (True, True), (2427, 2066, 1436)),
                         ("shortcut only", (False, True), (2672, 2121, 1458)),
                         ("ReLU only", (True, False), (2647, 2256, 1735)),
                         ("neither", (False, False), (2842, 2376, 1782))]},
        "arm": {"column": "c", "unit": "images/s", "c": (32, 64, 128),
                "rows": [("ReLU + shortcut", (True, True), (56.7, 16.9, 5.0)),
                         ("shortcut only", (False, True), (57.3, 18.2, 5.1)),
                         ("ReLU only", (True, False), (61.9, 18.8, 5.2)),
                         ("neither", (False, False), (66.3, 20.2, 5.4))]},
    },
}

GUIDELINES = {
    "G1": "equal channel width minimizes memory access cost",
    "G2": "excessive group convolution increases MAC",
    "G3": "network fragmentation reduces the degree of parallelism",
    "G4": "element-wise operations are non-negligible",
}

BLOCKS = 10  # the paper stacks 10 blocks in every benchmark network


def g1_net(c1: int, c2: int, blocks: int = BLOCKS) -> nn.Sequential:
    """G1: ``blocks`` x (1x1 conv ``c1 -> c2``, 1x1 conv ``c2 -> c1``); input ``(B, c1, h, w)``."""
    layers = []
    for _ in range(blocks):
        layers += [nn.Conv2d(c1, c2, 1, bias=False), nn.Conv2d(c2, c1, 1, bias=False)]
    return nn.Sequential(*layers)


def g2_net(c: int, groups: int, blocks: int = BLOCKS) -> nn.Sequential:
    """G2: ``blocks`` x 1x1 group conv ``c -> c`` with ``groups``; input ``(B, c, h, w)``."""
    return nn.Sequential(*[nn.Conv2d(c, c, 1, groups=groups, bias=False) for _ in range(blocks)])


class _Parallel(nn.Module):
    """``k`` 1x1 convs ``c -> c/k`` side by side on the same input, outputs concatenated."""

    def __init__(self, c: int, k: int):
        super().__init__()
        if c % k:
            raise ValueError(f"c={c} must be divisible by the number of fragments k={k}")
        self.branches = nn.ModuleList([nn.Conv2d(c, c // k, 1, bias=False) for _ in range(k)])

    def forward(self, x):  # (B, c, h, w) -> (B, c, h, w)
        return torch.cat([branch(x) for branch in self.branches], dim=1)


def g3_width(kind: str, k: int, c: int) -> int:
    """Channels of a G3 network: ``c`` for 1 fragment and parallel; ``round(c / sqrt(k))`` in series.

    ``k`` 1x1 convs in series of width ``c'`` do ``k h w c'²`` MACs: ``c' = c / sqrt(k)`` keeps
    the 1-fragment's ``h w c²`` (the paper adjusts the widths so the FLOPs stay the same).
    """
    return c if kind == "parallel" else int(round(c / math.sqrt(k)))


def g3_net(kind: str, k: int, c: int, blocks: int = BLOCKS) -> nn.Sequential:
    """G3: ``blocks`` x a block of ``k`` fragments (1x1 convs), ``kind`` "series" or "parallel".

    Our reconstruction of the paper's Appendix Fig. 1 at equal MACs: series = ``k`` convs of
    width :func:`g3_width`; parallel = ``k`` convs ``c -> c/k`` concatenated (Inception-like).
    """
    if kind not in ("series", "parallel"):
        raise ValueError(f"kind={kind!r} must be 'series' or 'parallel'")
    width = g3_width(kind, k, c)
    layers = []
    for _ in range(blocks):
        if kind == "series":
            layers += [nn.Conv2d(width, width, 1, bias=False) for _ in range(k)]
        else:
            layers.append(_Parallel(c, k))
    return nn.Sequential(*layers)


class _Bottleneck(nn.Module):
    """ResNet bottleneck ``4c -> c (1x1) -> c (3x3) -> 4c (1x1)`` with optional ReLUs and shortcut."""

    def __init__(self, c: int, relu: bool, shortcut: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(4 * c, c, 1, bias=False)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.conv3 = nn.Conv2d(c, 4 * c, 1, bias=False)
        self.act = nn.ReLU() if relu else nn.Identity()
        self.shortcut = shortcut

    def forward(self, x):  # (B, 4c, h, w)
        y = self.conv3(self.act(self.conv2(self.act(self.conv1(x)))))
        if self.shortcut:
            y = y + x
        return self.act(y)


def g4_net(c: int, relu: bool, shortcut: bool, blocks: int = BLOCKS) -> nn.Sequential:
    """G4: ``blocks`` ResNet bottlenecks (width ``c``, input ``4c``), with or without ReLU and shortcut."""
    return nn.Sequential(*[_Bottleneck(c, relu, shortcut) for _ in range(blocks)])


def _input_channels(guideline: str, setting, c: Optional[int]) -> int:
    if guideline == "G1":
        return setting[0]
    if guideline == "G2":
        return setting[0]
    if guideline == "G3":
        return g3_width(setting[0], setting[1], c)
    return 4 * c


def _build(guideline: str, setting, c: Optional[int]) -> nn.Module:
    if guideline == "G1":
        return g1_net(*setting)
    if guideline == "G2":
        return g2_net(*setting)
    if guideline == "G3":
        return g3_net(setting[0], setting[1], c)
    return g4_net(c, *setting)


@dataclass(frozen=True)
class GuidelineRow:
    """One measured configuration of a guideline experiment, beside the paper's number.

    Attributes:
        guideline: "G1" ... "G4".
        label: the paper's row label ("1:2", "g=4", "2-fragment-series", ...).
        c: the channel column (G3, G4), else ``None``.
        macs: MACs of the benchmark network (the course counter), batch included.
        mac: memory access cost (elements) of its convolutions for G1 and G2, else ``None``.
        paper: the paper's throughput on ``platform``.
        paper_relative: ``paper / paper of the first row`` (same column).
        median_ms: the measured median latency of one batch.
        throughput: measured batches/s (``platform == "gpu"``) or images/s.
        relative: ``throughput / throughput of the first row`` (same column).
        timing: the :class:`~course.latency.Timing` of one batch.
        relative_iqr: the IQR interval of ``relative`` (paired rounds, see
            :func:`course.latency.speedup`).
    """

    guideline: str
    label: str
    c: Optional[int]
    macs: int
    mac: Optional[int]
    paper: float
    paper_relative: float
    median_ms: float
    throughput: float
    relative: float
    timing: Optional[latency.Timing] = None
    relative_iqr: Optional[Tuple[float, float]] = None

    @property
    def noisy(self) -> bool:
        """Whether the measurement stayed noisy (IQR over 10% of the median)."""
        return self.timing is not None and self.timing.noisy


def _mac(guideline: str, setting, size: int, batch: int) -> Optional[int]:
    if guideline == "G1":
        c1, c2 = setting
        return BLOCKS * (memory_access_cost(size * batch, size, c1, c2) + memory_access_cost(size * batch, size, c2, c1))
    if guideline == "G2":
        c, g = setting
        return BLOCKS * group_conv_mac(size * batch, size, c, c, g)
    return None


def run_guideline(
    guideline: str,
    platform: Optional[str] = None,
    size: int = 28,
    columns: Optional[int] = None,
    budget_s: float = 0.3,
    device: Optional[str] = None,
    threads: Optional[int] = None,
) -> List[GuidelineRow]:
    """Measure the benchmark networks of one guideline on this machine.

    The networks of a column are measured together, in alternating rounds
    (:func:`course.latency.measure_interleaved`: a burst of load from another program hits all
    of them alike), by the course's policy (at least five samples each, one re-measurement when
    noisy); a row's speed relative to the first row comes with its IQR interval.

    Args:
        guideline: "G1", "G2", "G3" or "G4".
        platform: whose settings and numbers to use, "gpu" (batch 8, batches/s) or "arm"
            (batch 1, images/s); default "gpu" on a CUDA device, else "arm".
        size: the feature map is ``size x size`` (our choice; small enough for a laptop).
        columns: for G3 and G4, how many of the paper's channel columns to run (default all).
        budget_s: seconds of timing per network (a column's networks share their budgets).
        device: where to run; default :func:`course.latency.default_device`.
        threads: CPU threads (``None``: the course policy's, 1, as the paper's ARM numbers).

    Returns:
        One :class:`GuidelineRow` per network, in the paper's row order (column by column).
    """
    if guideline not in PAPER:
        raise ValueError(f"guideline={guideline!r} must be one of {sorted(PAPER)}")
    device = device or default_device()
    platform = platform or ("gpu" if device.startswith("cuda") else "arm")
    if platform not in ("gpu", "arm"):
        raise ValueError(f"platform={platform!r} must be 'gpu' or 'arm'")
    table = PAPER[guideline][platform]
    batch = 8 if platform == "gpu" else 1
    cs: Sequence[Optional[int]] = table.get("c", (None,))
    if columns is not None:
        cs = cs[:columns]
    generator = torch.Generator().manual_seed(0)
    rows: List[GuidelineRow] = []
    for j, c in enumerate(cs):
        cases, macs = {}, []
        for label, setting, value in table["rows"]:
            net = _build(guideline, setting, c).eval()
            x = torch.randn(batch, _input_channels(guideline, setting, c), size, size, generator=generator)
            macs.append(count(net, x).macs)  # on the CPU, before measuring moves them
            cases[label] = (net, (x,))
        timings = latency.measure_interleaved(cases, device=device, threads=threads, budget_s=budget_s * len(cases))
        first_label = table["rows"][0][0]
        first_paper = None
        for (label, setting, value), n_macs in zip(table["rows"], macs):
            paper = value[j] if isinstance(value, tuple) else value
            timing = timings[label]
            throughput = (1.0 if platform == "gpu" else batch) / timing.median_s
            first_paper = first_paper or paper
            relative = latency.speedup(timing, timings[first_label])  # speed relative to row 1
            rows.append(GuidelineRow(guideline, label, c, n_macs,
                                     _mac(guideline, setting, size, batch), paper, paper / first_paper,
                                     timing.median_ms, throughput, relative.value, timing,
                                     (relative.low, relative.high)))
    return rows


def guideline_table(rows: Sequence[GuidelineRow]) -> "tables.Table":
    """The rows as a :class:`course.tables.Table` (``print`` it): setting, ``c`` (only for the
    guidelines that have channel columns), MACs, MAC (G1, G2), the paper's throughput and
    relative speed, the measured latency (median ± IQR, noisy marked), throughput and relative
    speed."""
    from course import tables

    columns = [("label", "setting")]
    if any(r.c is not None for r in rows):
        columns.append(("c", "c"))
    columns.append(("macs", "MACs", "M"))
    if any(r.mac is not None for r in rows):
        columns.append(("mac", "MAC", "M"))
    columns += [("paper", "paper", ".4g"), ("paper_relative", "rel.", ".2f"), ("timing", "this device"),
                ("throughput", "per s", ".4g"), ("relative", "rel.", ".2f")]
    return tables.table(rows, columns)


def plot_guidelines(results: Dict[str, Sequence[GuidelineRow]]):
    """One panel per guideline: speed relative to the first row, the paper's bars beside yours
    (with their IQR error bars; a noisy measurement is hatched)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 3.4), layout="constrained")
    axes = fig.subplots(1, len(results), squeeze=False)[0]
    for ax, (guideline, rows) in zip(axes, results.items()):
        c0 = rows[0].c
        rows = [r for r in rows if r.c == c0]  # first channel column only
        xs = range(len(rows))
        ax.bar([x - 0.2 for x in xs], [r.paper_relative for r in rows], 0.4, label="paper", color="#9e9e9e")
        yerr = None
        if all(r.relative_iqr is not None for r in rows):
            yerr = [[max(0.0, r.relative - r.relative_iqr[0]) for r in rows],
                    [max(0.0, r.relative_iqr[1] - r.relative) for r in rows]]
        bars = ax.bar([x + 0.2 for x in xs], [r.relative for r in rows], 0.4, label="this device (IQR)",
                      color="#1976d2", yerr=yerr, capsize=3)
        for bar, r in zip(bars, rows):
            if r.noisy:
                bar.set_hatch("//")
        ax.axhline(1.0, color="black", linewidth=0.6)
        ax.set_xticks(list(xs), [r.label.replace("-fragment-", "-") for r in rows], rotation=30, fontsize=7)
        ax.set_title(f"{guideline}" + (f" (c={c0})" if c0 else ""), fontsize=9)
        ax.set_ylabel("speed relative to row 1", fontsize=8)
    axes[0].legend(fontsize=7)
    return fig


# --- what this device says about each guideline ----------------------------------------------------

#: The row each guideline's verdict compares with its first row (the paper's extreme setting).
VERDICT_ROWS = {"G1": "1:12", "G2": "g=8", "G3": "4-fragment-parallel", "G4": "neither"}


@dataclass(frozen=True)
class GuidelineVerdict:
    """Whether one guideline's trend reproduced on this device, read from the measurement.

    Attributes:
        guideline: "G1" ... "G4".
        c: the channel column (G3, G4), else ``None``.
        compared: "<row> vs <first row>", e.g. "g=8 vs g=1".
        paper: the paper's speed of that row relative to the first (< 1: slower).
        relative: the measured relative speed; ``low``, ``high`` its IQR interval.
        verdict: "reproduced", "opposite" or "within the noise".
    """

    guideline: str
    c: Optional[int]
    compared: str
    paper: float
    relative: float
    low: float
    high: float
    verdict: str

    @property
    def iqr(self) -> str:
        """The IQR interval as text: "0.91-1.05x"."""
        return f"{self.low:.2f}-{self.high:.2f}x"

    @property
    def sentence(self) -> str:
        """One sentence for the notebook, written from the numbers."""
        where = f" (c={self.c})" if self.c is not None else ""
        row, first = self.compared.split(" vs ")
        return (f"{self.guideline}{where}: the paper measured {row} at {self.paper:.2f}x the speed of {first}; "
                f"this device {self.relative:.2f}x (IQR {self.low:.2f}-{self.high:.2f}x): {self.verdict}.")


def _verdict(paper: float, low: float, high: float) -> str:
    slower = paper < 1  # the paper's direction
    if (slower and high < 1) or (not slower and low > 1):
        return "reproduced"
    if (slower and low > 1) or (not slower and high < 1):
        return "opposite"
    return "within the noise"


def guideline_verdicts(results: Dict[str, Sequence[GuidelineRow]]) -> List[GuidelineVerdict]:
    """For each guideline and channel column: the paper's extreme row (:data:`VERDICT_ROWS`)
    against its first row, on this device, with the IQR of the paired ratio.

    A trend is "reproduced" when the whole IQR interval lies on the paper's side of 1.0,
    "opposite" when it lies on the other side, else "within the noise".
    """
    verdicts = []
    for guideline, rows in results.items():
        target = VERDICT_ROWS[guideline]
        for c in dict.fromkeys(r.c for r in rows):
            column = [r for r in rows if r.c == c]
            first = column[0]
            row = next(r for r in column if r.label == target)
            low, high = row.relative_iqr if row.relative_iqr is not None else (row.relative, row.relative)
            verdicts.append(GuidelineVerdict(guideline, c, f"{row.label} vs {first.label}", row.paper_relative,
                                             row.relative, low, high, _verdict(row.paper_relative, low, high)))
    return verdicts


def verdicts_table(verdicts: Sequence[GuidelineVerdict]) -> "tables.Table":
    """The verdicts as a :class:`course.tables.Table` (``print`` or display it)."""
    from course import tables

    columns = [("guideline", "guideline")]
    if any(v.c is not None for v in verdicts):
        columns.append(("c", "c"))
    columns += [("compared", "rows compared"), ("paper", "paper (rel. speed)", ".2f"),
                ("relative", "this device", ".2f"), ("iqr", "IQR"),
                ("verdict", "verdict")]
    return tables.table(verdicts, columns)
