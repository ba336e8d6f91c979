"""Whole networks at the papers' configurations, built from ``course.blocks``, and their zoo.

Like ``timm.create_model``::

    from course.models import create_model, list_models, load_twin_weights, zoo
    model = create_model("mobilenetv2_100")
    zoo["mobilenetv2_100"].twin      # "timm:mobilenetv2_100"
    zoo["mobilenetv2_100"].paper     # params, MACs, ImageNet top-1, citation
    load_twin_weights(model, twin, "mobilenetv2_100")  # twin = course.models.twins.create_twin(...)

Every module of this package that defines models registers them with
:func:`course.models.zoo.register_model`; they are imported on first use of the zoo.
"""

from __future__ import annotations

import fnmatch
import importlib
import pkgutil
from typing import Iterator, List, Mapping, Optional

from torch import nn

from course.models.zoo import ZOO, Paper, ZooEntry, register_model

_NOT_MODELS = {"zoo", "twins", "efficientnet_names"}
_loaded = False


def _load_all() -> None:
    global _loaded
    if not _loaded:
        for info in pkgutil.iter_modules(__path__):
            if info.name not in _NOT_MODELS and not info.name.startswith("_"):
                importlib.import_module(f"{__name__}.{info.name}")
        _loaded = True


class _Zoo(Mapping):
    """Read-only view of the registry that loads the model files on first access."""

    def __getitem__(self, name: str) -> ZooEntry:
        _load_all()
        if name not in ZOO:
            raise KeyError(f"no model named {name!r}; list_models() gives the names")
        return ZOO[name]

    def __iter__(self) -> Iterator[str]:
        _load_all()
        return iter(sorted(ZOO))

    def __len__(self) -> int:
        _load_all()
        return len(ZOO)


zoo = _Zoo()


def list_models(pattern: Optional[str] = None, chapter: Optional[int] = None) -> List[str]:
    """Names of the zoo's models, sorted; ``pattern`` is a shell-style filter (``"mobilenet*"``)."""
    names = [n for n in zoo if chapter is None or zoo[n].chapter == chapter]
    return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern)]


def create_model(name: str, **kwargs) -> nn.Module:
    """Build the zoo's model ``name`` with random weights (``kwargs`` go to its builder)."""
    return zoo[name].builder(**kwargs)


def load_twin_weights(model: nn.Module, twin: nn.Module, name: str) -> None:
    """Copy ``twin``'s parameters and buffers into ``model``, the zoo's model ``name``, through
    the name mapping its file documents (``zoo[name].twin_mapping``).

    Raises:
        ValueError: when ``name`` has no twin, or naming the first tensor that is unmapped,
            missing or of another shape (:func:`course.models.twins.copy_state_by_name`).
    """
    from course.models.twins import copy_state_by_name

    entry = zoo[name]
    if entry.twin_mapping is None:
        raise ValueError(f"model {name!r} has no twin")
    copy_state_by_name(model, twin, entry.twin_mapping(model, twin))


__all__ = ["Paper", "ZooEntry", "create_model", "list_models", "load_twin_weights", "register_model", "zoo"]
