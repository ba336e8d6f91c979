"""Fixtures shared by the test files.

* ``seeded(*shape, seed=0)``: a seeded standard-normal tensor (the same numbers on every run).
* ``n_params(model)``: the number of parameters of a module.
* ``randomize(module, seed=1, example=None)``: seeded random weights *and* batch-norm statistics
  (:func:`course.equivalence.randomize_weights`), so that a wrong name mapping or a wrong
  folding cannot hide behind a fresh model's defaults; with ``example`` (an input) every conv
  and linear layer is rescaled to unit output deviation on it (scale kept at any depth).
* ``chapter1_notebook(...)``: a Chapter 1 solution notebook built from the learner answers of
  ``tests/ch01_answers.py`` (:func:`ch01_answers.chapter1_notebook`).

It also orders the session for ``make test``'s pytest-xdist workers (:data:`LONG_FIRST`) and gives
each worker one thread.
"""

from __future__ import annotations

import os
from typing import Optional

import pytest
import torch
from torch import nn

from ch01_answers import chapter1_notebook as _chapter1_notebook  # tests/ is on sys.path
from course.equivalence import randomize_weights

# Under pytest-xdist (``make test`` runs two workers), each worker computes on one thread: two
# workers of two threads each on a 2-core machine oversubscribe it, and OpenMP's waiting threads
# spin. Tests that need a thread count set it themselves (and restore it).
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

#: Files that take minutes (``pytest --durations``: a notebook's nbval run, a grading batch),
#: longest first. They are collected first, so that pytest-xdist hands them out first and its
#: workers finish together, instead of one worker starting a five-minute notebook at the end.
LONG_FIRST = (
    "solutions/09_compression.ipynb",
    "tests/test_hostile.py",
    "tests/test_course_grading.py",
    "solutions/05_window_attention.ipynb",
    "solutions/08_device_profiling.ipynb",
    "tests/test_sandbox.py",
    "tests/test_grading.py",
)


def pytest_collection_modifyitems(session, config, items):
    """Run the files of :data:`LONG_FIRST` first, in that order; the order within a file, and
    of the other files, is kept (a stable sort)."""
    def rank(item):
        path = item.nodeid.split("::", 1)[0]
        return LONG_FIRST.index(path) if path in LONG_FIRST else len(LONG_FIRST)

    items.sort(key=rank)


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
