"""Chapter 7 helpers: re-parameterization, checked and measured.

* :func:`deploy_vs_train`: the numerical proof that the deploy-time model computes what the
  train-time model computes (eval mode), with :func:`course.equivalence.randomize_bn` and
  :func:`course.equivalence.max_relative_diff` (both importable from here too, as
  ``ch07.randomize_bn`` / ``ch07.max_relative_diff``, and
  :func:`course.latency.memory.peak_activation_bytes` as ``ch07.peak_activation_bytes``).
* :func:`compare_train_deploy`: params, MACs, latency and peak memory, train vs deploy.
* :func:`unit_params`, :func:`unit_macs`: closed forms for one MobileOne unit / RepVGG block.
* :func:`reparam_explorer`: sliders over the number of branches k and the channels.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import torch
from torch import nn

from course import latency
from course.equivalence import max_relative_diff, randomize_bn
from course.latency.memory import peak_activation_bytes
from course.blocks.reparam import MobileOneUnit, RepVGGBlock, reparameterize_model
from course.cost import conv_output_size, count

__all__ = [
    "compare_train_deploy",
    "deploy_vs_train",
    "make_block",
    "max_relative_diff",
    "peak_activation_bytes",
    "randomize_bn",
    "plot_branch_sweep",
    "plot_speedups",
    "reparam_explorer",
    "sweep_branches",
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
