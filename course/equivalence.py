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

from typing import Optional, Tuple

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
def randomize_weights(model: nn.Module, seed: int = 0, example: Optional[torch.Tensor] = None) -> nn.Module:
    """Seeded random weights that keep activations alive through a deep net, then
    :func:`randomize_bn` (in place; returns ``model``).

    Weights with more than one dimension are He-normal (``N(0, 2 / fan_in)``, ``fan_in`` the
    elements of one output's weights); other ``*.weight`` parameters (norm scales) ``U(0.5, 1.5)``;
    every other parameter (biases, shifts) ``U(-0.1, 0.1)``; batch norms as
    :func:`randomize_bn` with ``gamma ~ U(0.5, 1.5)`` and ``running_var ~ U(0.5, 1.5)`` (mean 1
    for both: the activations of a deep network neither fade nor explode).

    A fixed rule keeps the scale only where its assumptions hold (He's: a ReLU after every
    layer). Residual transformers, layer scales stored as ``(C, 1, 1)`` or re-parameterizable
    branches that add up make the activations explode (1e12 at the output of a random
    FastViT-T8) or fade, and a float32 comparison then compares rounding noise. With
    ``example`` (an input of the model, e.g. a seeded ``(2, 3, 224, 224)`` batch) the scale is
    preserved by measurement instead (LSUV: Mishkin & Matas, "All you need is a good init",
    ICLR 2016): one eval-mode forward pass on ``example`` in which every ``nn.Conv2d`` and
    ``nn.Linear``, in the order the pass reaches it, has its weight divided by the standard
    deviation of its output (bias left out), so that every such output has unit standard
    deviation on ``example``. The weights stay seeded random values, one scale factor per layer.
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
    randomize_bn(model, seed, scale=(0.5, 1.5), variance=(0.5, 1.5))
    if example is not None:
        _unit_output_std(model, example)
    return model


@torch.no_grad()
def _unit_output_std(model: nn.Module, example: torch.Tensor) -> None:
    """Rescale each conv/linear weight, in forward order, so that its output on ``example`` has
    unit standard deviation (the bias added after the rescaling)."""
    done = set()

    def rescale(module: nn.Module, inputs, out: torch.Tensor) -> Optional[torch.Tensor]:
        if module in done:  # a module called twice is rescaled once
            return None
        done.add(module)
        bias = module.bias
        if bias is not None and isinstance(module, nn.Conv2d):
            bias = bias.view(1, -1, 1, 1)  # (1, M, 1, 1) against (B, M, H, W)
        linear_part = out if bias is None else out - bias
        std = linear_part.std().item()
        if not std > 0:
            return None
        module.weight.div_(std)
        return linear_part / std if bias is None else linear_part / std + bias

    handles = [m.register_forward_hook(rescale) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    training = model.training
    try:
        model.eval()  # not chained: some modules' train() returns None (timm's Attention2d)
        model(example)
    finally:
        for handle in handles:
            handle.remove()
        model.train(training)


def max_relative_diff(got: torch.Tensor, expected: torch.Tensor) -> float:
    """``max |got - expected| / max |expected|``: one scale-free number for "how different"
    (the absolute difference when ``expected`` is all zeros)."""
    scale = expected.abs().max().item()
    return (got - expected).abs().max().item() / (scale if scale > 0 else 1.0)
