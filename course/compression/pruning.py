"""Pruning: remove weights (unstructured) or whole channels (structured).

* **Unstructured magnitude pruning** sets the ``round(sparsity · n)`` weights of smallest
  ``|w|`` to zero (``torch.nn.utils.prune``). The tensors keep their shape: a dense kernel still
  multiplies every zero, so MACs, file size and latency do not change (only a compressed file
  shrinks, and only sparse kernels or hardware could turn the zeros into speed).
* **Structured channel pruning** removes whole output channels of a conv, and with them the
  matching input channels of every layer that reads them. In a residual network the channels
  of a residual stream are *coupled*: every layer adding into the same sum must lose the same
  channels. Torch-Pruning (Fang et al., "DepGraph: Towards Any Structural Pruning", CVPR 2023)
  finds these groups by tracing the model. The result is simply a narrower network: fewer MACs,
  fewer parameters, less latency on any device. The importance of a channel here is the L1
  norm of its filter in the group's first conv (Li, Kadav, Durdanovic, Samet, Graf, "Pruning
  Filters for Efficient ConvNets", ICLR 2017); in each group ``floor(C · (1 - ratio))``
  channels are kept.
"""

from __future__ import annotations

import copy
import io
import zlib
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

__all__ = [
    "SensitivityRow",
    "channel_groups",
    "conv_widths",
    "file_size",
    "magnitude_mask",
    "prunable",
    "prune_channels",
    "prune_unstructured",
    "sensitivity_scan",
    "sparsity",
]


def magnitude_mask(weight: Tensor, sparsity: float) -> Tensor:
    """The mask (same shape as ``weight``, 1.0 = keep, 0.0 = prune) that zeroes the
    ``round(sparsity · weight.numel())`` entries of smallest ``|w|``: the rule of
    ``torch.nn.utils.prune.l1_unstructured``. Ties are broken by ``torch.topk``."""
    if not 0 <= sparsity <= 1:
        raise ValueError(f"sparsity must be in [0, 1], got {sparsity!r}")
    n_prune = round(sparsity * weight.numel())
    mask = torch.ones_like(weight)
    if n_prune:
        smallest = torch.topk(weight.abs().flatten(), k=n_prune, largest=False).indices
        mask.view(-1)[smallest] = 0
    return mask


def prunable(model: nn.Module) -> List[Tuple[str, nn.Module]]:
    """``(name, module)`` of every ``nn.Conv2d`` and ``nn.Linear`` (the layers that hold weights)."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def prune_unstructured(model: nn.Module, sparsity: float, scope: str = "global", permanent: bool = True) -> nn.Module:
    """A copy of ``model`` with the smallest-magnitude weights of its convs and linears set to zero.

    Args:
        sparsity: fraction of the weights to zero.
        scope: ``"global"``: the smallest weights of the whole model
            (``prune.global_unstructured``; layers end up with different sparsities);
            ``"layer"``: ``sparsity`` of every layer (``prune.l1_unstructured`` per layer).
        permanent: ``True`` folds the masks into the weights (``prune.remove``): plain dense
            tensors with zeros in them. ``False`` keeps PyTorch's training form: each layer holds
            ``weight_orig`` and a ``weight_mask`` buffer and recomputes ``weight`` in a forward
            pre-hook (twice the storage, and a multiplication per call).
    """
    from torch.nn.utils import prune

    if not 0 <= sparsity <= 1:
        raise ValueError(f"sparsity must be in [0, 1], got {sparsity!r}")
    if scope not in ("global", "layer"):
        raise ValueError(f"scope must be 'global' or 'layer', got {scope!r}")
    pruned = copy.deepcopy(model)
    layers = [(m, "weight") for _, m in prunable(pruned)]
    if scope == "global":
        prune.global_unstructured(layers, pruning_method=prune.L1Unstructured, amount=sparsity)
    else:
        for module, name in layers:
            prune.l1_unstructured(module, name, amount=sparsity)
    if permanent:
        for module, name in layers:
            prune.remove(module, name)
    return pruned


def sparsity(model: nn.Module) -> float:
    """Fraction of the conv and linear weights that are exactly zero."""
    weights = [m.weight for _, m in prunable(model)]
    total = sum(w.numel() for w in weights)
    return sum(int((w == 0).sum()) for w in weights) / total if total else 0.0


def file_size(model: nn.Module) -> Dict[str, int]:
    """Bytes of ``torch.save(model.state_dict())`` (what a checkpoint takes on disk), and of the
    same bytes compressed with zlib (level 9): ``{"bytes": ..., "compressed": ...}``.

    Zeros do not make the file smaller; they make it compress better.
    """
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    raw = buffer.getvalue()
    return {"bytes": len(raw), "compressed": len(zlib.compress(raw, 9))}


# --- structured (channel) pruning --------------------------------------------------------------


def _classifiers(model: nn.Module) -> List[nn.Module]:
    """Layers whose outputs are the model's outputs: every ``nn.Linear`` (never pruned)."""
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def prune_channels(
    model: nn.Module,
    ratio: float = 0.5,
    example: Optional[Tensor] = None,
    layer_ratios: Optional[Dict[str, float]] = None,
    ignored: Sequence[str] = (),
) -> nn.Module:
    """A copy of ``model`` with ``ratio`` of the channels of every prunable group removed.

    Torch-Pruning's ``MetaPruner`` traces ``model(example)``, groups coupled channels (a conv's
    outputs, its BatchNorm, the next layers' inputs, every layer adding into the same residual
    sum) and keeps ``floor(C · (1 - ratio))`` channels of each group: those whose filters in the
    group's root conv have the largest L1 norm (``MagnitudeImportance(p=1, normalizer=None,
    group_reduction="first")``, Li et al.'s criterion). Linear layers (the classifier) keep
    their outputs.

    Args:
        ratio: fraction of channels to remove from every group (0 <= ratio < 1).
        example: an input, default ``torch.randn(1, 3, 32, 32)``.
        layer_ratios: ``{conv name: ratio}`` overriding ``ratio`` for the group that layer roots
            (see :func:`channel_groups`).
        ignored: names of layers whose output channels must stay.
    """
    import torch_pruning as tp

    if not 0 <= ratio < 1:
        raise ValueError(f"ratio must be in [0, 1), got {ratio!r}")
    pruned = copy.deepcopy(model).eval()
    example = torch.randn(1, 3, 32, 32) if example is None else example
    modules = dict(pruned.named_modules())
    unknown = [n for n in list(ignored) + list(layer_ratios or {}) if n not in modules]
    if unknown:
        raise ValueError(f"no layer named {unknown[0]!r} in the model")
    for name, r in (layer_ratios or {}).items():
        if not 0 <= r < 1:
            raise ValueError(f"layer_ratios[{name!r}] must be in [0, 1), got {r!r}")
    pruner = tp.pruner.MetaPruner(
        pruned,
        example,
        importance=tp.importance.MagnitudeImportance(p=1, normalizer=None, group_reduction="first"),
        pruning_ratio=ratio,
        pruning_ratio_dict={modules[n]: r for n, r in (layer_ratios or {}).items()} or None,
        ignored_layers=_classifiers(pruned) + [modules[n] for n in ignored],
    )
    pruner.step()
    return pruned


def conv_widths(model: nn.Module) -> Dict[str, int]:
    """``{name: output channels}`` of every ``nn.Conv2d``."""
    return {name: m.out_channels for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}


def channel_groups(model: nn.Module, example: Optional[Tensor] = None) -> List[Tuple[str, List[str], int]]:
    """The groups of coupled channels Torch-Pruning finds: ``(root conv name, names of every conv
    and BatchNorm whose channels move with it, channels)`` in the model's order. Channels of a
    residual stream form one group with every layer that adds into it."""
    import torch_pruning as tp

    example = torch.randn(1, 3, 32, 32) if example is None else example
    names = {m: n for n, m in model.named_modules()}
    graph = tp.DependencyGraph().build_dependency(model.eval(), example)
    groups = []
    for group in graph.get_all_groups(ignored_layers=_classifiers(model), root_module_types=(nn.Conv2d,)):
        root = group[0].dep.target.module
        members = []
        for dep, _ in group:
            name = names.get(dep.target.module)
            if name is not None and name not in members:
                members.append(name)
        groups.append((names[root], members, root.out_channels))
    return groups


@dataclass(frozen=True)
class SensitivityRow:
    """One point of a sensitivity scan: the group rooted at ``layer`` pruned alone at ``ratio``."""

    layer: str
    members: Tuple[str, ...]
    ratio: float
    channels: int
    kept: int
    macs: int
    accuracy: float


def sensitivity_scan(model: nn.Module, data, ratios: Sequence[float] = (0.25, 0.5, 0.75),
                     n_test: Optional[int] = None) -> List[SensitivityRow]:
    """Prune each channel group alone at each ratio (no fine-tuning) and measure the test
    accuracy: which layers can lose channels cheaply (Li et al., ICLR 2017, Fig. 2).

    ``data``: a :class:`course.data.ImageData`; ``n_test`` limits the test images used.
    """
    from course.cost import count
    from course.train import evaluate

    x, y = data.test_x[:n_test], data.test_y[:n_test]
    example = torch.zeros(1, *x.shape[1:])
    rows = []
    for root, members, channels in channel_groups(model, example):
        for r in ratios:
            pruned = prune_channels(model, 0.0, example, layer_ratios={root: r})
            kept = dict(pruned.named_modules())[root].out_channels
            rows.append(SensitivityRow(root, tuple(members), r, channels, kept, count(pruned, example).macs,
                                       evaluate(pruned, x, y)))
    return rows
