"""Checking that two models compute the same function: seeded random weights and batch-norm
statistics (so that a check cannot pass by accident), and one number for "how different".

A fresh ``BatchNorm2d`` is the identity map in eval mode (mean 0, variance 1, scale 1, shift 0):
a wrong folding of gamma, beta, the mean or the variance, or a wrong name mapping between a
model and its twin, would go unnoticed. :func:`randomize_bn` gives every BN a different
per-channel affine map; :func:`randomize_weights` also draws every weight, for comparing a
course model with a timm/torchvision twin.

>>> import torch
>>> bn = randomize_bn(torch.nn.Sequential(torch.nn.BatchNorm2d(4)), seed=1)[0].eval()
>>> x = torch.randn(1, 4, 2, 2)
>>> max_relative_diff(bn(x), x) > 0.1    # no longer the identity map
True
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import nn

__all__ = ["max_relative_diff", "randomize_bn", "randomize_weights"]


@torch.no_grad()
def randomize_bn(model: nn.Module, seed: int = 0, scale: Tuple[float, float] = (0.5, 1.0),
                 variance: Tuple[float, float] = (0.5, 2.0)) -> nn.Module:
    """Give every batch norm seeded random statistics and affine parameters (in place).

    ``gamma ~ U(scale)``, ``beta ~ N(0, 0.2²)``, ``running_mean ~ N(0, 0.1²)``,
    ``running_var ~ U(variance)``: every BN is a different per-channel affine map. The defaults
    shrink activations a little (a block or a few layers keep a sane scale); for a deep network
    use ranges with ``E[gamma] ≈ E[var] ≈ 1`` (as :func:`randomize_weights` does), or its
    activations fade. Returns ``model``.
    """
    generator = torch.Generator().manual_seed(seed)

    def rand(n, low_high, like):
        low, high = low_high
        return (torch.rand(n, generator=generator) * (high - low) + low).to(like)

    def randn(n, std, like):
        return (torch.randn(n, generator=generator) * std).to(like)

    for bn in (m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)):
        n = bn.num_features
        if bn.affine:
            bn.weight.copy_(rand(n, scale, bn.weight))
            bn.bias.copy_(randn(n, 0.2, bn.bias))
        if bn.track_running_stats:
            bn.running_mean.copy_(randn(n, 0.1, bn.running_mean))
            bn.running_var.copy_(rand(n, variance, bn.running_var))
    return model


@torch.no_grad()
def randomize_weights(model: nn.Module, seed: int = 0) -> nn.Module:
    """Seeded random weights that keep activations alive through a deep net, then
    :func:`randomize_bn` (in place; returns ``model``).

    Weights with more than one dimension are He-normal (``N(0, 2 / fan_in)``, ``fan_in`` the
    elements of one output's weights); other ``*.weight`` parameters (norm scales) ``U(0.5, 1.5)``;
    every other parameter (biases, shifts) ``U(-0.1, 0.1)``; batch norms as
    :func:`randomize_bn` with ``gamma ~ U(0.5, 1.5)`` and ``running_var ~ U(0.5, 1.5)`` (mean 1
    for both: the activations of a deep network neither fade nor explode).
    """
    generator = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if p.dim() > 1:
            fan_in = p[0].numel()
            p.copy_(torch.randn(p.shape, generator=generator) * (2.0 / fan_in) ** 0.5)
        elif name.endswith("weight"):
            p.copy_(torch.rand(p.shape, generator=generator) + 0.5)
        else:
            p.copy_(torch.rand(p.shape, generator=generator) * 0.2 - 0.1)
    return randomize_bn(model, seed, scale=(0.5, 1.5), variance=(0.5, 1.5))


def max_relative_diff(got: torch.Tensor, expected: torch.Tensor) -> float:
    """``max |got - expected| / max |expected|``: one scale-free number for "how different"
    (the absolute difference when ``expected`` is all zeros)."""
    scale = expected.abs().max().item()
    return (got - expected).abs().max().item() / (scale if scale > 0 else 1.0)
