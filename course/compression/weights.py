"""Reference weights shipped with the course (made by ``scripts/make_weights.py``, a few hundred KB each).

:data:`REFERENCE` says what each file holds: the architecture, the dataset it was trained on
(always the course's synthetic :func:`course.data.shapes` with its default arguments), and the
recipe. ``manifest.json`` beside the files records what the script measured: the test accuracy
(the unit tests check it again), training time, MACs and parameters.

>>> from course.compression.weights import load_reference
>>> baseline = load_reference("baseline")  # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict

import torch
from torch import nn

__all__ = ["FOLDER", "REFERENCE", "Reference", "load_reference", "manifest"]

#: Where the files are (package data).
FOLDER = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class Reference:
    """One shipped model: ``build()`` makes the (untrained) architecture; ``epochs``,
    ``batch_size``, ``lr``, ``seed`` are the :func:`course.train.fit` recipe it was trained with
    on ``shapes()``; ``description`` says what the chapter uses it for."""

    name: str
    build: Callable[[], nn.Module]
    epochs: int
    batch_size: int
    lr: float
    seed: int
    description: str

    @property
    def file(self) -> Path:
        return FOLDER / f"{self.name}.pt"


def _baseline():
    from course.compression.nets import ResNetLite

    return ResNetLite((16, 32, 64), (1, 1, 1))


def _early_exit():
    from course.compression.nets import EarlyExitNet

    return EarlyExitNet((16, 32, 64), (1, 1, 1), exit_after=0, exit_width=32)


#: The shipped models.
REFERENCE: Dict[str, Reference] = {
    "baseline": Reference("baseline", _baseline, 30, 128, 3e-3, 0,
                          "ResNetLite widths (16, 32, 64): the model pruned and quantized, and the distillation teacher"),
    "early_exit": Reference("early_exit", _early_exit, 30, 128, 3e-3, 0,
                            "the baseline's architecture with an exit head after stage 0, both heads trained jointly"),
}


def manifest() -> Dict[str, dict]:
    """What ``scripts/make_weights.py`` recorded for each file (``{name: {...}}``)."""
    path = FOLDER / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run scripts/make_weights.py")
    return json.loads(path.read_text())


def load_reference(name: str) -> nn.Module:
    """The shipped model ``name`` (see :data:`REFERENCE`), weights loaded, in eval mode, float32."""
    if name not in REFERENCE:
        raise ValueError(f"unknown reference model {name!r}; choose from {sorted(REFERENCE)}")
    ref = REFERENCE[name]
    if not ref.file.exists():
        raise FileNotFoundError(f"{ref.file} is missing: run scripts/make_weights.py")
    model = ref.build()
    state = torch.load(ref.file, map_location="cpu", weights_only=True)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return model.eval()
