"""Every chapter's explorer: its formula never builds or runs a model, and agrees with the counter."""

import importlib

import pytest
from torch import nn

FACTORIES = [
    "course.widgets:conv_explorer",
    "course.chapters.ch02:separable_explorer",
    "course.chapters.ch03:unit_explorer",
    "course.chapters.ch04:block_explorer",
    "course.chapters.ch05:attention_explorer",
    "course.chapters.ch06:metaformer_explorer",
    "course.chapters.ch07:reparam_explorer",
]


def _factory(path):
    module, _, name = path.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as error:
        pytest.skip(f"{path} is not available: {error}")


@pytest.mark.parametrize("path", FACTORIES)
def test_explorer_formula_never_builds_or_runs_a_model(path, monkeypatch):
    explorer = _factory(path)(measure=False)
    formula = getattr(explorer, "formula", None)
    if formula is None:
        pytest.skip(f"{path} has no closed-form formula")
    config = dict(explorer.config)
    expected = formula(config)

    def forbidden(*args, **kwargs):
        raise AssertionError("a formula built or ran a model")

    monkeypatch.setattr(nn.Module, "__init__", forbidden)
    monkeypatch.setattr(nn.Module, "__call__", forbidden)
    assert formula(config) == expected


@pytest.mark.parametrize("path", FACTORIES)
def test_explorer_formula_agrees_with_the_counter_at_its_defaults(path):
    explorer = _factory(path)(measure=False)
    result = explorer.result
    assert result.error is None, result.error
    if result.formula is not None:
        assert result.formula.macs == result.counted.macs
        assert result.formula.params == result.counted.params
