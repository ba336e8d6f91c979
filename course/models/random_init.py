"""Seeded random weights for checking a model against its twin (no model is registered here).

A fresh model hides wrong weight mappings: BatchNorm is the identity, biases and attention
biases are zero, layer scales are ``1e-5`` so whole branches contribute nothing. A check that
copies weights by name should therefore first give the twin *random* values everywhere, of a
scale that keeps a deep residual network's activations of order one (large activations turn
rounding into large absolute differences).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["randomize"]


@torch.no_grad()
def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter and BatchNorm statistic of ``model`` a seeded random value (in place).

    * weights of rank >= 2 (convs, linears, attention-bias tables): ``N(0, 1/fan_in)``, with
      ``fan_in`` the size of one output slice (LeCun: a linear map keeps the variance);
    * norm scales and layer scales (1-D ``weight``, ``gamma``, ``scale``): ``U(0.5, 1.0)``;
    * other 1-D parameters (biases, norm shifts): ``U(-0.1, 0.1)``;
    * BatchNorm running mean ``U(-0.1, 0.1)``, running variance ``U(0.5, 1.5)``.

    Returns ``model`` in eval mode.
    """
    g = torch.Generator().manual_seed(seed)

    def uniform(shape, low, high):
        return torch.rand(shape, generator=g) * (high - low) + low

    for name, p in model.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        if p.dim() >= 2 and leaf not in ("gamma", "scale"):
            fan_in = p[0].numel()
            p.copy_(torch.randn(p.shape, generator=g) * fan_in ** -0.5)
        elif leaf in ("weight", "gamma", "scale"):
            p.copy_(uniform(p.shape, 0.5, 1.0))
        else:
            p.copy_(uniform(p.shape, -0.1, 0.1))
    for name, b in model.named_buffers():
        if name.endswith("running_mean"):
            b.copy_(uniform(b.shape, -0.1, 0.1))
        elif name.endswith("running_var"):
            b.copy_(uniform(b.shape, 0.5, 1.5))
    return model.eval()
