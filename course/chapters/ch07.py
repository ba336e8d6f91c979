"""Chapter 7 helpers: re-parameterization, checked and measured.

* :func:`deploy_vs_train`: the numerical proof that the deploy-time model computes what the
  train-time model computes (eval mode), with :func:`course.equivalence.randomize_bn` and
  :func:`course.equivalence.max_relative_diff` (both importable from here too, as
  ``ch07.randomize_bn`` / ``ch07.max_relative_diff``, and
  :func:`course.latency.memory.peak_activation_bytes` as ``ch07.peak_activation_bytes``).
* :func:`compare_train_deploy`: params, MACs, latency and peak memory, train vs deploy.
* :func:`unit_params`, :func:`unit_macs`: closed forms for one MobileOne unit / RepVGG block.
* :func:`reparam_explorer`: sliders over the number of branches k and the channels.
* :func:`measure_activations`: MobileOne's activation-function argument on this device (ReLU,
  GELU, h-swish, SE + ReLU in the same small net, measured interleaved), with
  :func:`clearly_slower` (paired per-round ratios -> a verdict) and :func:`activation_verdict`.
* :func:`describe_equivalence`: the sentence about a deploy-vs-train difference, from the number.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from course import latency
from course.equivalence import max_relative_diff, randomize_bn
from course.latency.compare import clearly_slower  # the rule of exercise 7.3, used by activation_verdict
from course.latency.memory import peak_activation_bytes
from course.blocks.reparam import MobileOneUnit, RepVGGBlock, reparameterize_model
from course.cost import conv_output_size, count

__all__ = [
    "ACTIVATIONS",
    "activation_net",
    "activation_verdict",
    "clearly_slower",
    "compare_train_deploy",
    "describe_equivalence",
    "measure_activations",
    "deploy_vs_train",
    "make_block",
    "max_relative_diff",
    "peak_activation_bytes",
    "randomize_bn",
    "plot_branch_sweep",
    "plot_speedups",
    "reparam_explorer",
    "sweep_branches",
    "train_deploy_rows",
    "unit_macs",
    "unit_params",
]


# --- equivalence ---------------------------------------------------------------------------


@torch.no_grad()
def deploy_vs_train(model: nn.Module, x: torch.Tensor) -> Tuple[nn.Module, float]:
    """Re-parameterize a copy of ``model`` and compare outputs on ``x`` in eval mode.

    Returns:
        ``(deploy_model, max_relative_diff(deploy(x), train(x)))``.
    """
    model = model.eval()
    deploy = reparameterize_model(model)
    return deploy, max_relative_diff(deploy(x), model(x))


def describe_equivalence(rel_diff: float, dtype: str = "float32") -> str:
    """The sentence a notebook prints about a deploy-vs-train difference, from the number.

    ``rel_diff`` is :func:`max_relative_diff` (largest difference over the largest output). It
    is compared with the unit roundoff of ``dtype`` (``2^-24`` for float32, ``2^-53`` for
    float64): a rewrite that is exact in real arithmetic leaves differences of some tens to
    thousands of roundoffs (one per operation, accumulated over the depth); more than 10,000 is
    reported as not equal. A wrong folding shows in float64, where it does not shrink with the
    precision (a forgotten eps of 1e-5 is ~5e-6 relative: some 80 units in float32, 4e10 in float64)::

        float64: largest relative difference 1.4e-15, 6 units of float64 rounding (1.1e-16): equal up to rounding.
    """
    roundoff = {"float32": 2.0 ** -24, "float64": 2.0 ** -53, "float16": 2.0 ** -11, "bfloat16": 2.0 ** -8}.get(dtype)
    if roundoff is None:
        raise ValueError(f"dtype must be one of float32, float64, float16, bfloat16; got {dtype!r}")
    units = rel_diff / roundoff
    if rel_diff == 0:
        verdict = "bit for bit equal"
    elif units <= 1e4:
        verdict = "equal up to rounding"
    else:
        verdict = "NOT equal: more than rounding can explain (check the folding)"
    return (f"{dtype}: largest relative difference {rel_diff:.1e}, {units:,.0f} units of {dtype} rounding "
            f"({roundoff:.1e}): {verdict}.")


# --- train vs deploy ---------------------------------------------------------------------------


def compare_train_deploy(
    model: nn.Module,
    x: torch.Tensor,
    threads: Optional[int] = None,
    budget_s: float = 1.0,
    rounds: Optional[int] = None,
) -> Dict[str, Any]:
    """Measure ``model`` (train-time form, eval mode) against its re-parameterized copy.

    Returns a dict: ``params``, ``macs``, ``peak_bytes`` (:func:`peak_activation_bytes`) and
    ``latency`` (a :class:`course.latency.Timing`, batch of ``x``), each a ``(train, deploy)``
    pair; ``speedup`` = train median / deploy median; ``speedup_iqr``: the
    :class:`~course.latency.Speedup` with its IQR interval; ``sentence``: what this device did,
    written from the measurement; ``noisy``; ``rel_diff`` = :func:`max_relative_diff` of the
    outputs (deploy vs train).

    The two forms are measured together in alternating rounds
    (:func:`course.latency.measure_interleaved`, the course's policy: ``threads`` ``None`` is
    1), so a load spike of another program hits both. ``budget_s`` is per form. ``rounds`` is
    ignored (the policy's rounds and re-measurement replace it; kept for old calls).
    """
    train = model.eval()
    deploy, rel_diff = deploy_vs_train(train, x)
    result: Dict[str, Any] = {"rel_diff": rel_diff}
    result["params"] = tuple(sum(p.numel() for p in m.parameters()) for m in (train, deploy))
    result["macs"] = tuple(count(m, x).macs for m in (train, deploy))
    result["peak_bytes"] = tuple(peak_activation_bytes(m, x) for m in (train, deploy))
    timings = latency.measure_interleaved({"train": (train, (x,)), "deploy": (deploy, (x,))}, threads=threads,
                                          budget_s=2 * budget_s)
    result["latency"] = (timings["train"], timings["deploy"])
    result["speedup"] = timings["train"].median_s / timings["deploy"].median_s
    result["speedup_iqr"] = latency.speedup(timings["deploy"], timings["train"])
    result["sentence"] = latency.describe_speedup("the deploy-time form", timings["deploy"], "the train-time form",
                                                  timings["train"], result["macs"][1], result["macs"][0])
    result["noisy"] = timings["train"].noisy or timings["deploy"].noisy
    return result


def train_deploy_rows(results: Mapping[str, Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Rows for :func:`course.tables.show` from ``{label: compare_train_deploy(...)}``: the two
    timings (median ± IQR), the deploy speed-up with its paired IQR, and peak activations in MB."""
    return [{"": label, "train-time": r["latency"][0], "deploy-time": r["latency"][1],
             "deploy speed-up": r["speedup_iqr"], "peak MB: train": r["peak_bytes"][0] / 1e6,
             "deploy": r["peak_bytes"][1] / 1e6} for label, r in results.items()]


# --- closed forms --------------------------------------------------------------------------


def unit_params(N: int, M: int, K: int, groups: int = 1, k: int = 1, stride: int = 1, deploy: bool = False) -> int:
    """Parameters of one :class:`~course.blocks.reparam.MobileOneUnit` (no SE).

    * deploy: ``K²·(N/G)·M + M`` (one conv with bias)
    * train:  ``k·(K²·(N/G)·M + 2M)`` (k KxK-BN branches) ``+ (N/G)·M + 2M`` (1x1-BN scale
      branch, when ``K > 1``) ``+ 2M`` (identity BN, when ``N == M`` and ``stride == 1``)

    (BN's running statistics are buffers, not parameters.) A RepVGG block is the unit with
    ``K = 3, k = 1``.
    """
    if N % groups or M % groups:
        raise ValueError(f"groups={groups} must divide N={N} and M={M}")
    if deploy:
        return K * K * (N // groups) * M + M
    params = k * (K * K * (N // groups) * M + 2 * M)
    if K > 1:
        params += (N // groups) * M + 2 * M
    if N == M and stride == 1:
        params += 2 * M
    return params


def unit_macs(H: int, W: int, N: int, M: int, K: int, groups: int = 1, k: int = 1, stride: int = 1, deploy: bool = False) -> int:
    """Convolution MACs of one MobileOne unit (BN, adds and ReLU are element-wise, not MACs).

    With ``H', W'`` the output size: deploy ``H'W'·K²·(N/G)·M``; train
    ``k·H'W'·K²·(N/G)·M + H'W'·(N/G)·M`` (the scale branch, when ``K > 1``).
    """
    if N % groups or M % groups:
        raise ValueError(f"groups={groups} must divide N={N} and M={M}")
    Ho, Wo = conv_output_size(H, K, stride, K // 2), conv_output_size(W, K, stride, K // 2)
    conv = Ho * Wo * K * K * (N // groups) * M
    if deploy:
        return conv
    return k * conv + (Ho * Wo * (N // groups) * M if K > 1 else 0)


# --- the explorer ------------------------------------------------------------------------------

UNITS = ["depthwise 3x3", "pointwise 1x1", "RepVGG 3x3"]


def make_block(unit: str, C: int, k: int = 1, deploy: bool = False) -> nn.Module:
    """The explorer's block: a MobileOne depthwise or pointwise unit, or a RepVGG block, ``C -> C``,
    stride 1, in eval mode with seeded random BN statistics (``k`` is ignored for RepVGG)."""
    if unit == "depthwise 3x3":
        block = MobileOneUnit(C, C, 3, groups=C, num_branches=k)
    elif unit == "pointwise 1x1":
        block = MobileOneUnit(C, C, 1, num_branches=k)
    elif unit == "RepVGG 3x3":
        block = RepVGGBlock(C, C)
    else:
        raise ValueError(f"unit={unit!r} is not one of {UNITS}")
    block = randomize_bn(block, seed=0).eval()
    return reparameterize_model(block, inplace=True) if deploy else block


def reparam_explorer(measure: bool = True, budget_s: float = 0.3):
    """Chapter 7: one block, train-time (k branches + scale + identity) vs deploy-time (one conv).

    Controls: ``unit`` (MobileOne depthwise / pointwise unit, RepVGG block), ``k`` (branches),
    ``C`` (channels in = out), ``H`` (= W), ``form`` (``train`` or ``deploy``). The cost table
    is the counter's; the plot collects latency vs MACs of every configuration visited, so
    train and deploy points of the same block can be compared.
    """
    from course.widgets import Explorer

    def build(c):
        block = make_block(c["unit"], c["C"], c["k"], deploy=c["form"] == "deploy")
        x = torch.randn(1, c["C"], c["H"], c["H"], generator=torch.Generator().manual_seed(0))
        return block, (x,)

    controls = {
        "unit": UNITS,
        "k": (1, 8, 1, 4),
        "C": {"options": [16, 32, 64, 128, 256], "default": 64},
        "H": (8, 112, 8, 56),
        "form": ["train", "deploy"],
    }
    return Explorer(controls, build, measure=measure, budget_s=budget_s,
                    title="Chapter 7: train-time branches vs the deploy-time conv")


# --- sweeps and figures --------------------------------------------------------------------------


def sweep_branches(
    unit: str = "depthwise 3x3",
    C: int = 64,
    H: int = 56,
    ks=(1, 2, 4, 8),
    threads: Optional[int] = None,
    budget_s: float = 0.3,
):
    """Latency and peak memory of ``make_block(unit, C, k)`` for each ``k``, train vs deploy
    (the two forms of each ``k`` measured interleaved, by the course's policy).

    Returns one dict per ``k``: ``k``, ``macs_train``, ``macs_deploy`` (counted),
    ``ms_train``, ``ms_deploy`` (median, batch 1), ``timing_train``, ``timing_deploy``
    (:class:`~course.latency.Timing`), ``peak_train``, ``peak_deploy`` (bytes,
    :func:`peak_activation_bytes`).
    """
    x = torch.randn(1, C, H, H, generator=torch.Generator().manual_seed(0))
    rows = []
    for k in ks:
        train = make_block(unit, C, k)
        deploy = reparameterize_model(train)
        row = {"k": k}
        timings = latency.measure_interleaved({"train": (train, (x,)), "deploy": (deploy, (x,))}, threads=threads,
                                              budget_s=2 * budget_s)
        for form, block in (("train", train), ("deploy", deploy)):
            row[f"macs_{form}"] = count(block, x).macs
            row[f"timing_{form}"] = timings[form]
            row[f"ms_{form}"] = timings[form].median_ms
            row[f"peak_{form}"] = peak_activation_bytes(block, x)
        rows.append(row)
    return rows


def plot_branch_sweep(rows, title: str = "train-time branches vs deploy-time conv"):
    """Two panels against k: latency (ms, median with IQR error bars; a noisy point hollow) and
    peak activation memory (MB), train vs deploy."""
    from matplotlib.figure import Figure

    from course.plots import timing_errorbar

    fig = Figure(figsize=(8, 3.2), layout="constrained")
    ks = [r["k"] for r in rows]
    latency_ax, memory_ax = fig.subplots(1, 2)
    for form, marker, style in (("train", "o", "-"), ("deploy", "s", "--")):
        timing_errorbar(latency_ax, ks, [r.get(f"timing_{form}") or r[f"ms_{form}"] for r in rows], label=form,
                        marker=marker, linestyle=style)
        memory_ax.plot(ks, [r[f"peak_{form}"] * 1e-6 for r in rows], marker=marker, ls=style, label=form)
    for ax, label in ((latency_ax, "latency (ms, IQR)"), (memory_ax, "peak activations (MB)")):
        ax.set_xlabel("branches k")
        ax.set_ylabel(label)
        ax.set_xticks(ks)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title, fontsize=10)
    return fig


def plot_speedups(names, train, deploy, title: str = "deploy-time speed-up"):
    """Bars of train and deploy latency per name (ms numbers or :class:`~course.latency.Timing`
    values, then with IQR error bars), on a log axis so a 1 ms block and a 60 ms model share it,
    the speed-up written above each pair."""
    from course.plots import latency_bars

    fig = latency_bars(list(names), {"train-time": list(train), "deploy-time": list(deploy)},
                       ratio=("train-time", "deploy-time"))
    fig.axes[0].set_title(title + " (bars: median, error bars: IQR)", fontsize=10)
    return fig


# --- activation functions (MobileOne, Sec. 3: activation functions and SE cost latency) ----------

#: The activations the chapter measures: the name -> how it is built into :func:`activation_net`.
ACTIVATIONS = ("ReLU", "GELU", "h-swish", "SE + ReLU")
_ACT_CLASSES = {"ReLU": nn.ReLU, "GELU": nn.GELU, "h-swish": nn.Hardswish, "SE + ReLU": nn.ReLU}


class _ActUnit(nn.Module):
    """A deploy-time MobileOne block with a chosen activation: depthwise 3x3 conv (bias) ->
    [SE] -> act -> 1x1 conv (bias) -> act. ``(B, C, H, W) -> (B, C, H, W)``."""

    def __init__(self, C: int, activation: str):
        super().__init__()
        from course.blocks.bottleneck import SqueezeExcite

        act = _ACT_CLASSES[activation]
        self.depthwise = nn.Conv2d(C, C, 3, padding=1, groups=C)
        self.se = SqueezeExcite(C, max(1, C // 16)) if activation.startswith("SE") else None
        self.act1, self.pointwise, self.act2 = act(), nn.Conv2d(C, C, 1), act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.depthwise(x)
        if self.se is not None:
            x = self.se(x)  # global average pool: the whole map must exist before the gate
        return self.act2(self.pointwise(self.act1(x)))


def activation_net(activation: str, C: int = 64, depth: int = 4, seed: int = 0) -> nn.Module:
    """``depth`` deploy-time MobileOne blocks (:class:`_ActUnit`) with one activation, seeded, in
    eval mode: the same convolutions for every activation, so the latency differences are the
    activations' (and SE's). MACs per block: ``H·W·C·(9 + C)`` (+ ``2·C·C/16`` with SE).

    Raises:
        ValueError: for an activation not in :data:`ACTIVATIONS`.
    """
    if activation not in _ACT_CLASSES:
        raise ValueError(f"activation={activation!r} is not one of {ACTIVATIONS}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(*[_ActUnit(C, activation) for _ in range(depth)]).eval()


def activation_verdict(timings: Mapping[str, "latency.Timing"], baseline: str = "ReLU") -> str:
    """One sentence from interleaved timings (:func:`measure_activations`): which activations are
    clearly slower than ``baseline`` (:func:`clearly_slower` on the per-round samples) and by how
    much, and which are not (within the noise, or faster)."""
    rounds = {name: t.times_s for name, t in timings.items()}
    slower = clearly_slower(rounds, baseline)
    base = timings[baseline]
    parts = []
    named = [n for n in timings if n in slower]
    if named:
        parts.append(f"clearly slower than {baseline}: " + ", ".join(
            f"{n} {latency.speedup(base, timings[n])}" for n in named))
    rest = [n for n in timings if n != baseline and n not in slower]
    if rest:
        parts.append(f"not clearly slower: " + ", ".join(
            f"{n} {latency.speedup(base, timings[n])}" for n in rest))
    noisy = " Some timings are noisy: rerun on a quieter machine." if any(t.noisy for t in timings.values()) else ""
    return f"On this device ({base.threads} thread{'s' if base.threads != 1 else ''}, time ratio vs {baseline} " \
           f"with the IQR of the per-round ratios), " + "; ".join(parts) + "." + noisy


def measure_activations(
    C: int = 64,
    H: int = 28,
    depth: int = 4,
    activations: Sequence[str] = ACTIVATIONS,
    threads: Optional[int] = None,
    budget_s: float = 2.0,
) -> Dict[str, Any]:
    """Time :func:`activation_net` for each activation, batch 1, all in the same alternating
    rounds (:func:`course.latency.measure_interleaved`, the course's policy).

    Returns ``timings`` ``{activation: Timing}``, ``macs`` ``{activation: int}`` (the counter's),
    ``rows`` (for :func:`course.tables.show`: activation, latency, time vs the first activation
    as a :class:`~course.latency.Speedup`, MACs) and ``verdict`` (:func:`activation_verdict`
    against the first activation).
    """
    activations = list(activations)
    x = torch.randn(1, C, H, H, generator=torch.Generator().manual_seed(0))
    nets = {name: activation_net(name, C, depth) for name in activations}
    timings = latency.measure_interleaved({n: (net, (x,)) for n, net in nets.items()}, threads=threads,
                                          budget_s=budget_s)
    macs = {n: count(net, x).macs for n, net in nets.items()}
    base = activations[0]
    rows = [{"activation": n, "latency": timings[n],
             f"time vs {base}": latency.speedup(timings[base], timings[n]) if n != base else None,
             "MACs": macs[n]} for n in activations]
    return {"timings": timings, "macs": macs, "rows": rows, "verdict": activation_verdict(timings, base)}
