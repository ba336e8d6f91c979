"""The closed-form cost of every layer of a real model, for checking the counter against it."""

from __future__ import annotations

from dataclasses import replace
from typing import Dict

import torch
from torch import nn

from course.cost.formulas import Cost, conv2d, linear


def _square(value) -> int | None:
    """``3`` or ``(3, 3)`` -> 3; ``(1, 3)`` -> None (the formulas take square kernels)."""
    if isinstance(value, int):
        return value
    if isinstance(value, (tuple, list)) and len(set(value)) == 1:
        return int(value[0])
    return None


def _layer_formula(module: nn.Module, x: torch.Tensor) -> Cost | None:
    if isinstance(module, nn.Conv2d) and module.padding_mode == "zeros":
        K, stride = _square(module.kernel_size), _square(module.stride)
        padding, dilation = _square(module.padding), _square(module.dilation)
        if None in (K, stride, padding, dilation) or isinstance(module.padding, str):
            return None
        B, N, H, W = x.shape
        return conv2d(H, W, N, module.out_channels, K, stride=stride, padding=padding, dilation=dilation,
                      groups=module.groups, bias=module.bias is not None, batch=B,
                      bytes_per_element=x.element_size())
    if isinstance(module, nn.Linear):
        tokens = x.numel() // (x.shape[0] * module.in_features) if x.dim() > 2 else 1
        return linear(module.in_features, module.out_features, bias=module.bias is not None,
                      tokens=tokens, batch=x.shape[0], bytes_per_element=x.element_size())
    return None


def layer_formulas(model: nn.Module, *inputs) -> Dict[str, Cost]:
    """Closed-form :class:`Cost` of each ``nn.Conv2d`` and ``nn.Linear`` in ``model``.

    Runs the model once (eval, no grad) only to see each layer's input shape ``(B, N, H, W)``;
    the costs themselves come from :func:`~course.cost.formulas.conv2d` and
    :func:`~course.cost.formulas.linear` with the layer's own hyper-parameters. Layers the
    formulas do not cover (non-square kernels, string padding) are left out. A layer called
    several times gets the sum of its calls.

    Returns:
        ``{module name: Cost}`` in the order the layers ran.
    """
    costs: Dict[str, Cost] = {}
    handles = []

    def hook_for(name):
        def hook(module, args):
            cost = _layer_formula(module, args[0])
            if cost is not None:
                costs[name] = replace(costs[name] + cost, params=cost.params) if name in costs else cost

        return hook

    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            handles.append(module.register_forward_pre_hook(hook_for(name)))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(*inputs)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return costs
