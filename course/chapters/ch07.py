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
    threads: Optional[int] = 1,
    budget_s: float = 1.0,
    rounds: int = 1,
) -> Dict[str, Any]:
    """Measure ``model`` (train-time form, eval mode) against its re-parameterized copy.

    Returns a dict: ``params``, ``macs``, ``peak_bytes`` (:func:`peak_activation_bytes`) and
    ``latency`` (a :class:`course.latency.Timing`, ``threads`` threads, batch of ``x``), each a
    ``(train, deploy)`` pair; ``speedup`` = train median / deploy median; ``rel_diff`` =
    :func:`max_relative_diff` of the outputs (deploy vs train).

    ``rounds > 1`` measures train and deploy alternately ``rounds`` times and keeps, for each,
    the timing with the lowest median: on a busy machine, other programs only ever add time,
    and alternating spreads their disturbance over both forms.
    """
    train = model.eval()
    deploy, rel_diff = deploy_vs_train(train, x)
    result: Dict[str, Any] = {"rel_diff": rel_diff}
    result["params"] = tuple(sum(p.numel() for p in m.parameters()) for m in (train, deploy))
    result["macs"] = tuple(count(m, x).macs for m in (train, deploy))
    result["peak_bytes"] = tuple(peak_activation_bytes(m, x) for m in (train, deploy))
    timings = [[], []]
    for _ in range(max(1, rounds)):
        for i, m in enumerate((train, deploy)):
            timings[i].append(latency.measure(m, x, threads=threads, budget_s=budget_s))
    result["latency"] = tuple(min(t, key=lambda timing: timing.median_s) for t in timings)
    result["speedup"] = result["latency"][0].median_s / result["latency"][1].median_s
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
    threads: Optional[int] = 1,
    budget_s: float = 0.3,
):
    """Latency and peak memory of ``make_block(unit, C, k)`` for each ``k``, train vs deploy.

    Returns one dict per ``k``: ``k``, ``macs_train``, ``macs_deploy`` (counted),
    ``ms_train``, ``ms_deploy`` (median, ``threads`` threads, batch 1), ``peak_train``,
    ``peak_deploy`` (bytes, :func:`peak_activation_bytes`).
    """
    x = torch.randn(1, C, H, H, generator=torch.Generator().manual_seed(0))
    rows = []
    for k in ks:
        train = make_block(unit, C, k)
        deploy = reparameterize_model(train)
        row = {"k": k}
        for form, block in (("train", train), ("deploy", deploy)):
            row[f"macs_{form}"] = count(block, x).macs
            row[f"ms_{form}"] = latency.measure(block, x, threads=threads, budget_s=budget_s).median_ms
            row[f"peak_{form}"] = peak_activation_bytes(block, x)
        rows.append(row)
    return rows


def plot_branch_sweep(rows, title: str = "train-time branches vs deploy-time conv"):
    """Two panels against k: latency (ms) and peak activation memory (MB), train vs deploy."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.2), layout="constrained")
    ks = [r["k"] for r in rows]
    for ax, key, label in zip(fig.subplots(1, 2), ("ms", "peak"), ("latency (ms)", "peak activations (MB)")):
        scale = 1e-6 if key == "peak" else 1.0
        for form, style in (("train", "o-"), ("deploy", "s--")):
            ax.plot(ks, [r[f"{key}_{form}"] * scale for r in rows], style, label=form)
        ax.set_xlabel("branches k")
        ax.set_ylabel(label)
        ax.set_xticks(ks)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title, fontsize=10)
    return fig


def plot_speedups(names, train_ms, deploy_ms, title: str = "deploy-time speed-up"):
    """Bars of train and deploy latency (ms) per name, the speed-up written above each pair."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.2), layout="constrained")
    ax = fig.add_subplot()
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], train_ms, 0.4, label="train-time")
    ax.bar([x + 0.2 for x in xs], deploy_ms, 0.4, label="deploy-time")
    for x, t, d in zip(xs, train_ms, deploy_ms):
        ax.text(x, max(t, d) * 1.02, f"{t / d:.2f}x", ha="center", fontsize=8)
    ax.set_xticks(list(xs), names, fontsize=8)
    ax.set_ylabel("latency (ms)")
    ax.set_title(title, fontsize=10)
    ax.legend()
    return fig
