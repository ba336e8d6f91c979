"""Chapter 1 (the cost of a convolution): the explorer.

* :func:`conv_explorer`: one ``nn.Conv2d`` live: the closed form against the counter, the
  measured latency, and latency against MACs for every configuration visited.
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import nn

from course.cost import Cost, conv2d

__all__ = ["CHANNELS", "conv_explorer"]

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
