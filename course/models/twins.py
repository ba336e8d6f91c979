"""Twins: the same network in timm or torchvision, and copying weights between the two."""

from __future__ import annotations

from typing import Dict, Iterable

import torch
from torch import nn

from course.models.zoo import ZooEntry


def create_twin(entry: ZooEntry, **kwargs) -> nn.Module:
    """Build ``entry``'s twin with random weights (``"timm:NAME"`` or ``"torchvision:NAME"``).

    timm and torchvision are imported here, on first use. No weights are downloaded.
    """
    if not entry.twin:
        raise ValueError(f"model {entry.name!r} has no twin")
    library, _, name = entry.twin.partition(":")
    if library == "timm":
        import timm

        return timm.create_model(name, pretrained=False, **kwargs)
    if library == "torchvision":
        import torchvision

        return torchvision.models.get_model(name, weights=None, **kwargs)
    raise ValueError(f"unknown twin library {library!r} in {entry.twin!r}")


def copy_state_by_order(target: nn.Module, source: nn.Module, skip: Iterable[str] = ("num_batches_tracked",)) -> None:
    """Copy ``source``'s parameters and buffers into ``target``, matched by registration order.

    Use when both networks define the same tensors in the same order (the usual case for a
    faithful re-implementation); every pair must have the same shape, else ``ValueError``
    names the first pair that does not. Entries whose name ends with one of ``skip`` are
    ignored on both sides.
    """
    def entries(module: nn.Module) -> Dict[str, torch.Tensor]:
        return {k: v for k, v in module.state_dict().items() if not any(k.endswith(s) for s in skip)}

    dst, src = entries(target), entries(source)
    if len(dst) != len(src):
        raise ValueError(f"{len(dst)} tensors in the course model vs {len(src)} in the twin")
    mapped = {}
    for (dk, dv), (sk, sv) in zip(dst.items(), src.items()):
        if dv.shape != sv.shape:
            raise ValueError(f"shape mismatch: course {dk} {tuple(dv.shape)} vs twin {sk} {tuple(sv.shape)}")
        mapped[dk] = sv
    target.load_state_dict(mapped, strict=False)


def copy_state_by_name(target: nn.Module, source: nn.Module, mapping: Dict[str, str]) -> None:
    """Copy ``source``'s tensors into ``target`` by a name mapping ``{target name: source name}``.

    Every tensor of the source must be mapped and every mapped pair must have the same shape;
    the target is loaded strictly (nothing left out).

    Raises:
        ValueError: naming the first tensor that is unmapped, missing or of another shape.
    """
    src, dst = source.state_dict(), target.state_dict()
    unused = sorted(set(src) - set(mapping.values()))
    if unused:
        raise ValueError(f"twin tensors with no course counterpart: {unused}")
    state = {}
    for ours, theirs in mapping.items():
        if theirs not in src:
            raise ValueError(f"twin has no tensor {theirs!r} (for {ours!r})")
        if src[theirs].shape != dst[ours].shape:
            raise ValueError(f"shape mismatch: course {ours} {tuple(dst[ours].shape)} vs twin {theirs} {tuple(src[theirs].shape)}")
        state[ours] = src[theirs]
    target.load_state_dict(state, strict=True)
