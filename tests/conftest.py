"""Fixtures shared by the test files.

* ``seeded(*shape, seed=0)``: a seeded standard-normal tensor (the same numbers on every run).
* ``n_params(model)``: the number of parameters of a module.
* ``randomize(module, seed=1, example=None)``: seeded random weights *and* batch-norm statistics
  (:func:`course.equivalence.randomize_weights`), so that a wrong name mapping or a wrong
  folding cannot hide behind a fresh model's defaults; with ``example`` (an input) every conv
  and linear layer is rescaled to unit output deviation on it (scale kept at any depth).
* ``chapter1_notebook(...)``: a Chapter 1 solution notebook built from the learner answers of
  ``tests/ch01_answers.py`` (:func:`ch01_answers.chapter1_notebook`).
"""

from __future__ import annotations

from typing import Optional

import pytest
import torch
from torch import nn

from ch01_answers import chapter1_notebook as _chapter1_notebook  # tests/ is on sys.path
from course.equivalence import randomize_weights


def _seeded(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _randomize(module: nn.Module, seed: int = 1, example: Optional[torch.Tensor] = None) -> nn.Module:
    """:func:`course.equivalence.randomize_weights` (He-normal weights, random norm scales and
    batch-norm statistics, seeded; with ``example``, rescaled to unit output deviation on it),
    then eval mode."""
    return randomize_weights(module, seed, example).eval()


@pytest.fixture
def seeded():
    return _seeded


@pytest.fixture
def n_params():
    return _n_params


@pytest.fixture
def randomize():
    return _randomize


@pytest.fixture
def chapter1_notebook():
    return _chapter1_notebook
