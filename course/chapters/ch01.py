"""Chapter 1 (the cost of a convolution): the explorer and the latency sweep.

* :func:`conv_explorer`: one ``nn.Conv2d`` live: the closed form against the counter, the
  measured latency, and latency against MACs for every configuration visited.
* :func:`latency_sweep`, :func:`sweep_verdict`: a set of convs measured interleaved, their
  achieved GMAC/s, and the sentence the notebook prints about them (written from the numbers).
"""

from __future__ import annotations

from statistics import median
from typing import Dict, Iterable, List, Sequence, Tuple

import torch
from torch import nn

from course.cost import Cost, conv2d

__all__ = ["CHANNELS", "conv_explorer", "layer_kind", "latency_sweep", "sweep_verdict"]

Config = dict

CHANNELS = [3, 16, 32, 64, 128, 256]


def conv_explorer(measure: bool = True, budget_s: float = 0.3):
    """Chapter 1: one ``nn.Conv2d(N, M, K, stride, padding=K//2, groups=G, bias=False)``.

    Controls: ``H`` (= W, the resolution), ``N`` and ``M`` (input and output channels), ``K``
    (kernel size), ``stride``, ``groups``. The input is a seeded ``torch.randn(1, N, H, H)``;
    the formula is :func:`course.cost.conv2d`. Returns a :class:`course.widgets.Explorer` (in a
    notebook, it displays itself).
    """
    from course.widgets import Explorer

    def build(c: Config) -> Tuple[nn.Module, tuple]:
        conv = nn.Conv2d(c["N"], c["M"], c["K"], c["stride"], padding=c["K"] // 2, groups=c["groups"], bias=False)
        x = torch.randn(1, c["N"], c["H"], c["H"], generator=torch.Generator().manual_seed(0))
        return conv, (x,)

    def formula(c: Config) -> Cost:
        return conv2d(
            H=c["H"], W=c["H"], N=c["N"], M=c["M"], K=c["K"],
            stride=c["stride"], padding=c["K"] // 2, groups=c["groups"], bias=False,
        )

    controls = {
        "H": (8, 224, 8, 56),
        "N": {"options": CHANNELS, "default": 64},
        "M": {"options": CHANNELS, "default": 64},
        "K": {"options": [1, 3, 5, 7], "default": 3},
        "stride": [1, 2],
        "groups": [1, 2, 4, 8, 16, 32, 64],
    }
    return Explorer(
        controls, build, formula, measure=measure, budget_s=budget_s,
        title="Chapter 1: the cost of one convolution",
    )


def layer_kind(K: int, groups: int = 1, N: int = 0) -> str:
    """The kind of a conv for colouring plots (:data:`course.plots.KIND_COLORS`):
    ``"depthwise conv"`` when ``groups == N > 1``, ``"1x1 conv"`` when ``K == 1``, else
    ``"dense conv (KxK)"``."""
    if groups > 1 and groups == N:
        return "depthwise conv"
    return "1x1 conv" if K == 1 else "dense conv (KxK)"


def latency_sweep(configs: Iterable[Dict[str, int]], budget_s: float = 0.3,
                  threads=None) -> List[dict]:
    """Measure one ``nn.Conv2d(N, M, K, padding=K//2, groups=groups, bias=False)`` per config
    (keys ``H, W, N, M, K`` and optional ``groups``) on a seeded ``(1, N, H, W)`` input, all
    interleaved (:func:`course.latency.measure_interleaved`: a load spike hits every layer).

    Returns one row per config: ``label`` ("3x3 64", "3x3 dw 64"), ``kind``
    (:func:`layer_kind`), ``macs`` (:func:`course.cost.conv2d`: ``H'W'K^2(N/G)M``),
    ``timing`` (a :class:`~course.latency.Timing`) and ``gmacs_per_s`` (MACs / median time / 1e9).

    Args:
        budget_s: seconds of timing per layer (all layers share ``len(configs) · budget_s``).
        threads: CPU threads (``None``: the course policy's).
    """
    from course.latency import measure_interleaved

    configs = [dict(c) for c in configs]
    cases, rows = {}, []
    for cfg in configs:
        G = cfg.get("groups", 1)
        label = f"{cfg['K']}x{cfg['K']} {'dw ' if G > 1 else ''}{cfg['N']}"
        layer = nn.Conv2d(cfg["N"], cfg["M"], cfg["K"], padding=cfg["K"] // 2, groups=G, bias=False).eval()
        x = torch.randn(1, cfg["N"], cfg["H"], cfg["W"], generator=torch.Generator().manual_seed(0))
        cases[label] = (layer, (x,))
        macs = conv2d(cfg["H"], cfg["W"], cfg["N"], cfg["M"], cfg["K"], padding=cfg["K"] // 2, groups=G, bias=False).macs
        rows.append(dict(label=label, kind=layer_kind(cfg["K"], G, cfg["N"]), macs=macs))
    if len(cases) != len(configs):
        raise ValueError("configs: two configs give the same layer; give each one once")
    timings = measure_interleaved(cases, threads=threads, budget_s=budget_s * len(cases))
    for row in rows:
        row["timing"] = timings[row["label"]]
        row["gmacs_per_s"] = row["macs"] / row["timing"].median_s / 1e9
    return rows


def sweep_verdict(rows: Sequence[dict]) -> str:
    """What the sweep shows, written from the numbers: the median GMAC/s of each kind of layer
    and how many times fewer MACs per second the slowest kind achieved than the fastest (the
    sentence changes with the measurement; noisy timings are said to be)."""
    by_kind: Dict[str, List[float]] = {}
    for row in rows:
        by_kind.setdefault(row["kind"], []).append(row["gmacs_per_s"])
    if not by_kind:
        raise ValueError("rows: empty; measure at least one layer")
    rates = {kind: median(values) for kind, values in by_kind.items()}
    order = sorted(rates, key=rates.get, reverse=True)
    parts = "; ".join(f"{kind} {rates[kind]:.1f}" for kind in order)
    text = f"On this device the median achieved rate (GMAC/s) per kind of layer was: {parts}."
    if len(order) > 1:
        fast, slow = order[0], order[-1]
        ratio = rates[fast] / rates[slow]
        if ratio >= 1.5:
            text += (f" The {slow} layers did {ratio:.1f}x fewer MACs per second than the {fast} layers: "
                     "across kinds, time is not proportional to MACs.")
        else:
            text += f" The kinds ran within {ratio:.2f}x of each other: here time tracked MACs across kinds."
    noisy = sum(1 for row in rows if row["timing"].noisy)
    if noisy:
        text += f" ({noisy} of {len(rows)} timings noisy: rerun on a quieter machine.)"
    return text
