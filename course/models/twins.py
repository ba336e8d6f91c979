"""Twins: the same network in timm or torchvision, and the one way to copy weights between the two.

Each model file holds only its name mapping, ``twin_mapping(model, twin) -> {course tensor
name: twin tensor name}``, registered in the zoo (:attr:`course.models.zoo.ZooEntry.twin_mapping`);
:func:`copy_state_by_name` copies through it and :func:`course.models.load_twin_weights` is the
one call that does both.
"""

from __future__ import annotations

import re
from typing import Dict, Mapping, Sequence, Tuple

from torch import nn

from course.models.zoo import ZooEntry

__all__ = ["copy_state_by_name", "create_twin", "rename_by_patterns", "rename_prefixes"]


def create_twin(entry: ZooEntry, **kwargs) -> nn.Module:
    """Build ``entry``'s twin with random weights (``"timm:NAME"`` or ``"torchvision:NAME"``).

    For a deploy-time entry (``entry.deploy``, a re-parameterized model) the twin is
    re-parameterized too, by its own library (``timm.utils.reparameterize_model``), so that both
    hold the same tensors. timm and torchvision are imported here, on first use. No weights are
    downloaded.
    """
    if not entry.twin:
        raise ValueError(f"model {entry.name!r} has no twin")
    library, _, name = entry.twin.partition(":")
    if library == "timm":
        import timm

        twin = timm.create_model(name, pretrained=False, **kwargs)
        if entry.deploy:
            from timm.utils import reparameterize_model

            twin = reparameterize_model(twin.eval())
        return twin
    if library == "torchvision":
        import torchvision

        return torchvision.models.get_model(name, weights=None, **kwargs)
    raise ValueError(f"unknown twin library {library!r} in {entry.twin!r}")


def copy_state_by_name(target: nn.Module, source: nn.Module, mapping: Dict[str, str]) -> None:
    """Copy ``source``'s tensors into ``target`` by a name mapping ``{target name: source name}``.

    Strict both ways: every tensor of the source must be mapped, every tensor of the target
    must be in the mapping, and every mapped pair must have the same shape.

    Raises:
        ValueError: naming the first tensor that is unmapped, missing or of another shape.
    """
    src, dst = source.state_dict(), target.state_dict()
    state = {}
    for ours, theirs in mapping.items():
        if ours not in dst:
            raise ValueError(f"the course model has no tensor {ours!r} (mapped to twin {theirs!r})")
        if theirs not in src:
            raise ValueError(f"twin has no tensor {theirs!r} (for {ours!r})")
        if src[theirs].shape != dst[ours].shape:
            raise ValueError(f"shape mismatch: course {ours} {tuple(dst[ours].shape)} vs twin {theirs} {tuple(src[theirs].shape)}")
        state[ours] = src[theirs]
    unused = sorted(set(src) - set(mapping.values()))
    if unused:
        raise ValueError(f"twin tensors with no course counterpart: {unused}")
    uncovered = sorted(set(dst) - set(mapping))
    if uncovered:
        raise ValueError(f"course tensors with no twin counterpart: {uncovered}")
    target.load_state_dict(state, strict=True)


def rename_prefixes(model: nn.Module, prefixes: Mapping[str, str]) -> Dict[str, str]:
    """``{name: twin name}`` for every tensor of ``model``: the longest key of ``prefixes`` that
    starts the name (at a dot) is replaced by its value; other names stay as they are.

    >>> rename_prefixes(nn.Sequential(nn.Linear(2, 2)), {"0": "fc"})
    {'0.weight': 'fc.weight', '0.bias': 'fc.bias'}
    """
    mapping = {}
    for key in model.state_dict():
        theirs = key
        for prefix in sorted(prefixes, key=len, reverse=True):
            if key.startswith(prefix + "."):
                theirs = prefixes[prefix] + key[len(prefix):]
                break
        mapping[key] = theirs
    return mapping


def rename_by_patterns(model: nn.Module, patterns: Sequence[Tuple[str, str]]) -> Dict[str, str]:
    """``{name: twin name}`` for every tensor of ``model``: each ``(regular expression,
    replacement)`` of ``patterns`` applied to the name in order (``re.sub``); a name no pattern
    matches stays as it is.

    >>> rename_by_patterns(nn.Sequential(nn.Linear(2, 2)), [(r"^0\\.", "fc.")])
    {'0.weight': 'fc.weight', '0.bias': 'fc.bias'}
    """
    mapping = {}
    for key in model.state_dict():
        name = key
        for pattern, replacement in patterns:
            name = re.sub(pattern, replacement, name)
        mapping[key] = name
    return mapping
