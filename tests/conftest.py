"""Fixtures shared by the test files.

* ``seeded(*shape, seed=0)``: a seeded standard-normal tensor (the same numbers on every run).
* ``n_params(model)``: the number of parameters of a module.
* ``randomize(module, seed=1)``: seeded random weights *and* batch-norm statistics, so that a
  wrong name mapping or a wrong folding cannot hide behind a fresh model's defaults.
* ``chapter1_notebook(...)``: a Chapter 1 solution notebook built from the learner answers of
  ``tests/ch01_answers.py`` (:func:`ch01_answers.chapter1_notebook`).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ch01_answers import chapter1_notebook as _chapter1_notebook  # tests/ is on sys.path


def _seeded(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def _randomize(module: nn.Module, seed: int = 1) -> nn.Module:
    """Every floating-point tensor of ``module``'s state, seeded: He-normal for weight matrices and
    kernels (deep nets keep their scale), U(0.5, 1.5) for norm scales and BN running variances,
    U(-0.1, 0.1) for biases, shifts and BN running means. Returns it in eval mode."""
    g = torch.Generator().manual_seed(seed)
    for name, tensor in module.state_dict(keep_vars=True).items():
        if not tensor.is_floating_point():
            continue
        if tensor.dim() > 1:
            fresh = torch.randn(tensor.shape, generator=g) * (2.0 / tensor[0].numel()) ** 0.5
        elif name.rsplit(".", 1)[-1] in ("weight", "running_var"):
            fresh = torch.rand(tensor.shape, generator=g) + 0.5
        else:
            fresh = torch.rand(tensor.shape, generator=g) * 0.2 - 0.1
        tensor.copy_(fresh)
    return module.eval()


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
